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

/// The limits: the best DGEMM rate of `blas-tuning/matmul`, and the memcpy rate at the largest
/// size measured (smaller copies run from cache and are no limit for moving arrays).
pub fn limits(rows: &[Row]) -> Limits {
    let sampled = |suite: &'static str, workload: &'static str| {
        rows.iter()
            .filter(move |r| r.suite == suite && r.workload == workload && r.time_ns.is_some())
    };
    let dgemm = sampled("blas-tuning", "matmul")
        .filter_map(|r| r.throughput.as_ref().map(|t| t.estimate))
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let memcpy = sampled("array-sharing", "copy")
        .max_by_key(|r| r.int("bytes"))
        .and_then(|r| r.throughput.as_ref().map(|t| t.estimate));
    Limits {
        dgemm_peak_gflops: dgemm,
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
    for r in rows.iter().filter(|r| r.suite == suite) {
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
            if let Some(w) = worst_sampled(&cells).filter(|w| w.full_id != best.full_id) {
                if let Some(wt) = w.time_ns {
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
    ) {
        if let (Some(st), Some(rt)) = (serial.time_ns, rayon.time_ns) {
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
    }
    for job in ["elementwise", "sum-squares"] {
        if let (Some(pipe), Some(rayon)) = (at(job, "process-pipe", p), at(job, "rayon", p)) {
            if let (Some(pt), Some(rt)) = (pipe.time_ns, rayon.time_ns) {
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
            let efficiency = match (&best.throughput, limits.dgemm_peak_gflops) {
                (Some(t), Some(peak)) if t.unit == "GFLOP/s" => Some(t.estimate / peak),
                _ => None,
            };
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
            });
        }
    }
    for ((workload, params), cells) in groups(rows, "blas-tuning", &["blas_threads"]) {
        let Some(best) = best_sampled(&cells) else {
            continue;
        };
        let default = cell_blas(&cells, p).and_then(|c| c.typical_ns());
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
            efficiency: match (&best.throughput, limits.dgemm_peak_gflops) {
                (Some(t), Some(peak)) if t.unit == "GFLOP/s" => Some(t.estimate / peak),
                _ => None,
            },
        });
    }
    out
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
}
