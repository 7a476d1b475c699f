//! Libraries side by side: for each workload the BLAS suites ran under more than one layer
//! (OpenBLAS's builds, faer on rayon, matrixmultiply's own pool), the best configuration of
//! each layer with its time, rate and share of the peak; faer (and matrixmultiply) against
//! OpenBLAS across the task-level sizes; the findings those give (what naive nesting costs per
//! library, from which size one library wins, how close a batch of small products comes to the
//! peak); a verdict line and recommendations that name the library. Every number is computed
//! from the rows given, by the findings' rule: a difference is stated only when the two 95%
//! intervals separate.

use std::collections::BTreeMap;

use parcost::id::layer as names;

use crate::facts::{Finding, Limits, Recommendation, Row};
use crate::findings::{Config, Instance, human, ratio, recommend};
use crate::model::{Ratio, Rule, Separation};
use crate::results::{Estimate, Value};

/// The keys a suite's grid varies (the suite table's), for the suites that run on every
/// library; none for the others, which are not compared across libraries.
fn grid_keys(suite: &str) -> &'static [&'static str] {
    parcost::id::suite(suite)
        .filter(|s| s.native_layers)
        .map_or(&[], |s| s.grid)
}

/// One layer's best configuration of a workload.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub layer: String,
    pub best: &'a Row,
}

impl Entry<'_> {
    pub fn time(&self) -> Estimate {
        self.best.time_ns.unwrap_or(Estimate {
            estimate: f64::NAN,
            lower: f64::NAN,
            upper: f64::NAN,
            rounds: Default::default(),
            pooled: None,
        })
    }

    /// `2 x 1` (tasks x threads), `B = 2`, `task-level, 2 x 1`.
    pub fn config(&self) -> String {
        let r = self.best;
        let cell = match (
            r.int(parcost::id::key::TASKS),
            r.int(parcost::id::key::BLAS_THREADS),
        ) {
            (Some(t), Some(b)) => format!("{t} x {b}"),
            (None, Some(b)) => format!("B = {b}"),
            _ => String::new(),
        };
        match r.name(parcost::id::key::VARIANT) {
            Some(v) => format!("{v}, {cell}"),
            None => cell,
        }
    }
}

/// One workload instance under every layer that ran it, fastest first.
#[derive(Debug, Clone)]
pub struct Comparison<'a> {
    pub suite: String,
    pub workload: String,
    pub params: BTreeMap<String, Value>,
    pub entries: Vec<Entry<'a>>,
    /// Every configuration measured of the instance, under every layer: the cross-layer
    /// recommendation chooses among all of them (a layer's best alone is a coin flip between
    /// its tied cells: one full run here named faer's task-level over OpenBLAS's because
    /// OpenBLAS's naive cell came out 3% ahead of its own task-level one).
    pub cells: Vec<&'a Row>,
}

impl Comparison<'_> {
    pub fn title(&self) -> String {
        human(&self.workload, &self.params)
    }

    pub fn of(&self, layer: &str) -> Option<&Entry<'_>> {
        self.entries.iter().find(|e| e.layer == layer)
    }

    /// The fastest entry of a library's layers.
    pub fn best_of_library(&self, library: &str) -> Option<&Entry<'_>> {
        self.entries
            .iter()
            .find(|e| names::library(&e.layer) == library)
    }

    pub(crate) fn has_native(&self) -> bool {
        self.entries.iter().any(|e| !names::is_openblas(&e.layer))
    }
}

