//! The facts a run gives: its rows (one a measured variant, parsed by the id contract), the
//! machine block, the findings and the recommendations, as the analysis computes them and the
//! renderers phrase them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use parcost::cpu::{CpuFeatures, Peak};
use parcost::id::{self, key};

use crate::model::{Advice, AdviceKind, Ratio};
use crate::results::{Counted, Estimate, Measurement, Run, Value};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MachineOut {
    pub cpu: String,
    pub logical_cores: usize,
    pub physical_cores: usize,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rustc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openblas: Option<OpenBlasOut>,
    /// The CPU's family, model and the vector features that decide the BLAS kernels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_features: Option<CpuFeatures>,
    /// The measured clock and the theoretical DGEMM peak of the physical cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<Peak>,
    /// Every OpenBLAS kernel tried in a child process before the run, per layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_trials: Vec<KernelTrialOut>,
    /// The machine's noise around each suite's latest run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noise: Vec<NoiseOut>,
    pub limits: Limits,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenBlasOut {
    pub config: String,
    /// The kernel OpenBLAS chooses by itself on this machine ("unknown" when no run said).
    pub core: String,
    /// The kernel the suites ran with.
    pub kernel: String,
    /// Who chose `kernel`: `library`, `environment` (the user's OPENBLAS_CORETYPE), `auto`
    /// (`cargo xtask bench`: the fastest that passed its trial) or `named` (`--kernel NAME`).
    pub kernel_source: String,
    pub layers: Vec<String>,
}

/// One suite run's noise: the parallel capacity calibrated before and after it, steal and the
/// CPU time of other processes, and whether to rerun it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoiseOut {
    pub suite: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// `kernel-<name>` for a run of the kernel sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    pub started: String,
    pub quick: bool,
    pub threads: usize,
    pub capacity_before: f64,
    pub capacity_after: f64,
    pub steal: f64,
    pub foreign_load: f64,
    /// The rounds of the run, and how many of them the noise check flagged (the numbers above
    /// are the worst round's).
    #[serde(default)]
    pub rounds: u32,
    #[serde(default)]
    pub noisy_rounds: u32,
    /// In its one round, or in most of its rounds, the calibrations disagreed by more than 10%
    /// or other processes used more than 10% of the CPUs: the suite's figures are suspect.
    pub flagged: bool,
    /// The command that reruns this suite, when flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<String>,
}

