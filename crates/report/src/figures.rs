//! What each figure and takeaway of the page shows, computed once from the rows: points with
//! their intervals, heatmap cells with their ratio to the panel's best, and every takeaway's
//! comparisons as [`Ratio`]s judged by [`Rule::REPORT`]. This is the analysis stage: the page
//! (the `html`, `markup` and `charts` modules) only phrases a [`Figures`], and nothing here
//! imports a renderer.

use std::collections::{BTreeMap, BTreeSet};

use parcost::id::layer as names;
use parcost::id::{key, variant};

use crate::facts::{Finding, MachineOut, Row, Throughput, per};
use crate::findings::{Crossover, display_kernel, human};
use crate::libraries::{by_size, comparisons, lasting_side, share};
use crate::model::{Ratio, Rule, Separation};
use crate::mpi;
use crate::results::{Estimate, Value};

/// A value with its interval (lower and upper equal the value when it ran once).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Point {
    fn at(x: f64, e: Estimate) -> Self {
        Self {
            x,
            y: e.estimate,
            lo: e.lower,
            hi: e.upper,
        }
    }
}

/// A named line (or bar series) of points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

/// One cell of a heatmap: its time and that time over the panel's best.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeatCell {
    pub time_ns: f64,
    /// The cell's time over the best of its panel (1 at the best).
    pub times_best: f64,
    /// The best cell of its panel.
    pub best: bool,
    /// A time from one run (no interval).
    pub single: bool,
}

/// One heatmap of a grid (a layer's): `cells[yi][xi]`, `None` where nothing was measured.
#[derive(Debug, Clone)]
pub struct HeatPanel {
    pub title: String,
    pub x: (String, Vec<u64>),
    pub y: (String, Vec<u64>),
    pub cells: Vec<Vec<Option<HeatCell>>>,
    /// CPU time over wall time and context switches of one run, in the same places.
    pub usage: Vec<Vec<Option<(f64, u64)>>>,
}

/// One cell measured against another: `ratio` is its time over the other's, and
/// `separation` what [`Rule::REPORT`] makes of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Versus {
    pub name: String,
    pub ratio: Ratio,
    pub separation: Separation,
}

/// The fastest and the slowest of a set of cells (by their estimates), each comparison by the
/// one rule: the fastest is only called so when it separates from the runner-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Extremes {
    pub fastest: String,
    pub time_ns: f64,
    /// The runner-up against the fastest (above 1: the fastest was faster).
    pub runner_up: Option<Versus>,
    /// The slowest against the fastest, when it is another cell.
    pub slowest: Option<Versus>,
}

impl Extremes {
    /// Whether the fastest was faster than every other cell beyond the intervals and the
    /// margin (a single cell leads trivially).
    pub fn leads(&self) -> bool {
        self.runner_up
            .as_ref()
            .is_none_or(|v| v.separation == Separation::Above)
    }
}

/// `slow` over `fast`: Criterion's intervals when both were sampled, else one run's estimate.
fn versus(name: String, slow: &Row, fast: &Row) -> Versus {
    let ratio = match (slow.time_ns, fast.time_ns) {
        (Some(s), Some(f)) => Ratio::of(&s, &f),
        _ => Ratio::once(
            slow.typical_ns().unwrap_or(f64::NAN),
            fast.typical_ns().unwrap_or(f64::NAN),
        ),
    };
    Versus {
        name,
        separation: ratio.separation(Rule::REPORT),
        ratio,
    }
}

/// The fastest, the runner-up and the slowest of `cells`, each named by `name`.
pub fn extremes(cells: &[&Row], name: impl Fn(&Row) -> String) -> Option<Extremes> {
    let mut timed: Vec<&Row> = cells
        .iter()
        .copied()
        .filter(|r| r.typical_ns().is_some())
        .collect();
    timed.sort_by(|a, b| {
        a.typical_ns()
            .unwrap_or(f64::MAX)
            .total_cmp(&b.typical_ns().unwrap_or(f64::MAX))
    });
    let fastest = *timed.first()?;
    Some(Extremes {
        fastest: name(fastest),
        time_ns: fastest.typical_ns()?,
        runner_up: timed.get(1).map(|r| versus(name(r), r, fastest)),
        slowest: timed
            .last()
            .filter(|r| r.full_id != fastest.full_id)
            .map(|r| versus(name(r), r, fastest)),
    })
}

