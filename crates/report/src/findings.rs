//! What the measurements say: the machine's limits, 1 to 3 findings a suite (each a ratio with
//! its interval), and the recommended configuration per workload. Every number in a sentence
//! here is computed from the rows it is given.

use std::collections::BTreeMap;

use parcost::id::key;

use crate::facts::{Finding, Limits, Recommendation, Row};
use crate::model::{Advice, AdviceKind, Ratio, Rule, Separation};
use crate::results::{Estimate, Value};

/// `slow / fast` with the interval that holds whatever pair of values inside the two 95%
/// intervals is true: conservative, so "seen" means the intervals separate.
pub fn ratio(slow: &Estimate, fast: &Estimate) -> Ratio {
    Ratio::of(slow, fast)
}

/// A finding that `slow` is slower than `fast`: seen only when the ratio's interval lies above
/// 1 and the practical margin ([`Rule::REPORT`]).
pub(crate) fn slower(
    suite: &str,
    title: String,
    slow_desc: &str,
    fast_desc: &str,
    r: Ratio,
    context: &str,
) -> Finding {
    let separation = r.separation(Rule::REPORT);
    let text = match separation {
        Separation::Above => format!(
            "{slow_desc} was {} slower than {fast_desc}{context}.",
            r.words()
        ),
        Separation::Equivalent => format!(
            "Not seen on this machine: {slow_desc} against {fast_desc}{context} gave {}, within \
             the {:.0}% margin: equivalent here.",
            r.words(),
            100.0 * crate::model::MARGIN
        ),
        _ => format!(
            "Not seen on this machine: {slow_desc} against {fast_desc}{context} gave {}, an \
             interval that does not exclude equal times (or a {:.0}% difference).",
            r.words(),
            100.0 * crate::model::MARGIN
        ),
    };
    Finding::new(suite, title, text, r, separation == Separation::Above)
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
                && !r.params.contains_key(parcost::id::key::KERNEL)
        })
    };
    // The fastest matmul's rate, and its interval (a rate's interval inverts the time's).
    let dgemm_peak = sampled(parcost::id::BLAS_TUNING.name, "matmul")
        .filter_map(|r| {
            let rate = r.throughput.as_ref()?.estimate;
            let t = r.time_ns?;
            let work = rate * t.estimate;
            Some(Estimate {
                estimate: rate,
                lower: work / t.upper,
                upper: work / t.lower,
                rounds: Default::default(),
                pooled: None,
            })
        })
        .max_by(|a, b| a.estimate.total_cmp(&b.estimate));
    let memcpy = sampled(parcost::id::ARRAY_SHARING.name, "copy")
        .max_by_key(|r| r.int(parcost::id::key::BYTES))
        .and_then(|r| r.throughput.as_ref().map(|t| t.estimate));
    Limits {
        dgemm_peak_gflops: dgemm_peak.map(|e| e.estimate),
        dgemm_peak,
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
        .filter(|r| r.suite == suite && !r.params.contains_key(parcost::id::key::KERNEL))
    {
        out.entry(group_key(r, grid)).or_default().push(r);
    }
    out
}

/// A workload instance in words: "64 products of 256^2, openmp", "svd of 768^2, pthreads".
pub fn human(workload: &str, params: &BTreeMap<String, Value>) -> String {
    let int = |k: &str| params.get(k).and_then(Value::int);
    let n = int(parcost::id::key::N)
        .map(|n| format!("{n}^2"))
        .unwrap_or_default();
    let what = match (
        workload,
        int(parcost::id::key::PAIRS),
        int(parcost::id::key::MATRICES),
    ) {
        ("matmul", Some(k), _) => format!("{k} products of {n}"),
        ("svd", _, Some(k)) => format!("{k} SVDs of {n}"),
        (w, _, _) if !n.is_empty() => format!("{w} of {n}"),
        (w, _, _) => w.to_owned(),
    };
    let rest: Vec<String> = params
        .iter()
        .filter(|(k, _)| ![key::N, key::PAIRS, key::MATRICES, key::LAYER].contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .chain(params.get(parcost::id::key::LAYER).map(|l| l.to_string()))
        .collect();
    if rest.is_empty() {
        what
    } else {
        format!("{what}, {}", rest.join(", "))
    }
}

fn by_time(a: &&Row, b: &&Row) -> std::cmp::Ordering {
    a.typical_ns()
        .partial_cmp(&b.typical_ns())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// The fastest and the slowest variants that Criterion sampled (single runs have no interval).
pub(crate) fn best_sampled<'a>(rows: &[&'a Row]) -> Option<&'a Row> {
    rows.iter()
        .copied()
        .filter(|r| r.time_ns.is_some())
        .min_by(by_time)
}

pub(crate) fn worst_sampled<'a>(rows: &[&'a Row]) -> Option<&'a Row> {
    rows.iter()
        .copied()
        .filter(|r| r.time_ns.is_some())
        .max_by(by_time)
}