/// Every workload instance of the BLAS suites run under at least two layers (the kernel sweep
/// aside), each layer's best sampled configuration, fastest first.
pub fn comparisons(rows: &[Row]) -> Vec<Comparison<'_>> {
    type Key = (String, String, BTreeMap<String, Value>);
    let mut groups: BTreeMap<Key, BTreeMap<String, Vec<&Row>>> = BTreeMap::new();
    for r in rows {
        let grid = grid_keys(&r.suite);
        if grid.is_empty() || r.params.contains_key(parcost::id::key::KERNEL) || r.time_ns.is_none()
        {
            continue;
        }
        let Some(layer) = r.name(parcost::id::key::LAYER) else {
            continue;
        };
        let params = r
            .params
            .iter()
            .filter(|(k, _)| !grid.contains(&k.as_str()) && k.as_str() != parcost::id::key::LAYER)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        groups
            .entry((r.suite.clone(), r.workload.clone(), params))
            .or_default()
            .entry(layer.to_owned())
            .or_default()
            .push(r);
    }
    let order = |s: &str| {
        parcost::id::SUITES
            .iter()
            .position(|x| x.name == s)
            .unwrap_or(usize::MAX)
    };
    let mut out: Vec<Comparison> = groups
        .into_iter()
        .filter(|(_, by_layer)| by_layer.len() > 1)
        .map(|((suite, workload, params), by_layer)| {
            let cells: Vec<&Row> = by_layer.values().flatten().copied().collect();
            let mut entries: Vec<Entry> = by_layer
                .into_iter()
                .filter_map(|(layer, cells)| {
                    let best = cells
                        .into_iter()
                        .min_by(|a, b| time_of(a).total_cmp(&time_of(b)))?;
                    Some(Entry { layer, best })
                })
                .collect();
            entries.sort_by(|a, b| time_of(a.best).total_cmp(&time_of(b.best)));
            Comparison {
                suite,
                workload,
                params,
                entries,
                cells,
            }
        })
        .collect();
    out.sort_by_key(|c| {
        (
            order(&c.suite),
            c.workload.clone(),
            c.params.get(parcost::id::key::N).cloned(),
        )
    });
    out
}

pub(crate) fn time_of(r: &Row) -> f64 {
    r.time_ns.map_or(f64::INFINITY, |t| t.estimate)
}

pub(crate) fn x(r: Ratio) -> String {
    r.words()
}

/// `a` against `b` as a speedup of `a` (b's time over a's): above 1, `a` was faster.
pub(crate) fn speedup(a: &Entry, b: &Entry) -> Ratio {
    ratio(&b.time(), &a.time())
}

/// The findings' rule for words: a finding not seen says so first; a seen one starts with a
/// capital (a library's own lower-case name aside).
fn said(seen: bool, text: String) -> String {
    if !seen {
        return format!("Not seen on this machine: {text}");
    }
    if names::NATIVE.iter().any(|n| text.starts_with(n)) {
        return text;
    }
    let mut chars = text.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

/// Whether a ratio's interval lies wholly above (1), below (-1) or across 1 (0).
pub(crate) fn side(r: Ratio) -> i8 {
    match r.separation(Rule::REPORT) {
        Separation::Above => 1,
        Separation::Below => -1,
        _ => 0,
    }
}

/// Naive nesting under a layer: its cell with the most tasks at P threads, against its best.
pub(crate) fn naive_cost<'a>(rows: &[&'a Row], layer: &str, p: u64) -> Option<(&'a Row, Ratio)> {
    let cells: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.name(parcost::id::key::LAYER) == Some(layer) && r.time_ns.is_some())
        .collect();
    let best = cells
        .iter()
        .copied()
        .min_by(|a, b| time_of(a).total_cmp(&time_of(b)))?;
    let most = cells
        .iter()
        .filter_map(|r| r.int(parcost::id::key::TASKS))
        .max()?;
    let naive = cells.iter().copied().find(|r| {
        r.int(parcost::id::key::TASKS) == Some(most)
            && r.int(parcost::id::key::BLAS_THREADS) == Some(p)
    })?;
    Some((naive, ratio(&naive.time_ns?, &best.time_ns?)))
}

/// [`naive_cost`] where the naive cell was too slow to sample (run once, no interval): its one
/// run over the layer's best estimate.
fn naive_once(rows: &[&Row], layer: &str, p: u64) -> Option<f64> {
    let of_layer = || {
        rows.iter()
            .filter(|r| r.name(parcost::id::key::LAYER) == Some(layer))
    };
    let best = of_layer()
        .filter_map(|r| r.time_ns)
        .map(|t| t.estimate)
        .min_by(f64::total_cmp)?;
    let most = of_layer()
        .filter_map(|r| r.int(parcost::id::key::TASKS))
        .max()?;
    let naive = of_layer().find(|r| {
        r.int(parcost::id::key::TASKS) == Some(most)
            && r.int(parcost::id::key::BLAS_THREADS) == Some(p)
    })?;
    Some(naive.time_ns.is_none().then_some(naive.single_run_ns?)? / best)
}

