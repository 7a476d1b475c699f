//! Reading a run: Criterion's estimates and parcost's sidecars, ids parsed by the DESIGN.md
//! contract. What cannot be read is skipped with its reason, never guessed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parcost::blas::BlasInfo;
use parcost::kernel::Survey;
use parcost::meta::{Machine, RankSeen, RoundTime, RunInfo, SIDECAR_DIR, Sidecar, Usage};
use serde::{Deserialize, Serialize};

pub use parcost::id::Value;

/// A point estimate with its 95% interval, in nanoseconds (or a rate, or a share). A time
/// measured in rounds carries each round's figure, which the comparisons pair by round.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Estimate {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
    #[serde(default, skip_serializing_if = "Rounds::is_empty")]
    pub rounds: Rounds,
    /// The between-round spread pooled over the times measured in the same processes as this
    /// one ([`crate::model::pool`]): what its comparisons' intervals rest on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled: Option<crate::model::Pooled>,
}

impl Estimate {
    /// An estimate and its interval, measured in one round (or not a time).
    pub fn new(estimate: f64, lower: f64, upper: f64) -> Self {
        Self {
            estimate,
            lower,
            upper,
            rounds: Rounds::default(),
            pooled: None,
        }
    }
}

impl Estimate {
    /// A time for tests measured in three rounds whose t-interval is about `half` either side
    /// of `estimate`; `order` (any number) picks the order of the rounds, so two times of
    /// different orders are not alike round by round and their paired ratio has a width.
    #[cfg(test)]
    pub fn in_rounds(estimate: f64, half: f64, order: usize) -> Self {
        const ORDERS: [[f64; 3]; 6] = [
            [-1.0, 0.0, 1.0],
            [0.0, 1.0, -1.0],
            [1.0, -1.0, 0.0],
            [-1.0, 1.0, 0.0],
            [1.0, 0.0, -1.0],
            [0.0, -1.0, 1.0],
        ];
        // Three rounds at -d, 0, +d (relative): a log-sd of d, a t-interval of 2.48 d.
        let d = half / estimate / (crate::model::t_975(2) / 3f64.sqrt());
        let mut rounds = Rounds::default();
        for (k, step) in ORDERS[order % ORDERS.len()].iter().enumerate() {
            rounds.set(k as u32 + 1, estimate * (step * d).exp());
        }
        crate::model::between_rounds(rounds).expect("three rounds")
    }
}

/// The most rounds a run records a variant in.
pub const MAX_ROUNDS: usize = parcost::id::round::MAX as usize;

/// A variant's figure in each round of its run (round `k` at index `k - 1`; absent: not
/// measured in that round), in ns. Copy, so an [`Estimate`] stays a value.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "BTreeMap<u32, f64>", into = "BTreeMap<u32, f64>")]
pub struct Rounds([Option<f64>; MAX_ROUNDS]);

impl Rounds {
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// The rounds measured, with their figures.
    pub fn iter(&self) -> impl Iterator<Item = (u32, f64)> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((i as u32 + 1, (*v)?)))
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Records round `round`'s figure (rounds past [`MAX_ROUNDS`] are not kept).
    pub fn set(&mut self, round: u32, value: f64) {
        if let Some(slot) = (round as usize)
            .checked_sub(1)
            .and_then(|i| self.0.get_mut(i))
            && value.is_finite()
            && value > 0.0
        {
            *slot = Some(value);
        }
    }

    /// `(a_k, b_k)` for every round both were measured in.
    pub fn paired<'a>(&'a self, other: &'a Rounds) -> impl Iterator<Item = (f64, f64)> + 'a {
        self.0
            .iter()
            .zip(&other.0)
            .filter_map(|(a, b)| Some(((*a)?, (*b)?)))
    }
}

impl From<BTreeMap<u32, f64>> for Rounds {
    fn from(map: BTreeMap<u32, f64>) -> Self {
        let mut r = Self::default();
        for (k, v) in map {
            r.set(k, v);
        }
        r
    }
}

impl From<Rounds> for BTreeMap<u32, f64> {
    fn from(r: Rounds) -> Self {
        r.iter().collect()
    }
}

/// What a rate is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Floating-point operations (Criterion's `Elements` in the BLAS suites).
    Flop(u64),
    /// Array elements.
    Elements(u64),
    Bytes(u64),
}

/// One measured variant.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub suite: String,
    pub workload: String,
    pub params: BTreeMap<String, Value>,
    pub full_id: String,
    /// Criterion's estimate; `None` for a variant run once (over the sampling budget).
    pub time: Option<Estimate>,
    /// The one run of a variant that was not sampled, in nanoseconds.
    pub single_run_ns: Option<f64>,
    /// A variant stopped as hopeless after its checked run: its time is at least this (ns).
    /// Never an estimate: `time` and `single_run_ns` are absent.
    pub at_least_ns: Option<f64>,
    pub counted: Option<Counted>,
    pub usage: Option<Usage>,
    /// What its MPI ranks saw from inside (ranks-x-threads): CPUs, BLAS threads, busy threads.
    pub ranks_seen: Vec<RankSeen>,
    /// Criterion's page for this benchmark, if it wrote one.
    pub criterion_page: Option<PathBuf>,
}

