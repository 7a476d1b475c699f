//! What the measurements say: the machine's limits, 1 to 3 findings a suite (each a ratio with
//! its interval), and the recommended configuration per workload. Every number in a sentence
//! here is computed from the rows it is given.

use std::collections::BTreeMap;

use super::results::{Estimate, Value};
use super::summary::{Finding, Limits, Recommendation, Row};

/// A ratio with its interval: (estimate, lower, upper).
pub type Ratio = (f64, f64, f64);

/// `slow / fast` with the interval that holds whatever pair of values inside the two 95%
/// intervals is true: conservative, so "seen" means the intervals separate.
pub fn ratio(slow: &Estimate, fast: &Estimate) -> (f64, f64, f64) {
    (
        slow.estimate / fast.estimate,
        slow.lower / fast.upper,
        slow.upper / fast.lower,
    )
}

fn fmt_ratio(r: (f64, f64, f64)) -> String {
    format!("{:.2}x ({:.2} to {:.2})", r.0, r.1, r.2)
}

/// A finding that `slow` is slower than `fast`: seen only when the interval lies above 1.
fn slower(
    suite: &str,
    title: String,
    slow_desc: &str,
    fast_desc: &str,
    r: (f64, f64, f64),
    context: &str,
) -> Finding {
    let seen = r.1 > 1.0;
    let text = if seen {
        format!(
            "{slow_desc} was {} slower than {fast_desc}{context}.",
            fmt_ratio(r)
        )
    } else {
        format!(
            "Not seen on this machine: {slow_desc} against {fast_desc}{context} gave {}, an interval that does not exclude equal times.",
            fmt_ratio(r)
        )
    };
    Finding {
        suite: suite.to_owned(),
        title,
        text,
        ratio: r.0,
        lower: r.1,
        upper: r.2,
        seen,
    }
}

/// The limits: the best DGEMM rate of `blas-tuning/matmul` with the kernel the suites ran (the
/// kernel sweep aside), the memcpy rate at the largest size measured (smaller copies run from
/// cache and are no limit for moving arrays), and the theoretical peak the machine block
/// computed.
pub fn limits(rows: &[Row], theoretical_peak_gflops: Option<f64>) -> Limits {
    let sampled = |suite: &'static str, workload: &'static str| {
        rows.iter().filter(move |r| {
            r.suite == suite
                && r.workload == workload
                && r.time_ns.is_some()
                && !r.params.contains_key("kernel")
        })
    };
    let dgemm = sampled("blas-tuning", "matmul")
        .filter_map(|r| r.throughput.as_ref().map(|t| t.estimate))
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let memcpy = sampled("array-sharing", "copy")
        .max_by_key(|r| r.int("bytes"))
        .and_then(|r| r.throughput.as_ref().map(|t| t.estimate));
    Limits {
        dgemm_peak_gflops: dgemm,
        theoretical_peak_gflops,
        memcpy_gbps: memcpy,
    }
}

/// The parameters that name a workload instance (everything but the grid's own keys).
fn group_key(r: &Row, grid: &[&str]) -> (String, BTreeMap<String, Value>) {
    let params = r
        .params
        .iter()
        .filter(|(k, _)| !grid.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (r.workload.clone(), params)
}

fn groups<'a>(
    rows: &'a [Row],
    suite: &str,
    grid: &[&str],
) -> BTreeMap<(String, BTreeMap<String, Value>), Vec<&'a Row>> {
    let mut out: BTreeMap<_, Vec<&Row>> = BTreeMap::new();
    // The kernel sweep compares kernels, not thread counts: see `kernel_findings`.
    for r in rows
        .iter()
        .filter(|r| r.suite == suite && !r.params.contains_key("kernel"))
    {
        out.entry(group_key(r, grid)).or_default().push(r);
    }
    out
}

fn describe(params: &BTreeMap<String, Value>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn by_time(a: &&Row, b: &&Row) -> std::cmp::Ordering {
    a.typical_ns()
        .partial_cmp(&b.typical_ns())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// The fastest and the slowest variants that Criterion sampled (single runs have no interval).
fn best_sampled<'a>(rows: &[&'a Row]) -> Option<&'a Row> {
    rows.iter()
        .copied()
        .filter(|r| r.time_ns.is_some())
        .min_by(by_time)
}

