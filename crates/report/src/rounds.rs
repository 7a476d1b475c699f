//! Rounds: which variants the rounds after the first measure again (the contenders: where the
//! answer is decided), and how far each variant's rounds spread (the stability the report
//! shows). Computed from what the suites wrote, like every analysis here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use parcost::id::{self, key};

use crate::facts::{Recommendation, Row};
use crate::model::{AdviceKind, MARGIN, Pooled, Stands, spread, unstable};
use crate::results::Estimate;

/// A variant whose fastest first-round run is within this factor of the best of its instance
/// is measured again in every round: the fastest few, between which the answer is decided (a
/// pick is tied with the fastest within the 5% margin, far inside it). The rest are figures of
/// one round (information, never advice).
pub const CONTENDER_FACTOR: f64 = 1.3;

/// The factors [`contenders_within`] tries, from [`CONTENDER_FACTOR`] down, when the planned
/// rounds of the contenders would not fit in time (a slower machine): the narrowest, 1.1, is
/// about the margin twice over (1.05^2), within which of the best a pick must be.
pub const CONTENDER_FACTORS: [f64; 5] = [CONTENDER_FACTOR, 1.25, 1.2, 1.15, 1.1];

/// The contenders the later planned rounds measure, and the factor that chose them.
#[derive(Debug, Clone, PartialEq)]
pub struct Contenders {
    pub ids: Vec<String>,
    pub factor: f64,
    /// Their rounds are predicted to end in time (else these are the narrowest factor's, and
    /// the rounds will run over).
    pub fit: bool,
}

/// The variants of run `run` (its key) under `criterion_dir` that the later planned rounds
/// measure: the contenders of the widest of [`CONTENDER_FACTORS`] whose rounds `fit` (the
/// bench's prediction from the first round's times, given the ids and every first-round
/// variant's [`later_round_weight`]), else of the narrowest: the planned rounds keep to their
/// time on a slower machine by measuring fewer variants far from the best, rather than run
/// longer. The defaults are contenders at every factor.
pub fn contenders_within(
    criterion_dir: &Path,
    run: u64,
    logical_cores: usize,
    quick: bool,
    fit: impl Fn(&[String], &BTreeMap<String, f64>) -> bool,
) -> Contenders {
    let loaded = crate::results::load(criterion_dir, "new");
    let weights: BTreeMap<String, f64> = loaded
        .measurements
        .iter()
        .filter(|m| m.usage.is_some_and(|u| u.run == Some(run)))
        .map(|m| (m.full_id.clone(), later_round_weight(m, quick)))
        .collect();
    widest_fitting(&loaded.measurements, run, logical_cores, |ids| {
        fit(ids, &weights)
    })
}

/// About what measuring a variant again costs in seconds, from its first round: its checked
/// run, and then a warm run, Criterion's warm-up and its sampling when Criterion sampled it
/// ([`parcost::id::round::MEASUREMENT_TIME`]), else the harness's timed runs (under `quick`,
/// Criterion's quick mode and one harness run). Its suite process's
/// own setup of it (arrays, workers, MPI jobs) is not in it: the bench shares a process's
/// first-round time out by these weights.
pub fn later_round_weight(m: &crate::results::Measurement, quick: bool) -> f64 {
    use parcost::id::round::{MEASUREMENT_TIME, RUNS_A_ROUND, WARM_UP_TIME};
    let Some(u) = m.usage else { return 0.0 };
    let run = u.wall_ns as f64 / 1e9;
    // Under --quick: Criterion's quick mode, no warm-up; one harness run, rarely two.
    let (sampling, harness) = if quick {
        (MEASUREMENT_TIME, 1.0)
    } else {
        (WARM_UP_TIME + MEASUREMENT_TIME, RUNS_A_ROUND as f64)
    };
    match u.sampled {
        Some(true) => sampling.as_secs_f64() + 2.0 * run,
        _ if m.at_least_ns.is_some() || m.single_run_ns.is_some() => run,
        _ => (1.0 + harness) * run,
    }
}