/// The findings about libraries: naive nesting per library (oversubscription), from which size
/// each native layer beats or trails OpenBLAS (task-level), faer against OpenBLAS on one large
/// op (blas-tuning), and the best batch of small products against the peak.
pub fn findings(rows: &[Row], logical_cores: usize, limits: Limits) -> Vec<Finding> {
    let p = logical_cores.max(1) as u64;
    let mut out = Vec::new();
    out.extend(naive_findings(rows, p));
    for layer in names::NATIVE {
        out.extend(size_finding(rows, layer));
    }
    out.extend(large_op_finding(rows));
    out.extend(peak_finding(rows, limits));
    out
}

fn naive_findings(rows: &[Row], p: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    let over: Vec<&Row> = rows
        .iter()
        .filter(|r| r.suite == parcost::id::OVERSUBSCRIPTION.name)
        .collect();
    let mut instances: BTreeMap<(String, BTreeMap<String, Value>), Vec<&Row>> = BTreeMap::new();
    for r in over {
        let params = r
            .params
            .iter()
            .filter(|(k, _)| {
                ![
                    parcost::id::key::TASKS,
                    parcost::id::key::BLAS_THREADS,
                    parcost::id::key::LAYER,
                ]
                .contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        instances
            .entry((r.workload.clone(), params))
            .or_default()
            .push(r);
    }
    for ((workload, params), cells) in instances {
        let Some((faer_naive, faer)) = naive_cost(&cells, names::FAER, p) else {
            continue;
        };
        let others: Vec<(&str, Ratio)> = names::OPENBLAS
            .iter()
            .chain([&names::MATRIXMULTIPLY])
            .filter_map(|l| Some((*l, naive_cost(&cells, l, p)?.1)))
            .collect();
        // Against OpenMP OpenBLAS, whose teams multiply; else the dearest OpenBLAS layer.
        let Some(&(against, theirs)) =
            others
                .iter()
                .find(|(l, _)| *l == names::OPENMP)
                .or_else(|| {
                    others
                        .iter()
                        .filter(|(l, _)| names::is_openblas(l))
                        .max_by(|a, b| a.1.estimate.total_cmp(&b.1.estimate))
                })
        else {
            continue;
        };
        let cell = format!(
            "{} x {}",
            crate::facts::count(faer_naive.int(parcost::id::key::TASKS).unwrap_or(0), "task"),
            crate::facts::count(p, "thread")
        );
        let once = names::OPENBLAS
            .iter()
            .chain([&names::MATRIXMULTIPLY])
            .filter_map(|l| Some((*l, naive_once(&cells, l, p)?)))
            .map(|(l, r)| {
                format!(
                    "{} {r:.1}x in its one run, too slow to sample",
                    names::describe(l)
                )
            });
        let rest: Vec<String> = others
            .iter()
            .filter(|(l, _)| *l != against)
            .map(|(l, r)| format!("{} {}", names::describe(l), x(*r)))
            .chain(once)
            .collect();
        // The two costs against each other, by the one rule: their quotient's interval.
        let costs = Ratio {
            estimate: faer.estimate / theirs.estimate,
            lower: faer.lower.zip(theirs.upper).map(|(a, b)| a / b),
            upper: faer.upper.zip(theirs.lower).map(|(a, b)| a / b),
            // Not paired by round: a quotient of two intervals holds only within a run.
            rounds: 0,
            unstable: faer.unstable || theirs.unstable,
        };
        let (verdict, seen) = match costs.separation(Rule::REPORT) {
            Separation::Below => (
                "faer's cost is below OpenBLAS's beyond both intervals",
                true,
            ),
            Separation::Above => (
                "faer's cost is above OpenBLAS's beyond both intervals",
                true,
            ),
            _ => ("the two costs did not separate", false),
        };
        out.push(Finding::new(
            parcost::id::OVERSUBSCRIPTION.name,
            "naive nesting, faer against OpenBLAS".into(),
            said(
                seen,
                format!(
                    "naive nesting ({cell}, against each layer's best cell) on {} cost {} under \
                 faer against {} under {}{}: {verdict}.",
                    human(&workload, &params),
                    x(faer),
                    x(theirs),
                    names::describe(against),
                    if rest.is_empty() {
                        String::new()
                    } else {
                        format!(" (and {})", rest.join(", "))
                    },
                ),
            ),
            faer,
            seen,
        ));
    }
    out
}

/// One native layer against OpenBLAS at each task-level size (the best configuration of each
/// at each size): where the winner stops changing.
pub fn by_size(rows: &[Row], layer: &str) -> Vec<(u64, Ratio)> {
    let mut out: Vec<(u64, Ratio)> = comparisons(rows)
        .iter()
        .filter(|c| c.suite == parcost::id::TASK_LEVEL.name)
        .filter_map(|c| {
            let n = c.params.get(parcost::id::key::N)?.int()?;
            let native = c.of(layer)?;
            let openblas = c.best_of_library(names::LIBRARY_OPENBLAS)?;
            Some((n, speedup(native, openblas)))
        })
        .collect();
    out.sort_by_key(|(n, _)| *n);
    out
}

/// The size from which a layer's side against OpenBLAS (faster 1, slower -1) holds at every
/// larger size measured, if it holds at the largest.
pub fn lasting_side(by_n: &[(u64, Ratio)]) -> Option<(u64, i8)> {
    let last = side(by_n.last()?.1);
    if last == 0 {
        return None;
    }
    let from = by_n
        .iter()
        .rev()
        .take_while(|(_, r)| side(*r) == last)
        .last()?
        .0;
    Some((from, last))
}

fn size_finding(rows: &[Row], layer: &str) -> Option<Finding> {
    let by_n = by_size(rows, layer);
    let (first, last) = (by_n.first()?, by_n.last()?);
    let list: Vec<String> = by_n
        .iter()
        .map(|(n, r)| format!("n={n} {}", x(*r)))
        .collect();
    let (text, at, seen) = match lasting_side(&by_n) {
        Some((from, s)) => {
            let word = if s > 0 { "faster" } else { "slower" };
            let head = if by_n.len() == 1 {
                format!("{layer} was {word} than OpenBLAS at the one size measured, n={from}")
            } else if from == first.0 {
                format!(
                    "{layer} was {word} than OpenBLAS at every size measured (n={} to {})",
                    first.0, last.0
                )
            } else {
                format!("{layer} was {word} than OpenBLAS from n={from} on")
            };
            let at = by_n
                .iter()
                .find(|(n, _)| *n == from)
                .map_or(last.1, |x| x.1);
            (head, at, true)
        }
        None => (
            format!(
                "a lasting winner by size between {layer} and OpenBLAS (at n={} the \
                 intervals overlap)",
                last.0
            ),
            last.1,
            false,
        ),
    };
    Some(Finding::new(
        parcost::id::TASK_LEVEL.name,
        format!("{layer} against OpenBLAS by size"),
        said(
            seen,
            format!(
                "{text}. {layer}'s best configuration against OpenBLAS's best (any layer) at \
                 each size, as a speedup (above 1: {layer} faster): {}.",
                list.join(", ")
            ),
        ),
        at,
        seen,
    ))
}

fn large_op_finding(rows: &[Row]) -> Option<Finding> {
    let mut parts = Vec::new();
    let mut first: Option<Ratio> = None;
    let mut seen = false;
    for c in comparisons(rows)
        .iter()
        .filter(|c| c.suite == parcost::id::BLAS_TUNING.name)
    {
        let (Some(f), Some(o)) = (
            c.of(names::FAER),
            c.best_of_library(names::LIBRARY_OPENBLAS),
        ) else {
            continue;
        };
        let r = speedup(f, o);
        let word = match side(r) {
            1 => "faster",
            -1 => "slower",
            _ => "not separated",
        };
        seen |= side(r) != 0;
        first.get_or_insert(r);
        parts.push(format!(
            "{}: {} ({word}; faer at {}, OpenBLAS {} at {})",
            c.title(),
            x(r),
            f.config(),
            o.layer,
            o.config()
        ));
    }
    let r = first?;
    Some(Finding::new(
        parcost::id::BLAS_TUNING.name,
        "faer against OpenBLAS, one large op".into(),
        said(
            seen,
            format!(
                "faer's best thread count against OpenBLAS's best, as a speedup (above 1: faer \
                 faster): {}.",
                parts.join("; ")
            ),
        ),
        r,
        seen,
    ))
}

/// A row's GFLOP/s with its interval (a rate's interval inverts the time's).
pub(crate) fn rate(r: &Row) -> Option<Estimate> {
    r.gflops()
}

/// A rate as a share of the peak measured, with the conservative interval.
pub(crate) fn share(rate: Estimate, peak: Estimate) -> Estimate {
    crate::findings::ratio_of(&rate, &peak)
}

/// The share of the best DGEMM rate measured that 90%: the bar for a batch of small
/// products.
pub const PEAK_SHARE_BAR: f64 = 0.9;

fn peak_finding(rows: &[Row], limits: Limits) -> Option<Finding> {
    let peak = limits.dgemm_peak?;
    let peak_row = rows
        .iter()
        .filter(|r| r.suite == parcost::id::BLAS_TUNING.name && r.workload == "matmul")
        .filter(|r| !r.params.contains_key(parcost::id::key::KERNEL))
        .filter_map(|r| Some((r, rate(r)?)))
        .max_by(|a, b| a.1.estimate.total_cmp(&b.1.estimate))?;
    let batch: Vec<(&Row, Estimate)> = rows
        .iter()
        .filter(|r| r.suite == parcost::id::OVERSUBSCRIPTION.name && r.workload == "matmul")
        .filter(|r| r.int(parcost::id::key::N) == Some(256))
        .filter_map(|r| Some((r, rate(r)?)))
        .collect();
    let best_of = |pred: &dyn Fn(&str) -> bool| {
        batch
            .iter()
            .filter(|(r, _)| r.name(parcost::id::key::LAYER).is_some_and(pred))
            .max_by(|a, b| a.1.estimate.total_cmp(&b.1.estimate))
    };
    let (best, best_rate) = best_of(&|_| true)?;
    let s = share(*best_rate, peak);
    let who = |r: &Row| {
        format!(
            "{}, {} x {}",
            names::describe(r.name(parcost::id::key::LAYER).unwrap_or("?")),
            crate::facts::count(r.int(parcost::id::key::TASKS).unwrap_or(0), "task"),
            crate::facts::count(r.int(parcost::id::key::BLAS_THREADS).unwrap_or(0), "thread")
        )
    };
    let openblas = best_of(&names::is_openblas)
        .filter(|(r, _)| r.full_id != best.full_id)
        .map(|(r, g)| {
            let o = share(*g, peak);
            format!(
                " OpenBLAS's best batch ({}) reached {:.0}% ({:.0} to {:.0}).",
                who(r),
                100.0 * o.estimate,
                100.0 * o.lower,
                100.0 * o.upper
            )
        })
        .unwrap_or_default();
    let reached = s.lower >= PEAK_SHARE_BAR;
    let verdict = if reached {
        format!(
            "at least {:.0}% beyond its interval",
            100.0 * PEAK_SHARE_BAR
        )
    } else if s.upper < PEAK_SHARE_BAR {
        format!("below {:.0}% beyond its interval", 100.0 * PEAK_SHARE_BAR)
    } else {
        format!("an interval that straddles {:.0}%", 100.0 * PEAK_SHARE_BAR)
    };
    Some(Finding::new(
        parcost::id::OVERSUBSCRIPTION.name,
        "the best batch of small products against the peak".into(),
        said(
            reached,
            format!(
                "the fastest batch of {} products of 256^2 ({}) ran at {:.1} GFLOP/s: {:.0}% ({:.0} \
             to {:.0}) of the best DGEMM rate measured in this run ({:.1} GFLOP/s, {} matmul of \
             {}^2 at {} threads), {verdict}.{openblas}",
                best.int(parcost::id::key::PAIRS).unwrap_or(0),
                who(best),
                best_rate.estimate,
                100.0 * s.estimate,
                100.0 * s.lower,
                100.0 * s.upper,
                peak.estimate,
                names::describe(peak_row.0.name(parcost::id::key::LAYER).unwrap_or("?")),
                peak_row.0.int(parcost::id::key::N).unwrap_or(0),
                peak_row.0.int(parcost::id::key::BLAS_THREADS).unwrap_or(0),
            ),
        ),
        Ratio::from_estimate(s),
        reached,
    ))
}

/// Recommendations across libraries, for each workload run under a native layer and an
/// OpenBLAS one: the fastest configuration of any layer (its `layer` named), against what a
/// Rust user gets without choosing, ndarray on OpenBLAS's default build (`pthreads` where
/// measured) at 1 task x P threads; recommended only when it separates from that default.
pub fn recommendations(rows: &[Row], logical_cores: usize, limits: Limits) -> Vec<Recommendation> {
    let p = logical_cores.max(1) as u64;
    let mut out = Vec::new();
    for c in comparisons(rows).iter().filter(|c| c.has_native()) {
        let Some(fastest) = c.entries.first() else {
            continue;
        };
        let default_layer = if c.of(names::PTHREADS).is_some() {
            names::PTHREADS
        } else {
            match c.entries.iter().find(|e| names::is_openblas(&e.layer)) {
                Some(e) => e.layer.as_str(),
                None => continue,
            }
        };
        let default = rows.iter().find(|r| {
            r.suite == c.suite
                && r.workload == c.workload
                && r.name(parcost::id::key::LAYER) == Some(default_layer)
                && !r.params.contains_key(parcost::id::key::KERNEL)
                && r.int(parcost::id::key::BLAS_THREADS) == Some(p)
                && r.int(parcost::id::key::TASKS).is_none_or(|t| t == 1)
                && c.params.iter().all(|(k, v)| r.params.get(k) == Some(v))
        });
        let grid = grid_keys(&c.suite);
        let config = |r: &Row| -> Config {
            grid.iter()
                .chain(&[parcost::id::key::LAYER])
                .filter_map(|k| Some(((*k).to_owned(), r.params.get(*k)?.clone())))
                .collect()
        };
        out.push(recommend(
            Instance {
                suite: &c.suite,
                workload: c.workload.clone(),
                params: c.params.clone(),
            },
            &c.cells,
            fastest.best,
            default,
            None,
            &config,
            limits,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Verdict, library as verdict};

    fn row(id: &str, ms: f64, gflops: Option<f64>) -> Row {
        Row::for_test(id, ms, gflops)
    }

    fn over(layer: &str, t: u64, b: u64, ms: f64) -> Row {
        row(
            &format!(
                "oversubscription/matmul/layer={layer},n=256,pairs=64/tasks={t},blas_threads={b}"
            ),
            ms,
            Some(2.147 / ms * 1e3),
        )
    }

    fn level(layer: &str, n: u64, variant: &str, ms: f64) -> Row {
        let (t, b) = match variant {
            "op-level" => (1, 2),
            _ => (2, 1),
        };
        row(
            &format!(
                "task-level/matmul/layer={layer},n={n},pairs=8/variant={variant},tasks={t},blas_threads={b}"
            ),
            ms,
            Some(1.0 / ms),
        )
    }

    fn rows() -> Vec<Row> {
        let mut rows = vec![
            over("openmp", 2, 1, 20.0),
            over("openmp", 8, 2, 450.0),
            over("pthreads", 2, 1, 21.0),
            over("pthreads", 8, 2, 26.0),
            over("pthreads", 1, 2, 30.0),
            over("faer", 2, 1, 16.0),
            over("faer", 8, 2, 17.0),
            row(
                "blas-tuning/matmul/layer=faer,n=2048/blas_threads=2",
                100.0,
                Some(171.8),
            ),
            row(
                "blas-tuning/matmul/layer=pthreads,n=2048/blas_threads=2",
                110.0,
                Some(156.2),
            ),
        ];
        // faer slower at 32 and 64, level at 128, faster from 256.
        for (n, f) in [(32, 2.0), (64, 1.5), (128, 1.0), (256, 0.8), (512, 0.7)] {
            rows.push(level("openmp", n, "task-level", 10.0));
            rows.push(level("openmp", n, "op-level", 12.0));
            rows.push(level("faer", n, "task-level", 10.0 * f));
        }
        rows
    }

    #[test]
    fn the_best_of_each_layer_stands_side_by_side() {
        let rows = rows();
        let all = comparisons(&rows);
        let c = all
            .iter()
            .find(|c| c.suite == "oversubscription")
            .expect("the batch");
        let layers: Vec<&str> = c.entries.iter().map(|e| e.layer.as_str()).collect();
        assert_eq!(layers, ["faer", "openmp", "pthreads"], "fastest first");
        assert_eq!(c.entries[1].config(), "2 x 1");
        assert!(!c.params.contains_key("layer"));
    }

    #[test]
    fn naive_nesting_is_compared_with_openmp() {
        let f = findings(&rows(), 2, Limits::default());
        let naive = f
            .iter()
            .find(|f| f.title.starts_with("naive nesting"))
            .expect("a naive finding");
        assert!(naive.seen, "{}", naive.text);
        assert!((naive.ratio - 17.0 / 16.0).abs() < 1e-9);
        assert!(naive.text.starts_with("Naive nesting"), "{}", naive.text);
        assert!(
            naive.text.contains("under OpenBLAS openmp")
                && naive.text.contains("22.5x")
                && naive.text.contains("below OpenBLAS's"),
            "{}",
            naive.text
        );
    }

    #[test]
    fn a_naive_cell_run_once_is_named_without_an_interval() {
        let mut rows = rows();
        let openmp_naive = rows
            .iter_mut()
            .find(|r| r.name("layer") == Some("openmp") && r.int("tasks") == Some(8))
            .expect("the openmp naive cell");
        openmp_naive.single_run_ns = openmp_naive.time_ns.take().map(|t| t.estimate);
        let f = findings(&rows, 2, Limits::default());
        let naive = f
            .iter()
            .find(|f| f.title.starts_with("naive nesting"))
            .expect("a naive finding");
        assert!(
            naive.text.contains("under OpenBLAS pthreads")
                && naive.text.contains("OpenBLAS openmp 22.5x in its one run"),
            "compared with a sampled layer, the one run named: {}",
            naive.text
        );
    }

    #[test]
    fn the_size_from_which_faer_wins_is_where_it_keeps_winning() {
        let by_n = by_size(&rows(), "faer");
        assert_eq!(by_n.len(), 5);
        assert_eq!(lasting_side(&by_n), Some((256, 1)));
        let f = findings(&rows(), 2, Limits::default());
        let s = f
            .iter()
            .find(|f| f.title == "faer against OpenBLAS by size")
            .expect("a size finding");
        assert!(
            s.text
                .starts_with("faer was faster than OpenBLAS from n=256 on"),
            "{}",
            s.text
        );
        assert!(s.seen && (s.ratio - 1.25).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn the_peak_finding_names_the_batch_and_the_peak() {
        let rows = rows();
        let limits = crate::findings::limits(&rows, None);
        let f = findings(&rows, 2, limits);
        let peak = f
            .iter()
            .find(|f| f.title.contains("against the peak"))
            .expect("a peak finding");
        // 134.2 GFLOP/s of a 171.8 peak: 78%, below 90%.
        assert!(!peak.seen, "{}", peak.text);
        assert!(
            peak.text
                .starts_with("Not seen on this machine: the fastest batch")
        );
        assert!(
            peak.text.contains("(faer, 2 tasks x 1 thread)") && peak.text.contains("78%"),
            "{}",
            peak.text
        );
    }

    #[test]
    fn recommendations_and_the_verdict_name_the_library() {
        let rows = rows();
        let limits = crate::findings::limits(&rows, None);
        let recs = recommendations(&rows, 2, limits);
        let batch = recs
            .iter()
            .find(|r| r.suite == "oversubscription")
            .expect("a recommendation");
        assert!(batch.recommended());
        assert_eq!(batch.best["layer"], Value::Name("faer".into()));
        assert_eq!(batch.default["layer"], Value::Name("pthreads".into()));
        let mut v = Verdict::default();
        verdict(&rows, &recs, 2, &mut v);
        let line = &v.lines[0];
        assert!(line.text.starts_with("Library: faer."), "{}", line.text);
        assert!(
            line.text.contains("22.5x under OpenBLAS openmp"),
            "{}",
            line.text
        );
        assert!(v.settings[0].line.contains("Par::Seq"), "{:?}", v.settings);
    }

    #[test]
    fn across_layers_the_simplest_tied_cell_of_any_layer_is_named() {
        // OpenBLAS's 4 x 2 came out 1% ahead of its own 2 x 1 and faer's 2 x 1 is the fastest,
        // all three tied: the pick is OpenBLAS's 2 x 1 (the user's library, 2 threads), not
        // faer's because OpenBLAS's best cell happened to be the 4 x 2 (seen in a full run).
        let rows = vec![
            over("pthreads", 1, 2, 70.0),
            over("pthreads", 4, 2, 35.3),
            over("pthreads", 2, 1, 35.7),
            over("faer", 2, 1, 35.0),
        ];
        let recs = recommendations(&rows, 2, Limits::default());
        let batch = &recs[0];
        assert_eq!(batch.fastest["layer"], Value::Name("faer".into()));
        assert!(batch.recommended(), "{batch:?}");
        assert_eq!(
            batch.best["layer"],
            Value::Name("pthreads".into()),
            "{batch:?}"
        );
        assert_eq!(batch.best["tasks"], Value::Int(2), "{batch:?}");
    }
}