/// One workload instance of a grid suite (oversubscription, ranks-x-threads): its takeaway's
/// facts and a heatmap a layer.
#[derive(Debug, Clone)]
pub struct GridFigure {
    pub workload: String,
    pub title: String,
    /// The fastest cell of every layer (oversubscription's takeaway).
    pub overall: Option<Extremes>,
    /// Each layer's fastest and slowest cell.
    pub layers: Vec<(String, Extremes)>,
    /// Layers that ran one configuration: the layer, the cell and its time.
    pub single: Vec<(String, String, f64)>,
    pub panels: Vec<HeatPanel>,
}

/// One operation of blas-tuning over BLAS thread counts, a panel a layer.
#[derive(Debug, Clone)]
pub struct ThreadSweep {
    pub title: String,
    /// Rates in GFLOP/s (else times in ms).
    pub gflops: bool,
    pub extremes: Option<Extremes>,
    /// The fastest's GFLOP/s, and as a share of the theoretical peak.
    pub rate: Option<Estimate>,
    pub share_of_theoretical: Option<f64>,
    /// Layers with one configuration: the layer and its point.
    pub single: Vec<(String, Point)>,
    /// One series a layer, named by it.
    pub panels: Vec<Series>,
}

/// One operation of the kernel sweep: GFLOP/s of each kernel, a series a thread count.
#[derive(Debug, Clone)]
pub struct KernelBars {
    pub title: String,
    pub kernels: Vec<String>,
    pub series: Vec<(String, Vec<Option<Point>>)>,
}

/// The work of one task-level size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    pub n: u64,
    pub products: u64,
    pub gflop: f64,
}

/// task-level under one layer: GFLOP/s of each way to run the batch, and where task-level
/// stops winning.
#[derive(Debug, Clone)]
pub struct LevelLayer {
    pub layer: String,
    pub series: Vec<Series>,
    /// Task-level's largest win over op-level, only when it separated: the size and the ratio.
    pub win: Option<(u64, Ratio)>,
    /// The size from which op-level is not slower.
    pub crossover: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskLevel {
    pub work: Vec<Work>,
    pub layers: Vec<LevelLayer>,
}

/// threads-vs-processes at W workers: the speedup over serial of each variant on each job.
#[derive(Debug, Clone)]
pub struct Speedups {
    pub workers: u64,
    /// The linear speedup: min(W, P).
    pub linear: u64,
    pub jobs: Vec<String>,
    pub series: Vec<(String, Vec<Option<Point>>)>,
}

/// array-sharing: GB/s of each way to share by array size, for one question.
#[derive(Debug, Clone)]
pub struct RateLines {
    pub title: String,
    pub series: Vec<Series>,
}

/// One layer's best configuration of a workload in the libraries' table.
#[derive(Debug, Clone)]
pub struct LibraryRow {
    /// `suite: workload`, on the first (fastest) row of a workload only.
    pub workload: Option<String>,
    pub layer: String,
    pub config: String,
    pub time: Estimate,
    pub gflops: Option<Estimate>,
    pub throughput: Option<Throughput>,
    /// GFLOP/s as a share of the best DGEMM measured.
    pub of_peak: Option<Estimate>,
    /// Its time over the fastest layer's (`None` on the fastest).
    pub vs_fastest: Option<Ratio>,
}

/// A native layer against OpenBLAS by size: the side that lasts to the largest size.
#[derive(Debug, Clone, PartialEq)]
pub enum Lasting {
    /// Faster (or slower) from `n` on, not at the smallest size.
    From { n: u64, faster: bool },
    /// Faster (or slower) at every size measured.
    Every { faster: bool },
    /// No side lasts.
    None,
}

#[derive(Debug, Clone)]
pub struct Libraries {
    pub findings: Vec<Finding>,
    /// GFLOP/s of each layer's best at each task-level size, a series a layer.
    pub chart: Vec<Series>,
    pub lasting: Vec<(String, Lasting)>,
    pub table: Vec<LibraryRow>,
}

/// scatter against batch in one cell.
#[derive(Debug, Clone)]
pub struct BatchScatter {
    pub layer: String,
    pub cell: String,
    pub batch_ns: f64,
    pub scatter_ns: f64,
    /// scatter over batch (one run's estimate when either was not sampled).
    pub ratio: Ratio,
}

/// The MPI jobs' start-up, one run a cell.
#[derive(Debug, Clone)]
pub struct Startup {
    pub min_ns: f64,
    pub max_ns: f64,
    pub median_ns: f64,
    /// The median over the fastest batch's time.
    pub iterations: Option<f64>,
    /// The cells (ranks, BLAS threads) and each layer's time in each.
    pub cells: Vec<(u64, u64)>,
    pub layers: Vec<(String, Vec<Option<f64>>)>,
}

/// A benchmark in this run and another.
#[derive(Debug, Clone)]
pub struct Shared {
    pub full_id: String,
    pub this_ns: f64,
    pub other_ns: f64,
    /// The other run's time over this one's.
    pub ratio: Ratio,
}

/// Every figure and takeaway of the page.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// The best DGEMM measured as a share of the theoretical peak.
    pub peak_share: Option<f64>,
    pub oversubscription: Vec<GridFigure>,
    pub blas_tuning: Vec<ThreadSweep>,
    pub kernels: Vec<KernelBars>,
    pub task_level: TaskLevel,
    pub threads_vs_processes: Vec<Speedups>,
    pub array_sharing: Vec<RateLines>,
    /// Nothing without a native layer.
    pub libraries: Option<Libraries>,
    pub mpi: Vec<GridFigure>,
    pub batch_scatter: Vec<BatchScatter>,
    pub startup: Option<Startup>,
    /// Filled by [`shared`] when another run is compared.
    pub shared: Vec<Shared>,
}

