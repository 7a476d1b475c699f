//! The verdict: what to set on this machine, in a few lines computed from the summary, each
//! with the section that holds its evidence and the settings to copy. Only what separated from
//! its alternatives by the 95% intervals is stated as advice; the rest says it did not.

use serde::{Deserialize, Serialize};

use crate::findings::{Crossover, KernelSweep, crossovers, display_kernel, ratio};
use crate::results::Estimate;
use crate::summary::{MachineOut, Row};

/// One line of the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// What it is about: `kernel`, `layer`, `small`, `large`, `sharing`, `mpi`, `never`, `noise`.
    pub topic: String,
    pub text: String,
    /// The id of the page element that holds the evidence.
    pub evidence: String,
    /// Whether the advice rests on intervals that separate.
    pub seen: bool,
}

/// The verdict block: its lines, and the settings ready to copy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub lines: Vec<Line>,
    /// Environment settings and code, one line each (comments start with `#` or `//`).
    pub setup: Vec<String>,
}

fn line(topic: &str, text: String, evidence: &str, seen: bool) -> Line {
    Line {
        topic: topic.to_owned(),
        text,
        evidence: evidence.to_owned(),
        seen,
    }
}

fn x(r: (f64, f64, f64)) -> String {
    if r.0 < 10.0 {
        format!("{:.2}x ({:.2} to {:.2})", r.0, r.1, r.2)
    } else {
        format!("{:.1}x ({:.1} to {:.1})", r.0, r.1, r.2)
    }
}

/// The best sampled row of `rows` (by Criterion's estimate).
fn fastest<'a>(rows: impl Iterator<Item = &'a Row>) -> Option<&'a Row> {
    rows.filter(|r| r.time_ns.is_some()).min_by(|a, b| {
        a.typical_ns()
            .unwrap_or(f64::MAX)
            .total_cmp(&b.typical_ns().unwrap_or(f64::MAX))
    })
}

fn time(r: &Row) -> Option<Estimate> {
    r.time_ns
}

/// Computes the verdict of a run.
pub fn verdict(machine: &MachineOut, rows: &[Row]) -> Verdict {
    let p = machine.logical_cores.max(1) as u64;
    let mut v = Verdict::default();
    kernel(machine, rows, p, &mut v);
    let layer = layer(rows, p, &mut v);
    crate::libraries::verdict(rows, p, &mut v);
    threads(rows, p, layer.as_deref(), &mut v);
    sharing(rows, &mut v);
    crate::mpi::verdict(rows, machine.logical_cores, &mut v);
    never(rows, &mut v);
    noise(machine, &mut v);
    v
}

fn kernel(machine: &MachineOut, rows: &[Row], p: u64, v: &mut Verdict) {
    let Some(o) = &machine.openblas else {
        return;
    };
    let sweep = KernelSweep::of(rows, p);
    let best = sweep.as_ref().map(|s| s.best);
    let of = |k: &str| sweep.as_ref().and_then(|s| s.row(k));
    let (Some(best), Some(lib)) = (best, of(&o.core)) else {
        v.lines.push(line(
            "kernel",
            format!(
                "OpenBLAS kernel: {} ran every suite (OpenBLAS itself chooses {}); the kernel \
                 sweep has no results to compare them.",
                o.kernel, o.core
            ),
            "machine",
            false,
        ));
        return;
    };
    let best_name = display_kernel(best.name("kernel").unwrap_or("?"));
    let r = time(lib).zip(time(best)).map(|(l, b)| ratio(&l, &b));
    match r {
        Some(r) if lib.full_id != best.full_id && r.1 > 1.0 => {
            v.lines.push(line(
                "kernel",
                format!(
                    "Kernel: set OPENBLAS_CORETYPE={best_name}. OpenBLAS's own choice here, {}, \
                     ran dgemm {} slower; {best_name} computed the same results.",
                    o.core,
                    x(r)
                ),
                "kernels",
                true,
            ));
            v.setup.push(format!(
                "export OPENBLAS_CORETYPE={best_name}   # the fastest correct kernel here"
            ));
        }
        _ => v.lines.push(line(
            "kernel",
            format!(
                "Kernel: leave it to OpenBLAS: its own choice, {}, was the fastest correct kernel \
                 measured (or as fast).",
                o.core
            ),
            "kernels",
            true,
        )),
    }
    if !parcost::kernel::same(&o.kernel, &o.core)
        && o.kernel_source == "environment"
        && let Some(used) = of(&o.kernel)
            .and_then(time)
            .zip(time(best))
            .map(|(u, b)| ratio(&u, &b))
        && used.1 > 1.0
    {
        v.lines.push(line(
            "kernel",
            format!(
                "This run kept OPENBLAS_CORETYPE={} from your environment, {} slower \
                         than {best_name}: every figure below is of {}.",
                o.kernel,
                x(used),
                o.kernel
            ),
            "kernels",
            true,
        ));
    }
}