fn worst_sampled<'a>(rows: &[&'a Row]) -> Option<&'a Row> {
    rows.iter()
        .copied()
        .filter(|r| r.time_ns.is_some())
        .max_by(by_time)
}

/// The 3 findings with the largest ratios.
fn top3(mut findings: Vec<Finding>) -> impl Iterator<Item = Finding> {
    findings.sort_by(|a, b| {
        b.ratio
            .partial_cmp(&a.ratio)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    findings.into_iter().take(3)
}

fn cell(rows: &[&Row], tasks: u64, blas: u64) -> Option<Row> {
    rows.iter()
        .find(|r| r.int("tasks") == Some(tasks) && r.int("blas_threads") == Some(blas))
        .map(|r| (*r).clone())
}

/// Findings, most telling first, at most 3 a suite.
pub fn findings(rows: &[Row], logical_cores: usize) -> Vec<Finding> {
    let p = logical_cores.max(1) as u64;
    let mut all = Vec::new();

    // Oversubscription: the naive cell (most tasks, P BLAS threads each) against the best.
    let mut over = Vec::new();
    for ((workload, params), cells) in groups(rows, "oversubscription", &["tasks", "blas_threads"])
    {
        let Some(best) = best_sampled(&cells) else {
            continue;
        };
        let max_tasks = cells
            .iter()
            .filter_map(|r| r.int("tasks"))
            .max()
            .unwrap_or(1);
        let naive = cell(&cells, max_tasks, p)
            .filter(|r| r.time_ns.is_some())
            .or_else(|| worst_sampled(&cells).cloned());
        let Some(naive) = naive else { continue };
        let (Some(bt), Some(naive_t)) = (best.time_ns, naive.time_ns) else {
            continue;
        };
        if naive.full_id == best.full_id {
            continue;
        }
        let r = ratio(&naive_t, &bt);
        let desc = |row: &Row| {
            format!(
                "{} tasks x {} BLAS threads",
                row.int("tasks").unwrap_or(0),
                row.int("blas_threads").unwrap_or(0)
            )
        };
        over.push(slower(
            "oversubscription",
            format!("{workload} ({})", describe(&params)),
            &desc(&naive),
            &desc(best),
            r,
            &format!(" on {workload} ({})", describe(&params)),
        ));
    }
    all.extend(top3(over));

    // BLAS tuning: the best thread count against the default (P threads).
    let mut tuning = Vec::new();
    for ((workload, params), cells) in groups(rows, "blas-tuning", &["blas_threads"]) {
        let (Some(best), Some(default)) = (best_sampled(&cells), cell_blas(&cells, p)) else {
            continue;
        };
        let (Some(bt), Some(dt)) = (best.time_ns, default.time_ns) else {
            continue;
        };
        let b = best.int("blas_threads").unwrap_or(0);
        if b == p {
            if let Some(w) = worst_sampled(&cells).filter(|w| w.full_id != best.full_id)
                && let Some(wt) = w.time_ns
            {
                tuning.push(slower(
                    "blas-tuning",
                    format!("{workload} ({})", describe(&params)),
                    &format!(
                        "{workload} at {} BLAS threads",
                        w.int("blas_threads").unwrap_or(0)
                    ),
                    &format!("at the default {p} (the best here)"),
                    ratio(&wt, &bt),
                    &format!(" ({})", describe(&params)),
                ));
            }
            continue;
        }
        tuning.push(slower(
            "blas-tuning",
            format!("{workload} ({})", describe(&params)),
            &format!("{workload} at the default {p} BLAS threads"),
            &format!("at {b}, the best count measured"),
            ratio(&dt, &bt),
            &format!(" ({})", describe(&params)),
        ));
    }
    all.extend(top3(tuning));

    // Task level: where task-level (P x 1) stops beating op-level (1 x P).
    for (layer, cross) in crossovers(rows) {
        let Some((n, r)) = cross.best_win else {
            continue;
        };
        let until = match cross.crossover {
            Some(c) => format!("; from n={c} on, op-level was as fast or faster"),
            None => "; it never lost at the sizes measured".to_owned(),
        };
        let mut f = slower(
            "task-level",
            format!("crossover under {layer}"),
            "op-level (1 task x P BLAS threads)",
            "task-level (P tasks x 1 BLAS thread)",
            r,
            &format!(" at n={n} under {layer}{until}"),
        );
        f.text = f.text.replacen(" was ", " was, at its worst, ", 1);
        all.push(f);
        if all.iter().filter(|f| f.suite == "task-level").count() >= 3 {
            break;
        }
    }

    // Threads against processes: speedup of threads, cost of pipes, at W = P.
    let at = |job: &str, variant: &str, w: u64| {
        rows.iter().find(|r| {
            r.suite == "threads-vs-processes"
                && r.workload == job
                && r.name("variant") == Some(variant)
                && r.int("workers") == Some(w)
        })
    };
    if let (Some(serial), Some(rayon)) = (
        at("elementwise", "serial", 1),
        at("elementwise", "rayon", p),
    ) && let (Some(st), Some(rt)) = (serial.time_ns, rayon.time_ns)
    {
        let mut f = slower(
            "threads-vs-processes",
            "threads on element-wise work".into(),
            "serial",
            &format!("a rayon pool of {p}"),
            ratio(&st, &rt),
            " on y = sin(x) * exp(-x) over the whole array",
        );
        f.text = format!(
            "{} A speedup of {:.2} on {p} cores is {:.0}% of linear.",
            f.text,
            f.ratio,
            100.0 * f.ratio / p as f64
        );
        all.push(f);
    }
    for job in ["elementwise", "sum-squares"] {
        if let (Some(pipe), Some(rayon)) = (at(job, "process-pipe", p), at(job, "rayon", p))
            && let (Some(pt), Some(rt)) = (pipe.time_ns, rayon.time_ns)
        {
            all.push(slower(
                "threads-vs-processes",
                format!("processes with pipes on {job}"),
                &format!("{p} worker processes fed through pipes"),
                &format!("{p} rayon threads"),
                ratio(&pt, &rt),
                &format!(" on {job}"),
            ));
        }
    }

    // Sharing: at the middle size, a pipe and a shared mapping against a thread's reference.
    let share = |transport: &str, access: &str| {
        rows.iter().find(|r| {
            r.suite == "array-sharing"
                && r.name("transport") == Some(transport)
                && r.name("pool").is_none_or(|p| p == "persistent")
                && r.name("access").is_none_or(|a| a == access)
                && r.int("bytes") == Some(64 << 20)
        })
    };
    if let Some(thread) = share("thread-ref", "read").and_then(|r| r.time_ns) {
        for transport in ["pipe", "mmap-file"] {
            if let Some(t) = share(transport, "read").and_then(|r| r.time_ns) {
                all.push(slower(
                    "array-sharing",
                    format!("{transport} against a thread, 64 MiB"),
                    &format!("moving 64 MiB to a worker by {transport} and summing it there"),
                    "a thread summing it by reference",
                    ratio(&t, &thread),
                    "",
                ));
            }
        }
    }
    if let (Some(v), Some(m)) = (
        share("pipe-vmsplice", "read").and_then(|r| r.time_ns),
        share("memcpy", "copy")
            .or_else(|| {
                rows.iter().find(|r| {
                    r.suite == "array-sharing"
                        && r.workload == "copy"
                        && r.int("bytes") == Some(64 << 20)
                })
            })
            .and_then(|r| r.time_ns),
    ) {
        let r = ratio(&v, &m);
        all.push(Finding {
            suite: "array-sharing".into(),
            title: "vmsplice against memcpy, 64 MiB".into(),
            text: format!(
                "pipe-vmsplice moved 64 MiB (and the worker summed it) at {:.0}% of the memcpy rate ({:.0}% to {:.0}%).",
                100.0 / r.0,
                100.0 / r.2,
                100.0 / r.1
            ),
            ratio: 1.0 / r.0,
            lower: 1.0 / r.2,
            upper: 1.0 / r.1,
            seen: true,
        });
    }
    all
}

fn cell_blas<'a>(rows: &[&'a Row], blas: u64) -> Option<&'a Row> {
    rows.iter()
        .copied()
        .find(|r| r.int("blas_threads") == Some(blas))
}