/// The figures of a run. `cross`: the crossovers the analysis computed; `library_findings`:
/// the libraries' findings, shown again in their own section.
pub fn figures(
    rows: &[Row],
    machine: &MachineOut,
    cross: &BTreeMap<String, Crossover>,
    library_findings: Vec<Finding>,
) -> Figures {
    let of = |suite: &str| -> Vec<&Row> { rows.iter().filter(|r| r.suite == suite).collect() };
    let limits = machine.limits;
    let p = machine.logical_cores.max(1) as u64;
    let mpi_rows = of(mpi::SUITE);
    Figures {
        peak_share: limits
            .dgemm_peak_gflops
            .zip(limits.theoretical_peak_gflops)
            .map(|(g, t)| g / t),
        oversubscription: oversubscription(&of(parcost::id::OVERSUBSCRIPTION.name)),
        blas_tuning: blas_tuning(
            &of(parcost::id::BLAS_TUNING.name),
            limits.theoretical_peak_gflops,
        ),
        kernels: kernels(&of(parcost::id::BLAS_TUNING.name)),
        task_level: task_level(&of(parcost::id::TASK_LEVEL.name), cross),
        threads_vs_processes: threads_vs_processes(&of(parcost::id::THREADS_VS_PROCESSES.name), p),
        array_sharing: array_sharing(&of(parcost::id::ARRAY_SHARING.name)),
        libraries: libraries(rows, machine, library_findings),
        mpi: mpi_grids(&mpi_rows),
        batch_scatter: batch_scatter(&mpi_rows),
        startup: startup(&mpi_rows),
        shared: Vec::new(),
    }
}

/// Rows grouped by the parameters that are not in `grid`, each group named in words.
fn instances<'a>(rows: &[&'a Row], grid: &[&str]) -> BTreeMap<String, Vec<&'a Row>> {
    let mut out: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        let params: BTreeMap<String, Value> = r
            .params
            .iter()
            .filter(|(k, _)| !grid.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.entry(human(&r.workload, &params)).or_default().push(r);
    }
    out
}

/// The distinct values of `k` among `rows`, ascending.
fn axis(rows: &[&Row], k: &str) -> Vec<u64> {
    rows.iter()
        .filter_map(|r| r.int(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn layers_of<'a>(rows: &[&'a Row]) -> Vec<&'a str> {
    rows.iter()
        .filter_map(|r| r.name(key::LAYER))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn of_layer<'a>(rows: &[&'a Row], layer: &str) -> Vec<&'a Row> {
    rows.iter()
        .copied()
        .filter(|r| r.name(key::LAYER) == Some(layer))
        .collect()
}

/// One layer's heatmap: the row `find(x, y)` gives in each cell, against the panel's best.
fn heat_panel<'r>(
    title: &str,
    x: (&str, Vec<u64>),
    y: (&str, Vec<u64>),
    find: impl Fn(u64, u64) -> Option<&'r Row>,
) -> HeatPanel {
    let rows: Vec<Vec<Option<&Row>>> =
        y.1.iter()
            .map(|&b| x.1.iter().map(|&t| find(t, b)).collect())
            .collect();
    let best = rows
        .iter()
        .flatten()
        .flatten()
        .filter_map(|r| r.typical_ns())
        .fold(f64::INFINITY, f64::min);
    let cells = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|r| {
                    let r = (*r)?;
                    let t = r.typical_ns()?;
                    Some(HeatCell {
                        time_ns: t,
                        times_best: t / best,
                        best: (t - best).abs() <= f64::EPSILON * best,
                        single: r.time_ns.is_none(),
                    })
                })
                .collect()
        })
        .collect();
    let usage = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|r| r.and_then(|r| Some((r.cpu_per_wall?, r.context_switches?))))
                .collect()
        })
        .collect();
    HeatPanel {
        title: title.to_owned(),
        x: (x.0.to_owned(), x.1),
        y: (y.0.to_owned(), y.1),
        cells,
        usage,
    }
}