fn widest_fitting(
    measurements: &[crate::results::Measurement],
    run: u64,
    logical_cores: usize,
    fit: impl Fn(&[String]) -> bool,
) -> Contenders {
    let mut last = Contenders {
        ids: Vec::new(),
        factor: CONTENDER_FACTOR,
        fit: false,
    };
    for factor in CONTENDER_FACTORS {
        let ids = contenders_of(measurements, run, logical_cores, factor);
        let fits = fit(&ids);
        last = Contenders {
            ids,
            factor,
            fit: fits,
        };
        if fits {
            break;
        }
    }
    last
}

/// Arrays larger than this (array-sharing's 800 MB) are measured in the first round only:
/// information beside the 64 MiB arrays, on which the answer rests (the verdict's size). Each
/// such variant costs about 7 s of setup a round here (a worker holding the array and its copy).
pub const LARGE_ARRAY_BYTES: u64 = 64 << 20;

/// The variants of a run (its key) that the rounds after the first measure at `factor`: in
/// each instance (and across its layers and kernels), those whose fastest run of the first
/// round is within `factor` of the best, every default ([`id::is_default`]) and every P tasks x
/// 1 BLAS thread ([`id::is_p_by_one`]); never one stopped as hopeless.
fn contenders_of(
    measurements: &[crate::results::Measurement],
    run: u64,
    logical_cores: usize,
    factor: f64,
) -> Vec<String> {
    let current: Vec<(id::ParsedId, f64, String)> = measurements
        .iter()
        .filter(|m| m.usage.is_some_and(|u| u.run == Some(run)))
        .filter_map(|m| {
            let parsed = id::parse(&m.full_id).ok()?;
            // By its fastest run: a run disturbed by something else on the machine is slower,
            // never faster, and one such run left a variant out of the rounds in one of two
            // full runs here (20.3 and 39.4 ms, where the best of its instance was 19.5).
            let fastest = m.time.map(|t| t.lower).or(m.single_run_ns)?;
            Some((parsed, fastest, m.full_id.clone()))
        })
        .collect();
    let mut best: BTreeMap<String, f64> = BTreeMap::new();
    // How many variants each group has: a group of one (the serial layer's one configuration)
    // decides nothing by itself, and its variant is a contender only across layers.
    let mut members: BTreeMap<String, usize> = BTreeMap::new();
    let groupings: [&[&str]; 2] = [&[], &[key::LAYER, key::KERNEL]];
    // The candidates of the report's answer on moving an array between processes are judged
    // among themselves too.
    let sharing = |p: &id::ParsedId| {
        id::is_sharing_candidate(p)
            .then(|| format!("{} (to another process)", id::instance(p, &[])))
    };
    for (parsed, t, _) in &current {
        let groups = groupings
            .iter()
            .map(|without| id::instance(parsed, without))
            .chain(sharing(parsed));
        for group in groups {
            *members.entry(group.clone()).or_default() += 1;
            let b = best.entry(group).or_insert(*t);
            *b = b.min(*t);
        }
    }
    let large = |p: &id::ParsedId| {
        p.params
            .get(key::BYTES)
            .and_then(id::Value::int)
            .is_some_and(|b| b > LARGE_ARRAY_BYTES)
    };
    let mut out = BTreeSet::new();
    for (parsed, t, full_id) in &current {
        let near = !large(parsed)
            && groupings
                .iter()
                .map(|without| id::instance(parsed, without))
                .chain(sharing(parsed))
                .filter(|group| members.get(group).is_some_and(|&n| n > 1))
                .any(|group| best.get(&group).is_some_and(|b| *t <= factor * b));
        if near || id::is_default(parsed, logical_cores) || id::is_p_by_one(parsed, logical_cores) {
            out.insert(full_id.clone());
        }
    }
    out.into_iter().collect()
}