/// The 3 findings with the largest ratios.
pub(crate) fn top3(mut findings: Vec<Finding>) -> impl Iterator<Item = Finding> {
    findings.sort_by(|a, b| {
        b.ratio
            .partial_cmp(&a.ratio)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    findings.into_iter().take(3)
}

fn cell(rows: &[&Row], tasks: u64, blas: u64) -> Option<Row> {
    rows.iter()
        .find(|r| {
            r.int(parcost::id::key::TASKS) == Some(tasks)
                && r.int(parcost::id::key::BLAS_THREADS) == Some(blas)
        })
        .map(|r| (*r).clone())
}

/// Findings, most telling first, at most 3 a suite (and array-sharing's one on its remote
/// question). `capacity`: the parallel speedup the
/// machine delivered in its calibrations around threads-vs-processes, to judge speedups by;
/// `cross`: the task-level crossovers ([`crossovers`]), computed once for every stage.
pub fn findings(
    rows: &[Row],
    logical_cores: usize,
    capacity: Option<f64>,
    cross: &BTreeMap<String, Crossover>,
) -> Vec<Finding> {
    let p = logical_cores.max(1) as u64;
    let mut all = Vec::new();

    // Oversubscription: the naive cell (most tasks, P BLAS threads each) against the best.
    let mut over = Vec::new();
    for ((workload, params), cells) in groups(
        rows,
        parcost::id::OVERSUBSCRIPTION.name,
        &[parcost::id::key::TASKS, parcost::id::key::BLAS_THREADS],
    ) {
        let Some(best) = best_sampled(&cells) else {
            continue;
        };
        let max_tasks = cells
            .iter()
            .filter_map(|r| r.int(parcost::id::key::TASKS))
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
            crate::facts::tasks_x_threads(
                row.int(parcost::id::key::TASKS).unwrap_or(0),
                row.int(parcost::id::key::BLAS_THREADS).unwrap_or(0),
            )
        };
        over.push(slower(
            parcost::id::OVERSUBSCRIPTION.name,
            "naive nesting".into(),
            &desc(&naive),
            &desc(best),
            r,
            &format!(" ({})", human(&workload, &params)),
        ));
    }
    all.extend(top3(over));

    // BLAS tuning: the best thread count against the default (P threads).
    let mut tuning = Vec::new();
    for ((workload, params), cells) in groups(
        rows,
        parcost::id::BLAS_TUNING.name,
        &[parcost::id::key::BLAS_THREADS],
    ) {
        let (Some(best), Some(default)) = (best_sampled(&cells), cell_blas(&cells, p)) else {
            continue;
        };
        let (Some(bt), Some(dt)) = (best.time_ns, default.time_ns) else {
            continue;
        };
        let b = best.int(parcost::id::key::BLAS_THREADS).unwrap_or(0);
        if b == p {
            if let Some(w) = worst_sampled(&cells).filter(|w| w.full_id != best.full_id)
                && let Some(wt) = w.time_ns
            {
                tuning.push(slower(
                    parcost::id::BLAS_TUNING.name,
                    "BLAS threads".into(),
                    &crate::facts::count(
                        w.int(parcost::id::key::BLAS_THREADS).unwrap_or(0),
                        "BLAS thread",
                    ),
                    &format!("the default {p}, the best here"),
                    ratio(&wt, &bt),
                    &format!(" ({})", human(&workload, &params)),
                ));
            }
            continue;
        }
        tuning.push(slower(
            parcost::id::BLAS_TUNING.name,
            "BLAS threads".into(),
            &format!("the default {p} BLAS threads"),
            &format!("{b}, the best count measured"),
            ratio(&dt, &bt),
            &format!(" ({})", human(&workload, &params)),
        ));
    }
    all.extend(top3(tuning));

    // Task level: where task-level (P x 1) stops beating op-level (1 x P).
    for (layer, cross) in cross {
        let Some((n, r)) = cross.best_win else {
            continue;
        };
        let mut until = match cross.crossover {
            Some(c) => format!("; from n={c} on, op-level was not slower at any size measured"),
            None => "; it was ahead at the largest size measured".to_owned(),
        };
        if cross.crossings > 1 {
            until.push_str(&format!(
                " (the curves cross {} times: the winner changes back and forth with size)",
                cross.crossings
            ));
        }
        all.push(slower(
            parcost::id::TASK_LEVEL.name,
            format!("crossover under {layer}"),
            "op-level (1 task x P BLAS threads), at its worst,",
            "task-level (P tasks x 1 BLAS thread)",
            r,
            &format!(" at n={n} under {layer}{until}"),
        ));
        if all
            .iter()
            .filter(|f| f.suite == parcost::id::TASK_LEVEL.name)
            .count()
            >= 3
        {
            break;
        }
    }

    // Threads against processes: speedup of threads, cost of pipes, at W = P.
    let at = |job: &str, variant: &str, w: u64| {
        rows.iter().find(|r| {
            r.suite == parcost::id::THREADS_VS_PROCESSES.name
                && r.workload == job
                && r.name(parcost::id::key::VARIANT) == Some(variant)
                && r.int(parcost::id::key::WORKERS) == Some(w)
        })
    };
    if let (Some(serial), Some(rayon)) = (
        at("elementwise", "serial", 1),
        at("elementwise", "rayon", p),
    ) && let (Some(st), Some(rt)) = (serial.time_ns, rayon.time_ns)
    {
        let mut f = slower(
            parcost::id::THREADS_VS_PROCESSES.name,
            "threads on element-wise work".into(),
            "serial",
            &format!("a rayon pool of {p}"),
            ratio(&st, &rt),
            " on y = sin(x) * exp(-x) over the whole array",
        );
        let calibrated = capacity
            .map(|c| {
                format!(
                    ", and {:.0}% of the {c:.2}x this machine delivered to a scalar loop on {p} \
                     threads around the suite",
                    100.0 * f.ratio / c
                )
            })
            .unwrap_or_default();
        f.text = format!(
            "{} A speedup of {:.2} on {p} cores is {:.0}% of linear{calibrated}.",
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
                parcost::id::THREADS_VS_PROCESSES.name,
                format!("processes with pipes on {job}"),
                &format!("{p} worker processes fed through pipes"),
                &format!("{p} rayon threads"),
                ratio(&pt, &rt),
                &format!(" on {job}"),
            ));
        }
    }

    // Sharing, at 64 MiB: sending to a process against a thread, what the copy into shared
    // memory costs against reading what is already there, and the best pipe against memcpy.
    const MIB64: u64 = 64 << 20;
    let sharing = |workload: &str, transport: &str, variant: Option<&str>| {
        rows.iter()
            .find(|r| {
                r.suite == parcost::id::ARRAY_SHARING.name
                    && r.workload == workload
                    && r.name(parcost::id::key::TRANSPORT) == Some(transport)
                    && r.name(parcost::id::key::VARIANT) == variant
                    && r.name(parcost::id::key::POOL)
                        .is_none_or(|p| p == "persistent")
                    && r.int(parcost::id::key::BYTES) == Some(MIB64)
            })
            .and_then(|r| r.time_ns)
    };
    let mut share = Vec::new();
    if let Some(thread) = sharing("send", "thread", None) {
        for transport in ["pipe", "mmap-file", "iceoryx2"] {
            if let Some(t) = sharing("send", transport, None) {
                share.push(slower(
                    parcost::id::ARRAY_SHARING.name,
                    format!("sending 64 MiB by {transport}"),
                    &format!(
                        "sending 64 MiB to a worker process by {transport} (it reads all of it)"
                    ),
                    "a thread summing a fresh copy",
                    ratio(&t, &thread),
                    "",
                ));
            }
        }
    }
    for (transport, read_variant) in [
        ("mmap-file", None),
        ("memfd-inherited", None),
        ("iceoryx2", None),
        ("pipe", Some("held-copy")),
    ] {
        if let (Some(send), Some(read)) = (
            sharing("send", transport, None),
            sharing("read-shared", transport, read_variant),
        ) {
            share.push(slower(
                parcost::id::ARRAY_SHARING.name,
                format!("{transport}: sending against reading in place"),
                &format!("sending 64 MiB by {transport}"),
                if read_variant.is_some() {
                    "reading the worker's own copy, sent once and updated by a small message"
                } else {
                    "reading it where it already lives in shared memory"
                },
                ratio(&send, &read),
                "",
            ));
        }
    }
    if let (Some(v), Some(m)) = (
        sharing("send", "pipe-vmsplice", None),
        sharing("copy", "memcpy", None),
    ) {
        share.push(slower(
            parcost::id::ARRAY_SHARING.name,
            "vmsplice against memcpy, 64 MiB".into(),
            "sending 64 MiB through a pipe with vmsplice (and summing it there)",
            "one memcpy of 64 MiB",
            ratio(&v, &m),
            "",
        ));
    }
    all.extend(top3(share));

    // Remote, at 64 MiB: a request to a server process that holds the array, against a thread
    // answering it on a shared reference; the one that costs the most in a process.
    let remote = |transport: &str, request: &str| {
        rows.iter()
            .find(|r| {
                r.suite == parcost::id::ARRAY_SHARING.name
                    && r.workload == parcost::id::workload::REMOTE
                    && r.name(parcost::id::key::TRANSPORT) == Some(transport)
                    && r.name(parcost::id::key::REQUEST) == Some(request)
                    && r.int(parcost::id::key::BYTES) == Some(MIB64)
            })
            .and_then(|r| r.time_ns)
    };
    let mut asked = Vec::new();
    for (request, what) in [
        (
            parcost::id::request::RANGE_SUM,
            "the sum of 64 KiB of it (one number back)",
        ),
        (parcost::id::request::SLICE, "4 KiB of it back"),
        (
            parcost::id::request::DOT,
            "its dot product with a 4 KiB vector sent along (one number back)",
        ),
    ] {
        if let (Some(p), Some(t)) = (remote("pipe", request), remote("thread", request)) {
            asked.push(slower(
                parcost::id::ARRAY_SHARING.name,
                format!("remote {request}: a server process against a thread"),
                &format!(
                    "asking a server process that holds 64 MiB for {what}, {} a request,",
                    crate::facts::us_words(p.estimate)
                ),
                &format!(
                    "a thread reading the array by reference ({} a request)",
                    crate::facts::us_words(t.estimate)
                ),
                ratio(&p, &t),
                "",
            ));
        }
    }
    all.extend(top3(asked).take(1));
    all
}