/// `4 x 1`: a cell of the task x BLAS-thread grid.
fn cell_name(r: &Row) -> String {
    format!(
        "{} x {}",
        r.int(key::TASKS).unwrap_or(0),
        r.int(key::BLAS_THREADS).unwrap_or(0)
    )
}

fn oversubscription(rows: &[&Row]) -> Vec<GridFigure> {
    let mut out = Vec::new();
    for (title, cells) in instances(rows, &[key::TASKS, key::BLAS_THREADS, key::LAYER]) {
        let layers = layers_of(&cells);
        let overall = extremes(&cells, |r| {
            format!(
                "{} (tasks x BLAS threads) under {}",
                cell_name(r),
                r.name(key::LAYER).unwrap_or("?")
            )
        });
        let mut by_layer = Vec::new();
        let mut single = Vec::new();
        let mut panels = Vec::new();
        for &layer in &layers {
            let mine = of_layer(&cells, layer);
            if let Some(e) = extremes(&mine, cell_name) {
                by_layer.push((layer.to_owned(), e));
            }
            let (tasks, blas) = (axis(&mine, key::TASKS), axis(&mine, key::BLAS_THREADS));
            if tasks.len() * blas.len() <= 1 {
                // One configuration is a sentence, not a chart.
                if let Some(r) = mine.first() {
                    single.push((
                        layer.to_owned(),
                        cell_name(r),
                        r.typical_ns().unwrap_or(0.0),
                    ));
                }
                continue;
            }
            let find = |t: u64, b: u64| {
                mine.iter()
                    .copied()
                    .find(|r| r.int(key::TASKS) == Some(t) && r.int(key::BLAS_THREADS) == Some(b))
            };
            panels.push(heat_panel(
                layer,
                ("task threads", tasks),
                ("BLAS threads", blas),
                find,
            ));
        }
        out.push(GridFigure {
            workload: cells
                .first()
                .map(|r| r.workload.clone())
                .unwrap_or_default(),
            title,
            overall,
            layers: by_layer,
            single,
            panels,
        });
    }
    out
}

fn blas_tuning(rows: &[&Row], theoretical: Option<f64>) -> Vec<ThreadSweep> {
    let rows: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| !r.params.contains_key(key::KERNEL))
        .collect();
    let mut out = Vec::new();
    for (op, cells) in instances(&rows, &[key::BLAS_THREADS, key::LAYER]) {
        let gflops = cells
            .iter()
            .all(|r| r.throughput.as_ref().is_some_and(|t| t.unit == "GFLOP/s"));
        // GFLOP/s (the interval of a rate inverts the time's), else milliseconds.
        let value = |r: &Row| -> Option<Point> {
            let x = r.int(key::BLAS_THREADS)? as f64;
            let t = r.time_or_once()?;
            if gflops {
                let work = r.throughput.as_ref()?.estimate * r.typical_ns()?;
                Some(Point::at(x, per(work, t)))
            } else {
                Some(Point {
                    x,
                    y: t.estimate * 1e-6,
                    lo: t.lower * 1e-6,
                    hi: t.upper * 1e-6,
                })
            }
        };
        let extremes = extremes(&cells, |r| {
            format!(
                "{} under {}",
                crate::facts::count(r.int(key::BLAS_THREADS).unwrap_or(0), "BLAS thread"),
                r.name(key::LAYER).unwrap_or("?")
            )
        });
        let fastest = cells
            .iter()
            .copied()
            .filter(|r| r.typical_ns().is_some())
            .min_by(|a, b| {
                a.typical_ns()
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.typical_ns().unwrap_or(f64::MAX))
            });
        let rate = fastest
            .filter(|_| gflops)
            .and_then(value)
            .map(|p| Estimate {
                estimate: p.y,
                lower: p.lo,
                upper: p.hi,
                rounds: Default::default(),
                pooled: None,
            });
        let mut single = Vec::new();
        let mut panels = Vec::new();
        for layer in layers_of(&cells) {
            let mut points: Vec<Point> = of_layer(&cells, layer)
                .into_iter()
                .filter_map(value)
                .collect();
            if points.len() <= 1 {
                if let Some(p) = points.first() {
                    single.push((layer.to_owned(), *p));
                }
                continue;
            }
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            panels.push(Series {
                name: layer.to_owned(),
                points,
            });
        }
        out.push(ThreadSweep {
            title: op,
            gflops,
            extremes,
            share_of_theoretical: rate.zip(theoretical).map(|(r, t)| r.estimate / t),
            rate,
            single,
            panels,
        });
    }
    out
}