impl Measurement {
    /// The time to compare by: Criterion's estimate, else the single run.
    pub fn typical_ns(&self) -> Option<f64> {
        self.time.map(|t| t.estimate).or(self.single_run_ns)
    }
}

/// Something left out of the report, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub what: String,
    pub why: String,
}

/// Everything one run left behind.
#[derive(Debug, Default)]
pub struct Run {
    pub machine: Option<Machine>,
    pub openblas_config: Option<String>,
    /// The OpenBLAS the suites ran with (the kernel sweep's runs aside).
    pub openblas: Option<BlasInfo>,
    /// The kernel trials of `cargo xtask bench`, one a layer.
    pub surveys: Vec<Survey>,
    pub layers: Vec<String>,
    pub measurements: Vec<Measurement>,
    pub skipped: Vec<Skipped>,
    /// Results of earlier runs than their suite's latest, left out.
    pub stale: Vec<Skipped>,
    /// The latest run of each sidecar (suite, layer, tag) and the noise it saw.
    pub runs: Vec<SuiteRun>,
    /// The runs of `cargo xtask bench` the sidecars hold, newest first: the report judges the
    /// newest alone unless asked to mix them ([`load_runs`]).
    pub bench_runs: Vec<BenchRun>,
    /// Results of the runs left out, as [`Run::stale`]'s.
    pub earlier: Vec<Skipped>,
}

/// One run of `cargo xtask bench` (its suites share a key: when it started), as its sidecars
/// recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRun {
    pub started_ms: u64,
    pub quick: bool,
    /// The OpenBLAS kernels its suites ran (the kernel sweep's aside).
    pub kernels: std::collections::BTreeSet<String>,
    /// Its suites, each with its layer when it has one (`task-level under faer`).
    pub suites: std::collections::BTreeSet<String>,
    /// Whether its results are in the report.
    pub included: bool,
}

/// Which runs a report judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runs {
    /// The newest run of `cargo xtask bench` alone: a suite re-run alone, or a quick run of one
    /// suite after a full run of the others, is not silently judged beside figures of another
    /// day, mode or kernel.
    #[default]
    Newest,
    /// Every suite's latest run, whichever run it came from (`--mix-runs`).
    Mixed,
}

/// The latest run of one suite under one layer (or one part of it, `tag`).
#[derive(Debug, Clone)]
pub struct SuiteRun {
    pub suite: String,
    pub layer: Option<String>,
    pub tag: Option<String>,
    pub info: RunInfo,
}

/// A variant's record in its sidecar, and whether it belongs to its sidecar's latest run.
#[derive(Debug, Clone)]
struct Record {
    usage: Usage,
    /// What its MPI ranks saw from inside, if it ran under mpirun.
    ranks_seen: Vec<RankSeen>,
    current: bool,
    /// When the latest run of its sidecar started (ms since the epoch), if recorded.
    run_started_ms: Option<u64>,
    /// When its last recorded round ended, if recorded.
    run_ended_ms: Option<u64>,
    /// Its figure in each round of that run (empty in older sidecars).
    rounds: BTreeMap<u32, RoundTime>,
    /// From a run of `cargo xtask bench` the report leaves out ([`Runs::Newest`]).
    earlier_run: bool,
}

impl Record {
    /// Whether a file written at `modified_ms` came after the recorded run's last round.
    fn after_run(&self, modified_ms: u64) -> bool {
        self.run_ended_ms.is_some_and(|e| modified_ms > e + 1_000)
    }