fn cell_blas<'a>(rows: &[&'a Row], blas: u64) -> Option<&'a Row> {
    rows.iter()
        .copied()
        .find(|r| r.int(parcost::id::key::BLAS_THREADS) == Some(blas))
}

/// The oversubscription batch of products whose instance ran under the most layers: the
/// one the layer and library lines are about.
pub(crate) fn batch_of_products(rows: &[Row]) -> Vec<&Row> {
    use std::collections::BTreeMap;
    let mut by: BTreeMap<Vec<(String, String)>, Vec<&Row>> = BTreeMap::new();
    for r in rows.iter().filter(|r| {
        r.suite == parcost::id::OVERSUBSCRIPTION.name && r.workload == parcost::id::workload::MATMUL
    }) {
        let instance: Vec<(String, String)> = r
            .params
            .iter()
            .filter(|(k, _)| ![key::LAYER, key::TASKS, key::BLAS_THREADS].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        by.entry(instance).or_default().push(r);
    }
    // The most layers, then the most products (the batch of *small* products), then the first.
    by.into_values()
        .rev()
        .max_by_key(|cells| {
            let layers = cells
                .iter()
                .filter_map(|r| r.name(key::LAYER))
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let pairs = cells.iter().filter_map(|r| r.int(key::PAIRS)).max();
            (layers, pairs)
        })
        .unwrap_or_default()
}

/// Where task-level stops winning, for one layer.
#[derive(Debug, Clone, Default)]
pub struct Crossover {
    /// Op-level (1 x P) over task-level (P x 1) at each size, smallest first.
    pub by_n: Vec<(u64, Ratio)>,
    /// Task-level's largest win: the largest ratio among the sizes where it separated (beyond
    /// the interval and the margin), else the largest estimate, which then did not separate.
    pub best_win: Option<(u64, Ratio)>,
    /// The smallest size from which op-level is not slower at any larger size (task-level's
    /// win never separates again).
    pub crossover: Option<u64>,
    /// How often the winner changes with size, counting only sizes where the comparison
    /// separates: more than 1 means the curves cross more than once.
    pub crossings: usize,
}

impl Crossover {
    /// Whether task-level's best win separated.
    pub fn won(&self) -> bool {
        self.best_win
            .is_some_and(|(_, r)| r.separation(Rule::ADVICE) == Separation::Above)
    }
}

/// Per layer: op-level over task-level at each size, and the crossover.
pub fn crossovers(rows: &[Row]) -> BTreeMap<String, Crossover> {
    let mut ratios: BTreeMap<String, Vec<(u64, Ratio)>> = BTreeMap::new();
    for op in rows.iter().filter(|r| {
        r.suite == parcost::id::TASK_LEVEL.name
            && r.name(parcost::id::key::VARIANT) == Some("op-level")
    }) {
        let task = rows.iter().find(|r| {
            r.suite == parcost::id::TASK_LEVEL.name
                && r.name(parcost::id::key::VARIANT) == Some(parcost::id::TASK_LEVEL.name)
                && r.name(parcost::id::key::LAYER) == op.name(parcost::id::key::LAYER)
                && r.int(parcost::id::key::N) == op.int(parcost::id::key::N)
        });
        if let (Some(ot), Some(tt), Some(n), Some(layer)) = (
            op.time_ns,
            task.and_then(|t| t.time_ns),
            op.int(parcost::id::key::N),
            op.name(parcost::id::key::LAYER),
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
            // The crossover decides which sizes the small-matrix settings cover: advice's rule.
            let side = |r: &Ratio| r.separation(Rule::ADVICE);
            let largest = |it: &mut dyn Iterator<Item = (u64, Ratio)>| {
                it.max_by(|a, b| a.1.estimate.total_cmp(&b.1.estimate))
            };
            let best_win = largest(
                &mut by_n
                    .iter()
                    .copied()
                    .filter(|(_, r)| side(r) == Separation::Above),
            )
            .or_else(|| largest(&mut by_n.iter().copied()));
            // Scanning down from the largest size: the crossover is where op-level last was
            // not slower before a size where it was, or where nothing could be decided (an
            // unstable or once-measured size is no evidence that the default is right there).
            let crossover = by_n
                .iter()
                .rev()
                .take_while(|(_, r)| !matches!(side(r), Separation::Above | Separation::Unknown))
                .last()
                .map(|(n, _)| *n);
            let winners: Vec<i8> = by_n
                .iter()
                .filter_map(|(_, r)| match side(r) {
                    Separation::Above => Some(1),
                    Separation::Below => Some(-1),
                    _ => None,
                })
                .collect();
            let crossings = winners.windows(2).filter(|w| w[0] != w[1]).count();
            (
                layer,
                Crossover {
                    by_n,
                    best_win,
                    crossover,
                    crossings,
                },
            )
        })
        .collect()
}

/// `slow / fast` as an estimate with the interval of [`Ratio::of`]: paired between rounds where
/// both were measured in rounds, else conservative.
pub(crate) fn ratio_of(slow: &Estimate, fast: &Estimate) -> Estimate {
    let r = Ratio::of(slow, fast);
    Estimate::new(
        r.estimate,
        r.lower.unwrap_or(r.estimate),
        r.upper.unwrap_or(r.estimate),
    )
}

/// The recommended configuration for each workload instance: the fastest measured when it
/// separates from the library default by its interval (the findings' rule), else the default.
pub fn recommendations(rows: &[Row], logical_cores: usize, limits: Limits) -> Vec<Recommendation> {
    let p = logical_cores.max(1) as u64;
    let mut out = Vec::new();
    let grids: [(&str, &[&str]); 3] = [
        (
            parcost::id::OVERSUBSCRIPTION.name,
            &[parcost::id::key::TASKS, parcost::id::key::BLAS_THREADS],
        ),
        (
            parcost::id::TASK_LEVEL.name,
            &[
                parcost::id::key::TASKS,
                parcost::id::key::BLAS_THREADS,
                parcost::id::key::VARIANT,
            ],
        ),
        (
            parcost::id::BLAS_TUNING.name,
            &[parcost::id::key::BLAS_THREADS],
        ),
    ];
    for (suite, grid) in grids {
        for ((workload, params), cells) in groups(rows, suite, grid) {
            let Some(fastest) = best_sampled(&cells) else {
                continue;
            };
            let find = |t: Option<u64>, b: u64| {
                cells.iter().copied().find(|r| {
                    r.int(parcost::id::key::BLAS_THREADS) == Some(b)
                        && r.int(parcost::id::key::TASKS) == t
                })
            };
            let tasks = |t: u64| (suite != parcost::id::BLAS_TUNING.name).then_some(t);
            let default = find(tasks(1), p);
            let naive = (suite != parcost::id::BLAS_TUNING.name)
                .then(|| find(tasks(p), p))
                .flatten();
            let config = |r: &Row| -> Config {
                grid.iter()
                    .filter_map(|k| Some(((*k).to_owned(), r.params.get(*k)?.clone())))
                    .collect()
            };
            out.push(recommend(
                Instance {
                    suite,
                    workload,
                    params,
                },
                &cells,
                fastest,
                default,
                naive,
                &config,
                limits,
            ));
        }
    }
    out
}

/// A configuration: the grid's keys of a cell.
pub type Config = BTreeMap<String, Value>;

/// A workload instance: its suite, workload and every parameter but the grid's.
pub(crate) struct Instance<'a> {
    pub suite: &'a str,
    pub workload: String,
    pub params: BTreeMap<String, Value>,
}