fn kernels(rows: &[&Row]) -> Vec<KernelBars> {
    let sweep: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.params.contains_key(key::KERNEL))
        .collect();
    let mut out = Vec::new();
    for (op, cells) in instances(&sweep, &[key::KERNEL, key::BLAS_THREADS, key::LAYER]) {
        let mut kernels: Vec<&str> = cells.iter().filter_map(|r| r.name(key::KERNEL)).collect();
        kernels.sort_by_key(|k| {
            parcost::kernel::X86_64_KERNELS
                .iter()
                .position(|s| parcost::kernel::same(s.name, k))
                .unwrap_or(usize::MAX)
        });
        kernels.dedup();
        let series = axis(&cells, key::BLAS_THREADS)
            .into_iter()
            .map(|b| {
                let points = kernels
                    .iter()
                    .map(|k| {
                        cells
                            .iter()
                            .find(|r| {
                                r.name(key::KERNEL) == Some(k)
                                    && r.int(key::BLAS_THREADS) == Some(b)
                            })?
                            .gflops()
                            .map(|g| Point::at(0.0, g))
                    })
                    .collect();
                (crate::facts::count(b, "BLAS thread"), points)
            })
            .collect();
        out.push(KernelBars {
            title: op,
            kernels: kernels.iter().map(|k| display_kernel(k)).collect(),
            series,
        });
    }
    out
}