/// Rounds measured after the planned ones, one at a time, each of only what the rounds before
/// it left [`undecided`] (computed again before each): up to thirteen more, sixteen in all
/// ([`parcost::id::round::MAX`]), none once nothing is undecided, and none once the suites
/// have run [`EXTRA_ROUNDS_UNTIL`]. A between-round interval narrows with the rounds by about
/// sqrt(3/k) from three (and its t quantile drops where the time keeps its own spread). Eight
/// rounds left two full runs here at 75 of 79 recommendations alike, each of the four
/// differences a 1.05-1.20x effect whose interval straddled the 5% margin in one run and not in
/// the other, while those runs' extra rounds cost 5-17 s each (a fresh process per suite and
/// layer, of the few variants still undecided) and the budget had 140 s left: the rounds went
/// on to where the budget ends. Sequential sampling of Kalibera and Jones' kind: the time goes
/// where the answer is still open.
pub const EXTRA_ROUNDS: u32 = 13;

/// The same under `--quick`: up to three, within its time ([`QUICK_EXTRA_ROUNDS_UNTIL`]).
pub const QUICK_EXTRA_ROUNDS: u32 = 3;

/// An extra round starts only while the suites have run less than this: a full run must fit
/// in 20 minutes from a fresh clone, install (under a minute) and build (3 to 5 minutes here)
/// included; the three planned rounds took 700-740 s of suites here, and a slower machine
/// gets fewer extra rounds, not a longer run.
pub const EXTRA_ROUNDS_UNTIL: std::time::Duration = std::time::Duration::from_secs(800);

/// The same under `--quick`, whose suites must fit in 5 minutes: an extra round of its
/// undecided variants took 15.9 s on the AMD EPYC (qM, 2026-12-04: started at 279.4 s, the
/// suites ended at 296.0 s), about 22 s on a CPU 1.4x slower; one starting at 275 s ends
/// within 300.
pub const QUICK_EXTRA_ROUNDS_UNTIL: std::time::Duration = std::time::Duration::from_secs(275);

/// The planned rounds must be predicted to end within this (the suites' time from their
/// start), else their contenders are chosen narrower ([`contenders_within`]): here they end
/// at 640-650 s, and a CPU 1.4x slower (a Zen 3 at 3.2 GHz against this 4 GHz Xeon) would
/// take about 900 s, past 20 minutes with its install and build.
pub const PLANNED_ROUNDS_UNTIL: std::time::Duration = std::time::Duration::from_secs(780);

/// The same under `--quick`: here its planned rounds end at about 262 s, on a 1.4x slower
/// CPU about 367 s, past its 5 minutes.
pub const QUICK_PLANNED_ROUNDS_UNTIL: std::time::Duration = std::time::Duration::from_secs(290);

