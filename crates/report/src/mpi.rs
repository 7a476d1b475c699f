//! The ranks-x-threads suite (cost 1 across MPI): R ranks x B BLAS threads per rank. Its
//! findings (the naive hybrid against the best cell, by the oversubscription rule; `scatter`
//! against `batch`: what moving the arrays cost), its recommendation per workload, its verdict
//! line, and its section of the page: an R x B heatmap per layer with CPU/wall and context
//! switches, batch against scatter, and the jobs' start-up.

use std::collections::BTreeMap;

use parcost::id::{key, variant, workload};

use crate::facts::{Finding, Limits, Recommendation, Row};
use crate::findings::{
    Config, Instance, best_sampled, ratio, recommend, slower, top3, worst_sampled,
};
use crate::results::Value;

pub const SUITE: &str = parcost::id::RANKS_X_THREADS.name;

/// The grid's own keys; the rest of the parameters name a workload instance.
const GRID: [&str; 2] = [key::RANKS, key::BLAS_THREADS];

/// The grid's keys and `variant` (the default cell's): what tells the cells of an instance apart.
pub(crate) const GRID_AND_VARIANT: [&str; 3] = [key::RANKS, key::BLAS_THREADS, key::VARIANT];

/// `R x B`.
pub(crate) fn cell(r: &Row) -> String {
    format!(
        "{} x {}",
        r.int(parcost::id::key::RANKS).unwrap_or(0),
        r.int(parcost::id::key::BLAS_THREADS).unwrap_or(0)
    )
}

/// `4 ranks x 2 BLAS threads`.
pub(crate) fn cell_words(r: &Row) -> String {
    let (ranks, b) = (
        r.int(parcost::id::key::RANKS).unwrap_or(0),
        r.int(parcost::id::key::BLAS_THREADS).unwrap_or(0),
    );
    format!(
        "{} x {}",
        crate::facts::count(ranks, "rank"),
        crate::facts::count(b, "BLAS thread")
    )
}

/// A time in seconds from 1 s up, else in ms.
fn seconds(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.1} s", ns / 1e9)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

/// The batch in words: `64 products and 16 SVDs of 256^2`.
pub(crate) fn batch_words(params: &BTreeMap<String, Value>) -> String {
    let int = |k: &str| params.get(k).and_then(Value::int).unwrap_or(0);
    format!(
        "{} products and {} SVDs of {}^2",
        int(parcost::id::key::PAIRS),
        int(parcost::id::key::MATRICES),
        int(parcost::id::key::N)
    )
}

/// Megabytes that `scatter` moves an iteration: the inputs out, the results back.
pub(crate) fn moved_mib(params: &BTreeMap<String, Value>) -> (f64, f64) {
    let int = |k: &str| params.get(k).and_then(Value::int).unwrap_or(0) as f64;
    let (n, pairs, matrices) = (
        int(parcost::id::key::N),
        int(parcost::id::key::PAIRS),
        int(parcost::id::key::MATRICES),
    );
    let mib = (1u64 << 20) as f64;
    (
        (2.0 * pairs + matrices) * n * n * 8.0 / mib,
        (pairs * n * n + matrices * n) * 8.0 / mib,
    )
}

/// A workload instance: its workload and every parameter but the grid's.
type Key = (String, BTreeMap<String, Value>);

/// The suite's rows of `workload` (`batch`, `scatter`, `startup`), by instance.
pub(crate) fn instances<'a>(rows: &[&'a Row], workload: &str) -> BTreeMap<Key, Vec<&'a Row>> {
    instances_but(rows, workload, &GRID)
}

/// The same, instances told apart by every parameter but `grid`'s.
pub(crate) fn instances_but<'a>(
    rows: &[&'a Row],
    workload: &str,
    grid: &[&str],
) -> BTreeMap<Key, Vec<&'a Row>> {
    let mut out: BTreeMap<Key, Vec<&Row>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.suite == SUITE && r.workload == workload)
    {
        let params = r
            .params
            .iter()
            .filter(|(k, _)| !grid.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.entry((r.workload.clone(), params)).or_default().push(r);
    }
    out
}

pub(crate) fn all_rows(rows: &[Row]) -> Vec<&Row> {
    rows.iter().filter(|r| r.suite == SUITE).collect()
}