fn task_level(rows: &[&Row], cross: &BTreeMap<String, Crossover>) -> TaskLevel {
    // The work of each size, from the ids: 2 n^3 FLOP a product.
    let flop = |n: u64, k: u64| 2.0 * (n as f64).powi(3) * k as f64;
    let work = rows
        .iter()
        .filter_map(|r| Some((r.int(key::N)?, r.int(key::PAIRS)?)))
        .collect::<BTreeMap<u64, u64>>()
        .into_iter()
        .map(|(n, k)| Work {
            n,
            products: k,
            gflop: flop(n, k) / 1e9,
        })
        .collect();
    let mut layers = Vec::new();
    for layer in layers_of(rows) {
        let mut series = Vec::new();
        for variant in [
            variant::SERIAL,
            variant::OP_LEVEL,
            variant::TASK_LEVEL,
            variant::NAIVE,
        ] {
            let mut points: Vec<Point> = rows
                .iter()
                .filter(|r| {
                    r.name(key::LAYER) == Some(layer) && r.name(key::VARIANT) == Some(variant)
                })
                .filter_map(|r| {
                    // GFLOP/s of the batch: its interval inverts the time's.
                    let n = r.int(key::N)?;
                    let rate = per(flop(n, r.int(key::PAIRS)?), r.time_or_once()?);
                    Some(Point::at(n as f64, rate))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            series.push(Series {
                name: variant.to_owned(),
                points,
            });
        }
        let c = cross.get(layer);
        layers.push(LevelLayer {
            layer: layer.to_owned(),
            series,
            win: c.filter(|c| c.won()).and_then(|c| c.best_win),
            crossover: c.and_then(|c| c.crossover),
        });
    }
    TaskLevel { work, layers }
}

fn threads_vs_processes(rows: &[&Row], p: u64) -> Vec<Speedups> {
    let jobs: Vec<String> = rows
        .iter()
        .map(|r| r.workload.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let workers: BTreeSet<u64> = rows
        .iter()
        .filter(|r| r.name(key::VARIANT) != Some("serial"))
        .filter_map(|r| r.int(key::WORKERS))
        .collect();
    let mut out = Vec::new();
    for w in workers {
        let series = ["rayon", "scope", "process-pipe", "process-shared"]
            .into_iter()
            .map(|variant| {
                let points = jobs
                    .iter()
                    .map(|job| {
                        let serial = rows
                            .iter()
                            .find(|r| &r.workload == job && r.name(key::VARIANT) == Some("serial"))?
                            .time_ns?;
                        let t = rows
                            .iter()
                            .find(|r| {
                                &r.workload == job
                                    && r.name(key::VARIANT) == Some(variant)
                                    && r.int(key::WORKERS) == Some(w)
                            })?
                            .time_ns?;
                        // The speedup over serial: serial's time over this one's.
                        let s = Ratio::of(&serial, &t).as_estimate()?;
                        Some(Point::at(0.0, s))
                    })
                    .collect();
                (variant.to_owned(), points)
            })
            .collect();
        out.push(Speedups {
            workers: w,
            linear: w.min(p),
            jobs: jobs.clone(),
            series,
        });
    }
    out
}

fn array_sharing(rows: &[&Row]) -> Vec<RateLines> {
    let mut out = Vec::new();
    for (question, title) in [
        (
            "send",
            "sending an array the worker has not seen (end to end)",
        ),
        (
            "read-shared",
            "reading an array that already lives in shared memory",
        ),
    ] {
        let mut by_case: BTreeMap<String, Vec<Point>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.workload == question) {
            let mut name = r.name(key::TRANSPORT).unwrap_or("?").to_owned();
            if let Some(v) = r.name(key::VARIANT) {
                name.push_str(&format!(" ({v})"));
            }
            if r.name(key::POOL) == Some("spawn") {
                name.push_str(" (a process each)");
            }
            // GB/s (bytes a nanosecond) by size in MiB: the rate's interval inverts the time's.
            let point = r
                .int(key::BYTES)
                .zip(r.time_or_once())
                .map(|(b, t)| Point::at(b as f64 / (1u64 << 20) as f64, per(b as f64, t)));
            if let Some(p) = point {
                by_case.entry(name).or_default().push(p);
            }
        }
        if by_case.is_empty() {
            continue;
        }
        out.push(RateLines {
            title: title.to_owned(),
            series: by_case
                .into_iter()
                .map(|(name, mut points)| {
                    points.sort_by(|a, b| a.x.total_cmp(&b.x));
                    Series { name, points }
                })
                .collect(),
        });
    }
    out
}

fn libraries(rows: &[Row], machine: &MachineOut, findings: Vec<Finding>) -> Option<Libraries> {
    let all = comparisons(rows);
    if !all.iter().any(|c| c.has_native()) {
        return None;
    }
    let peak = machine.limits.dgemm_peak;
    let mut table = Vec::new();
    for c in &all {
        let fastest = c.entries[0].time();
        for (i, e) in c.entries.iter().enumerate() {
            let gflops = e.best.gflops();
            table.push(LibraryRow {
                workload: (i == 0).then(|| format!("{}: {}", c.suite, c.title())),
                layer: names::describe(&e.layer),
                config: e.config(),
                time: e.time(),
                gflops,
                throughput: e.best.throughput.clone(),
                of_peak: gflops.zip(peak).map(|(g, peak)| share(g, peak)),
                vs_fastest: (i > 0).then(|| Ratio::of(&e.time(), &fastest)),
            });
        }
    }
    let mut by_layer: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for c in all
        .iter()
        .filter(|c| c.suite == parcost::id::TASK_LEVEL.name)
    {
        let Some(n) = c.params.get(key::N).and_then(Value::int) else {
            continue;
        };
        for e in &c.entries {
            if let Some(g) = e.best.gflops() {
                by_layer
                    .entry(e.layer.clone())
                    .or_default()
                    .push(Point::at(n as f64, g));
            }
        }
    }
    let chart = by_layer
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            Series { name, points }
        })
        .collect();
    let lasting = names::NATIVE
        .iter()
        .filter_map(|layer| {
            let by_n = by_size(rows, layer);
            let side = match lasting_side(&by_n) {
                Some((from, s)) if by_n.first().is_some_and(|(n, _)| *n != from) => Lasting::From {
                    n: from,
                    faster: s > 0,
                },
                Some((_, s)) => Lasting::Every { faster: s > 0 },
                None if !by_n.is_empty() => Lasting::None,
                None => return None,
            };
            Some(((*layer).to_owned(), side))
        })
        .collect();
    Some(Libraries {
        findings,
        chart,
        lasting,
        table,
    })
}