/// The one recommendation rule of every suite ([`Advice::judge`]): the pick
/// ([`simplest_equivalent`] of `fastest`) over `default` by [`Rule::ADVICE`], with the speedups
/// and shares of the peak beside it. `cells`: every configuration measured of the instance (one
/// only: nothing to choose).
pub(crate) fn recommend(
    instance: Instance,
    cells: &[&Row],
    fastest: &Row,
    default: Option<&Row>,
    naive: Option<&Row>,
    config: &dyn Fn(&Row) -> Config,
    limits: Limits,
) -> Recommendation {
    let pick = simplest_equivalent(cells, fastest, default);
    let advice = match default {
        // A default stopped as hopeless has a bound, not a time: nothing is judged against it.
        Some(d) if d.at_least_ns.is_some() => Advice::Keep {
            default: Some(config(d)),
            why: crate::model::Stands::Censored,
        },
        _ => Advice::judge(
            (config(pick), pick.time_ns),
            default.map(|d| (config(d), d.time_ns)),
            cells.len(),
            false,
            Rule::ADVICE,
        ),
    };
    let (efficiency, efficiency_theoretical) = efficiencies(fastest, limits);
    Recommendation {
        suite: instance.suite.to_owned(),
        workload: instance.workload,
        params: instance.params,
        best: advice.choice().cloned().unwrap_or_default(),
        fastest: config(fastest),
        default: default.map(config).unwrap_or_default(),
        advice: AdviceKind::from(&advice),
        speedup_vs_default: default.and_then(|d| Some(Ratio::of(&d.time_ns?, &pick.time_ns?))),
        speedup_vs_naive: naive.and_then(|n| Some(ratio_of(&n.time_ns?, &fastest.time_ns?))),
        efficiency,
        efficiency_theoretical,
        typed: Some(advice),
    }
}