/// The variants more rounds could decide, of the recommendations `recs` drawn from `rows`.
/// Whether to recommend: for a comparison of the default with the pick near the margin
/// ([`near_the_margin`]), the default, the fastest and the pick (the simplest of the fastest's
/// tie whose estimate beats the default by the margin,
/// [`crate::findings::simplest_equivalent`]). Which to recommend: for a recommendation, each
/// configuration simpler than the fastest that beats the default, whose comparison with the
/// fastest is near the margin, and the fastest (whether it is tied with the fastest decides
/// the pick: in A16 and B16 pthreads' naive 2 x 2 at task-level n=32 was 1.16x faster than the
/// task-level 2 x 1 beyond the margin in one run and tied with it in the other, which changed
/// the pick and the advice across libraries with it). Every other comparison is decided:
/// separated well beyond the margin, within it, overlapping with an estimate inside it (more
/// rounds would make it "equivalent", never a recommendation), or too close to the margin
/// for the rounds a run can have (the default stands).
pub fn undecided(rows: &[Row], recs: &[Recommendation]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for rec in recs {
        let (whether, which) = match &rec.advice {
            AdviceKind::Recommend => (true, true),
            AdviceKind::Keep(Stands::Overlap(_)) => (true, false),
            AdviceKind::Keep(_) => (false, false),
        };
        let whether = whether && rec.speedup_vs_default.as_ref().is_some_and(near_the_margin);
        if !whether && !which {
            continue;
        }
        // The instance's cells: its parameters, and the grid's keys of its configurations.
        let keys = rec.params.len() + rec.default.len().max(rec.fastest.len());
        let cells: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                r.suite == rec.suite
                    && r.workload == rec.workload
                    && r.params.len() == keys
                    && rec.params.iter().all(|(k, v)| r.params.get(k) == Some(v))
            })
            .collect();
        let find = |config: &crate::findings::Config| {
            cells.iter().copied().find(|r| {
                !config.is_empty() && config.iter().all(|(k, v)| r.params.get(k) == Some(v))
            })
        };
        let Some(fastest) = find(&rec.fastest) else {
            continue;
        };
        let default = find(&rec.default);
        if whether {
            let pick = crate::findings::simplest_equivalent(&cells, fastest, default);
            for r in [Some(fastest), default, Some(pick)].into_iter().flatten() {
                out.insert(r.full_id.clone());
            }
        }
        let Some(ft) = fastest.time_ns.filter(|_| which) else {
            continue;
        };
        use crate::findings::{beats_default, simplicity};
        let fastest_simplicity = simplicity(fastest, default);
        for r in cells
            .iter()
            .copied()
            .filter(|r| simplicity(r, default) < fastest_simplicity && beats_default(r, default))
        {
            let to_fastest = r.time_ns.map(|t| crate::model::Ratio::of(&t, &ft));
            if to_fastest.is_some_and(|s| s.between_rounds() && near_the_margin(&s)) {
                out.insert(r.full_id.clone());
                out.insert(fastest.full_id.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// Whether more rounds could change how a comparison (the slower over the faster) is judged:
/// beyond `1 + margin` by its estimate but not beyond `(1 + margin)^2` by its interval's low
/// end, and [`decidable`] within a run's rounds.
fn near_the_margin(s: &crate::model::Ratio) -> bool {
    let m = 1.0 + MARGIN;
    s.estimate > m && s.lower.unwrap_or(s.estimate) < m * m && decidable(s)
}

/// Whether the rounds a run can have ([`parcost::id::round::MAX`]) could put the low end of a
/// comparison's between-round interval beyond the margin, were its estimate and its
/// round-to-round spread to stay: its half-width (in logarithms) narrows as one over the
/// square root of the rounds, so it needs `rounds * (half / (ln estimate - ln (1 + margin)))^2`
/// rounds. One that needs more than twice as many as a run can have is left to the default
/// (stopped for futility, as sequential trials do), and the extra rounds go to those they can
/// decide. Twice: from the three planned rounds the projection is rough (task-level n=128
/// under OpenMP, 1.22x at the end of both full runs A16 and B16, projected 21 and 31 rounds after
/// three), while those at 1.02-1.12x projected 40 to 1400. Two full runs here (A16 and B16,
/// the AMD EPYC, 2026-12-04) ended their extra rounds at the time budget with 16 and 17
/// comparisons near the margin, 10 and 8 of them needing more than sixteen rounds (1.05-1.13x,
/// 19 to 2000), which took the rounds from those needing 8 to 11 (1.15-1.28x). One measured
/// in a single round (a within-run interval) is decidable: rounds are what it lacks.
fn decidable(s: &crate::model::Ratio) -> bool {
    let Some(half) = s.log_half_width().filter(|_| s.rounds > 0) else {
        return true;
    };
    let beyond = s.estimate.ln() - MARGIN.ln_1p();
    beyond > 0.0
        && f64::from(s.rounds) * (half / beyond).powi(2) <= 2.0 * f64::from(parcost::id::round::MAX)
}

/// One variant's rounds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spread {
    pub full_id: String,
    /// Each round's figure, ns, by round.
    pub rounds: Vec<(u32, f64)>,
    /// The standard deviation of their logarithms ([`crate::model::spread`]).
    pub spread: f64,
}

impl Spread {
    /// The largest round over the smallest.
    pub fn range(&self) -> f64 {
        let (lo, hi) = self
            .rounds
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), (_, v)| {
                (lo.min(*v), hi.max(*v))
            });
        hi / lo
    }
}