fn mpi_grids(rows: &[&Row]) -> Vec<GridFigure> {
    let mut out = Vec::new();
    for workload in ["batch", "scatter"] {
        // One figure a workload instance, a panel a layer.
        for ((_, params), cells) in
            mpi::instances_but(rows, workload, &[key::RANKS, key::BLAS_THREADS, key::LAYER])
        {
            let mut layers = Vec::new();
            let mut panels = Vec::new();
            for layer in layers_of(&cells) {
                let mine = of_layer(&cells, layer);
                if let Some(e) = extremes(&mine, mpi::cell) {
                    layers.push((layer.to_owned(), e));
                }
                panels.push(heat_panel(
                    layer,
                    ("MPI ranks", axis(&mine, key::RANKS)),
                    ("BLAS threads a rank", axis(&mine, key::BLAS_THREADS)),
                    |r, b| mpi::at(&mine, r, b),
                ));
            }
            out.push(GridFigure {
                workload: workload.to_owned(),
                title: format!("{workload}: {}", mpi::batch_words(&params)),
                overall: None,
                layers,
                single: Vec::new(),
                panels,
            });
        }
    }
    out
}

/// scatter over batch in every cell both measured.
fn batch_scatter(rows: &[&Row]) -> Vec<BatchScatter> {
    let scatter = mpi::instances(rows, "scatter");
    let mut out = Vec::new();
    for ((_, params), cells) in mpi::instances(rows, "batch") {
        let Some(theirs) = scatter.get(&("scatter".to_owned(), params.clone())) else {
            continue;
        };
        let layer = params
            .get(key::LAYER)
            .map(ToString::to_string)
            .unwrap_or_default();
        let mut cells = cells.clone();
        cells.sort_by_key(|r| (r.int(key::RANKS), r.int(key::BLAS_THREADS)));
        for b in cells {
            let Some(s) = mpi::same_cell(theirs, b) else {
                continue;
            };
            let (Some(batch_ns), Some(scatter_ns)) = (b.typical_ns(), s.typical_ns()) else {
                continue;
            };
            out.push(BatchScatter {
                layer: layer.clone(),
                cell: mpi::cell(b),
                batch_ns,
                scatter_ns,
                ratio: versus(String::new(), s, b).ratio,
            });
        }
    }
    out
}

