//! Run metadata: the machine a suite ran on, and the CPU usage of each variant, written as a
//! JSON sidecar next to Criterion's own files.
//!
//! A time alone cannot tell oversubscription from a slow kernel; CPU time over wall time and the
//! number of context switches can. They come from one extra run of each variant, outside
//! Criterion's timing.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::blas::BlasInfo;
use crate::cpu::{CpuFeatures, Peak};
use crate::fsutil::write_atomically;
use crate::noise::Noise;
use crate::topology::Topology;

/// Bumped whenever a field of [`Sidecar`] changes meaning.
pub const SIDECAR_SCHEMA: u32 = 1;

/// Where the sidecars live inside Criterion's output folder.
pub const SIDECAR_DIR: &str = "parcost";

/// The machine a run happened on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub logical_cores: usize,
    pub physical_cores: usize,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rustc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    /// Seconds since the Unix epoch when the metadata was taken.
    pub created_unix: u64,
    /// The vector features that decide which BLAS kernels can run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_features: Option<CpuFeatures>,
    /// The measured clock and the theoretical DGEMM peak of the physical cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<Peak>,
}

impl Machine {
    /// This machine, with its clock and FMA throughput measured (about 0.3 s).
    pub fn detect() -> Self {
        let machine = Self::without_peak();
        Self {
            peak: machine
                .cpu_features
                .as_ref()
                .and_then(|f| Peak::measure(f, machine.physical_cores, machine.logical_cores)),
            ..machine
        }
    }