/// A suite's stability: how many variants were measured in enough rounds, their median spread,
/// the pooled spread of each of its runs (by layer and kernel, `-` for none: what the
/// intervals rest on), and the unstable ones ([`crate::model::unstable`]), widest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stability {
    pub suite: String,
    pub measured: usize,
    pub median_spread: f64,
    #[serde(default)]
    pub pooled: BTreeMap<String, Pooled>,
    pub unstable: Vec<Spread>,
}

/// The stability of each suite's variants measured in at least [`crate::model::MIN_ROUNDS`] rounds.
pub fn stability(rows: &[Row]) -> Vec<Stability> {
    let mut by_suite: BTreeMap<&str, Vec<(Spread, bool)>> = BTreeMap::new();
    let mut steps: BTreeMap<&str, BTreeMap<String, Vec<Estimate>>> = BTreeMap::new();
    for r in rows {
        let Some(t) = r.time_ns else { continue };
        let Some(s) = spread(&t) else { continue };
        by_suite.entry(&r.suite).or_default().push((
            Spread {
                full_id: r.full_id.clone(),
                rounds: t.rounds.iter().collect(),
                spread: s,
            },
            unstable(&t),
        ));
        let (_, layer, kernel) = crate::results::step_of(&r.suite, &r.params);
        let step: Vec<String> = [layer, kernel]
            .into_iter()
            .flatten()
            .map(|v| v.to_string())
            .collect();
        let step = if step.is_empty() {
            "-".to_owned()
        } else {
            step.join(" ")
        };
        steps
            .entry(&r.suite)
            .or_default()
            .entry(step)
            .or_default()
            .push(t);
    }
    // Each run's pool of all its times, as shown (each time's own comparisons use the pool of
    // the others).
    let mut pooled: BTreeMap<&str, BTreeMap<String, Pooled>> = steps
        .into_iter()
        .map(|(suite, runs)| {
            let pools = runs
                .into_iter()
                .filter_map(|(step, times)| Some((step, crate::model::pool(&times)?)))
                .collect();
            (suite, pools)
        })
        .collect();
    let order = |s: &str| id::SUITES.iter().position(|i| i.name == s);
    let mut out: Vec<Stability> = by_suite
        .into_iter()
        .map(|(suite, mut spreads)| {
            spreads.sort_by(|a, b| a.0.spread.total_cmp(&b.0.spread));
            let median_spread = spreads[spreads.len() / 2].0.spread;
            let measured = spreads.len();
            let mut unstable: Vec<Spread> = spreads
                .into_iter()
                .filter_map(|(s, unstable)| unstable.then_some(s))
                .collect();
            unstable.reverse();
            Stability {
                suite: suite.to_owned(),
                measured,
                median_spread,
                pooled: pooled.remove(suite).unwrap_or_default(),
                unstable,
            }
        })
        .collect();
    out.sort_by_key(|s| order(&s.suite));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Measurement;

    #[test]
    fn only_comparisons_near_the_margin_are_undecided() {
        use crate::facts::Limits;
        use crate::findings::recommendations;
        let cell = |b: u64, ms: f64, half: f64, order: usize| {
            let id = format!("blas-tuning/matmul/layer=openmp,n=2048/blas_threads={b}");
            let mut r = Row::for_test(&id, ms, None);
            r.time_ns = Some(Estimate::in_rounds(ms * 1e6, half * 1e6, order));
            r
        };
        let undecided_of =
            |rows: &[Row]| undecided(rows, &recommendations(rows, 2, Limits::default()));
        // 2x apart beyond doubt: decided.
        let clear = [cell(2, 100.0, 1.0, 0), cell(4, 50.0, 1.0, 1)];
        assert!(undecided_of(&clear).is_empty());
        // 3% apart: within the margin, decided (the default stands).
        let near = [cell(2, 100.0, 1.0, 0), cell(4, 97.0, 1.0, 1)];
        assert!(undecided_of(&near).is_empty());
        // 12% apart by the estimates, the interval straddling the margin: both more rounds.
        let gray = [cell(2, 100.0, 6.0, 0), cell(4, 89.0, 6.0, 1)];
        let ids = undecided_of(&gray);
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert!(ids.iter().any(|id| id.ends_with("blas_threads=2")));
        // 5.5% apart with the same spread: no run's rounds could decide it, the default
        // stands and the extra rounds go elsewhere.
        let futile = [cell(2, 100.0, 6.0, 0), cell(4, 94.8, 6.0, 1)];
        assert!(undecided_of(&futile).is_empty());
    }

    #[test]
    fn a_simpler_pick_near_the_margin_of_the_fastest_is_undecided() {
        use crate::facts::Limits;
        use crate::findings::recommendations;
        let cell = |variant: &str, tasks: u32, blas: u32, ms: f64, half: f64, order: usize| {
            Row::timed(
                &format!(
                    "task-level/matmul/layer=pthreads,n=32,pairs=30518/\
                     variant={variant},tasks={tasks},blas_threads={blas}"
                ),
                Estimate::in_rounds(ms * 1e6, half * 1e6, order),
            )
        };
        let undecided_of = |task_level_ms: f64| {
            let rows = [
                cell("op-level", 1, 2, 70.0, 1.0, 0),
                cell("naive", 2, 2, 40.0, 3.0, 1),
                cell("task-level", 2, 1, task_level_ms, 3.0, 2),
            ];
            let recs = recommendations(&rows, 2, Limits::default());
            assert!(
                matches!(recs[0].advice, AdviceKind::Recommend),
                "{:?}",
                recs[0].advice
            );
            undecided(&rows, &recs)
        };
        // The simpler task-level 2 x 1 10% slower than the naive 2 x 2, the interval straddling
        // the margin: whether it is the pick is open, both are measured again (the default,
        // far slower, is not).
        let ids = undecided_of(44.0);
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert!(ids.iter().all(|id| !id.contains("op-level")), "{ids:?}");
        // Tied within the margin, or far apart: decided.
        assert!(undecided_of(40.5).is_empty());
        assert!(undecided_of(60.0).is_empty());
    }

    #[test]
    fn a_comparison_the_rounds_left_cannot_decide_gets_none() {
        use crate::model::Ratio;
        let ratio = |estimate: f64, lower: f64, upper: f64, rounds: u32| Ratio {
            estimate,
            lower: Some(lower),
            upper: Some(upper),
            rounds,
            unstable: false,
        };
        // A16's task-level n=128 under pthreads after 7 rounds: about 7 rounds would do.
        assert!(decidable(&ratio(1.276, 1.048, 1.553, 7)));
        // B16's task-level n=128 under OpenMP after 3 rounds: about 31, within twice 16.
        assert!(decidable(&ratio(1.146, 0.866, 1.515, 3)));
        // B16's blas-tuning n=768 after 3 rounds: about 130 would.
        assert!(!decidable(&ratio(1.086, 0.868, 1.358, 3)));
        // A16's task-level n=1024 after 8 rounds: about 1000.
        assert!(!decidable(&ratio(1.065, 0.906, 1.251, 8)));
        // Recommended already, its low end beyond the margin: decidable.
        assert!(decidable(&ratio(1.30, 1.08, 1.56, 4)));
        // One round: rounds are what it lacks.
        assert!(decidable(&Ratio::within(1.08, 0.9, 1.3)));
    }

    /// A first-round measurement of run 7, timed by the harness: `median` ms, its fastest run
    /// `fastest`.
    fn first_round(full_id: &str, median: f64, fastest: f64) -> Measurement {
        let (suite, workload, params) = crate::results::parse_id(full_id).expect("an id");
        Measurement {
            suite,
            workload,
            params,
            full_id: full_id.to_owned(),
            time: Some(Estimate::new(median, fastest, 2.0 * median - fastest)),
            single_run_ns: None,
            at_least_ns: None,
            counted: None,
            usage: Some(parcost::meta::Usage {
                wall_ns: 0,
                cpu_ns: 0,
                cpu_per_wall: 0.0,
                voluntary_switches: 0,
                involuntary_switches: 0,
                context_switches: 0,
                run: Some(7),
                sampled: Some(false),
                threads: None,
                busy_threads: None,
            }),
            ranks_seen: Vec::new(),
            criterion_page: None,
        }
    }

    #[test]
    fn p_tasks_at_one_blas_thread_is_always_a_contender() {
        // A15 (AMD EPYC, 2026-12-04): the SVDs' 2 x 1 under pthreads ran 129.8 ms in its one
        // first-round figure (88-91 ms in every round of two other runs), 1.41x the best: left
        // out of the rounds, the pick became 4 x 1 where the other run's was 2 x 1. Like the
        // default, P tasks x 1 BLAS thread (the settings lines' alternative) is always measured.
        let m = |cell: &str, ms: f64| {
            first_round(
                &format!("oversubscription/svd/layer=pthreads,n=256,matrices=16/{cell}"),
                ms,
                ms,
            )
        };
        let picked = contenders_of(
            &[
                m("tasks=1,blas_threads=1", 173.3),
                m("tasks=1,blas_threads=2", 188.2),
                m("tasks=2,blas_threads=1", 129.8),
                m("tasks=4,blas_threads=1", 103.4),
                m("tasks=8,blas_threads=1", 92.1),
                m("tasks=2,blas_threads=2", 177.6),
            ],
            7,
            2,
            CONTENDER_FACTOR,
        );
        let has = |cell: &str| picked.iter().any(|id| id.ends_with(cell));
        assert!(has("/tasks=2,blas_threads=1"), "{picked:?}");
        assert!(has("/tasks=1,blas_threads=2"), "{picked:?}");
        assert!(!has("/tasks=2,blas_threads=2"), "{picked:?}");
        assert!(!has("/tasks=1,blas_threads=1"), "{picked:?}");
    }

    #[test]
    fn a_contender_is_judged_by_its_fastest_run() {
        let m = |cell: &str, median: f64, fastest: f64| {
            first_round(
                &format!("oversubscription/matmul/layer=pthreads,n=256,pairs=64/{cell}"),
                median,
                fastest,
            )
        };
        let picked = contenders_of(
            &[
                m("tasks=8,blas_threads=1", 19.5, 19.4),
                // Runs of 20.3 and 39.4 ms (seen here): its median is 1.5x the best, its fastest
                // run is not.
                m("tasks=2,blas_threads=1", 29.85, 20.3),
                m("tasks=1,blas_threads=1", 39.1, 39.0),
            ],
            7,
            2,
            CONTENDER_FACTOR,
        );
        let has = |cell: &str| picked.iter().any(|id| id.ends_with(cell));
        assert!(has("/tasks=2,blas_threads=1"), "{picked:?}");
        // The 800 MB arrays: the first round only.
        let large = |t: &str, ms: f64| {
            let mut m = m("tasks=1,blas_threads=1", ms, ms);
            m.full_id = format!("array-sharing/send/transport={t},pool=persistent/bytes=800000000");
            let (suite, workload, params) = crate::results::parse_id(&m.full_id).expect("an id");
            (m.suite, m.workload, m.params) = (suite, workload, params);
            m
        };
        let picked_large = contenders_of(
            &[
                large("mmap-file", 143.0),
                large("memfd-inherited", 149.0),
                large("thread", 148.0),
            ],
            7,
            2,
            CONTENDER_FACTOR,
        );
        assert!(picked_large.is_empty(), "{picked_large:?}");
        // At 64 MiB a thread (by reference) is 3x faster than any other process: the
        // out-of-process transports, which the report's answer compares, are judged among
        // themselves.
        let send = |t: &str, ms: f64| {
            let mut m = large(t, ms);
            m.full_id = m.full_id.replace("bytes=800000000", "bytes=67108864");
            let (suite, workload, params) = crate::results::parse_id(&m.full_id).expect("an id");
            (m.suite, m.workload, m.params) = (suite, workload, params);
            m
        };
        let picked_send = contenders_of(
            &[
                send("thread", 10.0),
                send("mmap-file", 30.0),
                send("memfd-inherited", 33.0),
                send("pipe", 80.0),
            ],
            7,
            2,
            CONTENDER_FACTOR,
        );
        let sent = |t: &str| {
            picked_send
                .iter()
                .any(|id| id.contains(&format!("transport={t},")))
        };
        assert!(
            sent("thread") && sent("mmap-file") && sent("memfd-inherited"),
            "{picked_send:?}"
        );
        assert!(!sent("pipe"), "{picked_send:?}");
        assert!(has("/tasks=8,blas_threads=1"), "{picked:?}");
        assert!(!has("/tasks=1,blas_threads=1"), "{picked:?}");
        // The serial layer's one configuration: alone in its layer it decides nothing, and
        // 2x the best across layers it is no contender (it was, in every round, by itself).
        let mut serial = m("tasks=1,blas_threads=1", 40.0, 39.5);
        serial.full_id = serial.full_id.replace("layer=pthreads", "layer=serial");
        let (suite, workload, params) = crate::results::parse_id(&serial.full_id).expect("an id");
        (serial.suite, serial.workload, serial.params) = (suite, workload, params);
        let picked = contenders_of(
            &[m("tasks=2,blas_threads=1", 19.5, 19.4), serial],
            7,
            2,
            CONTENDER_FACTOR,
        );
        assert!(
            !picked.iter().any(|id| id.contains("layer=serial")),
            "{picked:?}"
        );
        // Rounds that would not fit in time: the widest factor whose contenders fit, the
        // default (1 x 2 on two cores) at every factor.
        let grid = [
            m("tasks=2,blas_threads=1", 10.0, 10.0),
            m("tasks=4,blas_threads=1", 12.4, 12.4),
            m("tasks=8,blas_threads=1", 11.4, 11.4),
            m("tasks=1,blas_threads=2", 30.0, 30.0),
        ];
        let has = |c: &Contenders, cell: &str| c.ids.iter().any(|id| id.ends_with(cell));
        let all = widest_fitting(&grid, 7, 2, |_| true);
        assert_eq!(
            (all.factor, all.ids.len(), all.fit),
            (CONTENDER_FACTOR, 4, true),
            "{all:?}"
        );
        let fewer = widest_fitting(&grid, 7, 2, |ids| ids.len() <= 3);
        assert_eq!((fewer.factor, fewer.fit), (1.2, true), "{fewer:?}");
        assert!(!has(&fewer, "/tasks=4,blas_threads=1"), "{fewer:?}");
        assert!(has(&fewer, "/tasks=8,blas_threads=1"), "{fewer:?}");
        let none_fit = widest_fitting(&grid, 7, 2, |_| false);
        assert_eq!(
            (none_fit.factor, none_fit.fit),
            (1.1, false),
            "{none_fit:?}"
        );
        assert_eq!(none_fit.ids.len(), 2, "{none_fit:?}");
        assert!(has(&none_fit, "/tasks=1,blas_threads=2"), "{none_fit:?}");
    }
}