    /// Whether a Criterion file written at `modified_ms` belongs to this variant's recorded
    /// run: not before it started, not after its last round ended (a run killed halfway
    /// writes Criterion's files and no sidecar), a second's slack for file times.
    fn written_in_run(&self, modified_ms: u64) -> Result<(), &'static str> {
        if self.run_started_ms.is_some_and(|s| modified_ms + 1_000 < s) {
            return Err("Criterion's files are older than its latest run");
        }
        if self.after_run(modified_ms) {
            return Err(
                "Criterion's files are newer than its latest recorded run: from a run that \
                 ended before recording (interrupted)",
            );
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct BenchmarkJson {
    full_id: String,
    directory_name: String,
    #[serde(default)]
    throughput: Option<BTreeMap<String, u64>>,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct Stat {
    confidence_interval: Interval,
    point_estimate: f64,
}

#[derive(Deserialize)]
struct EstimatesJson {
    mean: Stat,
    #[serde(default)]
    slope: Option<Stat>,
}

/// Splits a full id into suite, workload and its `key=value` parameters ([`parcost::id::parse`]).
pub fn parse_id(full_id: &str) -> Result<(String, String, BTreeMap<String, Value>), String> {
    parcost::id::parse(full_id).map(|id| (id.suite, id.workload, id.params))
}

/// The suite run a variant was measured in: its suite, layer and kernel (each round of it one
/// process).
pub type Step = (String, Option<Value>, Option<Value>);

/// The [`Step`] of a variant of `suite` with `params`.
pub fn step_of(suite: &str, params: &BTreeMap<String, Value>) -> Step {
    use parcost::id::key;
    (
        suite.to_owned(),
        params.get(key::LAYER).cloned(),
        params.get(key::KERNEL).cloned(),
    )
}

/// Gives each time measured in rounds the pooled spread of the other times of its step
/// ([`crate::model::pool`]): the times of one suite under one layer and kernel ran in the same
/// process, round by round. Its own rounds are left out, so that a wide one cannot hide in a
/// pool it widened.
fn pool_by_step(measurements: &mut [Measurement]) {
    let mut groups: BTreeMap<Step, Vec<(usize, Estimate)>> = BTreeMap::new();
    for (i, m) in measurements.iter().enumerate() {
        if let Some(t) = m.time
            && t.rounds.len() >= crate::model::MIN_ROUNDS
        {
            groups
                .entry(step_of(&m.suite, &m.params))
                .or_default()
                .push((i, t));
        }
    }
    for members in groups.values() {
        for (i, _) in members {
            let others: Vec<Estimate> = members
                .iter()
                .filter(|(j, _)| j != i)
                .map(|(_, t)| *t)
                .collect();
            if let Some(t) = &mut measurements[*i].time {
                t.pooled = crate::model::pool(&others);
            }
        }
    }
}

/// Reads every benchmark under `criterion_dir` from its `which` folder (`new` or a baseline
/// name), and the sidecars, of the newest run of `cargo xtask bench` ([`Runs::Newest`]).
pub fn load(criterion_dir: &Path, which: &str) -> Run {
    load_runs(criterion_dir, which, Runs::Newest)
}

/// The same, of the runs `runs` says.
pub fn load_runs(criterion_dir: &Path, which: &str, runs: Runs) -> Run {
    let mut run = Run::default();
    let mut files = Vec::new();
    collect_benchmarks(criterion_dir, which, &mut files, 0);
    files.sort();
    let sidecars = load_sidecars(criterion_dir, &mut run, runs);
    // Every suite with a sidecar, judged or left out: a Criterion file of one in no sidecar is
    // an older version's id.
    let suites_with_sidecars: std::collections::HashSet<String> = sidecars
        .keys()
        .filter_map(|id| id.split('/').next())
        .map(str::to_owned)
        .collect();
    // Ids Criterion has a folder for, read or not: only the others were run once and live in
    // the sidecars alone.
    let mut sampled = std::collections::HashSet::new();
    // Each benchmark's folder, where Criterion keeps a round's estimates under its baseline.
    let mut folders: BTreeMap<String, PathBuf> = BTreeMap::new();
    for bench_file in files {
        if let Some(id) = std::fs::read_to_string(&bench_file)
            .ok()
            .and_then(|t| serde_json::from_str::<BenchmarkJson>(&t).ok())
        {
            if let Some(folder) = bench_file.parent().and_then(Path::parent) {
                folders.insert(id.full_id.clone(), folder.to_owned());
            }
            sampled.insert(id.full_id);
        }
        match read_measurement(criterion_dir, &bench_file, &sidecars) {
            Ok(m) if which != "new" => run.measurements.push(m),
            Ok(m) => match sidecars.get(&m.full_id) {
                Some(rec) if rec.earlier_run => run.earlier.push(stale(
                    &m.full_id,
                    "from an earlier run of cargo xtask bench than the newest",
                )),
                // Over the sampling budget in its latest run: Criterion's files are older.
                Some(rec) if rec.current && rec.usage.sampled == Some(false) => {}
                Some(rec) if rec.current => {
                    let modified_ms = modified_ms(&bench_file.with_file_name("estimates.json"));
                    match modified_ms.map(|m| rec.written_in_run(m)) {
                        // Timed in rounds: each round's own file is checked (apply_rounds).
                        Some(Err(_))
                            if modified_ms.is_some_and(|m| rec.after_run(m))
                                && !rec.rounds.is_empty() =>
                        {
                            run.measurements.push(m)
                        }
                        Some(Err(why)) => run.stale.push(stale(&m.full_id, why)),
                        _ => run.measurements.push(m),
                    }
                }
                Some(_) => run.stale.push(stale(
                    &m.full_id,
                    "from an earlier run than its suite's latest",
                )),
                None if suites_with_sidecars.contains(&m.suite) => run.stale.push(stale(
                    &m.full_id,
                    "in no run parcost recorded (an older version's id)",
                )),
                None => {
                    run.measurements.push(m);
                }
            },
            Err(why) => run.skipped.push(Skipped {
                what: bench_file.display().to_string(),
                why,
            }),
        }
    }
    if which == "new" {
        for (id, rec) in &sidecars {
            let usage = rec.usage;
            let once = usage.sampled == Some(false) || !sampled.contains(id);
            if rec.earlier_run && !sampled.contains(id) {
                run.earlier.push(stale(
                    id,
                    "from an earlier run of cargo xtask bench than the newest",
                ));
            }
            if !rec.current || !once {
                continue;
            }
            match parse_id(id) {
                Ok((suite, workload, params)) => run.measurements.push(Measurement {
                    suite,
                    workload,
                    params,
                    full_id: id.clone(),
                    time: None,
                    single_run_ns: Some(usage.wall_ns as f64),
                    at_least_ns: None,
                    counted: None,
                    usage: Some(usage),
                    ranks_seen: rec.ranks_seen.clone(),
                    criterion_page: None,
                }),
                Err(why) => run.skipped.push(Skipped {
                    what: format!("sidecar entry {id}"),
                    why,
                }),
            }
        }
    }
    if which == "new" {
        for m in &mut run.measurements {
            if let Some(rec) = sidecars.get(&m.full_id).filter(|r| r.current) {
                apply_rounds(m, rec, folders.get(&m.full_id).map(PathBuf::as_path));
            }
        }
        pool_by_step(&mut run.measurements);
    }
    run.measurements.sort_by(|a, b| a.full_id.cmp(&b.full_id));
    run
}

/// A variant's time from its rounds: each round's figure (Criterion's estimate under the round's
/// baseline, or the median of the harness's runs with their range), and from at least
/// [`crate::model::MIN_ROUNDS`] of them the between-round estimate and interval
/// ([`crate::model::between_rounds`]); from fewer, their geometric mean inside the widest
/// interval. A bound (a hopeless variant stopped) replaces every figure. A round whose
/// Criterion files predate the run is left out.
fn apply_rounds(m: &mut Measurement, rec: &Record, folder: Option<&Path>) {
    if rec.rounds.is_empty() {
        return;
    }
    // A bound stands for a variant stopped in every round it ran in; one measured round is
    // a figure.
    let measured = rec
        .rounds
        .values()
        .any(|r| r.sampled || !r.runs_ns.is_empty());
    if let Some(bound) = rec.rounds.values().filter_map(|r| r.at_least_ns).max()
        && !measured
    {
        m.time = None;
        m.single_run_ns = None;
        m.at_least_ns = Some(bound as f64);
        return;
    }
    let mut figures: Vec<(u32, Estimate, bool)> = Vec::new();
    for (&round, time) in &rec.rounds {
        if time.sampled {
            let Some(file) = folder.map(|f| {
                f.join(parcost::id::round::baseline(round))
                    .join("estimates.json")
            }) else {
                continue;
            };
            let fresh = modified_ms(&file).is_none_or(|m| rec.written_in_run(m).is_ok());
            if let Some(e) = fresh.then(|| read_estimate(&file).ok()).flatten() {
                figures.push((round, e, false));
            }
        } else if let Some((median, fastest, slowest)) = time.of_runs() {
            let e = Estimate::new(median, fastest, slowest);
            figures.push((round, e, time.runs_ns.len() == 1));
        }
    }
    let Some(&(_, latest, _)) = figures.last() else {
        return;
    };
    let mut rounds = Rounds::default();
    for (round, e, _) in &figures {
        rounds.set(*round, e.estimate);
    }
    if let Some(e) = crate::model::between_rounds(rounds) {
        m.time = Some(e);
        m.single_run_ns = None;
    } else if figures.iter().all(|(_, _, single)| *single) {
        m.time = None;
        m.single_run_ns = Some(latest.estimate);
    } else {
        let n = figures.len() as f64;
        let mean = figures.iter().map(|(_, e, _)| e.estimate.ln()).sum::<f64>() / n;
        m.time = Some(Estimate {
            estimate: mean.exp(),
            lower: figures
                .iter()
                .map(|(_, e, _)| e.lower)
                .fold(f64::INFINITY, f64::min),
            upper: figures.iter().map(|(_, e, _)| e.upper).fold(0.0, f64::max),
            rounds,
            pooled: None,
        });
        m.single_run_ns = None;
    }
}

/// When `file` was last written, in ms since the epoch.
fn modified_ms(file: &Path) -> Option<u64> {
    std::fs::metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

/// Criterion's typical value in an `estimates.json`: the slope of a linear sampling, else the
/// mean, with its 95% interval.
fn read_estimate(file: &Path) -> Result<Estimate, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: unreadable: {e}", file.display()))?;
    let estimates: EstimatesJson = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not Criterion's estimates: {e}", file.display()))?;
    let stat = estimates.slope.as_ref().unwrap_or(&estimates.mean);
    let time = Estimate::new(
        stat.point_estimate,
        stat.confidence_interval.lower_bound,
        stat.confidence_interval.upper_bound,
    );
    if !(time.estimate.is_finite() && time.estimate > 0.0 && time.lower <= time.upper) {
        return Err(format!("estimate {time:?} is not a time"));
    }
    Ok(time)
}

fn collect_benchmarks(dir: &Path, which: &str, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 4 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if !path.is_dir()
            || path
                .file_name()
                .is_some_and(|n| n == SIDECAR_DIR || n == "report")
        {
            continue;
        }
        let candidate = path.join(which).join("benchmark.json");
        if candidate.is_file() {
            out.push(candidate);
        } else {
            collect_benchmarks(&path, which, out, depth + 1);
        }
    }
}

/// The kernel surveys `parcost-kernels` writes beside the sidecars: `kernels.<layer>.json`.
const SURVEY_PREFIX: &str = "kernels.";

fn stale(id: &str, why: &str) -> Skipped {
    Skipped {
        what: id.to_owned(),
        why: why.to_owned(),
    }
}

fn load_sidecars(criterion_dir: &Path, run: &mut Run, runs: Runs) -> BTreeMap<String, Record> {
    let mut usage = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(criterion_dir.join(SIDECAR_DIR))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    let mut sidecars = Vec::new();
    for path in files {
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(SURVEY_PREFIX))
        {
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Survey>(&t).map_err(|e| e.to_string()))
            {
                Ok(survey) => run.surveys.push(survey),
                Err(why) => run.skipped.push(Skipped {
                    what: path.display().to_string(),
                    why: format!("not a kernel survey: {why}"),
                }),
            }
            continue;
        }
        match Sidecar::read(&path) {
            Ok(sidecar) => sidecars.push(sidecar),
            Err(e) => run.skipped.push(Skipped {
                what: path.display().to_string(),
                why: e.to_string(),
            }),
        }
    }
    // The newest run of `cargo xtask bench`: its suites share its key. A sidecar without run
    // records predates them, and one of a plain `cargo bench` (each suite process keyed by its
    // own start) is a run of its own: both are judged, as before runs were told apart.
    let newest = sidecars
        .iter()
        .filter_map(|s| {
            s.latest_run()
                .filter(|r| r.shared_key)
                .map(|r| r.started_ms)
        })
        .max();
    for sidecar in sidecars {
        let latest = sidecar.latest_run().copied();
        let included = runs == Runs::Mixed
            || latest.is_none_or(|l| !l.shared_key || Some(l.started_ms) == newest);
        if let Some(info) = latest {
            let at = match run
                .bench_runs
                .iter()
                .position(|r| r.started_ms == info.started_ms)
            {
                Some(at) => at,
                None => {
                    run.bench_runs.push(BenchRun {
                        started_ms: info.started_ms,
                        quick: info.quick,
                        kernels: Default::default(),
                        suites: Default::default(),
                        included,
                    });
                    run.bench_runs.len() - 1
                }
            };
            let bench_run = &mut run.bench_runs[at];
            let suite = match sidecar.layer_name() {
                Some(layer) => format!("{} under {layer}", sidecar.suite),
                None => sidecar.suite.clone(),
            };
            bench_run.suites.insert(suite);
            if let Some(o) = sidecar.openblas.as_ref().filter(|_| sidecar.tag.is_none()) {
                bench_run.kernels.insert(o.core.clone());
            }
        }
        if !included {
            for (id, u) in sidecar.variants {
                usage.insert(
                    id,
                    Record {
                        usage: u,
                        ranks_seen: Vec::new(),
                        current: false,
                        run_started_ms: latest.map(|l| l.started_ms),
                        run_ended_ms: latest.and_then(|l| l.ended_ms),
                        rounds: BTreeMap::new(),
                        earlier_run: true,
                    },
                );
            }
            continue;
        }
        let newer = run
            .machine
            .as_ref()
            .is_none_or(|m| m.created_unix <= sidecar.machine.created_unix);
        if newer {
            run.machine = Some(sidecar.machine.clone());
        }
        // The native layers' sidecars name the OpenBLAS of their references only: the
        // OpenBLAS measured, and its layers, come from the others.
        let layer = sidecar.layer_name().map(str::to_owned);
        let measured_openblas = layer
            .as_deref()
            .is_some_and(parcost::id::layer::is_openblas);
        if let Some(info) = sidecar
            .openblas
            .as_ref()
            .filter(|_| sidecar.tag.is_none() && measured_openblas)
        {
            run.openblas_config
                .get_or_insert_with(|| info.config.clone());
            run.openblas.get_or_insert_with(|| info.clone());
            let layer = info.layer.name().to_owned();
            if !run.layers.contains(&layer) {
                run.layers.push(layer);
            }
        }
        if let Some(info) = latest {
            run.runs.push(SuiteRun {
                suite: sidecar.suite.clone(),
                layer,
                tag: sidecar.tag.clone().or_else(|| {
                    sidecar
                        .matmul_num_threads
                        .map(|b| format!("{}={b}", parcost::layer::MATMUL_THREADS_VAR))
                }),
                info,
            });
        }
        let mut seen = sidecar.ranks_seen;
        let mut rounds = sidecar.rounds;
        for (id, u) in sidecar.variants {
            let ranks_seen = seen.remove(&id).unwrap_or_default();
            let rounds = rounds.remove(&id).unwrap_or_default();
            // A sidecar without runs predates run records: all of it counts as current.
            let current = latest.is_none_or(|l| u.run == Some(l.started_ms));
            usage.insert(
                id,
                Record {
                    ranks_seen,
                    usage: u,
                    current,
                    run_started_ms: latest.map(|l| l.started_ms),
                    run_ended_ms: latest.and_then(|l| l.ended_ms),
                    rounds,
                    earlier_run: false,
                },
            );
        }
    }
    run.bench_runs
        .sort_by_key(|r| std::cmp::Reverse(r.started_ms));
    usage
}