/// The OpenBLAS layer with the fastest batch of small products, and what naive nesting cost
/// under each (the other libraries: [`crate::libraries::verdict`]).
fn layer(rows: &[Row], p: u64, v: &mut Verdict) -> Option<String> {
    let batch: Vec<&Row> = rows
        .iter()
        .filter(|r| r.suite == "oversubscription" && r.workload == "matmul")
        .filter(|r| r.int("n") == Some(256))
        .filter(|r| r.name("layer").is_some_and(parcost::id::layer::is_openblas))
        .collect();
    let layers: std::collections::BTreeSet<&str> =
        batch.iter().filter_map(|r| r.name("layer")).collect();
    let best_of = |l: &str| {
        fastest(
            batch
                .iter()
                .copied()
                .filter(move |r| r.name("layer") == Some(l)),
        )
    };
    let mut bests: Vec<(&str, &Row)> = layers
        .iter()
        .filter_map(|l| Some((*l, best_of(l)?)))
        .collect();
    bests.sort_by(|a, b| {
        a.1.typical_ns()
            .unwrap_or(f64::MAX)
            .total_cmp(&b.1.typical_ns().unwrap_or(f64::MAX))
    });
    let (winner, win_row) = *bests.first()?;
    let naive: Vec<String> = bests
        .iter()
        .filter_map(|(l, best)| {
            let max_tasks = batch
                .iter()
                .filter(|r| r.name("layer") == Some(l))
                .filter_map(|r| r.int("tasks"))
                .max()?;
            let cell = batch.iter().find(|r| {
                r.name("layer") == Some(l)
                    && r.int("tasks") == Some(max_tasks)
                    && r.int("blas_threads") == Some(p)
            })?;
            let r = ratio(&time(cell)?, &time(best)?);
            Some(format!("{l} {:.1}x", r.0))
        })
        .collect();
    let pairs = win_row.int("pairs").unwrap_or(0);
    let runner_up = bests
        .get(1)
        .and_then(|(l, r)| Some((*l, ratio(&time(r)?, &time(win_row)?))));
    let (text, seen) = match runner_up {
        Some((other, r)) if r.1 > 1.0 => (
            format!(
                "Layer: OpenBLAS {winner}. At its best it ran {pairs} products of 256^2 {} faster \
                 than {other} at its best.",
                x(r)
            ),
            true,
        ),
        Some((other, r)) => (
            format!(
                "Layer: {winner} and {other} were as fast at their best on {pairs} products of \
                 256^2 ({}).",
                x(r)
            ),
            false,
        ),
        None => (
            format!("Layer: OpenBLAS {winner} (the only one measured)."),
            false,
        ),
    };
    let naive = if naive.is_empty() {
        String::new()
    } else {
        format!(
            " Naive nesting (most tasks x {p} BLAS threads) against each layer's best: {}.",
            naive.join(", ")
        )
    };
    v.lines.push(line(
        "layer",
        format!("{text}{naive}"),
        "oversubscription",
        seen,
    ));
    Some(winner.to_owned())
}