/// The cell of `rows` at `ranks` x `blas`.
pub(crate) fn at<'a>(rows: &[&'a Row], ranks: u64, blas: u64) -> Option<&'a Row> {
    rows.iter().copied().find(|r| {
        r.int(parcost::id::key::RANKS) == Some(ranks)
            && r.int(parcost::id::key::BLAS_THREADS) == Some(blas)
    })
}

/// The cell of `rows` with the ranks and BLAS threads of `cell` (the same cell of the other
/// workload).
pub(crate) fn same_cell<'a>(rows: &[&'a Row], cell: &Row) -> Option<&'a Row> {
    at(
        rows,
        cell.int(parcost::id::key::RANKS)?,
        cell.int(parcost::id::key::BLAS_THREADS)?,
    )
}

/// The naive hybrid, as cost 1's naive nesting: the most ranks, each at P BLAS threads (what
/// `mpirun -np R` gives with `OPENBLAS_NUM_THREADS` unset), sampled or not.
pub(crate) fn naive<'a>(cells: &[&'a Row], p: u64) -> Option<&'a Row> {
    cells
        .iter()
        .copied()
        .filter(|r| r.int(parcost::id::key::BLAS_THREADS) == Some(p))
        .max_by_key(|r| r.int(parcost::id::key::RANKS))
}

/// The default: exactly what a user runs when they set nothing, `mpirun -np P` with OpenMPI's
/// own binding and OPENBLAS_NUM_THREADS unset (`variant=default`), measured beside the grid.
pub(crate) fn default_cell<'a>(cells: &[&'a Row]) -> Option<&'a Row> {
    cells
        .iter()
        .copied()
        .find(|r| r.name(key::VARIANT) == Some(variant::DEFAULT))
}

/// The grid's cells: every cell but the default.
pub(crate) fn grid_cells<'a>(cells: &[&'a Row]) -> Vec<&'a Row> {
    cells
        .iter()
        .copied()
        .filter(|r| r.name(key::VARIANT).is_none())
        .collect()
}

/// What the first finding compares with the best, by cost 1's rule: the naive cell when
/// Criterion sampled it, else the slowest cell it sampled (`false`: not the naive one).
fn slow_cell<'a>(cells: &[&'a Row], p: u64) -> Option<(&'a Row, bool)> {
    match naive(cells, p).filter(|r| r.time_ns.is_some()) {
        Some(n) => Some((n, true)),
        None => worst_sampled(cells).map(|w| (w, false)),
    }
}