/// What to recommend of `cells`: the simplest configuration (fewest threads in all, then fewest
/// tasks) that did not separate from the fastest between rounds and beats the default by the
/// margin in its estimate; the fastest when none is, or when the default is one of them (then
/// the default stands). Two runs that differ only in which of several equivalent
/// configurations came out fastest then give the same advice.
pub(crate) fn simplest_equivalent<'a>(
    cells: &[&'a Row],
    fastest: &'a Row,
    default: Option<&'a Row>,
) -> &'a Row {
    let Some(ft) = fastest.time_ns else {
        return fastest;
    };
    // Tied: the rounds could not tell it from the fastest.
    let tied = |r: &Row| {
        r.time_ns.is_some_and(|t| {
            matches!(
                Ratio::of(&t, &ft).separation(Rule::ADVICE),
                Separation::Equivalent | Separation::Overlap
            )
        })
    };
    // The default among them: the comparison of the fastest with it says why it stands.
    if default.is_some_and(&tied) {
        return fastest;
    }
    // A simpler pick must beat the default by its estimate, by the margin at least: a
    // variant tied with the fastest only because its rounds spread wide, and slower than the
    // default, would otherwise become the pick, fail against the default and take the
    // fastest's separated advice with it. In a full run here faer's task-level 2 x 1 at
    // n = 512, 1.19x faster than the default in every round, gave way to pthreads' task-level
    // (rounds of 19, 32 and 18 ms, the default's 16), and the default stood at "0.68x". The
    // pick is still judged against the default by its interval ([`Advice::judge`]).
    cells
        .iter()
        .copied()
        .filter(|r| tied(r) && beats_default(r, default))
        .min_by_key(|r| simplicity(r, default))
        .filter(|r| simplicity(r, default) < simplicity(fastest, default))
        .unwrap_or(fastest)
}

/// Whether `r` beats the default (if any) by the margin in its estimate: a pick must.
pub(crate) fn beats_default(r: &Row, default: Option<&Row>) -> bool {
    default.is_none_or(|d| match (d.time_ns, r.time_ns) {
        (Some(d), Some(t)) => Ratio::of(&d, &t).estimate_beyond_margin(Rule::ADVICE),
        _ => false,
    })
}

/// How simple a configuration is to set, smaller simpler: fewer threads, then fewer tasks, then
/// fewer changes of library, kernel or variant from the default's (between two layers the
/// rounds cannot tell apart, the one the user already runs: a full run here named openmp in
/// one run and pthreads in the other for the same tie).
pub(crate) fn simplicity(r: &Row, default: Option<&Row>) -> (u64, u64, usize) {
    let int = |k: &str| r.int(k).unwrap_or(1);
    let tasks = int(key::TASKS) * int(key::RANKS);
    let changes = [key::LAYER, key::KERNEL, key::VARIANT]
        .into_iter()
        .filter(|k| default.is_some_and(|d| d.params.get(*k) != r.params.get(*k)))
        .count();
    (tasks * int(key::BLAS_THREADS), tasks, changes)
}

/// The noise rule, one place for every suite: a recommendation drawn from a suite run that the
/// noise check flagged (its calibrations apart, or foreign load or steal over the limit) is not
/// advice; the default stands until the suite is rerun.
pub(crate) fn unless_noisy(recs: &mut [Recommendation], noise: &[crate::facts::NoiseOut]) {
    for rec in recs.iter_mut() {
        let layers: Vec<&str> = [
            rec.params.get(key::LAYER),
            rec.fastest.get(key::LAYER),
            rec.default.get(key::LAYER),
        ]
        .into_iter()
        .flatten()
        .filter_map(Value::name)
        .collect();
        let noisy = noise.iter().any(|n| {
            n.flagged
                && n.suite == rec.suite
                && n.layer.as_deref().is_none_or(|l| layers.contains(&l))
        });
        if noisy && rec.recommended() {
            let default = (!rec.default.is_empty()).then(|| rec.default.clone());
            rec.best = rec.default.clone();
            rec.advice = AdviceKind::Keep(crate::model::Stands::NoisySuite);
            rec.typed = Some(Advice::Keep {
                default,
                why: crate::model::Stands::NoisySuite,
            });
        }
    }
}