fn threads(rows: &[Row], p: u64, layer: Option<&str>, v: &mut Verdict) {
    let cross = crossovers(rows);
    let Some((layer, c)): Option<(&str, &Crossover)> = layer
        .and_then(|l| cross.get(l).map(|c| (l, c)))
        .or_else(|| {
            cross
                .iter()
                .find(|(l, _)| parcost::id::layer::is_openblas(l))
                .map(|(l, c)| (l.as_str(), c))
        })
    else {
        return;
    };
    let sizes: Vec<u64> = rows
        .iter()
        .filter(|r| r.suite == "task-level" && r.name("layer") == Some(layer))
        .filter_map(|r| r.int("n"))
        .collect();
    let largest = sizes.iter().max().copied().unwrap_or(0);
    if let Some((n, r)) = c.best_win.filter(|(_, r)| r.1 > 1.0) {
        let upto = match c.crossover {
            Some(cx) => format!("below n={cx}"),
            None => format!("every size measured, up to n={largest}"),
        };
        v.lines.push(line(
            "small",
            format!(
                "Many small products ({upto}): {p} task threads x 1 BLAS thread. Task-level \
                 beat BLAS threading by {} at n={n} ({layer}).",
                x(r)
            ),
            "task-level",
            true,
        ));
        v.setup.push(format!(
            "export OPENBLAS_NUM_THREADS=1   # batches of products below n={}",
            c.crossover.unwrap_or(largest)
        ));
        v.setup.push(format!(
            "let pool = rayon::ThreadPoolBuilder::new().num_threads({p}).build()?;   // one product a task"
        ));
    } else {
        v.lines.push(line(
            "small",
            format!(
                "Many small products: task-level did not beat BLAS threading beyond the intervals \
                 at any size under {layer}."
            ),
            "task-level",
            false,
        ));
    }
    if let Some(cx) = c.crossover {
        let crossings = if c.crossings > 1 {
            format!(
                " (the curves cross {} times: sizes near n={cx} are a toss-up)",
                c.crossings
            )
        } else {
            String::new()
        };
        v.lines.push(line(
            "large",
            format!(
                "Large matrices (n >= {cx}): 1 task x {p} BLAS threads, the library default: \
                 op-level was not slower at any larger size{crossings}."
            ),
            "task-level",
            true,
        ));
        v.setup.push(format!(
            "# n >= {cx}: one product at a time, OPENBLAS_NUM_THREADS unset ({p} threads)"
        ));
    }
}

fn sharing(rows: &[Row], v: &mut Verdict) {
    const SIZE: u64 = 64 << 20;
    let in_process = |t: &str| t.starts_with("thread") || t.starts_with("channel") || t == "memcpy";
    let send: Vec<&Row> = rows
        .iter()
        .filter(|r| r.suite == "array-sharing" && r.workload == "send")
        .filter(|r| r.int("bytes") == Some(SIZE))
        .filter(|r| r.name("transport").is_some_and(|t| !in_process(t)))
        .filter(|r| r.name("pool").is_none_or(|p| p == "persistent"))
        .collect();
    let Some(best) = fastest(send.iter().copied()) else {
        return;
    };
    let second = fastest(
        send.iter()
            .copied()
            .filter(|r| r.name("transport") != best.name("transport")),
    );
    let name = best.name("transport").unwrap_or("?").to_owned();
    let gbs = best
        .throughput
        .as_ref()
        .filter(|t| t.unit == "GB/s")
        .map(|t| format!(" at {:.1} GB/s", t.estimate))
        .unwrap_or_default();
    let vs = second.and_then(|s| Some((s.name("transport")?, ratio(&time(s)?, &time(best)?))));
    let (text, seen) = match vs {
        Some((other, r)) if r.1 > 1.0 => (
            format!(
                "Sending a 64 MiB array to another process: {name}{gbs}, {} faster than the next, \
                 {other}. Threads share it by reference for free.",
                x(r)
            ),
            true,
        ),
        Some((other, r)) => (
            format!(
                "Sending a 64 MiB array to another process: {name}{gbs} or {other} ({}, not \
                 separated). Threads share it by reference for free.",
                x(r)
            ),
            false,
        ),
        None => (
            format!("Sending a 64 MiB array to another process: {name}{gbs}."),
            false,
        ),
    };
    v.lines.push(line("sharing", text, "array-sharing", seen));
}