/// Where task-level stops winning, for one layer.
#[derive(Debug, Clone, Default)]
pub struct Crossover {
    /// The size where op-level (1 x P) over task-level (P x 1) was largest, and that ratio.
    pub best_win: Option<(u64, (f64, f64, f64))>,
    /// The smallest size from which task-level no longer wins (its interval not above 1).
    pub crossover: Option<u64>,
}

/// Per layer: op-level over task-level at each size, and the crossover.
pub fn crossovers(rows: &[Row]) -> BTreeMap<String, Crossover> {
    let mut ratios: BTreeMap<String, Vec<(u64, Ratio)>> = BTreeMap::new();
    for op in rows
        .iter()
        .filter(|r| r.suite == "task-level" && r.name("variant") == Some("op-level"))
    {
        let task = rows.iter().find(|r| {
            r.suite == "task-level"
                && r.name("variant") == Some("task-level")
                && r.name("layer") == op.name("layer")
                && r.int("n") == op.int("n")
        });
        if let (Some(ot), Some(tt), Some(n), Some(layer)) = (
            op.time_ns,
            task.and_then(|t| t.time_ns),
            op.int("n"),
            op.name("layer"),
        ) {
            ratios
                .entry(layer.to_owned())
                .or_default()
                .push((n, ratio(&ot, &tt)));
        }
    }
    ratios
        .into_iter()
        .map(|(layer, mut by_n)| {
            by_n.sort_by_key(|(n, _)| *n);
            let best_win = by_n.iter().copied().max_by(|a, b| {
                a.1.0
                    .partial_cmp(&b.1.0)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            let crossover = by_n.iter().find(|(_, r)| r.1 <= 1.0).map(|(n, _)| *n);
            (
                layer,
                Crossover {
                    best_win,
                    crossover,
                },
            )
        })
        .collect()
}

/// The best configuration measured for each workload instance, against the library default
/// (1 task x P BLAS threads) and naive (P x P).
pub fn recommendations(rows: &[Row], logical_cores: usize, limits: Limits) -> Vec<Recommendation> {
    let p = logical_cores.max(1) as u64;
    let mut out = Vec::new();
    for suite in ["oversubscription", "task-level"] {
        for ((workload, params), cells) in
            groups(rows, suite, &["tasks", "blas_threads", "variant"])
        {
            let Some(best) = best_sampled(&cells) else {
                continue;
            };
            let speedup = |t: u64, b: u64| {
                cell(&cells, t, b)
                    .and_then(|c| c.typical_ns())
                    .zip(best.typical_ns())
                    .map(|(c, b)| c / b)
            };
            let (efficiency, efficiency_theoretical) = efficiencies(best, limits);
            let mut chosen = BTreeMap::new();
            for key in ["tasks", "blas_threads", "variant"] {
                if let Some(v) = best.params.get(key) {
                    chosen.insert(key.to_owned(), v.clone());
                }
            }
            out.push(Recommendation {
                suite: suite.into(),
                workload,
                params,
                best: chosen,
                speedup_vs_default: speedup(1, p),
                speedup_vs_naive: speedup(p, p),
                efficiency,
                efficiency_theoretical,
            });
        }
    }
    for ((workload, params), cells) in groups(rows, "blas-tuning", &["blas_threads"]) {
        let Some(best) = best_sampled(&cells) else {
            continue;
        };
        let default = cell_blas(&cells, p).and_then(|c| c.typical_ns());
        let (efficiency, efficiency_theoretical) = efficiencies(best, limits);
        let mut chosen = BTreeMap::new();
        if let Some(v) = best.params.get("blas_threads") {
            chosen.insert("blas_threads".to_owned(), v.clone());
        }
        out.push(Recommendation {
            suite: "blas-tuning".into(),
            workload,
            params,
            best: chosen,
            speedup_vs_default: default.zip(best.typical_ns()).map(|(d, b)| d / b),
            speedup_vs_naive: None,
            efficiency,
            efficiency_theoretical,
        });
    }
    out
}

/// A rate as fractions of the best DGEMM measured and of the theoretical peak.
fn efficiencies(best: &Row, limits: Limits) -> (Option<f64>, Option<f64>) {
    let Some(rate) = best
        .throughput
        .as_ref()
        .filter(|t| t.unit == "GFLOP/s")
        .map(|t| t.estimate)
    else {
        return (None, None);
    };
    (
        limits.dgemm_peak_gflops.map(|p| rate / p),
        limits.theoretical_peak_gflops.map(|p| rate / p),
    )
}

/// Cost 0, the kernel: OpenBLAS's own kernel (`library`) and the one the suites ran (`used`)
/// against the fastest kernel of the sweep (`blas-tuning/matmul/...,kernel=K,.../blas_threads=P`:
/// the largest n, P BLAS threads, what a program calling dgemm gets by default).
pub fn kernel_findings(
    rows: &[Row],
    logical_cores: usize,
    library: &str,
    used: &str,
) -> Vec<Finding> {
    let p = logical_cores.max(1) as u64;
    let sweep: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.suite == "blas-tuning"
                && r.workload == "matmul"
                && r.params.contains_key("kernel")
                && r.time_ns.is_some()
        })
        .collect();
    let Some(n) = sweep.iter().filter_map(|r| r.int("n")).max() else {
        return Vec::new();
    };
    let at_p: Vec<&Row> = sweep
        .iter()
        .copied()
        .filter(|r| r.int("n") == Some(n) && r.int("blas_threads") == Some(p))
        .collect();
    let Some(best) = best_sampled(&at_p) else {
        return Vec::new();
    };
    let kernel_row = |k: &str| {
        at_p.iter().copied().find(|r| {
            r.name("kernel")
                .is_some_and(|x| parcost::kernel::same(x, k))
        })
    };
    let best_k = best.name("kernel").unwrap_or("?");
    let best_name = display_kernel(best_k);
    let context = format!(" (dgemm of {n} x {n} at {p} BLAS threads)");
    let mut out = Vec::new();
    let library_row = kernel_row(library);
    match library_row {
        Some(lib) if lib.full_id != best.full_id => {
            let (Some(lt), Some(bt)) = (lib.time_ns, best.time_ns) else {
                return out;
            };
            let mut f = slower(
                "blas-tuning",
                "the kernel OpenBLAS chooses".into(),
                &format!("OpenBLAS's own kernel on this CPU, {library},"),
                &best_name,
                ratio(&lt, &bt),
                &context,
            );
            if f.seen {
                f.text.push_str(&format!(
                    " In your own programs: OPENBLAS_CORETYPE={best_name} (checked correct here), \
                     or an OpenBLAS release that knows this CPU."
                ));
            }
            out.push(f);
        }
        Some(lib) => {
            // The library's kernel was the fastest: how far ahead of the next one.
            let next = at_p
                .iter()
                .copied()
                .filter(|r| r.full_id != lib.full_id)
                .min_by(by_time);
            if let (Some(next), Some(lt)) = (next, lib.time_ns)
                && let Some(nt) = next.time_ns
            {
                let next_name = display_kernel(next.name("kernel").unwrap_or("?"));
                let mut f = slower(
                    "blas-tuning",
                    "the kernel OpenBLAS chooses".into(),
                    &format!("the next fastest kernel, {next_name},"),
                    &format!("OpenBLAS's own choice, {library}"),
                    ratio(&nt, &lt),
                    &context,
                );
                f.text = format!(
                    "OpenBLAS's own kernel, {library}, was the fastest measured on this CPU: {}",
                    f.text
                );
                out.push(f);
            }
        }
        None => {}
    }
    if !parcost::kernel::same(used, library)
        && let Some(u) = kernel_row(used).filter(|u| u.full_id != best.full_id)
        && let (Some(ut), Some(bt)) = (u.time_ns, best.time_ns)
    {
        let mut f = slower(
            "blas-tuning",
            "the kernel the suites ran".into(),
            &format!("{used}, the kernel every suite of this run used,"),
            &best_name,
            ratio(&ut, &bt),
            &context,
        );
        if f.seen {
            let fix = if parcost::kernel::same(best_k, library) {
                "leave OPENBLAS_CORETYPE unset".to_owned()
            } else {
                format!("set OPENBLAS_CORETYPE={best_name}")
            };
            f.text.push_str(&format!(
                " Every figure of this run is of {used}. To measure with {best_name}: cargo xtask \
                 bench --kernel {best_k}; in your own programs, {fix}."
            ));
        }
        out.push(f);
    }
    out
}