fn startup(rows: &[&Row]) -> Option<Startup> {
    let starts: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.workload == "startup" && r.typical_ns().is_some())
        .collect();
    let mut times: Vec<f64> = starts.iter().filter_map(|r| r.typical_ns()).collect();
    times.sort_by(f64::total_cmp);
    let median_ns = *times.get(times.len() / 2)?;
    let best_batch = rows
        .iter()
        .filter(|r| r.workload == "batch")
        .filter_map(|r| r.typical_ns())
        .min_by(f64::total_cmp);
    let cells: Vec<(u64, u64)> = starts
        .iter()
        .filter_map(|r| Some((r.int(key::RANKS)?, r.int(key::BLAS_THREADS)?)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let layers = layers_of(&starts)
        .into_iter()
        .map(|layer| {
            let times = cells
                .iter()
                .map(|&(r, b)| {
                    starts
                        .iter()
                        .find(|x| {
                            x.name(key::LAYER) == Some(layer)
                                && x.int(key::RANKS) == Some(r)
                                && x.int(key::BLAS_THREADS) == Some(b)
                        })
                        .and_then(|x| x.typical_ns())
                })
                .collect();
            (layer.to_owned(), times)
        })
        .collect();
    Some(Startup {
        min_ns: times[0],
        max_ns: times[times.len() - 1],
        median_ns,
        iterations: best_batch.map(|b| median_ns / b),
        cells,
        layers,
    })
}

/// The benchmarks of this run that `other` ran too, each the other's time over this one's.
pub fn shared(this: &[Row], other: &[Row]) -> Vec<Shared> {
    let others: BTreeMap<&str, &Row> = other.iter().map(|r| (r.full_id.as_str(), r)).collect();
    this.iter()
        .filter_map(|r| {
            let o = others.get(r.full_id.as_str())?;
            Some(Shared {
                full_id: r.full_id.clone(),
                this_ns: r.typical_ns()?,
                other_ns: o.typical_ns()?,
                ratio: versus(String::new(), o, r).ratio,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, ms: f64) -> Row {
        Row::for_test(id, ms, None)
    }

    fn over(layer: &str, t: u64, b: u64, ms: f64) -> Row {
        row(
            &format!(
                "oversubscription/matmul/layer={layer},n=256,pairs=64/tasks={t},blas_threads={b}"
            ),
            ms,
        )
    }

    #[test]
    fn a_lead_inside_the_intervals_is_not_a_lead() {
        // 2 x 1 and 4 x 1 within 1% of each other (each interval 2% wide): the fastest by its
        // estimate does not lead, while the slowest is far beyond the intervals.
        let rows = [
            over("openmp", 2, 1, 100.0),
            over("openmp", 4, 1, 101.0),
            over("openmp", 8, 2, 900.0),
        ];
        let figs = figures(&rows, &MachineOut::default(), &BTreeMap::new(), Vec::new());
        let g = &figs.oversubscription[0];
        let e = g.overall.as_ref().expect("a fastest cell");
        assert_eq!(e.fastest, "2 x 1 (tasks x BLAS threads) under openmp");
        assert!(!e.leads(), "{e:?}");
        let next = e.runner_up.as_ref().expect("a runner-up");
        assert!(!next.separation.separated(), "{next:?}");
        assert!((next.ratio.estimate - 1.01).abs() < 1e-9);
        let (layer, e) = &g.layers[0];
        assert_eq!(layer, "openmp");
        let slow = e.slowest.as_ref().expect("a slowest cell");
        assert_eq!(slow.name, "8 x 2");
        assert_eq!(slow.separation, Separation::Above);
        assert!((slow.ratio.estimate - 9.0).abs() < 1e-9);
        // The heatmap's cells carry their ratio to the best, computed here.
        let cells: Vec<HeatCell> = g.panels[0]
            .cells
            .iter()
            .flatten()
            .flatten()
            .copied()
            .collect();
        assert!(cells.iter().any(|c| c.best && c.times_best == 1.0));
        assert!(cells.iter().any(|c| (c.times_best - 9.0).abs() < 1e-9));
    }

    #[test]
    fn a_separated_lead_and_a_one_run_slowest_are_told_apart() {
        let mut slow = row(
            "blas-tuning/svd/layer=openmp,n=768,matrices=4/blas_threads=5",
            450.0,
        );
        slow.single_run_ns = slow.time_ns.take().map(|t| t.estimate);
        let rows = [
            row(
                "blas-tuning/svd/layer=pthreads,n=768,matrices=4/blas_threads=2",
                100.0,
            ),
            row(
                "blas-tuning/svd/layer=pthreads,n=768,matrices=4/blas_threads=1",
                180.0,
            ),
            slow,
        ];
        let figs = figures(&rows, &MachineOut::default(), &BTreeMap::new(), Vec::new());
        let s = &figs.blas_tuning[0];
        assert!(!s.gflops);
        let e = s.extremes.as_ref().expect("extremes");
        assert_eq!(e.fastest, "2 BLAS threads under pthreads");
        assert!(e.leads(), "1.8x beyond 2% intervals: {e:?}");
        // The slowest ran once: its ratio has no interval and decides nothing.
        let w = e.slowest.as_ref().expect("a slowest");
        assert_eq!(w.separation, Separation::Unknown);
        assert!(w.ratio.interval().is_none() && (w.ratio.estimate - 4.5).abs() < 1e-9);
        // Times in ms, with Criterion's interval.
        let p = &s.panels[0].points;
        assert_eq!(p.len(), 2);
        assert!((p[1].y - 100.0).abs() < 1e-9 && p[1].lo < p[1].y && p[1].hi > p[1].y);
    }

    #[test]
    fn speedups_and_rates_carry_inverted_intervals() {
        let rows = [
            row(
                "threads-vs-processes/elementwise/variant=serial,workers=1",
                200.0,
            ),
            row(
                "threads-vs-processes/elementwise/variant=rayon,workers=2",
                100.0,
            ),
            row("array-sharing/send/transport=pipe,bytes=1048576", 1.048576),
        ];
        let figs = figures(&rows, &MachineOut::default(), &BTreeMap::new(), Vec::new());
        let s = &figs.threads_vs_processes[0];
        let rayon = s.series[0].1[0].expect("rayon's speedup");
        assert!((rayon.y - 2.0).abs() < 1e-9);
        // The interval of the speedup is the paired ratio's, between rounds.
        let t = |i: usize| rows[i].time_ns.expect("timed");
        let r = crate::model::Ratio::of(&t(0), &t(1));
        assert!(r.between_rounds());
        assert!(
            Some(rayon.lo) == r.lower && Some(rayon.hi) == r.upper,
            "{rayon:?} {r:?}"
        );
        assert!(rayon.lo < 2.0 && rayon.hi > 2.0);
        let pipe = figs.array_sharing[0].series[0].points[0];
        assert!((pipe.x - 1.0).abs() < 1e-12 && (pipe.y - 1.0).abs() < 1e-9);
        assert!(pipe.lo < 1.0 && pipe.hi > 1.0);
    }
}