/// A rate as shares of the best DGEMM measured and of the theoretical peak, with intervals
/// (the rate's interval inverts the time's; the measured peak's own interval widens it).
fn efficiencies(row: &Row, limits: Limits) -> (Option<Estimate>, Option<Estimate>) {
    let (Some(rate), Some(t)) = (
        row.throughput
            .as_ref()
            .filter(|t| t.unit == "GFLOP/s")
            .map(|t| t.estimate),
        row.time_ns,
    ) else {
        return (None, None);
    };
    let work = rate * t.estimate;
    let r = Estimate {
        estimate: rate,
        lower: work / t.upper,
        upper: work / t.lower,
        rounds: Default::default(),
        pooled: None,
    };
    let measured = limits.dgemm_peak.map(|peak| ratio_of(&r, &peak));
    let theoretical = limits.theoretical_peak_gflops.map(|peak| Estimate {
        estimate: r.estimate / peak,
        lower: r.lower / peak,
        upper: r.upper / peak,
        rounds: Default::default(),
        pooled: None,
    });
    (measured, theoretical)
}

/// The kernel sweep's dgemm at its largest n and P BLAS threads (what a program calling dgemm
/// gets by default): the one place the findings and the verdict read it from.
#[derive(Debug)]
pub struct KernelSweep<'a> {
    pub n: u64,
    /// One sampled row per kernel.
    pub rows: Vec<&'a Row>,
    /// The fastest of them.
    pub best: &'a Row,
}