/// A kernel's id token (`skylakex`) as OpenBLAS spells it (`SkylakeX`).
pub fn display_kernel(token: &str) -> String {
    parcost::kernel::X86_64_KERNELS
        .iter()
        .find(|k| parcost::kernel::same(k.name, token))
        .map_or_else(|| token.to_owned(), |k| k.name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(e: f64, half: f64) -> Estimate {
        Estimate {
            estimate: e,
            lower: e - half,
            upper: e + half,
        }
    }

    #[test]
    fn ratios_carry_conservative_intervals() {
        let r = ratio(&est(10.0, 1.0), &est(2.0, 0.5));
        assert_eq!(r.0, 5.0);
        assert!((r.1 - 9.0 / 2.5).abs() < 1e-12 && (r.2 - 11.0 / 1.5).abs() < 1e-12);
    }

    #[test]
    fn overlapping_intervals_are_not_seen() {
        let f = slower(
            "s",
            "t".into(),
            "a",
            "b",
            ratio(&est(10.0, 1.0), &est(9.5, 1.0)),
            "",
        );
        assert!(!f.seen);
        assert!(f.text.starts_with("Not seen on this machine"), "{}", f.text);
        let f = slower(
            "s",
            "t".into(),
            "a",
            "b",
            ratio(&est(20.0, 1.0), &est(9.5, 1.0)),
            "",
        );
        assert!(f.seen);
        assert!(
            f.text.contains("a was 2.11x (1.81 to 2.47) slower than b"),
            "{}",
            f.text
        );
    }

    /// A kernel-sweep row: dgemm of 2048 at `b` BLAS threads under `kernel`, `ms` long.
    fn sweep_row(kernel: &str, b: u64, ms: f64) -> Row {
        let id =
            format!("blas-tuning/matmul/layer=pthreads,kernel={kernel},n=2048/blas_threads={b}");
        let (_, workload, params) = super::super::results::parse_id(&id).expect("valid id");
        Row {
            suite: "blas-tuning".into(),
            workload,
            params,
            full_id: id,
            time_ns: Some(est(ms * 1e6, ms * 1e4)),
            single_run_ns: None,
            throughput: None,
            cpu_per_wall: None,
            context_switches: None,
        }
    }

    #[test]
    fn a_library_fallback_is_the_first_finding_with_its_fix() {
        // The machine: Prescott chosen, SkylakeX 6.7x faster.
        let rows = [
            sweep_row("prescott", 2, 760.0),
            sweep_row("haswell", 2, 220.0),
            sweep_row("skylakex", 2, 113.0),
            sweep_row("skylakex", 1, 224.0),
        ];
        let f = kernel_findings(&rows, 2, "Prescott", "SkylakeX");
        assert_eq!(f.len(), 1, "the suites ran the best: {f:?}");
        assert!(f[0].seen && (f[0].ratio - 760.0 / 113.0).abs() < 1e-9);
        assert!(
            f[0].text
                .contains("OpenBLAS's own kernel on this CPU, Prescott,")
                && f[0].text.contains("OPENBLAS_CORETYPE=SkylakeX"),
            "{}",
            f[0].text
        );
        // The user's kernel kept: a second finding says what it cost and how to measure better.
        let f = kernel_findings(&rows, 2, "Prescott", "Haswell");
        assert_eq!(f.len(), 2);
        assert!(
            f[1].text.contains("Every figure of this run is of Haswell")
                && f[1].text.contains("--kernel skylakex"),
            "{}",
            f[1].text
        );
    }

    #[test]
    fn a_library_that_chose_best_says_so() {
        let rows = [
            sweep_row("cooperlake", 2, 100.0),
            sweep_row("haswell", 2, 166.0),
        ];
        let f = kernel_findings(&rows, 2, "Cooperlake", "Cooperlake");
        assert_eq!(f.len(), 1);
        assert!(
            f[0].text
                .starts_with("OpenBLAS's own kernel, Cooperlake, was the fastest"),
            "{}",
            f[0].text
        );
        assert!(kernel_findings(&[], 2, "Cooperlake", "Cooperlake").is_empty());
    }

    #[test]
    fn kernel_rows_stay_out_of_the_thread_sweeps_and_the_peak() {
        let mut plain = sweep_row("x", 2, 50.0);
        plain.params.remove("kernel");
        plain.full_id = "blas-tuning/matmul/layer=pthreads,n=2048/blas_threads=2".into();
        plain.throughput = Some(super::super::summary::Throughput {
            unit: "GFLOP/s".into(),
            estimate: 80.0,
        });
        let mut fast = sweep_row("cooperlake", 2, 10.0);
        fast.throughput = Some(super::super::summary::Throughput {
            unit: "GFLOP/s".into(),
            estimate: 200.0,
        });
        let rows = [plain, fast];
        assert_eq!(limits(&rows, None).dgemm_peak_gflops, Some(80.0));
        assert_eq!(groups(&rows, "blas-tuning", &["blas_threads"]).len(), 1);
    }
}