    /// This machine without its clock and peak measured: a later round of a run, whose first
    /// round measured them (its sidecar keeps them, [`Sidecar::merge_into`]). A quarter of a
    /// second a process, over a hundred processes a full run.
    pub fn without_peak() -> Self {
        let topology = Topology::detect();
        let features = CpuFeatures::detect();
        Self {
            peak: None,
            cpu_features: Some(features),
            cpu: cpu_model().unwrap_or_else(|| "unknown CPU".to_owned()),
            logical_cores: topology.logical,
            physical_cores: topology.physical,
            os: os_name(),
            rustc: command_line("rustc", &["--version"]),
            git_sha: git_sha(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn os_name() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    match std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        Ok(kernel) => format!("{pretty}, Linux {}", kernel.trim()),
        Err(_) => pretty,
    }
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn git_sha() -> Option<String> {
    let sha = command_line("git", &["rev-parse", "--short=12", "HEAD"])?;
    let dirty = command_line("git", &["status", "--porcelain", "--untracked-files=no"]).is_some();
    Some(if dirty { format!("{sha}-dirty") } else { sha })
}

/// CPU use of one run of a variant, from `getrusage` around it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub wall_ns: u64,
    /// User plus system time of every thread of this process and of the children it reaped.
    pub cpu_ns: u64,
    /// `cpu_ns / wall_ns`: how many cores were busy on average (spinning counts as busy).
    pub cpu_per_wall: f64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// Voluntary plus involuntary context switches.
    pub context_switches: u64,
    /// The run (its [`RunInfo`] key in the sidecar) that measured this variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    /// Whether Criterion sampled the variant in that run; `false`: it was over the sampling
    /// budget and this one run is its only figure (Criterion's files for it are older).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled: Option<bool>,
    /// Threads of this process right after the run (`Threads:` of `/proc/self/status`): the
    /// task pool, and whatever threads the library started and keeps (an OpenMP team per task
    /// thread, matrixmultiply's pool; faer starts none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    /// Threads of this process that really ran during the run: their own on-CPU clocks
    /// (`/proc/self/task/*/schedstat`) grew by more than [`BUSY_SHARE`] of its wall time.
    /// Spinning counts: a BLAS thread that waited busily did run. Beside the count set it shows
    /// a library that ignored it (OpenBLAS's OpenMP build can reset its thread count to
    /// OpenMP's). Absent where `/proc` has no schedstat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_threads: Option<u64>,
}

/// A thread counts as busy in a run when it was on a CPU for more than this share of the run's
/// wall time.
pub const BUSY_SHARE: f64 = 0.10;

/// Each thread of this process with its time on a CPU so far, ns (`schedstat`'s first field).
fn thread_cpu_ns() -> Option<BTreeMap<u32, u64>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread that ended between the listing and the read is simply not counted.
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = text.split_whitespace().next().and_then(|v| v.parse().ok()) {
            out.insert(tid, ns);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// How many threads ran for more than [`BUSY_SHARE`] of `wall_ns` between two readings of
/// [`thread_cpu_ns`] (a thread started in between counts from zero).
fn busy_between(before: &BTreeMap<u32, u64>, after: &BTreeMap<u32, u64>, wall_ns: u64) -> u64 {
    let least = BUSY_SHARE * wall_ns as f64;
    after
        .iter()
        .filter(|(tid, ns)| {
            let was = before.get(tid).copied().unwrap_or(0);
            ns.saturating_sub(was) as f64 > least
        })
        .count() as u64
}

/// What one MPI rank saw from inside itself: at its start, and (`busy_threads`) in a checked run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankSeen {
    pub rank: u32,
    /// The host it ran on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// The CPUs it may run on (`sched_getaffinity`), ascending: one core's where OpenMPI bound
    /// it, every CPU of the host when it is not bound.
    pub cpus: Vec<usize>,
    /// The BLAS threads its calls run at (`openblas_get_num_threads()` in the rank, after any
    /// count it set): OpenBLAS's own choice when nothing was set.
    pub blas_threads: usize,
    /// `OPENBLAS_NUM_THREADS` as it saw it; absent: not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openblas_num_threads: Option<String>,
    /// Threads of the rank on a CPU for at least a tenth of its products in the checked run
    /// (the BLAS threads that really worked, whatever `blas_threads` says); absent for a
    /// start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_threads: Option<u32>,
}

/// One run of a suite (under one layer): when it started and what the machine did meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Milliseconds since the Unix epoch when the run started; also its key.
    pub started_ms: u64,
    /// Criterion's `--quick`.
    pub quick: bool,
    /// The worst noise any of its rounds saw (a flagged round's, else the largest drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
    /// The rounds of the run recorded here (each a fresh process), one bit a round (bit k-1
    /// for round k). 0 in older sidecars: one round.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rounds: u32,
    /// The rounds whose own noise check flagged, one bit a round.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub noisy_rounds: u32,
    /// When its last recorded round ended (ms since the epoch): a Criterion file written
    /// after it belongs to a later run that recorded nothing (one killed halfway), not to
    /// this one. Absent in older sidecars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// Its key came from `cargo xtask bench` (`PARCOST_RUN`), shared by every suite of that
    /// run; a plain `cargo bench` keys each suite process by its own start. False in older
    /// sidecars.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_key: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RunInfo {
    /// The record of round `round` of a run.
    pub fn of_round(started_ms: u64, quick: bool, noise: Option<Noise>, round: u32) -> Self {
        let bit = 1u32.checked_shl(round.saturating_sub(1)).unwrap_or(0);
        Self {
            started_ms,
            quick,
            noise,
            rounds: bit,
            noisy_rounds: if noise.is_some_and(|n| n.flagged()) {
                bit
            } else {
                0
            },
            ended_ms: Some(now_ms()),
            shared_key: false,
        }
    }

    /// Whether the run's figures are suspect: its one round flagged, or every one of its
    /// rounds. With rounds, a disturbed round is in the spread between rounds, which the
    /// report's intervals hold (it widens its step's pooled spread); only a machine busy
    /// throughout, which moves every round alike, hides from them. (Most rounds, the rule
    /// before, vetoed one suite's advice in one of two full runs here: two of three faer
    /// rounds whose closing calibration read low.)
    pub fn flagged(&self) -> bool {
        let rounds = self.rounds.count_ones();
        if rounds <= 1 {
            return self.noise.is_some_and(|n| n.flagged());
        }
        self.noisy_rounds.count_ones() >= rounds
    }

    /// This round's record merged with another round's of the same run: the worse noise, every
    /// round.
    pub fn merge(self, other: Self) -> Self {
        let worse = |a: Noise, b: Noise| {
            if (b.flagged(), b.drift()) > (a.flagged(), a.drift()) {
                b
            } else {
                a
            }
        };
        Self {
            started_ms: self.started_ms,
            quick: self.quick,
            noise: match (self.noise, other.noise) {
                (Some(a), Some(b)) => Some(worse(a, b)),
                (a, b) => a.or(b),
            },
            rounds: self.rounds | other.rounds,
            noisy_rounds: self.noisy_rounds | other.noisy_rounds,
            ended_ms: self.ended_ms.max(other.ended_ms),
            shared_key: self.shared_key || other.shared_key,
        }
    }
}

/// One round's figure of a variant, as the harness took it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoundTime {
    /// Criterion sampled it: the estimate is under the round's baseline
    /// ([`crate::id::round::baseline`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sampled: bool,
    /// The harness's own timed runs, in ns, for a variant too slow for Criterion's ten samples
    /// (one, over the sampling budget): the round's figure is their median.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs_ns: Vec<u64>,
    /// A hopeless variant, stopped after its checked run: its time is only known to be at
    /// least this (a set factor times the best of its instance so far). Never an estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least_ns: Option<u64>,
}