/// The suite's findings: the naive hybrid against the best cell (at most 3, largest first), and
/// `scatter` against `batch` at the best batch cell with more than one rank.
pub fn findings(rows: &[Row], logical_cores: usize) -> Vec<Finding> {
    let p = logical_cores.max(1) as u64;
    let rows = all_rows(rows);
    let mut out = Vec::new();
    let mut hybrid = Vec::new();
    for workload in ["batch", "scatter"] {
        for ((w, params), cells) in instances(&rows, workload) {
            let (Some(best), Some((slow, is_naive))) = (best_sampled(&cells), slow_cell(&cells, p))
            else {
                continue;
            };
            let (Some(bt), Some(nt)) = (best.time_ns, slow.time_ns) else {
                continue;
            };
            if best.full_id == slow.full_id {
                continue;
            }
            let product = slow.int(parcost::id::key::RANKS).unwrap_or(0)
                * slow.int(parcost::id::key::BLAS_THREADS).unwrap_or(0);
            let k = if product == p {
                "P".to_owned()
            } else if product % p == 0 {
                format!("{}P", product / p)
            } else {
                product.to_string()
            };
            let (title, slow_desc) = if is_naive {
                (
                    "naive hybrid",
                    format!("{} (R x B = {k})", cell_words(slow)),
                )
            } else {
                let ran_once = naive(&cells, p)
                    .and_then(|n| {
                        Some(format!(
                            "; the naive {} ran once, {}",
                            cell(n),
                            seconds(n.typical_ns()?)
                        ))
                    })
                    .unwrap_or_default();
                (
                    "slowest cell",
                    format!(
                        "{} (R x B = {k}: the slowest cell Criterion sampled{ran_once})",
                        cell_words(slow)
                    ),
                )
            };
            hybrid.push(slower(
                SUITE,
                title.into(),
                &slow_desc,
                &format!("the best, {}", cell_words(best)),
                ratio(&nt, &bt),
                &format!(
                    " ({w}: {}, {})",
                    batch_words(&params),
                    params
                        .get(parcost::id::key::LAYER)
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ),
            ));
        }
    }
    out.extend(top3(hybrid));

    let mut moving = Vec::new();
    let scatter = instances(&rows, "scatter");
    for ((_, params), cells) in instances(&rows, "batch") {
        let Some(theirs) = scatter.get(&("scatter".to_owned(), params.clone())) else {
            continue;
        };
        let several: Vec<&Row> = cells
            .iter()
            .copied()
            .filter(|r| r.int(parcost::id::key::RANKS).is_some_and(|n| n > 1))
            .filter(|r| same_cell(theirs, r).is_some_and(|s| s.time_ns.is_some()))
            .collect();
        let Some(b) = best_sampled(&several) else {
            continue;
        };
        let Some(s) = same_cell(theirs, b) else {
            continue;
        };
        let (Some(st), Some(bt)) = (s.time_ns, b.time_ns) else {
            continue;
        };
        let (inputs, results) = moved_mib(&params);
        moving.push(slower(
            SUITE,
            "moving the arrays".into(),
            &format!(
                "scatter (rank 0 scatters the inputs, {inputs:.0} MiB, and gathers the results, \
                 {results:.0} MiB)"
            ),
            "batch (every rank makes its own inputs)",
            ratio(&st, &bt),
            &format!(
                " at {}, the best batch cell with more than one rank ({})",
                cell_words(b),
                params
                    .get(parcost::id::key::LAYER)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
        ));
    }
    out.extend(top3(moving));
    out
}

/// What to run each workload with: the fastest grid cell when it beat the default cell
/// (`mpirun -np P` as a user runs it) by the one rule, else the default.
pub fn recommendations(rows: &[Row], logical_cores: usize, limits: Limits) -> Vec<Recommendation> {
    let p = logical_cores.max(1) as u64;
    let rows = all_rows(rows);
    let mut out = Vec::new();
    for workload in [workload::BATCH, workload::SCATTER] {
        for ((workload, params), all) in instances_but(&rows, workload, &GRID_AND_VARIANT) {
            let cells = grid_cells(&all);
            let Some(fastest) = best_sampled(&cells) else {
                continue;
            };
            let config = |r: &Row| -> Config {
                GRID_AND_VARIANT
                    .iter()
                    .filter_map(|k| Some(((*k).to_owned(), r.params.get(*k)?.clone())))
                    .collect()
            };
            out.push(recommend(
                Instance {
                    suite: SUITE,
                    workload,
                    params,
                },
                &all,
                fastest,
                default_cell(&all),
                naive(&cells, p),
                &config,
                limits,
            ));
        }
    }
    out
}

/// `Option<f64>` ordering with `None` last.
pub(crate) trait CmpOpt {
    fn total_cmp_opt(self, other: Self) -> std::cmp::Ordering;
}

impl CmpOpt for Option<f64> {
    fn total_cmp_opt(self, other: Self) -> std::cmp::Ordering {
        self.unwrap_or(f64::MAX)
            .total_cmp(&other.unwrap_or(f64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::MachineOut;
    use crate::html::mpi::section;
    use crate::results::Estimate;
    use crate::verdict::{Verdict, mpi as verdict};

    /// A row of the suite: `workload` at `ranks` x `b` under `layer`, `ms` long.
    fn row(workload: &str, layer: &str, ranks: u64, b: u64, ms: f64) -> Row {
        let id = format!(
            "{SUITE}/{workload}/layer={layer},n=256,pairs=64,matrices=16/ranks={ranks},blas_threads={b}"
        );
        let (suite, workload, params) = crate::results::parse_id(&id).expect("valid id");
        Row {
            suite,
            workload,
            params,
            full_id: id,
            time_ns: Some(Estimate::in_rounds(
                ms * 1e6,
                ms * 0.03e6,
                (ranks * 3 + b) as usize,
            )),
            single_run_ns: None,
            at_least_ns: None,
            throughput: None,
            cpu_per_wall: Some(1.9),
            context_switches: Some(100),
            busy_threads: None,
            ranks_seen: Vec::new(),
        }
    }

    fn grid(layer: &str) -> Vec<Row> {
        let mut rows = Vec::new();
        for (r, b, batch, scatter) in [
            (1, 1, 250.0, 255.0),
            (1, 2, 140.0, 150.0),
            (1, 4, 400.0, 420.0),
            (2, 1, 130.0, 160.0),
            (2, 2, 600.0, 650.0),
            (2, 4, 900.0, 950.0),
            (4, 1, 135.0, 180.0),
            (4, 2, 2600.0, 2700.0),
        ] {
            rows.push(row("batch", layer, r, b, batch));
            rows.push(row("scatter", layer, r, b, scatter));
        }
        rows
    }

    #[test]
    fn the_naive_hybrid_and_moving_the_arrays_are_found_by_the_cost_1_rule() {
        let rows = grid("openmp");
        let f = findings(&rows, 2);
        let naive: Vec<&Finding> = f.iter().filter(|f| f.title == "naive hybrid").collect();
        assert_eq!(naive.len(), 2, "{f:?}");
        assert!(naive[0].seen);
        assert!(
            naive[0].text.starts_with(
                "4 ranks x 2 BLAS threads (R x B = 4P) was 20.0x (19.0 to 21.1, 3 rounds) slower than the best, 2 ranks x 1 BLAS thread"
            ),
            "{}",
            naive[0].text
        );
        let moving = f
            .iter()
            .find(|f| f.title == "moving the arrays")
            .expect("scatter against batch");
        assert!(moving.seen, "{}", moving.text);
        assert!(
            moving.text.contains("160 MiB") || moving.text.contains("72 MiB"),
            "{}",
            moving.text
        );
        assert!(
            moving.text.contains("at 2 ranks x 1 BLAS thread"),
            "{}",
            moving.text
        );
    }

    /// The default cell of `layer`'s batch: `mpirun -np 2` as a user runs it, `ms` long.
    fn default_row(workload: &str, layer: &str, ms: f64) -> Row {
        let mut r = row(workload, layer, 2, 2, ms);
        r.params.remove(key::BLAS_THREADS);
        r.params
            .insert(key::VARIANT.into(), Value::Name(variant::DEFAULT.into()));
        r.full_id = format!(
            "{SUITE}/{workload}/layer={layer},n=256,pairs=64,matrices=16/variant=default,ranks=2"
        );
        r
    }

    fn machine(physical: usize) -> MachineOut {
        MachineOut {
            logical_cores: 2,
            physical_cores: physical,
            ..MachineOut::default()
        }
    }

    #[test]
    fn the_recommendation_beats_the_default_cell_or_is_the_default() {
        let mut rows = grid("pthreads");
        // 1 x 2 separated from the fastest, 2 x 1 (within rounds it would be the simpler pick).
        for r in rows.iter_mut().filter(|r| {
            r.workload == "batch"
                && r.int(key::RANKS) == Some(1)
                && r.int(key::BLAS_THREADS) == Some(2)
        }) {
            *r = row("batch", "pthreads", 1, 2, 170.0);
        }
        rows.push(default_row("batch", "pthreads", 200.0));
        let recs = recommendations(&rows, 2, Limits::default());
        let batch = recs.iter().find(|r| r.workload == "batch").expect("batch");
        assert!(batch.recommended());
        assert_eq!(batch.best["ranks"], Value::Int(2));
        assert_eq!(batch.best["blas_threads"], Value::Int(1));
        assert_eq!(batch.default["variant"], Value::Name("default".into()));
        let mut v = Verdict::default();
        verdict(&rows, &recs, &machine(2), &mut v);
        assert_eq!(v.lines.len(), 1);
        assert!(
            v.lines[0].text.contains("2 ranks x 1 BLAS thread"),
            "{}",
            v.lines[0].text
        );
        assert_eq!(
            v.settings[0].line,
            "mpirun --bind-to none -np 2 -x OPENBLAS_NUM_THREADS=1 ./your-program   # MPI ranks \
             x BLAS threads for 64 products and 16 SVDs of 256^2 under pthreads"
        );
        // Within the intervals of the default: the default stays, and no command is printed.
        let mut flat: Vec<Row> = [(2, 2, 100.0), (2, 1, 99.0), (1, 1, 180.0)]
            .into_iter()
            .map(|(r, b, t)| row("batch", "pthreads", r, b, t))
            .collect();
        flat.push(default_row("batch", "pthreads", 100.0));
        let recs = recommendations(&flat, 2, Limits::default());
        assert!(!recs[0].recommended());
        assert_eq!(recs[0].best, recs[0].default);
        let mut v = Verdict::default();
        verdict(&flat, &recs, &machine(2), &mut v);
        assert!(v.settings.is_empty(), "{:?}", v.settings);
        assert!(!v.lines[0].seen());
    }

    #[test]
    fn the_default_cell_says_what_its_ranks_saw_inside() {
        let mut rows = grid("pthreads");
        let mut d = default_row("batch", "pthreads", 200.0);
        d.ranks_seen = (0..2)
            .map(|rank| parcost::meta::RankSeen {
                rank,
                host: String::new(),
                cpus: vec![rank as usize],
                blas_threads: 1,
                openblas_num_threads: None,
                busy_threads: Some(1),
            })
            .collect();
        rows.push(d);
        let recs = recommendations(&rows, 2, Limits::default());
        let mut v = Verdict::default();
        verdict(&rows, &recs, &machine(2), &mut v);
        assert!(
            v.lines[0].text.contains(
                "inside, each rank could run on 1 CPU and OpenBLAS counted 1 thread, 1 busy"
            ),
            "{}",
            v.lines[0].text
        );
    }

    #[test]
    fn without_the_default_cell_nothing_is_recommended() {
        // The grid alone (a run before the default cell existed): its fastest cell is not
        // advice, however fast, and no mpirun line is printed.
        let rows = grid("pthreads");
        let recs = recommendations(&rows, 2, Limits::default());
        assert!(recs.iter().all(|r| !r.recommended()), "{recs:?}");
        let mut v = Verdict::default();
        verdict(&rows, &recs, &machine(2), &mut v);
        assert!(v.settings.is_empty(), "{:?}", v.settings);
    }

    #[test]
    fn ranks_beyond_the_slots_are_oversubscribed_in_the_command() {
        // 4 ranks x 1 clearly fastest on 2 physical cores: the line must say --oversubscribe,
        // or OpenMPI refuses it ("not enough slots").
        let rows: Vec<Row> = [(2, 1, 130.0), (4, 1, 60.0), (1, 2, 150.0)]
            .into_iter()
            .map(|(r, b, t)| row("batch", "pthreads", r, b, t))
            .chain([default_row("batch", "pthreads", 140.0)])
            .collect();
        let recs = recommendations(&rows, 2, Limits::default());
        let mut v = Verdict::default();
        verdict(&rows, &recs, &machine(2), &mut v);
        assert!(
            v.settings[0].line.starts_with(
                "mpirun --bind-to none --oversubscribe -np 4 -x OPENBLAS_NUM_THREADS=1"
            ),
            "{:?}",
            v.settings
        );
        let mut v = Verdict::default();
        verdict(&rows, &recs, &machine(4), &mut v);
        assert!(
            !v.settings[0].line.contains("--oversubscribe"),
            "{:?}",
            v.settings
        );
    }

    #[test]
    fn the_section_draws_a_heatmap_a_layer_and_the_start_up() {
        let mut rows = grid("openmp");
        rows.extend(grid("pthreads"));
        let mut start = row("batch", "openmp", 2, 1, 300.0);
        start.workload = "startup".into();
        start
            .params
            .retain(|k, _| k != "n" && k != "pairs" && k != "matrices");
        start.time_ns = None;
        start.single_run_ns = Some(3.1e8);
        rows.push(start);
        let recs = recommendations(&rows, 2, Limits::default());
        let figs =
            crate::figures::figures(&rows, &MachineOut::default(), &BTreeMap::new(), Vec::new());
        let mut h = String::new();
        section(&mut h, &figs, &recs, 2).expect("renders");
        assert_eq!(h.matches("<svg").count(), 2, "one figure a workload");
        assert!(h.contains("CPU/wall, switches"));
        assert!(h.contains("batch against scatter"));
        assert!(h.contains("Job start-up") && h.contains("310.000 ms"));
        assert!(
            !h.contains("OPENBLAS_NUM_THREADS="),
            "commands to copy are the verdict's, tried"
        );
    }
}