/// The worst configuration measured against the best of its own grid.
fn never(rows: &[Row], v: &mut Verdict) {
    let mut worst: Option<((f64, f64, f64), &Row, &Row)> = None;
    for r in rows.iter().filter(|r| r.suite == "oversubscription") {
        let group = rows.iter().filter(|o| {
            o.suite == r.suite
                && o.workload == r.workload
                && o.name("layer") == r.name("layer")
                && o.int("n") == r.int("n")
        });
        let Some(best) = fastest(group) else { continue };
        let Some(q) = time(r).zip(time(best)).map(|(a, b)| ratio(&a, &b)) else {
            continue;
        };
        if q.1 > 1.0 && worst.is_none_or(|w| q.0 > w.0.0) {
            worst = Some((q, r, best));
        }
    }
    if let Some((q, r, best)) = worst {
        let cell = |r: &Row| {
            format!(
                "{} tasks x {} BLAS threads",
                r.int("tasks").unwrap_or(0),
                r.int("blas_threads").unwrap_or(0)
            )
        };
        v.lines.push(line(
            "never",
            format!(
                "Never: {} on {} of {}^2 under {}: {} slower than {}.",
                cell(r),
                r.workload,
                r.int("n").unwrap_or(0),
                r.name("layer").unwrap_or("?"),
                x(q),
                cell(best)
            ),
            "oversubscription",
            true,
        ));
    }
}

fn noise(machine: &MachineOut, v: &mut Verdict) {
    if machine.noise.is_empty() {
        return;
    }
    let flagged: Vec<String> = machine
        .noise
        .iter()
        .filter(|n| n.flagged)
        .map(|n| {
            [Some(n.suite.as_str()), n.layer.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let low = machine
        .noise
        .iter()
        .map(|n| n.capacity_before.min(n.capacity_after))
        .fold(f64::INFINITY, f64::min);
    let text = if flagged.is_empty() {
        format!(
            "Noise: quiet enough. Every suite's calibrations agree within 10% (the lowest \
             delivered parallel capacity was {low:.2} on {} cores), foreign load under 10%.",
            machine.logical_cores
        )
    } else {
        format!(
            "Noise: {} ran on a noisy machine; treat their figures with care and rerun them.",
            flagged.join(", ")
        )
    };
    v.lines
        .push(line("noise", text, "noise", flagged.is_empty()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, ms: f64) -> Row {
        Row::for_test(id, ms, None)
    }

    #[test]
    fn the_verdict_names_the_crossover_the_worst_cell_and_the_copyable_settings() {
        let mut rows = Vec::new();
        for (n, op, task) in [
            (64, 40.0, 20.0),
            (256, 30.0, 20.0),
            (512, 20.0, 20.5),
            (1024, 18.0, 25.0),
        ] {
            rows.push(row(&format!("task-level/matmul/layer=openmp,n={n},pairs=8/variant=op-level,tasks=1,blas_threads=2"), op));
            rows.push(row(&format!("task-level/matmul/layer=openmp,n={n},pairs=8/variant=task-level,tasks=2,blas_threads=1"), task));
        }
        for (t, b, ms) in [(2, 1, 20.0), (8, 2, 262.0), (1, 2, 30.0)] {
            rows.push(row(
                &format!(
                    "oversubscription/matmul/layer=openmp,n=256,pairs=64/tasks={t},blas_threads={b}"
                ),
                ms,
            ));
        }
        let machine = MachineOut {
            logical_cores: 2,
            ..MachineOut::default()
        };
        let v = verdict(&machine, &rows);
        let text = |topic: &str| {
            v.lines
                .iter()
                .find(|l| l.topic == topic)
                .map(|l| l.text.clone())
                .unwrap_or_default()
        };
        assert!(text("small").contains("below n=512"), "{}", text("small"));
        assert!(text("large").contains("n >= 512"), "{}", text("large"));
        assert!(
            text("never").contains("8 tasks x 2 BLAS threads") && text("never").contains("13.1x"),
            "{}",
            text("never")
        );
        assert!(
            v.setup
                .iter()
                .any(|s| s.starts_with("export OPENBLAS_NUM_THREADS=1"))
        );
        assert!(v.setup.iter().any(|s| s.contains("num_threads(2)")));
        assert!(v.lines.iter().all(|l| !l.evidence.is_empty()));
    }
}