impl RoundTime {
    /// The round's figure from the harness's runs: their median (the mean of the middle two
    /// of an even count), with the fastest and slowest run; `None` without runs.
    pub fn of_runs(&self) -> Option<(f64, f64, f64)> {
        let mut runs: Vec<f64> = self.runs_ns.iter().map(|&r| r as f64).collect();
        runs.sort_by(f64::total_cmp);
        let n = runs.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => runs[n / 2],
            _ => (runs[n / 2 - 1] + runs[n / 2]) / 2.0,
        };
        Some((median, runs[0], runs[n - 1]))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The threads this process has now, from `/proc/self/status`.
pub fn process_threads() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU time of this process and of the children it reaped.
pub fn own_cpu() -> Duration {
    rusage_total().cpu
}

#[derive(Clone, Copy)]
struct Rusage {
    cpu: Duration,
    voluntary: u64,
    involuntary: u64,
}

fn rusage(who: libc::c_int) -> Rusage {
    // SAFETY: getrusage fills the zeroed struct; RUSAGE_SELF/CHILDREN cannot fail.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Rusage {
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        voluntary: ru.ru_nvcsw.max(0) as u64,
        involuntary: ru.ru_nivcsw.max(0) as u64,
    }
}

fn rusage_total() -> Rusage {
    let (own, children) = (rusage(libc::RUSAGE_SELF), rusage(libc::RUSAGE_CHILDREN));
    Rusage {
        cpu: own.cpu + children.cpu,
        voluntary: own.voluntary + children.voluntary,
        involuntary: own.involuntary + children.involuntary,
    }
}

/// CPU time and context switches of processes `getrusage` of this one does not count: workers
/// or MPI ranks still alive (not reaped, or on another host).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extra {
    pub cpu: Duration,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

impl Extra {
    /// What happened between `before` and `self` (both totals so far).
    pub fn since(self, before: Self) -> Self {
        Self {
            cpu: self.cpu.saturating_sub(before.cpu),
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(before.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(before.involuntary_switches),
        }
    }
}

impl Usage {
    /// The same run with `extra` CPU time added: worker processes still alive, whose time
    /// `getrusage` of this process does not count.
    pub fn with_extra_cpu(self, extra: Duration) -> Self {
        self.with_extra(Extra {
            cpu: extra,
            ..Extra::default()
        })
    }