impl<'a> KernelSweep<'a> {
    pub fn of(rows: &'a [Row], p: u64) -> Option<Self> {
        let sweep: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                r.suite == parcost::id::BLAS_TUNING.name
                    && r.workload == "matmul"
                    && r.params.contains_key(parcost::id::key::KERNEL)
                    && r.time_ns.is_some()
            })
            .collect();
        let n = sweep
            .iter()
            .filter_map(|r| r.int(parcost::id::key::N))
            .max()?;
        let rows: Vec<&Row> = sweep
            .into_iter()
            .filter(|r| {
                r.int(parcost::id::key::N) == Some(n)
                    && r.int(parcost::id::key::BLAS_THREADS) == Some(p)
            })
            .collect();
        let best = best_sampled(&rows)?;
        Some(Self { n, rows, best })
    }

    /// The row of kernel `k` (any spelling).
    pub fn row(&self, k: &str) -> Option<&'a Row> {
        self.rows.iter().copied().find(|r| {
            r.name(parcost::id::key::KERNEL)
                .is_some_and(|x| parcost::kernel::same(x, k))
        })
    }
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
    let Some(sweep) = KernelSweep::of(rows, p) else {
        return Vec::new();
    };
    let (n, at_p, best) = (sweep.n, &sweep.rows, sweep.best);
    let kernel_row = |k: &str| sweep.row(k);
    let best_k = best.name(parcost::id::key::KERNEL).unwrap_or("?");
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
                parcost::id::BLAS_TUNING.name,
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
                let next_name = display_kernel(next.name(parcost::id::key::KERNEL).unwrap_or("?"));
                let mut f = slower(
                    parcost::id::BLAS_TUNING.name,
                    "the kernel OpenBLAS chooses".into(),
                    &format!("the next fastest kernel, {next_name},"),
                    &format!("OpenBLAS's own choice, {library}"),
                    ratio(&nt, &lt),
                    &context,
                );
                // Its lead is claimed only when it separated.
                let lead = if f.seen {
                    "was the fastest measured on this CPU"
                } else {
                    "had the best estimate on this CPU"
                };
                f.text = format!("OpenBLAS's own kernel, {library}, {lead}: {}", f.text);
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
            parcost::id::BLAS_TUNING.name,
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
            rounds: Default::default(),
            pooled: None,
        }
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

    /// An array-sharing `remote` row at 64 MiB, `us` microseconds a request (2% either side).
    fn remote_row(transport: &str, request: &str, us: f64) -> Row {
        let id = format!(
            "array-sharing/remote/transport={transport},request={request}/bytes={}",
            64u64 << 20
        );
        Row::timed(&id, est(us * 1e3, us * 20.0))
    }

    #[test]
    fn the_remote_question_is_named_by_its_costliest_request() {
        let rows = [
            // The longest request in a process, but only 2x a thread's: not the one named.
            remote_row("pipe", "range-sum", 40.0),
            remote_row("thread", "range-sum", 20.0),
            remote_row("pipe", "slice", 30.0),
            remote_row("thread", "slice", 5.0),
            remote_row("pipe", "dot", 12.0),
            // The other size is not the answer's.
            Row {
                params: crate::results::parse_id(
                    "array-sharing/remote/transport=thread,request=dot/bytes=1048576",
                )
                .expect("valid id")
                .2,
                ..remote_row("thread", "dot", 1.0)
            },
        ];
        let found = findings(&rows, 2, None, &BTreeMap::new());
        let remote: Vec<&Finding> = found
            .iter()
            .filter(|f| f.title.starts_with("remote "))
            .collect();
        assert_eq!(remote.len(), 1, "{found:#?}");
        let f = remote[0];
        assert_eq!(f.title, "remote slice: a server process against a thread");
        assert!(f.seen);
        assert!(
            f.text
                .contains("4 KiB of it back, 30.0 µs a request, was 6.00x")
                && f.text
                    .contains("a thread reading the array by reference (5.0 µs a request)"),
            "{}",
            f.text
        );
    }

    /// A kernel-sweep row: dgemm of 2048 at `b` BLAS threads under `kernel`, `ms` long.
    fn sweep_row(kernel: &str, b: u64, ms: f64) -> Row {
        let id =
            format!("blas-tuning/matmul/layer=pthreads,kernel={kernel},n=2048/blas_threads={b}");
        Row::timed(&id, est(ms * 1e6, ms * 1e4))
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
        plain.throughput = Some(crate::facts::Throughput {
            unit: "GFLOP/s".into(),
            estimate: 80.0,
        });
        let mut fast = sweep_row("cooperlake", 2, 10.0);
        fast.throughput = Some(crate::facts::Throughput {
            unit: "GFLOP/s".into(),
            estimate: 200.0,
        });
        let rows = [plain, fast];
        assert_eq!(limits(&rows, None).dgemm_peak_gflops, Some(80.0));
        assert_eq!(groups(&rows, "blas-tuning", &["blas_threads"]).len(), 1);
    }

    fn tuning_row(b: u64, ms: f64, half: f64) -> Row {
        let id = format!("blas-tuning/matmul/layer=openmp,n=2048/blas_threads={b}");
        Row {
            throughput: Some(crate::facts::Throughput {
                unit: "GFLOP/s".into(),
                estimate: 17.18 / ms * 1e3 / 1e3,
            }),
            ..Row::timed(&id, Estimate::in_rounds(ms * 1e6, half * 1e6, b as usize))
        }
    }

    #[test]
    fn a_non_default_is_recommended_only_when_it_separates() {
        let limits = Limits {
            theoretical_peak_gflops: Some(268.0),
            ..Limits::default()
        };
        // 4 threads "faster" than the default 2 by noise: the default stays.
        let noisy = [tuning_row(2, 100.0, 8.0), tuning_row(4, 88.0, 8.0)];
        let r = &recommendations(&noisy, 2, limits)[0];
        assert!(!r.recommended());
        assert_eq!(r.best, r.default);
        assert_eq!(r.fastest["blas_threads"], Value::Int(4));
        let s = r.speedup_vs_default.expect("a speedup");
        let (lower, upper) = s.interval().expect("an interval");
        assert!(lower < 1.0 + crate::model::MARGIN && upper > 1.0, "{s:?}");
        // Clearly faster: recommended, with its interval.
        let clear = [tuning_row(2, 100.0, 1.0), tuning_row(4, 50.0, 1.0)];
        let r = &recommendations(&clear, 2, limits)[0];
        assert!(r.recommended());
        assert_eq!(r.best["blas_threads"], Value::Int(4));
        let e = r.efficiency_theoretical.expect("a share of the peak");
        assert!(e.lower < e.estimate && e.estimate < e.upper, "{e:?}");
    }

    #[test]
    fn a_single_configuration_layer_chooses_nothing() {
        // The serial layer runs 1 BLAS thread only: nothing to choose, nothing recommended.
        let id = "blas-tuning/matmul/layer=serial,n=2048/blas_threads=1";
        let rows = [Row::for_test(id, 100.0, None)];
        let r = &recommendations(&rows, 2, Limits::default())[0];
        assert_eq!(
            r.advice,
            AdviceKind::Keep(crate::model::Stands::SingleConfiguration)
        );
        assert!(!r.recommended() && r.best.is_empty(), "{r:?}");
    }

    #[test]
    fn a_default_that_ran_once_is_not_beaten() {
        // The default over the sampling budget (one run, no interval) against a sampled cell:
        // no interval to judge by, so no recommendation (the old rule took the fastest).
        let mut rows = [tuning_row(2, 100.0, 1.0), tuning_row(4, 50.0, 1.0)];
        rows[0].single_run_ns = rows[0].time_ns.take().map(|t| t.estimate);
        let r = &recommendations(&rows, 2, Limits::default())[0];
        assert_eq!(r.advice, AdviceKind::Keep(crate::model::Stands::RanOnce));
        assert_eq!(r.best, r.default);
    }

    #[test]
    fn the_simplest_tied_configuration_is_named_even_when_the_fastest_is_another() {
        // 4 threads 1% faster than 3 by the estimate but tied between rounds, and 3 separated
        // from the default 2: the pick is 3, the fewer threads, however the tie fell.
        let mut rows = vec![tuning_row(2, 100.0, 1.0), tuning_row(3, 61.0, 1.0)];
        rows.push(tuning_row(4, 60.0, 1.0));
        let r = &recommendations(&rows, 2, Limits::default())[0];
        assert_eq!(r.fastest["blas_threads"], Value::Int(4));
        assert!(
            r.recommended() && r.best["blas_threads"] == Value::Int(3),
            "{r:?}"
        );
        // A tied configuration whose rounds spread wide (its estimate still beating the default
        // by the margin) is still the simplest tied one: the pick, judged against the default
        // by its own interval (here it overlaps: the default stands). Setting it aside for the fastest was a second test of a spread known from a
        // few rounds, and two full runs disagreed more with it than without.
        rows[1].time_ns = Some(Estimate::in_rounds(61e6, 30e6, 3));
        let r = &recommendations(&rows, 2, Limits::default())[0];
        assert!(
            matches!(
                r.advice,
                AdviceKind::Keep(crate::model::Stands::Overlap(ratio)) if ratio.lower < Some(1.0)
            ) && r.best == r.default,
            "{r:?}"
        );
    }

    #[test]
    fn a_tied_configuration_slower_than_the_default_is_not_the_pick() {
        // 3 threads tied with the fastest 4 only because its rounds spread wide, and slower
        // than the default 2 by its estimate: not the pick. The fastest is, separated from the
        // default: recommended (with 3 as the pick the default stood, at 0.9x).
        let rows = vec![
            tuning_row(2, 100.0, 1.0),
            Row::timed(
                "blas-tuning/matmul/layer=openmp,n=2048/blas_threads=3",
                Estimate::in_rounds(110e6, 100e6, 3),
            ),
            tuning_row(4, 60.0, 1.0),
        ];
        let r = &recommendations(&rows, 2, Limits::default())[0];
        assert_eq!(r.fastest["blas_threads"], Value::Int(4));
        assert!(
            r.recommended() && r.best["blas_threads"] == Value::Int(4),
            "{r:?}"
        );
        let s = r.speedup_vs_default.expect("a speedup");
        assert!(s.estimate > 1.6, "{s:?}");
    }

    #[test]
    fn a_censored_cell_is_never_an_estimate() {
        // A cell stopped as hopeless with a bound below every time measured: never the
        // fastest, never a speedup, never a rate.
        let mut rows = vec![tuning_row(2, 100.0, 1.0), tuning_row(4, 60.0, 1.0)];
        let mut stopped = tuning_row(3, 1.0, 0.01);
        stopped.time_ns = None;
        stopped.throughput = None;
        stopped.at_least_ns = Some(1e6);
        rows.push(stopped);
        let r = &recommendations(&rows, 2, Limits::default())[0];
        assert_eq!(r.fastest["blas_threads"], Value::Int(4), "{r:?}");
        assert!(r.recommended() && r.best["blas_threads"] == Value::Int(4));
        assert!(rows[2].typical_ns().is_none() && rows[2].time_or_once().is_none());
        // A default with only a bound: nothing is judged against it.
        let mut rows = vec![tuning_row(2, 100.0, 1.0), tuning_row(4, 60.0, 1.0)];
        rows[0].time_ns = None;
        rows[0].at_least_ns = Some(50e6);
        let r = &recommendations(&rows, 2, Limits::default())[0];
        assert_eq!(r.advice, AdviceKind::Keep(crate::model::Stands::Censored));
        assert!(r.speedup_vs_default.is_none(), "{r:?}");
    }

    #[test]
    fn a_noisy_suite_carries_no_recommendation() {
        let clear = [tuning_row(2, 100.0, 1.0), tuning_row(4, 50.0, 1.0)];
        let mut recs = recommendations(&clear, 2, Limits::default());
        assert!(recs[0].recommended());
        let noise = |layer: &str, flagged: bool| crate::facts::NoiseOut {
            suite: "blas-tuning".into(),
            layer: Some(layer.into()),
            part: None,
            started: String::new(),
            quick: true,
            threads: 2,
            capacity_before: 2.0,
            capacity_after: 1.5,
            steal: 0.0,
            foreign_load: 0.0,
            rounds: 1,
            noisy_rounds: 1,
            flagged,
            rerun: None,
        };
        // Another layer's noise, or a quiet run: the recommendation stands.
        unless_noisy(
            &mut recs,
            &[noise("pthreads", true), noise("openmp", false)],
        );
        assert!(recs[0].recommended());
        unless_noisy(&mut recs, &[noise("openmp", true)]);
        assert!(!recs[0].recommended());
        assert_eq!(recs[0].best, recs[0].default);
        assert!(
            recs[0]
                .typed
                .as_ref()
                .is_some_and(|a| a.recommended().is_none())
        );
    }

    fn level_row(variant: &str, n: u64, ms: f64) -> Row {
        let (t, b) = if variant == "op-level" {
            (1, 2)
        } else {
            (2, 1)
        };
        let id = format!(
            "task-level/matmul/layer=openmp,n={n},pairs=8/variant={variant},tasks={t},blas_threads={b}"
        );
        Row::timed(
            &id,
            Estimate::in_rounds(ms, ms * 0.01, n as usize + variant.len()),
        )
    }

    #[test]
    fn an_undecided_size_is_no_crossover() {
        // Task-level 2x faster at 32 and 64, but at 64 op-level's rounds spread over the
        // margin (nothing decided there); op-level not slower from 128 on. The default is
        // shown right from 128, not from 64.
        let mut rows: Vec<Row> = [(32, 2.0), (64, 2.0), (128, 1.0), (256, 1.0)]
            .iter()
            .flat_map(|&(n, r)| {
                [
                    level_row("op-level", n, 100.0 * r),
                    level_row("task-level", n, 100.0),
                ]
            })
            .collect();
        for r in rows.iter_mut().filter(|r| {
            r.int(parcost::id::key::N) == Some(64)
                && r.name(parcost::id::key::VARIANT) == Some("op-level")
        }) {
            r.time_ns = Some(Estimate::in_rounds(200.0, 60.0, 2));
        }
        let c = &crossovers(&rows)["openmp"];
        assert_eq!(c.crossover, Some(128), "{c:?}");
    }

    #[test]
    fn the_crossover_holds_for_every_larger_size_and_multiple_crossings_are_counted() {
        // op-level over task-level: 2.0, 0.8 (op wins), 1.5 (task wins again), 1.0, 0.9 (op).
        let ratios = [(32, 2.0), (64, 0.8), (128, 1.5), (256, 1.0), (512, 0.9)];
        let rows: Vec<Row> = ratios
            .iter()
            .flat_map(|&(n, r)| {
                [
                    level_row("op-level", n, 100.0 * r),
                    level_row("task-level", n, 100.0),
                ]
            })
            .collect();
        let c = &crossovers(&rows)["openmp"];
        assert_eq!(
            c.crossover,
            Some(256),
            "not 64: task-level wins again at 128"
        );
        assert_eq!(c.crossings, 3, "task, op, task, op");
        assert_eq!(c.best_win.map(|(n, _)| n), Some(32));
    }
}