fn read_measurement(
    criterion_dir: &Path,
    bench_file: &Path,
    sidecars: &BTreeMap<String, Record>,
) -> Result<Measurement, String> {
    let text = std::fs::read_to_string(bench_file).map_err(|e| format!("unreadable: {e}"))?;
    let bench: BenchmarkJson =
        serde_json::from_str(&text).map_err(|e| format!("not Criterion's benchmark.json: {e}"))?;
    let time = read_estimate(&bench_file.with_file_name("estimates.json"))?;
    let (suite, workload, params) = parse_id(&bench.full_id)
        .map_err(|e| format!("id {:?} breaks the contract: {e}", bench.full_id))?;
    let counted = bench.throughput.as_ref().and_then(|t| {
        let (kind, &n) = t.iter().next()?;
        let (elements, svd) = (
            suite == parcost::id::THREADS_VS_PROCESSES.name,
            suite == parcost::id::OVERSUBSCRIPTION.name && workload == parcost::id::workload::SVD,
        );
        match kind.as_str() {
            "Bytes" | "BytesDecimal" => Some(Counted::Bytes(n)),
            "Elements" if elements || svd => Some(Counted::Elements(n)),
            "Elements" => Some(Counted::Flop(n)),
            _ => None,
        }
    });
    let page = criterion_dir
        .join(&bench.directory_name)
        .join("report/index.html");
    Ok(Measurement {
        suite,
        workload,
        params,
        usage: sidecars.get(&bench.full_id).map(|r| r.usage),
        ranks_seen: sidecars
            .get(&bench.full_id)
            .map(|r| r.ranks_seen.clone())
            .unwrap_or_default(),
        full_id: bench.full_id,
        time: Some(time),
        single_run_ns: None,
        at_least_ns: None,
        counted,
        criterion_page: page.is_file().then_some(page),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parcost::blas::BlasLayer;

    fn sidecar(layer: Option<&str>, openblas: BlasLayer, matmul: Option<usize>) -> Sidecar {
        let started = 1_700_000_000_000;
        let name = layer.unwrap_or(openblas.name());
        let id =
            format!("oversubscription/matmul/layer={name},n=256,pairs=64/tasks=2,blas_threads=1");
        let usage = Usage {
            wall_ns: 1_000_000,
            cpu_ns: 2_000_000,
            cpu_per_wall: 2.0,
            voluntary_switches: 1,
            involuntary_switches: 1,
            context_switches: 2,
            run: Some(started),
            sampled: Some(false),
            threads: Some(3),
            busy_threads: None,
        };
        Sidecar {
            schema: parcost::meta::SIDECAR_SCHEMA,
            suite: "oversubscription".into(),
            machine: Machine {
                cpu: "test CPU".into(),
                logical_cores: 2,
                physical_cores: 2,
                os: "test".into(),
                rustc: None,
                git_sha: None,
                created_unix: 1,
                cpu_features: None,
                peak: None,
            },
            openblas: Some(BlasInfo {
                config: format!("OpenBLAS 0.3.21 {}", openblas.name()),
                core: "Haswell".into(),
                layer: openblas,
                kernel_source: Default::default(),
                library_core: None,
            }),
            tag: None,
            layer: layer.map(str::to_owned),
            matmul_num_threads: matmul,
            variants: [(id, usage)].into_iter().collect(),
            ranks_seen: BTreeMap::new(),
            rounds: BTreeMap::new(),
            runs: [(
                started,
                RunInfo {
                    started_ms: started,
                    quick: true,
                    noise: None,
                    rounds: 0,
                    noisy_rounds: 0,
                    ended_ms: None,
                    shared_key: true,
                },
            )]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn native_sidecars_name_their_layer_and_leave_openblas_to_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = |token: &str| Sidecar::path(dir.path(), "oversubscription", None, Some(token));
        // An older sidecar (no `layer`), and the native layers' runs, whose OpenBLAS (serial)
        // only computed their references.
        sidecar(None, BlasLayer::Pthreads, None)
            .merge_into(&at("pthreads"))
            .expect("write");
        sidecar(Some("faer"), BlasLayer::Serial, None)
            .merge_into(&at("faer"))
            .expect("write");
        sidecar(Some("matrixmultiply"), BlasLayer::Serial, Some(2))
            .merge_into(&at("matrixmultiply-b2"))
            .expect("write");
        let run = load(dir.path(), "new");
        assert_eq!(run.layers, ["pthreads"], "serial was not measured");
        assert_eq!(
            run.openblas.as_ref().map(|o| o.layer),
            Some(BlasLayer::Pthreads)
        );
        let layers: Vec<(Option<&str>, Option<&str>)> = run
            .runs
            .iter()
            .map(|r| (r.layer.as_deref(), r.tag.as_deref()))
            .collect();
        assert!(layers.contains(&(Some("faer"), None)), "{layers:?}");
        assert!(
            layers.contains(&(Some("matrixmultiply"), Some("MATMUL_NUM_THREADS=2"))),
            "{layers:?}"
        );
        assert_eq!(run.measurements.len(), 3, "one run each, from the sidecars");
        assert!(run.skipped.is_empty(), "{:?}", run.skipped);
    }

    /// Writes `car` as the oversubscription suite's pthreads sidecar under `dir`.
    fn write_pthreads(car: Sidecar, dir: &Path) {
        car.merge_into(&Sidecar::path(
            dir,
            "oversubscription",
            None,
            Some("pthreads"),
        ))
        .expect("write");
    }

    /// `car` as recorded by the run of `cargo xtask bench` that started at `started`.
    fn of_run(mut car: Sidecar, started: u64, quick: bool) -> Sidecar {
        for u in car.variants.values_mut() {
            u.run = Some(started);
        }
        let mut info = *car.runs.values().next().expect("a run");
        info.started_ms = started;
        info.quick = quick;
        car.runs = [(started, info)].into_iter().collect();
        car
    }

    #[test]
    fn a_report_judges_the_newest_run_alone_unless_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = |token: &str| Sidecar::path(dir.path(), "oversubscription", None, Some(token));
        // faer's suite from a quick run of the day before, pthreads' from today's full run.
        let today = 1_700_000_000_000;
        of_run(
            sidecar(Some("faer"), BlasLayer::Serial, None),
            today - 86_400_000,
            true,
        )
        .merge_into(&at("faer"))
        .expect("write");
        of_run(sidecar(None, BlasLayer::Pthreads, None), today, false)
            .merge_into(&at("pthreads"))
            .expect("write");
        let layers = |run: &Run| -> Vec<String> {
            run.measurements
                .iter()
                .map(|m| {
                    m.params
                        .get("layer")
                        .map(ToString::to_string)
                        .unwrap_or_default()
                })
                .collect()
        };
        let newest = load(dir.path(), "new");
        assert_eq!(layers(&newest), ["pthreads"]);
        assert_eq!(newest.earlier.len(), 1, "{:?}", newest.earlier);
        assert_eq!(newest.runs.len(), 1, "the noise of the run judged only");
        let runs: Vec<(bool, bool)> = newest
            .bench_runs
            .iter()
            .map(|r| (r.quick, r.included))
            .collect();
        assert_eq!(runs, [(false, true), (true, false)], "newest first");
        assert!(
            newest.bench_runs[1]
                .suites
                .contains("oversubscription under faer")
        );
        let mixed = load_runs(dir.path(), "new", Runs::Mixed);
        assert_eq!(layers(&mixed), ["faer", "pthreads"]);
        assert!(mixed.earlier.is_empty() && mixed.bench_runs.iter().all(|r| r.included));
        // A plain `cargo bench` keys each suite process by its own start: each is judged.
        let plain = tempfile::tempdir().expect("tempdir");
        let at = |token: &str| Sidecar::path(plain.path(), "oversubscription", None, Some(token));
        for (token, layer, started) in [
            ("faer", Some("faer"), today - 60_000),
            ("pthreads", None, today),
        ] {
            let mut car = of_run(
                sidecar(
                    layer,
                    if layer.is_some() {
                        BlasLayer::Serial
                    } else {
                        BlasLayer::Pthreads
                    },
                    None,
                ),
                started,
                false,
            );
            for info in car.runs.values_mut() {
                info.shared_key = false;
            }
            car.merge_into(&at(token)).expect("write");
        }
        assert_eq!(layers(&load(plain.path(), "new")), ["faer", "pthreads"]);
    }

    #[test]
    fn figures_of_a_run_killed_before_recording_are_not_the_recorded_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut car = sidecar(None, BlasLayer::Pthreads, None);
        let id = car.variants.keys().next().expect("one variant").clone();
        if let Some(u) = car.variants.get_mut(&id) {
            u.sampled = Some(true);
        }
        let started = *car.runs.keys().next().expect("a run");
        if let Some(r) = car.runs.get_mut(&started) {
            r.ended_ms = Some(started + 60_000);
        }
        write_pthreads(car, dir.path());
        // Criterion's files of the variant: written in the run, then by a later run that was
        // killed before it recorded anything.
        let new = dir
            .path()
            .join("oversubscription_matmul")
            .join("cell")
            .join("new");
        std::fs::create_dir_all(&new).expect("mkdir");
        let bench =
            serde_json::json!({"full_id": id, "directory_name": "oversubscription_matmul/cell"});
        std::fs::write(new.join("benchmark.json"), bench.to_string()).expect("write");
        let estimates = new.join("estimates.json");
        std::fs::write(
            &estimates,
            r#"{"mean": {"point_estimate": 1e6, "confidence_interval": {"lower_bound": 9e5, "upper_bound": 1.1e6}}}"#,
        )
        .expect("write");
        let written_at = |ms: u64| {
            let file = std::fs::File::options()
                .write(true)
                .open(&estimates)
                .expect("open");
            file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
                .expect("set the file time");
        };
        written_at(started + 30_000);
        let run = load(dir.path(), "new");
        assert!(
            run.measurements
                .iter()
                .any(|m| m.full_id == id && m.time.is_some()),
            "{:?}",
            run.stale
        );
        written_at(started + 600_000);
        let run = load(dir.path(), "new");
        assert!(
            run.measurements.iter().all(|m| m.full_id != id),
            "not the recorded run's"
        );
        assert!(
            run.stale
                .iter()
                .any(|s| s.what == id && s.why.contains("newer")),
            "{:?}",
            run.stale
        );
    }

    #[test]
    fn a_variant_is_timed_from_its_rounds_and_a_stopped_one_is_a_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut car = sidecar(None, BlasLayer::Pthreads, None);
        let id = car.variants.keys().next().expect("one variant").clone();
        let usage = car.variants[&id];
        let other = id.replace("tasks=2,blas_threads=1", "tasks=1,blas_threads=2");
        let stopped = id.replace("tasks=2,blas_threads=1", "tasks=2,blas_threads=2");
        car.variants.insert(other.clone(), usage);
        car.variants.insert(stopped.clone(), usage);
        let runs = |ns: [u64; 2]| RoundTime {
            runs_ns: ns.to_vec(),
            ..RoundTime::default()
        };
        // Three rounds of two runs: the median of each (the mean of the two), paired by round.
        car.rounds.insert(
            id.clone(),
            [(1, runs([10, 12])), (2, runs([12, 14])), (3, runs([9, 11]))]
                .into_iter()
                .collect(),
        );
        // Measured in round 1, stopped in none after: a figure, not a bound.
        car.rounds
            .insert(other.clone(), [(1, runs([30, 30]))].into_iter().collect());
        car.rounds.insert(
            stopped.clone(),
            [(
                1,
                RoundTime {
                    at_least_ns: Some(500),
                    ..RoundTime::default()
                },
            )]
            .into_iter()
            .collect(),
        );
        write_pthreads(car, dir.path());
        let run = load(dir.path(), "new");
        let get = |want: &str| {
            run.measurements
                .iter()
                .find(|m| m.full_id == want)
                .expect("measured")
        };
        let t = get(&id).time.expect("a time from its rounds");
        let rounds: Vec<(u32, f64)> = t.rounds.iter().collect();
        assert_eq!(rounds, [(1, 11.0), (2, 13.0), (3, 10.0)]);
        let geo = (11.0f64 * 13.0 * 10.0).powf(1.0 / 3.0);
        assert!(
            (t.estimate - geo).abs() < 1e-9 && t.lower < 10.0 && t.upper > 13.0,
            "{t:?}"
        );
        let o = get(&other);
        assert!(
            o.time.is_some_and(|t| (t.estimate - 30.0).abs() < 1e-9),
            "{o:?}"
        );
        assert!(o.at_least_ns.is_none());
        let s = get(&stopped);
        assert!(s.time.is_none() && s.single_run_ns.is_none(), "{s:?}");
        assert_eq!(s.at_least_ns, Some(500.0));
    }
}