impl MachineOut {
    /// The lowest capacity calibrated for `suite` (the speedup the machine delivered then).
    pub fn capacity(&self, suite: &str) -> Option<f64> {
        self.noise
            .iter()
            .filter(|n| n.suite == suite)
            .map(|n| n.capacity_before.min(n.capacity_after))
            .min_by(f64::total_cmp)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelTrialOut {
    pub layer: String,
    /// The `OPENBLAS_CORETYPE` asked for; absent for the library's own choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded: Option<String>,
    /// `passed`, or what went wrong.
    pub verdict: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Limits {
    /// The best DGEMM rate measured with the kernel the suites ran (`blas-tuning/matmul`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dgemm_peak_gflops: Option<f64>,
    /// The same with its 95% interval, in GFLOP/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dgemm_peak: Option<Estimate>,
    /// Physical cores x FLOP per cycle x measured clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theoretical_peak_gflops: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memcpy_gbps: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub suite: String,
    pub workload: String,
    pub params: BTreeMap<String, Value>,
    pub full_id: String,
    /// Criterion's typical estimate and 95% interval; absent for a variant run only once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ns: Option<Estimate>,
    /// The one run of a variant over the sampling budget (no interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_run_ns: Option<f64>,
    /// A variant stopped as hopeless after its checked run: its time is at least this (ns), a
    /// set factor times the best of its instance. A bound, never an estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least_ns: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<Throughput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_per_wall: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_switches: Option<u64>,
    /// Threads of the process that really ran in its recorded run (their own CPU clocks,
    /// [`parcost::meta::Usage::busy_threads`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_threads: Option<u64>,
    /// What each MPI rank saw from inside (ranks-x-threads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranks_seen: Vec<parcost::meta::RankSeen>,
}

/// A cell under an OpenBLAS layer in which more threads ran than its tasks x BLAS threads:
/// the library did not keep the count it was set to (or a pool left from the cell before was
/// still spinning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadsSeen {
    pub full_id: String,
    pub set: u64,
    pub ran: u64,
}

/// The cells where more threads ran than were set ([`ThreadsSeen`]), from the rows of the
/// suites that set a BLAS thread count under an OpenBLAS layer.
pub fn threads_above_set(rows: &[Row]) -> Vec<ThreadsSeen> {
    rows.iter()
        .filter_map(|r| {
            let layer = r.params.get(key::LAYER)?.name()?;
            if !parcost::id::layer::is_openblas(layer) || r.suite == id::RANKS_X_THREADS.name {
                return None;
            }
            let set = r.int(key::TASKS).unwrap_or(1) * r.int(key::BLAS_THREADS)?;
            let ran = r.busy_threads?;
            (ran > set).then(|| ThreadsSeen {
                full_id: r.full_id.clone(),
                set,
                ran,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    pub unit: String,
    pub estimate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub suite: String,
    pub title: String,
    pub text: String,
    pub ratio: f64,
    pub lower: f64,
    pub upper: f64,
    pub seen: bool,
}

impl Finding {
    /// A finding of `ratio`; `seen` is what the one rule of [`crate::model`] decided.
    pub fn new(suite: &str, title: String, text: String, ratio: Ratio, seen: bool) -> Self {
        Self {
            suite: suite.to_owned(),
            title,
            text,
            ratio: ratio.estimate,
            lower: ratio.lower.unwrap_or(ratio.estimate),
            upper: ratio.upper.unwrap_or(ratio.estimate),
            seen,
        }
    }
}

/// What to use for one workload instance, judged by the same rule as the findings: a
/// configuration other than the default is recommended only when its interval separates from
/// the default's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recommendation {
    pub suite: String,
    pub workload: String,
    pub params: BTreeMap<String, Value>,
    /// The configuration to use: `fastest` when recommended, else the default (empty when no
    /// default was measured: nothing is chosen for the user).
    pub best: BTreeMap<String, Value>,
    /// The fastest configuration measured (by its estimate).
    pub fastest: BTreeMap<String, Value>,
    /// The library default: 1 task x P BLAS threads (P BLAS threads in blas-tuning).
    pub default: BTreeMap<String, Value>,
    /// `recommend` (the pick beat the default beyond the interval of their ratio and the
    /// margin), or why the default stands.
    #[serde(flatten)]
    pub advice: AdviceKind,
    /// The default's time over the pick's, with the interval the advice was judged by (between
    /// rounds, and the rounds it paired, where both were measured in enough of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speedup_vs_default: Option<Ratio>,
    /// Naive (P tasks x P BLAS threads) over the fastest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speedup_vs_naive: Option<Estimate>,
    /// The fastest's rate as a share of the best DGEMM rate measured in the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<Estimate>,
    /// The fastest's rate as a share of the theoretical peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency_theoretical: Option<Estimate>,
    /// The advice itself, for the verdict's settings (only a recommendation carries the
    /// comparison that separated); not exported, and absent in a summary read back.
    #[serde(skip)]
    pub typed: Option<Advice<BTreeMap<String, Value>>>,
}

impl Recommendation {
    /// Whether the fastest was recommended over the default.
    pub fn recommended(&self) -> bool {
        self.advice == AdviceKind::Recommend
    }
}

impl Row {
    /// A row for tests: `id` timed at `ms` milliseconds in three rounds (a 2% between-round
    /// interval), the rounds' order set by the id (so two rows' rounds are not alike and their
    /// paired ratio has an interval too), at `gflops` if set.
    #[cfg(test)]
    pub fn for_test(id: &str, ms: f64, gflops: Option<f64>) -> Self {
        let order = id.bytes().map(usize::from).sum::<usize>();
        Self {
            throughput: gflops.map(|g| Throughput {
                unit: "GFLOP/s".into(),
                estimate: g,
            }),
            ..Self::timed(id, Estimate::in_rounds(ms * 1e6, ms * 0.02e6, order))
        }
    }

    /// A row for tests: `id` timed `time`, nothing else measured.
    #[cfg(test)]
    pub fn timed(id: &str, time: Estimate) -> Self {
        let (suite, workload, params) = crate::results::parse_id(id).expect("valid id");
        Self {
            suite,
            workload,
            params,
            full_id: id.to_owned(),
            time_ns: Some(time),
            single_run_ns: None,
            at_least_ns: None,
            throughput: None,
            cpu_per_wall: None,
            context_switches: None,
            busy_threads: None,
            ranks_seen: Vec::new(),
        }
    }

    pub fn from_measurement(m: &Measurement) -> Self {
        let ns = m.typical_ns();
        let throughput = match (m.counted, ns) {
            (Some(c), Some(ns)) if ns > 0.0 => Some(match c {
                Counted::Flop(n) => Throughput {
                    unit: "GFLOP/s".into(),
                    estimate: n as f64 / ns,
                },
                Counted::Bytes(n) => Throughput {
                    unit: "GB/s".into(),
                    estimate: n as f64 / ns,
                },
                Counted::Elements(n) if m.workload == "svd" => Throughput {
                    unit: "SVD/s".into(),
                    estimate: n as f64 / ns * 1e9,
                },
                Counted::Elements(n) => Throughput {
                    unit: "Melem/s".into(),
                    estimate: n as f64 / ns * 1e3,
                },
            }),
            _ => None,
        };
        Self {
            suite: m.suite.clone(),
            workload: m.workload.clone(),
            params: m.params.clone(),
            full_id: m.full_id.clone(),
            time_ns: m.time,
            single_run_ns: m.single_run_ns,
            at_least_ns: m.at_least_ns,
            throughput,
            cpu_per_wall: m.usage.map(|u| u.cpu_per_wall),
            context_switches: m.usage.map(|u| u.context_switches),
            busy_threads: m.usage.and_then(|u| u.busy_threads),
            ranks_seen: m.ranks_seen.clone(),
        }
    }

    pub fn int(&self, key: &str) -> Option<u64> {
        self.params.get(key).and_then(Value::int)
    }

    pub fn name(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(Value::name)
    }

    pub fn typical_ns(&self) -> Option<f64> {
        self.time_ns.map(|t| t.estimate).or(self.single_run_ns)
    }

    /// Criterion's estimate with its interval, else the one run as an estimate of no width.
    pub fn time_or_once(&self) -> Option<Estimate> {
        self.time_ns.or_else(|| {
            self.single_run_ns.map(|s| Estimate {
                estimate: s,
                lower: s,
                upper: s,
                rounds: Default::default(),
                pooled: None,
            })
        })
    }

    /// The row's GFLOP/s with its interval (a rate's interval inverts the time's); absent for
    /// another unit or a variant run once.
    pub fn gflops(&self) -> Option<Estimate> {
        let g = self
            .throughput
            .as_ref()
            .filter(|t| t.unit == "GFLOP/s")?
            .estimate;
        let t = self.time_ns?;
        Some(per(g * t.estimate, t))
    }
}

/// The rate of `work` done in time `t`: `work / t`, its interval inverting the time's.
pub fn per(work: f64, t: Estimate) -> Estimate {
    Estimate {
        estimate: work / t.estimate,
        lower: work / t.upper,
        upper: work / t.lower,
        rounds: Default::default(),
        pooled: None,
    }
}

/// A time in words for the analysis's own sentences: `12.345 ms`.
pub fn ms_words(ns: f64) -> String {
    format!("{:.3} ms", ns / 1e6)
}

/// A time in three significant digits, for a sentence a person reads at a glance (a run's
/// figures move by more than a percent between runs): `111 ms`, `30.5 ms`, `1.23 ms`.
pub fn ms_short(ns: f64) -> String {
    let ms = ns / 1e6;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// Counts seen, each once, with their noun, singular only when the one count is one: `1 CPU`,
/// `1 or 2 CPUs`.
pub fn counts(values: &std::collections::BTreeSet<u64>, word: &str) -> String {
    let plural = if values.iter().all(|&n| n == 1) {
        ""
    } else {
        "s"
    };
    let list: Vec<String> = values.iter().map(u64::to_string).collect();
    format!("{} {word}{plural}", list.join(" or "))
}

/// A count with its noun, singular for one: `1 task`, `2 tasks`.
pub fn count(n: impl Into<u64>, word: &str) -> String {
    let n = n.into();
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// A cell of a tasks x BLAS threads grid in words: `1 task x 2 BLAS threads`.
pub fn tasks_x_threads(tasks: u64, blas_threads: u64) -> String {
    format!(
        "{} x {}",
        count(tasks, "task"),
        count(blas_threads, "BLAS thread")
    )
}

/// A short time in words for the analysis's own sentences: `12.3 µs`.
pub fn us_words(ns: f64) -> String {
    format!("{:.1} µs", ns / 1e3)
}

/// The machine block from the run's sidecars.
pub fn machine_out(run: &Run, limits: Limits) -> MachineOut {
    let m = run.machine.as_ref();
    MachineOut {
        cpu: m.map_or_else(|| "unknown (no sidecar)".into(), |m| m.cpu.clone()),
        logical_cores: m.map_or(0, |m| m.logical_cores),
        physical_cores: m.map_or(0, |m| m.physical_cores),
        os: m.map_or_else(String::new, |m| m.os.clone()),
        rustc: m.and_then(|m| m.rustc.clone()),
        git_sha: m.and_then(|m| m.git_sha.clone()),
        created: m.map_or_else(String::new, |m| iso8601(m.created_unix)),
        openblas: run.openblas.as_ref().map(|info| {
            // What the library chooses: the sidecar knows when the suites ran under it (or
            // `cargo xtask bench` said), else the survey's trial of it.
            let library = info.library_core.clone().or_else(|| {
                run.surveys
                    .iter()
                    .find_map(|s| s.library().and_then(|t| t.loaded.clone()))
            });
            OpenBlasOut {
                config: run.openblas_config.clone().unwrap_or_default(),
                core: library.unwrap_or_else(|| "unknown".into()),
                kernel: info.core.clone(),
                kernel_source: info.kernel_source.name().to_owned(),
                layers: run.layers.clone(),
            }
        }),
        cpu_features: m.and_then(|m| m.cpu_features.clone()),
        peak: m.and_then(|m| m.peak),
        kernel_trials: run
            .surveys
            .iter()
            .flat_map(|s| {
                s.trials.iter().map(|t| KernelTrialOut {
                    layer: s.layer.clone(),
                    requested: t.requested.clone(),
                    loaded: t.loaded.clone(),
                    verdict: t.verdict.to_string(),
                })
            })
            .collect(),
        noise: run
            .runs
            .iter()
            .filter_map(|r| {
                let n = r.info.noise?;
                let flagged = r.info.flagged();
                Some(NoiseOut {
                    suite: r.suite.clone(),
                    layer: r.layer.clone(),
                    part: r.tag.clone(),
                    started: iso8601(r.info.started_ms / 1000),
                    quick: r.info.quick,
                    threads: n.before.threads,
                    capacity_before: n.before.capacity,
                    capacity_after: n.after.capacity,
                    steal: n.steal,
                    foreign_load: n.foreign_load,
                    rounds: r.info.rounds.count_ones().max(1),
                    noisy_rounds: if r.info.rounds == 0 {
                        u32::from(n.flagged())
                    } else {
                        r.info.noisy_rounds.count_ones()
                    },
                    flagged,
                    rerun: flagged.then(|| {
                        let layer = r
                            .layer
                            .as_ref()
                            .map(|l| format!(" --layer {l}"))
                            .unwrap_or_default();
                        format!("cargo xtask bench --suite {}{layer}", r.suite)
                    }),
                })
            })
            .collect(),
        limits,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` from seconds since the epoch (the civil calendar, no time zones).
pub fn iso8601(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_named_in_the_singular_for_one() {
        // The verdict's "Never" line said "1 tasks x 4 BLAS threads".
        assert_eq!(tasks_x_threads(1, 4), "1 task x 4 BLAS threads");
        assert_eq!(tasks_x_threads(2, 1), "2 tasks x 1 BLAS thread");
        // The MPI default's line said "each rank could run on 1 CPU(s)".
        let set = |v: &[u64]| v.iter().copied().collect();
        assert_eq!(counts(&set(&[1]), "CPU"), "1 CPU");
        assert_eq!(counts(&set(&[2, 1]), "CPU"), "1 or 2 CPUs");
        assert_eq!(counts(&set(&[2]), "thread"), "2 threads");
    }

    #[test]
    fn a_time_at_a_glance_has_three_significant_digits() {
        // The MPI default's line said "111.121 ms" of a figure that moves by percents.
        assert_eq!(ms_short(111_121_000.0), "111 ms");
        assert_eq!(ms_short(30_540_000.0), "30.5 ms");
        assert_eq!(ms_short(1_234_000.0), "1.23 ms");
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_564_800), "2026-11-25T00:00:00Z");
        assert_eq!(iso8601(951_782_400 + 3661), "2000-02-29T01:01:01Z");
    }

    #[test]
    fn a_cell_where_more_threads_ran_than_were_set_is_named() {
        let row = |id: &str, busy: u64| -> Row {
            let (suite, workload, params) = crate::results::parse_id(id).expect("an id");
            serde_json::from_value(serde_json::json!({
                "suite": suite, "workload": workload, "params": params, "full_id": id,
                "busy_threads": busy,
            }))
            .expect("a row")
        };
        let rows = [
            // OpenBLAS's OpenMP build reset to 2 threads where 1 was set.
            row(
                "task-level/matmul/layer=openmp,n=64,pairs=3815/variant=task-level,tasks=2,blas_threads=1",
                4,
            ),
            row("blas-tuning/matmul/layer=pthreads,n=2048/blas_threads=2", 2),
            row("blas-tuning/matmul/layer=faer,n=2048/blas_threads=1", 3),
        ];
        let above = threads_above_set(&rows);
        assert_eq!(above.len(), 1, "{above:?}");
        assert_eq!((above[0].set, above[0].ran), (2, 4));
        assert!(above[0].full_id.contains("openmp"));
    }
}