    /// The same run with other processes' CPU time and context switches added.
    pub fn with_extra(self, extra: Extra) -> Self {
        let cpu_ns = self
            .cpu_ns
            .saturating_add(u64::try_from(extra.cpu.as_nanos()).unwrap_or(u64::MAX));
        let voluntary_switches = self
            .voluntary_switches
            .saturating_add(extra.voluntary_switches);
        let involuntary_switches = self
            .involuntary_switches
            .saturating_add(extra.involuntary_switches);
        Self {
            cpu_ns,
            cpu_per_wall: cpu_ns as f64 / self.wall_ns.max(1) as f64,
            voluntary_switches,
            involuntary_switches,
            context_switches: voluntary_switches + involuntary_switches,
            ..self
        }
    }

    /// A run timed elsewhere (wall time only; `extra` for the processes that did the work).
    pub fn of_wall(wall: Duration, extra: Extra) -> Self {
        Self {
            wall_ns: u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX).max(1),
            cpu_ns: 0,
            cpu_per_wall: 0.0,
            voluntary_switches: 0,
            involuntary_switches: 0,
            context_switches: 0,
            run: None,
            sampled: None,
            threads: None,
            busy_threads: None,
        }
        .with_extra(extra)
    }

    /// Runs `f` once and returns its output with the CPU usage it caused.
    pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Self) {
        let threads_before = thread_cpu_ns();
        let before = rusage_total();
        let start = Instant::now();
        let out = f();
        let wall = start.elapsed();
        let after = rusage_total();
        let threads_after = thread_cpu_ns();
        let cpu = after.cpu.saturating_sub(before.cpu);
        let voluntary = after.voluntary.saturating_sub(before.voluntary);
        let involuntary = after.involuntary.saturating_sub(before.involuntary);
        let wall_ns = u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX).max(1);
        let cpu_ns = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
        let usage = Self {
            wall_ns,
            cpu_ns,
            cpu_per_wall: cpu_ns as f64 / wall_ns as f64,
            voluntary_switches: voluntary,
            involuntary_switches: involuntary,
            context_switches: voluntary + involuntary,
            run: None,
            sampled: None,
            threads: process_threads(),
            busy_threads: threads_before
                .zip(threads_after)
                .map(|(b, a)| busy_between(&b, &a, wall_ns)),
        };
        (out, usage)
    }
}

/// What one suite run (under one OpenBLAS layer) leaves next to Criterion's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    pub schema: u32,
    pub suite: String,
    pub machine: Machine,
    /// The OpenBLAS the suite ran with; absent for suites that never call BLAS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openblas: Option<BlasInfo>,
    /// A part of the suite run on its own (`kernel-<core>` for the kernel sweep), whose
    /// OpenBLAS is not the one the rest of the suites ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The layer every variant here ran under (`layer=` of their ids): `faer`,
    /// `matrixmultiply` or an OpenBLAS layer. Absent in older sidecars, whose layer is
    /// `openblas`'s. For the native layers `openblas` is the library the serial references
    /// were computed with, not the one measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// matrixmultiply's pool in this run, what it made of `MATMUL_NUM_THREADS` (1, 2 or 4,
    /// [`crate::layer::matmul_pool_threads`]): the most a variant here ran; each variant's B is
    /// what a product of its size ran ([`crate::layer::matmul_threads_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matmul_num_threads: Option<usize>,
    /// Criterion full id -> CPU use of one extra run of that variant.
    pub variants: BTreeMap<String, Usage>,
    /// Criterion full id -> what each process that ran the variant saw from inside (the MPI
    /// ranks of its job: CPUs and BLAS threads), for the variants run by other processes.
    /// Absent in older sidecars.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ranks_seen: BTreeMap<String, Vec<RankSeen>>,
    /// The runs the variants came from, by [`RunInfo::started_ms`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runs: BTreeMap<u64, RunInfo>,
    /// Criterion full id -> round -> that round's figure, for the variants' run (absent in
    /// older sidecars: one round, Criterion's files and `variants`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rounds: BTreeMap<String, BTreeMap<u32, RoundTime>>,
}

impl Sidecar {
    /// The layer its variants ran under: [`Sidecar::layer`], else (older sidecars) the
    /// OpenBLAS layer.
    pub fn layer_name(&self) -> Option<&str> {
        self.layer
            .as_deref()
            .or_else(|| self.openblas.as_ref().map(|o| o.layer.name()))
    }

    /// The latest run recorded, if any run is.
    pub fn latest_run(&self) -> Option<&RunInfo> {
        self.runs.values().max_by_key(|r| r.started_ms)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a parcost sidecar: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has sidecar schema {found}, this build reads {SIDECAR_SCHEMA}")]
    Schema { path: PathBuf, found: u32 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Sidecar {
    /// The file a suite's sidecar goes to: one per suite and layer (and per kernel for the
    /// kernel sweep, `tag`), so runs under different layers do not overwrite each other.
    pub fn path(
        criterion_dir: &Path,
        suite: &str,
        tag: Option<&str>,
        layer: Option<&str>,
    ) -> PathBuf {
        let name = [Some(suite), tag, layer, Some("json")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(".");
        criterion_dir.join(SIDECAR_DIR).join(name)
    }

    pub fn read(path: &Path) -> Result<Self, SidecarError> {
        let text = std::fs::read_to_string(path).map_err(|source| SidecarError::Read {
            path: path.to_owned(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| SidecarError::Parse {
                path: path.to_owned(),
                source,
            })?;
        let found = value.get("schema").and_then(serde_json::Value::as_u64);
        if found != Some(u64::from(SIDECAR_SCHEMA)) {
            return Err(SidecarError::Schema {
                path: path.to_owned(),
                found: found.and_then(|f| u32::try_from(f).ok()).unwrap_or(0),
            });
        }
        serde_json::from_value(value).map_err(|source| SidecarError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the sidecar, keeping the variants of an earlier run that this one did not measure
    /// (a filtered `cargo bench` must not erase the rest).
    pub fn merge_into(mut self, path: &Path) -> Result<(), SidecarError> {
        if let Ok(old) = Self::read(path) {
            // A later round does not measure the clock and peak: the first round's stand.
            if self.machine.peak.is_none() {
                self.machine.peak = old.machine.peak;
            }
            // What the ranks of a variant measured again saw is this run's, or nothing.
            for (id, seen) in old.ranks_seen {
                if !self.variants.contains_key(&id) {
                    self.ranks_seen.entry(id).or_insert(seen);
                }
            }
            // A variant's earlier rounds count only in the same run as this round's.
            for (id, rounds) in old.rounds {
                let same_run = match (self.variants.get(&id), old.variants.get(&id)) {
                    (Some(new), Some(old)) => new.run == old.run,
                    (None, _) => true,
                    (Some(_), None) => false,
                };
                if same_run {
                    let mine = self.rounds.entry(id).or_default();
                    for (round, time) in rounds {
                        mine.entry(round).or_insert(time);
                    }
                }
            }
            for (id, usage) in old.variants {
                self.variants.entry(id).or_insert(usage);
            }
            for (started, run) in old.runs {
                match self.runs.get_mut(&started) {
                    Some(mine) => *mine = mine.merge(run),
                    None => {
                        self.runs.insert(started, run);
                    }
                }
            }
        }
        // Only the runs some variant still comes from.
        let used: std::collections::BTreeSet<u64> =
            self.variants.values().filter_map(|u| u.run).collect();
        self.runs.retain(|started, _| used.contains(started));
        let variants = &self.variants;
        self.ranks_seen.retain(|id, _| variants.contains_key(id));
        self.rounds.retain(|id, _| variants.contains_key(id));
        let text = serde_json::to_string_pretty(&self).map_err(|source| SidecarError::Parse {
            path: path.to_owned(),
            source,
        })?;
        write_atomically(path, text.as_bytes()).map_err(|source| SidecarError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

/// Criterion's output folder, found the way Criterion finds it: `CRITERION_HOME`, then
/// `CARGO_TARGET_DIR/criterion`, then the target directory `cargo metadata` names, then
/// `./target/criterion`.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let target = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok())
        .and_then(|v| v.get("target_directory")?.as_str().map(PathBuf::from));
    target.map_or_else(
        || PathBuf::from("target/criterion"),
        |t| t.join("criterion"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_in_rounds_is_flagged_only_when_every_round_was() {
        let run = |rounds: u32, noisy_rounds: u32| RunInfo {
            started_ms: 1,
            quick: false,
            noise: None,
            rounds,
            noisy_rounds,
            ended_ms: None,
            shared_key: true,
        };
        // Two of three rounds disturbed: their spread is in the intervals, no flag.
        assert!(!run(0b111, 0b101).flagged());
        assert!(!run(0b111, 0b001).flagged());
        assert!(run(0b111, 0b111).flagged());
        assert!(run(0b011, 0b011).flagged());
    }

    #[test]
    fn usage_of_a_busy_loop_is_about_one_core() {
        let (sum, usage) = Usage::measure(|| {
            let start = Instant::now();
            let mut x = 0u64;
            while start.elapsed() < Duration::from_millis(50) {
                x = x.wrapping_add(std::hint::black_box(1));
            }
            x
        });
        assert!(sum > 0);
        assert!(usage.wall_ns >= 50_000_000);
        // Other tests run beside this one, so only bound it loosely.
        assert!(usage.cpu_per_wall > 0.3, "{usage:?}");
    }

    #[test]
    fn live_workers_cpu_is_added_to_a_run() {
        let ((), usage) = Usage::measure(|| std::thread::sleep(Duration::from_millis(20)));
        let with = usage.with_extra_cpu(Duration::from_millis(30));
        assert_eq!(with.cpu_ns, usage.cpu_ns + 30_000_000);
        // Its CPU per wall is recomputed from the CPU added (a stored field, not derived).
        let ratio = with.cpu_ns as f64 / with.wall_ns as f64;
        assert!((with.cpu_per_wall - ratio).abs() < 1e-9, "{with:?}");
        let extra = Extra {
            cpu: Duration::from_millis(10),
            voluntary_switches: 3,
            involuntary_switches: 4,
        };
        let with = usage.with_extra(extra.since(Extra::default()));
        assert_eq!(with.context_switches, usage.context_switches + 7);
        let once = Usage::of_wall(Duration::from_millis(20), extra);
        assert_eq!((once.wall_ns, once.cpu_ns), (20_000_000, 10_000_000));
        assert!((once.cpu_per_wall - 0.5).abs() < 1e-9, "{once:?}");
    }

    #[test]
    fn a_run_records_the_threads_alive_after_it() {
        let ((), usage) = Usage::measure(|| {});
        assert!(usage.threads.is_some_and(|t| t >= 1), "{usage:?}");
        assert!(usage.busy_threads.is_some(), "schedstat read: {usage:?}");
    }

    #[test]
    fn a_thread_is_busy_when_it_ran_a_tenth_of_the_run() {
        let ms = 1_000_000;
        let before = BTreeMap::from([(1, 0), (2, 5 * ms), (4, 0)]);
        // Thread 1 ran 50 ms of a 100 ms run, 2 ran 1 ms, 3 started and ran 30 ms, 4 ran
        // exactly a tenth.
        let after = BTreeMap::from([(1, 50 * ms), (2, 6 * ms), (3, 30 * ms), (4, 10 * ms)]);
        assert_eq!(busy_between(&before, &after, 100 * ms), 2);
        assert_eq!(busy_between(&after, &after, 100 * ms), 0);
    }

    #[test]
    fn older_sidecars_read_with_the_openblas_layer() {
        // A sidecar written before `layer` existed: the layer is OpenBLAS's.
        let old = r#"{"schema": 1, "suite": "s", "machine": {"cpu": "c", "logical_cores": 2,
            "physical_cores": 2, "os": "o", "created_unix": 1},
            "openblas": {"config": "OpenBLAS", "core": "Haswell", "layer": "openmp"},
            "variants": {"s/w/layer=openmp,n=1": {"wall_ns": 1, "cpu_ns": 1,
            "cpu_per_wall": 1.0, "voluntary_switches": 0, "involuntary_switches": 0,
            "context_switches": 0}}}"#;
        let s: Sidecar = serde_json::from_str(old).expect("an older sidecar reads");
        assert_eq!(s.layer_name(), Some("openmp"));
        assert_eq!(s.matmul_num_threads, None);
        assert_eq!(s.variants["s/w/layer=openmp,n=1"].threads, None);
        assert!(s.ranks_seen.is_empty());
    }

    #[test]
    fn usage_of_a_sleep_is_near_zero_and_switches() {
        let ((), usage) = Usage::measure(|| std::thread::sleep(Duration::from_millis(30)));
        assert!(
            usage.cpu_per_wall < 0.5 || usage.context_switches >= 1,
            "{usage:?}"
        );
        assert!(usage.voluntary_switches >= 1, "{usage:?}");
    }

    #[test]
    fn sidecar_round_trips_and_merges() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let path = Sidecar::path(&dir, "suite", None, Some("openmp"));
        assert!(
            path.ends_with("parcost/suite.openmp.json"),
            "{}",
            path.display()
        );
        assert!(
            Sidecar::path(&dir, "s", Some("kernel-zen"), Some("serial"))
                .ends_with("parcost/s.kernel-zen.serial.json")
        );
        let usage = |w| Usage {
            wall_ns: w,
            cpu_ns: w,
            cpu_per_wall: 1.0,
            voluntary_switches: 1,
            involuntary_switches: 2,
            context_switches: 3,
            run: None,
            sampled: None,
            threads: None,
            busy_threads: None,
        };
        let mut first = Sidecar {
            schema: SIDECAR_SCHEMA,
            suite: "suite".into(),
            machine: Machine::detect(),
            openblas: None,
            tag: None,
            layer: None,
            matmul_num_threads: None,
            variants: BTreeMap::new(),
            ranks_seen: BTreeMap::new(),
            rounds: BTreeMap::new(),
            runs: BTreeMap::new(),
        };
        first.variants.insert("a".into(), usage(1));
        first.variants.insert("b".into(), usage(2));
        let seen = |cpu| RankSeen {
            rank: 0,
            host: "vm".into(),
            cpus: vec![cpu],
            blas_threads: 1,
            openblas_num_threads: None,
            busy_threads: Some(1),
        };
        first.ranks_seen.insert("a".into(), vec![seen(0)]);
        first.ranks_seen.insert("b".into(), vec![seen(1)]);
        first.clone().merge_into(&path).expect("write");
        let mut second = first.clone();
        second.variants = [("b".to_owned(), usage(5))].into_iter().collect();
        second.ranks_seen = BTreeMap::new();
        // A later round measures no clock or peak: the first round's stands.
        second.machine.peak = None;
        second.merge_into(&path).expect("merge");
        let read = Sidecar::read(&path).expect("read");
        // The first round's peak (through JSON: the last digit of a float may move).
        assert_eq!(
            read.machine.peak.is_some(),
            first.machine.peak.is_some(),
            "the first round's peak"
        );
        if let (Some(got), Some(want)) = (read.machine.peak, first.machine.peak) {
            assert!(
                (got.clock_ghz - want.clock_ghz).abs() <= 1e-9 * want.clock_ghz,
                "{got:?} {want:?}"
            );
        }
        assert_eq!(read.variants["a"].wall_ns, 1, "kept from the first run");
        assert_eq!(read.variants["b"].wall_ns, 5, "replaced by the second run");
        assert_eq!(read.ranks_seen["a"], [seen(0)], "kept with its variant");
        assert!(
            !read.ranks_seen.contains_key("b"),
            "the second run of b recorded no ranks: the first run's are not its"
        );

        std::fs::write(&path, "{ not json").expect("corrupt");
        let err = Sidecar::read(&path).expect_err("corrupt");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        std::fs::write(&path, r#"{"schema": 99}"#).expect("other schema");
        assert!(matches!(
            Sidecar::read(&path),
            Err(SidecarError::Schema { found: 99, .. })
        ));
    }
}
