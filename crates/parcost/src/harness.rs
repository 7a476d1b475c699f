//! The frame every suite's bench runs in: Criterion set up for this machine, benchmark ids built
//! by the DESIGN.md contract, each variant checked before it is timed, and its CPU usage written
//! to the run's sidecar.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::rc::Rc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput};

use crate::blas::{BlasInfo, BlasLayer};
use crate::layer::{Layer, Library, MATMUL_THREADS_VAR};
use crate::meta::{
    Extra, Machine, RankSeen, RoundTime, RunInfo, SIDECAR_SCHEMA, Sidecar, Usage, criterion_dir,
};
use crate::noise::{Noise, NoiseProbe};
use crate::topology::Topology;
use crate::workload::Mismatch;

/// A variant whose checked run takes longer than this is recorded once (time and CPU usage in
/// the sidecar) and not sampled: Criterion needs at least ten runs, and the worst oversubscribed
/// cells take tens of seconds each on a 2-core machine.
pub const SAMPLING_BUDGET: Duration = Duration::from_secs(1);

// In the id vocabulary, which the report's plan of rounds reads too (what a round costs).
pub use crate::id::round::{MEASUREMENT_TIME, RUNS_A_ROUND, WARM_UP_TIME};

/// Criterion's samples a variant: its minimum, enough for a 95% interval.
const SAMPLES: u64 = 10;

/// The same budget under Criterion's `--quick`, which is for a rough picture fast.
pub const QUICK_SAMPLING_BUDGET: Duration = Duration::from_millis(500);

/// A variant whose warm run takes longer than this is timed by the harness, in
/// [`RUNS_A_ROUND`] runs, not by Criterion: Criterion needs ten samples whatever their length,
/// and with rounds in fresh processes the spread between rounds, not the samples of one, is
/// what the report's intervals rest on (Kalibera and Jones: spend the time where the variance
/// is). Below it Criterion samples thousands of runs in its measurement time.
pub const HARNESS_TIMED_ABOVE: Duration = Duration::from_millis(20);

/// Two runs of a round further apart than this (the slower over the faster, minus one) get a
/// third, and the round's figure is the median of the three: on the 2-core VMs parcost is
/// sized for, one run in a few is disturbed by 1.3-2x (seen in full runs here: 20.3 and 39.4 ms
/// for one variant's two runs, 20.7 and 21.1 in the next run), and the mean of two would carry
/// half of it into the round, its spread and the comparisons.
pub const RUNS_AGREE_WITHIN: f64 = 0.10;

pub use crate::id::round::HOPELESS_FACTOR;

/// Only a checked run longer than this can be hopeless: a short one costs little, and a first
/// run that starts a thread pool can be many times its warm time.
pub const HOPELESS_ABOVE: Duration = Duration::from_millis(100);

/// What Criterion was asked to do, read from the same arguments it parses, so the harness runs
/// a variant's checked run only for the benchmarks Criterion will run.
#[derive(Debug, Clone)]
pub struct Selection {
    mode: Mode,
    quick: bool,
    filter: Filter,
    measurement_time: Duration,
    /// The full ids this round runs (`PARCOST_ONLY`): the contenders, after the first round.
    only: Option<std::collections::BTreeSet<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Measure,
    /// `--test`: every benchmark once.
    Test,
    /// `--list` or `--ignored`: nothing runs.
    NoRun,
}

#[derive(Debug, Clone)]
enum Filter {
    All,
    Exact(String),
    Regex(regex::Regex),
}

/// Criterion options that take a value (`--name value` or `--name=value`).
const VALUE_OPTIONS: [&str; 19] = [
    "-c",
    "--color",
    "-s",
    "--save-baseline",
    "-b",
    "--baseline",
    "--baseline-lenient",
    "--format",
    "--profile-time",
    "--load-baseline",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--plotting-backend",
    "--output-format",
];

impl Selection {
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Self {
        let mut mode = Mode::Measure;
        let mut exact = false;
        let mut quick = false;
        let mut pattern = None;
        let mut measurement_time = MEASUREMENT_TIME;
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
                _ => (arg.as_str(), None),
            };
            if name == "--measurement-time" {
                let value = inline.or_else(|| it.next());
                // Criterion rejects a bad value itself.
                if let Some(t) = value.and_then(|v| v.parse::<f64>().ok())
                    && t.is_finite()
                    && t > 0.0
                {
                    measurement_time = Duration::from_secs_f64(t);
                }
                continue;
            }
            match arg.as_str() {
                "--test" => mode = Mode::Test,
                "--list" | "--ignored" => mode = Mode::NoRun,
                "--exact" => exact = true,
                "--quick" => quick = true,
                a if VALUE_OPTIONS.contains(&a) => {
                    it.next();
                }
                a if a.starts_with('-') => {}
                _ => pattern = Some(arg),
            }
        }
        let filter = match pattern {
            None => Filter::All,
            Some(p) if exact => Filter::Exact(p),
            // Criterion rejects a bad pattern itself; selecting everything here only costs time.
            Some(p) => regex::Regex::new(&p).map_or(Filter::All, Filter::Regex),
        };
        Self {
            mode,
            quick,
            filter,
            measurement_time,
            only: None,
        }
    }

    /// Runs only the benchmarks named in `ids` (the rounds after the first).
    pub fn only(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        self.only = Some(ids.into_iter().collect());
        self
    }

    /// Criterion's sampling for a variant one run of which took `one_run`: linear sampling
    /// (1, 2, ... 10 runs a sample) takes at least 55 runs, up to twice the measurement time
    /// before Criterion itself turns to flat sampling; flat (10 samples of equal length) keeps
    /// a slow variant near the measurement time. Linear, where it fits, is Criterion's default
    /// and gives the slope estimate.
    pub fn sampling_mode(&self, one_run: Duration) -> SamplingMode {
        let linear_runs = u32::try_from(SAMPLES * (SAMPLES + 1) / 2).unwrap_or(u32::MAX);
        if one_run.saturating_mul(linear_runs) > self.measurement_time {
            SamplingMode::Flat
        } else {
            SamplingMode::Auto
        }
    }

    /// Whether Criterion will run the benchmark with this full id.
    pub fn runs(&self, full_id: &str) -> bool {
        self.mode != Mode::NoRun
            && self.only.as_ref().is_none_or(|o| o.contains(full_id))
            && match &self.filter {
                Filter::All => true,
                Filter::Exact(e) => e == full_id,
                Filter::Regex(r) => r.is_match(full_id),
            }
    }

    /// Criterion's `--quick`: a rough picture fast.
    pub fn is_quick(&self) -> bool {
        self.quick
    }

    /// Criterion's `--test`: every benchmark once, as a smoke test, nothing measured.
    pub fn is_test(&self) -> bool {
        self.mode == Mode::Test
    }

    /// Whether anything will be measured (not `--test`, `--list` or `--ignored`).
    pub fn measures(&self) -> bool {
        self.mode == Mode::Measure
    }

    /// How long one run may take and still be sampled; `None` under `--test`, where every
    /// benchmark runs once whatever its length.
    pub fn sampling_budget(&self) -> Option<Duration> {
        match (self.mode, self.quick) {
            (Mode::Test, _) => None,
            (_, true) => Some(QUICK_SAMPLING_BUDGET),
            (_, false) => Some(SAMPLING_BUDGET),
        }
    }
}

/// The variant of `stopped` (stopped as hopeless) that `p` is at least as oversubscribed as:
/// its instance and variant, at least as many tasks and BLAS threads, more in one.
fn beyond_stopped<'a>(
    p: &crate::id::ParsedId,
    stopped: &'a [crate::id::ParsedId],
) -> Option<&'a crate::id::ParsedId> {
    let cell = |q: &crate::id::ParsedId| {
        let int = |k: &str| q.params.get(k).and_then(crate::id::Value::int);
        int(crate::id::key::TASKS).zip(int(crate::id::key::BLAS_THREADS))
    };
    let (t, b) = cell(p)?;
    stopped.iter().find(|h| {
        crate::id::instance(h, &[]) == crate::id::instance(p, &[])
            && h.params.get(crate::id::key::VARIANT) == p.params.get(crate::id::key::VARIANT)
            && cell(h).is_some_and(|(ht, hb)| t >= ht && b >= hb && (t, b) != (ht, hb))
    })
}

/// Whether a round's runs (sorted, fastest first) disagree beyond [`RUNS_AGREE_WITHIN`]: an
/// even count whose median would be the mean of a disturbed run and an undisturbed one.
fn disagree(sorted: &[Usage]) -> bool {
    sorted.len().is_multiple_of(2)
        && sorted
            .first()
            .zip(sorted.last())
            .is_some_and(|(fast, slow)| {
                slow.wall_ns as f64 > fast.wall_ns as f64 * (1.0 + RUNS_AGREE_WITHIN)
            })
}

/// Under `--quick`, a warm run shorter than this gets a second (and the third when the two
/// [`disagree`]), as in a full run: a disturbance of a few milliseconds is a large share of a
/// short run (faer's task-level n = 128, 477 pairs, 25 ms a run: single runs of 32-36 ms in
/// three rounds of a quick run where a full run's medians were 25-27), and a second run of the
/// quick run's variants under 100 ms costs about 12 s in all.
pub const QUICK_SECOND_RUN_BELOW: Duration = Duration::from_millis(100);

/// The timed runs of one round of a variant the harness times, fastest first, after its
/// checked run `checked` (`again` runs it once more): [`RUNS_A_ROUND`], a third when they
/// [`disagree`]. A quick run takes one of a variant over [`QUICK_SECOND_RUN_BELOW`]: its
/// rounds, not a round's runs, carry the spread (a quick run of three rounds took 326 s of
/// suites with two); but a warm run slower than the cold checked run beyond
/// [`RUNS_AGREE_WITHIN`] was disturbed, and gets a second (and the third when the two
/// disagree): single disturbed runs of 1.5-2x (41.8 ms beside rounds of 26.5) made a quick
/// run's spread between rounds twice a full run's.
fn round_runs(quick: bool, checked: &Usage, again: &mut impl FnMut() -> Usage) -> Vec<Usage> {
    let count = if quick { 1 } else { RUNS_A_ROUND };
    let mut runs: Vec<Usage> = (0..count).map(|_| again()).collect();
    let disturbed =
        |warm: &Usage| warm.wall_ns as f64 > checked.wall_ns as f64 * (1.0 + RUNS_AGREE_WITHIN);
    let short = |warm: &Usage| (warm.wall_ns as u128) < QUICK_SECOND_RUN_BELOW.as_nanos();
    if quick && runs.iter().any(|r| disturbed(r) || short(r)) {
        runs.push(again());
    }
    runs.sort_by_key(|u| u.wall_ns);
    if disagree(&runs) {
        runs.push(again());
        runs.sort_by_key(|u| u.wall_ns);
    }
    runs
}

/// Prints one line naming what went wrong and ends the bench process.
///
/// A suite cannot go on honestly once a variant's result is wrong or its setup failed, and a
/// panic trace would bury the reason.
pub fn fail(suite: &str, message: impl Display) -> ! {
    eprintln!("error: parcost {suite}: {message}");
    std::process::exit(2)
}

pub use crate::id::params;

/// The values of a sweep in ascending order, each once (with P = 1, `{1, P, 2P}` is `{1, 2}`).
pub fn distinct(values: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<usize> = values.into_iter().filter(|&x| x > 0).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// One suite's run: a Criterion instance and the usage records of the variants it measured.
pub struct Suite {
    name: &'static str,
    /// Told apart from the suite's main sidecar: `kernel-<core>` for the kernel sweep.
    sidecar_tag: Option<String>,
    machine: Machine,
    /// This run's key in the sidecar: its start, in ms since the epoch (`PARCOST_RUN`: the
    /// start of the bench whose round this is).
    run: u64,
    /// Whether `run` came from `PARCOST_RUN` (shared by the suites of one `cargo xtask
    /// bench`), not from this process's own start.
    shared_key: bool,
    /// The round this process measures (`PARCOST_ROUND`, 1 when unset).
    round: u32,
    /// Each variant's figure of this round.
    rounds: Rc<RefCell<BTreeMap<String, RoundTime>>>,
    /// The fastest warm run so far of each instance ([`crate::id::instance`]), in ns.
    best: Rc<RefCell<BTreeMap<String, u64>>>,
    /// The variants stopped as hopeless in this process.
    stopped: Rc<RefCell<Vec<crate::id::ParsedId>>>,
    noise: Option<NoiseProbe>,
    criterion: Criterion,
    usage: Rc<RefCell<BTreeMap<String, Usage>>>,
    /// What the processes that ran a variant saw from inside (MPI ranks), by full id.
    ranks_seen: Rc<RefCell<BTreeMap<String, Vec<RankSeen>>>>,
    openblas: Option<BlasInfo>,
    /// The layers this process runs (empty for suites without BLAS).
    layers: Vec<Layer>,
    topology: Topology,
    selection: Rc<Selection>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Suite {
    /// A suite that calls BLAS, under the layers `PARCOST_LAYER` names (by default the
    /// OpenBLAS layer loaded, as it reports itself, and faer): every id carries its layer, and
    /// each layer's variants go to a sidecar of their own. OpenBLAS is loaded whatever runs:
    /// it computes the serial references every layer is checked against.
    pub fn with_blas(name: &'static str) -> Self {
        let info = BlasInfo::loaded().unwrap_or_else(|e| fail(name, e));
        let layers = Library::requested()
            .unwrap_or_else(|e| fail(name, e))
            .into_iter()
            .map(|lib| match lib {
                Library::OpenBlas => Layer::OpenBlas(info.layer),
                Library::Faer => Layer::Faer,
                Library::Matrixmultiply => {
                    let value = std::env::var(MATMUL_THREADS_VAR).ok();
                    let threads = crate::layer::matmul_threads_from(value.as_deref())
                        .unwrap_or_else(|| {
                            fail(
                                name,
                                format!(
                                    "the matrixmultiply layer needs {MATMUL_THREADS_VAR} set (its \
                                     thread count, read once per process, is B of every id)"
                                ),
                            )
                        });
                    Layer::Matrixmultiply { threads }
                }
            })
            .collect();
        let mut suite = Self::new(name, Some(info), None);
        suite.layers = layers;
        suite.announce_layers();
        suite
    }

    /// A part of suite `name` that runs once per OpenBLAS kernel (`OPENBLAS_CORETYPE` set per
    /// process): its sidecar is the kernel's own, so the runs do not overwrite each other.
    pub fn kernel_sweep(name: &'static str) -> Self {
        let info = BlasInfo::loaded().unwrap_or_else(|e| fail(name, e));
        let tag = crate::id::kernel_part(&crate::kernel::token(&info.core));
        Self::new(name, Some(info), Some(tag))
    }

    /// A suite that never calls BLAS.
    pub fn without_blas(name: &'static str) -> Self {
        Self::new(name, None, None)
    }

    fn announce_layers(&self) {
        for layer in &self.layers {
            match layer {
                Layer::OpenBlas(_) => {}
                Layer::Faer => eprintln!(
                    "parcost {}: layer faer: Par::rayon(B) inside the task pool, which has \
                     max(T, B) threads (faer starts none of its own)",
                    self.name
                ),
                Layer::Matrixmultiply { threads } => eprintln!(
                    "parcost {}: layer matrixmultiply: its own pool of {threads} thread(s) \
                     ({MATTHREADS}={:?}), T task threads beside it",
                    self.name,
                    std::env::var(MATMUL_THREADS_VAR).unwrap_or_default(),
                    MATTHREADS = MATMUL_THREADS_VAR
                ),
            }
        }
    }

    fn new(name: &'static str, openblas: Option<BlasInfo>, sidecar_tag: Option<String>) -> Self {
        let topology = Topology::detect();
        let mut selection = Selection::from_args(std::env::args().skip(1));
        if let Some(path) = std::env::var_os(crate::id::round::ONLY_VAR) {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                fail(
                    name,
                    format!(
                        "{} names {}, which cannot be read ({e}): rerun `cargo xtask bench`",
                        crate::id::round::ONLY_VAR,
                        std::path::Path::new(&path).display()
                    ),
                )
            });
            selection = selection.only(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        let from_env = |var: &str| {
            std::env::var(var).ok().map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| fail(name, format!("{var}={v:?} is not a positive integer")))
            })
        };
        let shared = from_env(crate::id::round::RUN_VAR);
        let shared_key = shared.is_some();
        let run = shared.unwrap_or_else(crate::meta::now_ms);
        let round = from_env(crate::id::round::ROUND_VAR)
            .map_or(1, |r| u32::try_from(r).unwrap_or(u32::MAX));
        // Before anything runs: the clock and FMA rate of a quiet machine, in a run's first
        // round (the later ones keep it: Sidecar::merge_into).
        let machine = if round > 1 {
            Machine::without_peak()
        } else {
            Machine::detect()
        };
        // A smoke test (`--test`) or a listing measures nothing: no calibration either.
        let noise = selection
            .measures()
            .then(|| NoiseProbe::start(topology.logical));
        // Sized for a 2-core machine: a full run of every suite and layer within 20 minutes.
        // Command-line flags (`--quick`, `--sample-size`, `--nresamples`, ...) override these.
        // Without its rayon feature Criterion bootstraps on one thread: 10k resamples (not 100k)
        // keep that to a few hundredths of a second a benchmark, and the 95% intervals are as
        // stable.
        let criterion = Criterion::default()
            .nresamples(10_000)
            .sample_size(SAMPLES as usize)
            .warm_up_time(WARM_UP_TIME)
            .measurement_time(MEASUREMENT_TIME)
            .configure_from_args();
        match &openblas {
            Some(info) => eprintln!(
                "parcost {name}: OpenBLAS layer {} ({}), kernel {} (chosen by {}{}), {} logical / \
                 {} physical cores",
                info.layer,
                info.config,
                info.core,
                info.kernel_source.name(),
                info.library_core
                    .as_ref()
                    .filter(|c| !crate::kernel::same(c, &info.core))
                    .map(|c| format!("; OpenBLAS itself chooses {c}"))
                    .unwrap_or_default(),
                topology.logical,
                topology.physical
            ),
            None => eprintln!(
                "parcost {name}: {} logical / {} physical cores",
                topology.logical, topology.physical
            ),
        }
        Self {
            name,
            sidecar_tag,
            machine,
            run,
            shared_key,
            round,
            rounds: Rc::default(),
            best: Rc::default(),
            stopped: Rc::default(),
            noise,
            criterion,
            layers: openblas
                .as_ref()
                .map(|i| vec![Layer::OpenBlas(i.layer)])
                .unwrap_or_default(),
            usage: Rc::default(),
            ranks_seen: Rc::default(),
            openblas,
            topology,
            selection: Rc::new(selection),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The OpenBLAS layer this process loaded (`None` for suites without BLAS).
    pub fn layer(&self) -> Option<BlasLayer> {
        self.openblas.as_ref().map(|i| i.layer)
    }

    /// The layers this process runs, in order: OpenBLAS's (when asked for), then the native
    /// ones.
    pub fn layers(&self) -> Vec<Layer> {
        self.layers.clone()
    }

    /// `P`: the logical cores online.
    pub fn logical_cores(&self) -> usize {
        self.topology.logical
    }

    /// The OpenBLAS kernel running (`None` for suites without BLAS).
    pub fn kernel(&self) -> Option<&str> {
        self.openblas.as_ref().map(|i| i.core.as_str())
    }

    pub fn physical_cores(&self) -> usize {
        self.topology.physical
    }

    /// Whether Criterion runs in `--quick` mode (suites leave out their largest sizes then).
    pub fn is_quick(&self) -> bool {
        self.selection.is_quick()
    }

    /// Whether Criterion will run the benchmark `<suite>/<id>` (a suite that must set up
    /// something costly for a benchmark, an MPI job say, asks first).
    pub fn runs(&self, id: &str) -> bool {
        self.selection.runs(&format!("{}/{id}", self.name))
    }

    /// A Criterion group named `<suite>/<workload>`.
    pub fn group(&mut self, workload: &str) -> Group<'_> {
        let name = format!("{}/{workload}", self.name);
        Group {
            suite: self.name,
            inner: self.criterion.benchmark_group(name.clone()),
            name,
            usage: Rc::clone(&self.usage),
            ranks_seen: Rc::clone(&self.ranks_seen),
            selection: Rc::clone(&self.selection),
            rounds: Rc::clone(&self.rounds),
            best: Rc::clone(&self.best),
            stopped: Rc::clone(&self.stopped),
            logical: self.topology.logical,
        }
    }

    /// The wall time of a variant's recorded run in this process (the median of its timed
    /// runs, or the checked run of one Criterion sampled), if it ran here: for a plan that
    /// drops what an earlier variant already decided.
    pub fn wall_of(&self, full_id: &str) -> Option<Duration> {
        if !self.selection.measures() {
            return None;
        }
        self.usage
            .borrow()
            .get(full_id)
            .map(|u| Duration::from_nanos(u.wall_ns))
    }

    /// Tells the user why a part of the suite does not run on this machine.
    pub fn skip(&self, what: &str, why: &str) {
        eprintln!("parcost {}: skipped {what}: {why}", self.name);
    }

    /// Ends the run: Criterion's summary, then the sidecar with every variant's CPU usage
    /// (not after `--test`, which measures nothing).
    pub fn finish(mut self) {
        self.criterion.final_summary();
        let noise = self.noise.take().and_then(NoiseProbe::finish);
        if let Some(n) = noise.filter(Noise::flagged) {
            eprintln!(
                "parcost {}: the machine was noisy during this run (capacity {:.2} then {:.2} \
                 on {} threads, {:.0}% foreign load, {:.0}% steal): rerun it with `cargo xtask \
                 bench --suite {}`",
                self.name,
                n.before.capacity,
                n.after.capacity,
                n.before.threads,
                100.0 * n.foreign_load,
                100.0 * n.steal,
                self.name
            );
        }
        let variants = std::mem::take(&mut *self.usage.borrow_mut());
        let mut ranks_seen = std::mem::take(&mut *self.ranks_seen.borrow_mut());
        let mut rounds = std::mem::take(&mut *self.rounds.borrow_mut());
        if variants.is_empty() || self.selection.is_test() {
            return;
        }
        // One sidecar a layer: each is one run of one layer, as the report reads them.
        let mut by_layer: BTreeMap<Option<String>, BTreeMap<String, Usage>> = BTreeMap::new();
        for (id, mut usage) in variants {
            usage.run = Some(self.run);
            by_layer
                .entry(self.layer_of(&id).map(str::to_owned))
                .or_default()
                .insert(id, usage);
        }
        let run = RunInfo {
            shared_key: self.shared_key,
            ..RunInfo::of_round(self.run, self.selection.is_quick(), noise, self.round)
        };
        for (name, variants) in by_layer {
            let layer = name
                .as_deref()
                .and_then(|n| self.layers.iter().copied().find(|l| l.name() == n));
            let token = layer.map(Layer::sidecar_token).or(name.clone());
            let path = Sidecar::path(
                &criterion_dir(),
                self.name,
                self.sidecar_tag.as_deref(),
                token.as_deref(),
            );
            let sidecar = Sidecar {
                schema: SIDECAR_SCHEMA,
                suite: self.name.to_owned(),
                machine: self.machine.clone(),
                openblas: self.openblas.clone(),
                tag: self.sidecar_tag.clone(),
                layer: name,
                matmul_num_threads: match layer {
                    Some(Layer::Matrixmultiply { threads }) => Some(threads),
                    _ => None,
                },
                ranks_seen: variants
                    .keys()
                    .filter_map(|id| Some((id.clone(), ranks_seen.remove(id)?)))
                    .collect(),
                rounds: variants
                    .keys()
                    .filter_map(|id| {
                        let time = rounds.remove(id)?;
                        Some((id.clone(), [(self.round, time)].into_iter().collect()))
                    })
                    .collect(),
                variants,
                runs: [(self.run, run)].into_iter().collect(),
            };
            if let Err(e) = sidecar.merge_into(&path) {
                fail(self.name, e);
            }
        }
    }

    /// The layer a variant ran under: its id's `layer=`, else the OpenBLAS layer (`None`
    /// for suites without BLAS).
    fn layer_of<'s>(&'s self, full_id: &'s str) -> Option<&'s str> {
        self.openblas.as_ref()?;
        let named = full_id
            .split(['/', ',', ' '])
            .find_map(|t| t.strip_prefix("layer="));
        named.or_else(|| self.layer().map(BlasLayer::name))
    }
}

/// A Criterion group whose benchmarks are checked before they are timed.
pub struct Group<'a> {
    suite: &'static str,
    name: String,
    inner: BenchmarkGroup<'a, WallTime>,
    usage: Rc<RefCell<BTreeMap<String, Usage>>>,
    ranks_seen: Rc<RefCell<BTreeMap<String, Vec<RankSeen>>>>,
    selection: Rc<Selection>,
    rounds: Rc<RefCell<BTreeMap<String, RoundTime>>>,
    best: Rc<RefCell<BTreeMap<String, u64>>>,
    stopped: Rc<RefCell<Vec<crate::id::ParsedId>>>,
    logical: usize,
}

impl std::fmt::Debug for Group<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> Group<'a> {
    /// Whether this process runs the benchmark `<suite>/<workload>/<id>` of this group (a state
    /// that is costly to set up, worker processes say, is built only for one that runs).
    pub fn runs(&self, id: &str) -> bool {
        self.selection.runs(&format!("{}/{id}", self.name))
    }

    /// Criterion's group, for its other settings (sample size, sampling mode).
    pub fn criterion(&mut self) -> &mut BenchmarkGroup<'a, WallTime> {
        &mut self.inner
    }

    pub fn throughput(&mut self, throughput: Throughput) -> &mut Self {
        self.inner.throughput(throughput);
        self
    }

    /// Benchmarks `run` on `state` under the id `<suite>/<workload>/<id>`.
    ///
    /// If Criterion will run it, `run` first goes once outside the timing with its CPU usage
    /// recorded, and `verify` must accept the state: a mismatch ends the suite with the id and
    /// the first wrong value. A variant slower than [`SAMPLING_BUDGET`] stops there (the sidecar
    /// keeps that one run), except under `--test`.
    pub fn bench<S>(
        &mut self,
        id: &str,
        state: S,
        run: impl FnMut(&mut S),
        verify: impl FnMut(&S) -> Result<(), Mismatch>,
    ) {
        self.bench_with_workers(id, state, run, verify, |_| None);
    }

    /// [`Group::bench`] for a state that keeps worker processes alive across runs:
    /// `worker_cpu` reads their CPU time so far, which `getrusage` of this process cannot see
    /// until they are reaped, and their share of one run is added to its CPU usage.
    pub fn bench_with_workers<S>(
        &mut self,
        id: &str,
        state: S,
        run: impl FnMut(&mut S),
        verify: impl FnMut(&S) -> Result<(), Mismatch>,
        worker_cpu: impl Fn(&S) -> Option<Duration>,
    ) {
        self.bench_with_processes(id, state, run, verify, |s: &mut S| {
            worker_cpu(s).map(|cpu| Extra {
                cpu,
                ..Extra::default()
            })
        });
    }

    /// [`Group::bench`] for work done by other processes (MPI ranks, on other hosts too):
    /// `others` reads their CPU time and context switches so far (it may ask them), and their
    /// share of one run is added to its usage.
    pub fn bench_with_processes<S>(
        &mut self,
        id: &str,
        mut state: S,
        mut run: impl FnMut(&mut S),
        mut verify: impl FnMut(&S) -> Result<(), Mismatch>,
        mut others: impl FnMut(&mut S) -> Option<Extra>,
    ) {
        let full_id = format!("{}/{id}", self.name);
        if !self.selection.runs(&full_id) || self.beyond_a_stopped_one(&full_id) {
            return;
        }
        let mut measure = |state: &mut S| {
            let before = others(state);
            let ((), used) = Usage::measure(|| run(state));
            let extra = others(state)
                .zip(before)
                .map_or(Extra::default(), |(a, b)| a.since(b));
            used.with_extra(extra)
        };
        let checked = measure(&mut state);
        if let Err(e) = verify(&state) {
            fail(self.suite, format!("{full_id}: result check failed: {e}"));
        }
        if self.timed_here(&full_id, checked, || measure(&mut state)) {
            return;
        }
        self.inner
            .bench_function(id, |b| b.iter(|| run(std::hint::black_box(&mut state))));
    }

    /// Records one run timed outside Criterion (an MPI job's start-up, which cannot be repeated
    /// inside its loop) under `<suite>/<workload>/<id>`: it goes to the sidecar as a variant over
    /// the sampling budget does, one run without an interval, with the usual line.
    pub fn record_once(&mut self, id: &str, mut usage: Usage, what: &str) {
        let full_id = format!("{}/{id}", self.name);
        if !self.selection.runs(&full_id) {
            return;
        }
        eprintln!(
            "parcost {}: {full_id}: one run took {:.3} s ({what}): recorded once in the sidecar, \
             not sampled",
            self.suite,
            Duration::from_nanos(usage.wall_ns).as_secs_f64()
        );
        eprintln!("{}", crate::id::event::timed_by_harness(&full_id));
        usage.sampled = Some(false);
        self.rounds.borrow_mut().insert(
            full_id.clone(),
            RoundTime {
                runs_ns: vec![usage.wall_ns],
                ..RoundTime::default()
            },
        );
        self.usage.borrow_mut().insert(full_id, usage);
    }

    /// Keeps what the processes that ran `<suite>/<workload>/<id>` saw from inside (MPI ranks:
    /// their CPUs and BLAS threads) beside its usage in the sidecar, if this run recorded it.
    pub fn ranks_seen(&mut self, id: &str, seen: &[RankSeen]) {
        let full_id = format!("{}/{id}", self.name);
        if self.usage.borrow().contains_key(&full_id) {
            self.ranks_seen.borrow_mut().insert(full_id, seen.to_vec());
        }
    }

    /// Benchmarks a routine that consumes its input (LAPACK overwrites the matrix it factors):
    /// `setup` makes a fresh input outside the timed region, and the output `run` returns is
    /// dropped outside it too, so only the routine is timed. Checked and budgeted as
    /// [`Group::bench`].
    pub fn bench_batched<I, O>(
        &mut self,
        id: &str,
        mut setup: impl FnMut() -> I,
        mut run: impl FnMut(I) -> O,
        mut verify: impl FnMut(&O) -> Result<(), Mismatch>,
    ) {
        let full_id = format!("{}/{id}", self.name);
        if !self.selection.runs(&full_id) || self.beyond_a_stopped_one(&full_id) {
            return;
        }
        let input = setup();
        let (out, checked) = Usage::measure(|| run(input));
        if let Err(e) = verify(&out) {
            fail(self.suite, format!("{full_id}: result check failed: {e}"));
        }
        drop(out);
        let timed = self.timed_here(&full_id, checked, || {
            let input = setup();
            let (out, used) = Usage::measure(|| run(input));
            drop(out);
            used
        });
        if timed {
            return;
        }
        self.inner.bench_function(id, |b| {
            b.iter_batched(&mut setup, &mut run, BatchSize::LargeInput);
        });
    }

    /// Whether `full_id` is at least as oversubscribed as a variant stopped as hopeless in this
    /// process (its instance and variant, at least as many tasks and BLAS threads, more in
    /// one): it would be stopped too, after a checked run that only gets longer (26 s for one
    /// such cell of a full run here, the most oversubscribed SVDs under OpenMP). Not run, and
    /// said so in one line; it has no figure.
    fn beyond_a_stopped_one(&self, full_id: &str) -> bool {
        let Ok(p) = crate::id::parse(full_id) else {
            return false;
        };
        let stopped = self.stopped.borrow();
        let Some(by) = beyond_stopped(&p, &stopped) else {
            return false;
        };
        eprintln!(
            "parcost {}: {full_id}: not run: at least as oversubscribed as {}, which was stopped \
             as hopeless",
            self.suite,
            [crate::id::key::TASKS, crate::id::key::BLAS_THREADS]
                .iter()
                .filter_map(|k| Some(format!("{k}={}", by.params.get(*k)?)))
                .collect::<Vec<_>>()
                .join(",")
        );
        true
    }

    /// After a variant's checked run (`checked`): decides who times it this round, records its
    /// usage and round figure, and says whether it is done (true) or Criterion samples it next.
    /// `again` runs it once more, measured.
    ///
    /// - hopeless (its checked run over [`HOPELESS_ABOVE`] and [`HOPELESS_FACTOR`] times the
    ///   best of its instance so far, and not a default): stopped, recorded as a bound;
    /// - over the sampling budget: one warm run is its figure (the checked one when that was
    ///   5x the budget);
    /// - over [`HARNESS_TIMED_ABOVE`]: [`RUNS_A_ROUND`] runs, timed here;
    /// - else Criterion samples it (and under `--test` Criterion runs everything once).
    fn timed_here(
        &mut self,
        full_id: &str,
        checked: Usage,
        mut again: impl FnMut() -> Usage,
    ) -> bool {
        let instance = crate::id::parse(full_id).ok().map(|p| {
            (
                crate::id::instance(&p, &[]),
                crate::id::is_default(&p, self.logical),
            )
        });
        let Some(budget) = self.selection.sampling_budget() else {
            self.usage.borrow_mut().insert(
                full_id.to_owned(),
                Usage {
                    sampled: Some(true),
                    ..checked
                },
            );
            return false;
        };
        let took = Duration::from_nanos(checked.wall_ns);
        // Only the first round stops a variant: a later one measures contenders only.
        let best_so_far = instance
            .as_ref()
            .filter(|(_, default)| !default && self.selection.only.is_none())
            .and_then(|(i, _)| self.best.borrow().get(i).copied());
        if let Some(best) = best_so_far
            && took > HOPELESS_ABOVE
            && checked.wall_ns > HOPELESS_FACTOR * best
        {
            let at_least = HOPELESS_FACTOR * best;
            eprintln!(
                "parcost {}: {full_id}: its checked run took {:.3} s, over {HOPELESS_FACTOR}x the \
                 best of its instance so far ({:.3} s): stopped there, recorded as at least \
                 {:.3} s",
                self.suite,
                took.as_secs_f64(),
                Duration::from_nanos(best).as_secs_f64(),
                Duration::from_nanos(at_least).as_secs_f64()
            );
            eprintln!("{}", crate::id::event::timed_by_harness(full_id));
            if let Ok(parsed) = crate::id::parse(full_id) {
                self.stopped.borrow_mut().push(parsed);
            }
            self.record(
                full_id,
                Usage {
                    sampled: Some(false),
                    ..checked
                },
                RoundTime {
                    at_least_ns: Some(at_least),
                    ..RoundTime::default()
                },
            );
            return true;
        }
        let mut used = checked;
        if took > budget && took < 5 * budget {
            eprintln!(
                "parcost {}: {full_id}: first run {:.2} s, over the {:.1} s budget; timing a warm \
                 run",
                self.suite,
                took.as_secs_f64(),
                budget.as_secs_f64()
            );
            used = again();
        }
        let warm = Duration::from_nanos(used.wall_ns);
        let runs: Vec<Usage> = if warm > budget {
            eprintln!(
                "parcost {}: {full_id}: one run took {:.2} s, over the {:.1} s sampling budget: \
                 recorded once in the sidecar, not sampled",
                self.suite,
                warm.as_secs_f64(),
                budget.as_secs_f64()
            );
            eprintln!("{}", crate::id::event::timed_by_harness(full_id));
            vec![used]
        } else if warm > HARNESS_TIMED_ABOVE {
            eprintln!("{}", crate::id::event::timed_by_harness(full_id));
            round_runs(self.selection.is_quick(), &used, &mut again)
        } else {
            // One warm run for the record (a checked run can be many times a warm one: a
            // fresh mapping's first touch), which later plans read (Suite::wall_of).
            let used = again();
            if let Some((instance, _)) = &instance {
                self.note_best(instance, used.wall_ns);
            }
            self.usage.borrow_mut().insert(
                full_id.to_owned(),
                Usage {
                    sampled: Some(true),
                    ..used
                },
            );
            self.rounds.borrow_mut().insert(
                full_id.to_owned(),
                RoundTime {
                    sampled: true,
                    ..RoundTime::default()
                },
            );
            let mode = self.selection.sampling_mode(warm);
            self.inner.sampling_mode(mode);
            return false;
        };
        let median = runs[runs.len() / 2];
        if let Some((instance, _)) = &instance {
            self.note_best(instance, runs[0].wall_ns);
        }
        self.record(
            full_id,
            Usage {
                sampled: Some(false),
                ..median
            },
            RoundTime {
                runs_ns: runs.iter().map(|u| u.wall_ns).collect(),
                ..RoundTime::default()
            },
        );
        true
    }

    fn record(&mut self, full_id: &str, usage: Usage, time: RoundTime) {
        self.usage.borrow_mut().insert(full_id.to_owned(), usage);
        self.rounds.borrow_mut().insert(full_id.to_owned(), time);
    }

    fn note_best(&mut self, instance: &str, wall_ns: u64) {
        let mut best = self.best.borrow_mut();
        let b = best.entry(instance.to_owned()).or_insert(wall_ns);
        *b = (*b).min(wall_ns);
    }

    pub fn finish(self) {
        self.inner.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_more_than_ten_percent_apart_disagree() {
        let runs = |ms: &[u64]| -> Vec<Usage> {
            ms.iter()
                .map(|&m| Usage::of_wall(Duration::from_millis(m), crate::meta::Extra::default()))
                .collect()
        };
        // 20.3 and 39.4 ms (seen here): a third run decides.
        assert!(disagree(&runs(&[20, 39])));
        assert!(!disagree(&runs(&[100, 109])));
        // Three runs have a median that one disturbed run does not move; one run is all there is.
        assert!(!disagree(&runs(&[20, 21, 39])));
        assert!(!disagree(&runs(&[20])));
    }

    #[test]
    fn a_variant_beyond_one_stopped_as_hopeless_is_not_run() {
        let id = |cell: &str| {
            crate::id::parse(&format!(
                "oversubscription/svd/layer=openmp,n=256,matrices=16/{cell}"
            ))
            .expect("an id")
        };
        let stopped = [id("tasks=4,blas_threads=2")];
        // More tasks, more threads, or both: stopped too. Fewer of either: run.
        for beyond in [
            "tasks=8,blas_threads=2",
            "tasks=4,blas_threads=4",
            "tasks=8,blas_threads=4",
        ] {
            assert!(beyond_stopped(&id(beyond), &stopped).is_some(), "{beyond}");
        }
        for not in [
            "tasks=4,blas_threads=2",
            "tasks=2,blas_threads=4",
            "tasks=8,blas_threads=1",
        ] {
            assert!(beyond_stopped(&id(not), &stopped).is_none(), "{not}");
        }
        // Another instance, or another layer: its own.
        let other = crate::id::parse(
            "oversubscription/svd/layer=pthreads,n=256,matrices=16/tasks=8,blas_threads=4",
        )
        .expect("an id");
        assert!(beyond_stopped(&other, &stopped).is_none());
    }

    #[test]
    fn a_quick_round_times_again_after_a_short_or_disturbed_run() {
        let ms = |m: u64| Usage::of_wall(Duration::from_millis(m), crate::meta::Extra::default());
        let walls = |runs: Vec<Usage>| {
            runs.iter()
                .map(|u| u.wall_ns / 1_000_000)
                .collect::<Vec<_>>()
        };
        fn scripted(list: &[u64]) -> impl FnMut() -> Usage + '_ {
            let mut next = list.iter();
            move || {
                let m = next.next().expect("no more runs scripted");
                Usage::of_wall(Duration::from_millis(*m), crate::meta::Extra::default())
            }
        }
        // Quick, a warm run of over 0.1 s like its checked one: that run is the round.
        assert_eq!(
            walls(round_runs(true, &ms(300), &mut scripted(&[270]))),
            [270]
        );
        // Quick, a short warm run like its checked one: a second, as in a full round.
        assert_eq!(
            walls(round_runs(true, &ms(30), &mut scripted(&[27, 28]))),
            [27, 28]
        );
        // Quick, a warm run of 41.8 after a checked 30 (seen: 41.8 beside rounds of 26.5): a
        // second, 26, disagrees, and the third decides: the median of three.
        assert_eq!(
            walls(round_runs(true, &ms(30), &mut scripted(&[42, 26, 27]))),
            [26, 27, 42]
        );
        // A full round: two runs, a third only when they disagree.
        assert_eq!(
            walls(round_runs(false, &ms(30), &mut scripted(&[27, 28]))),
            [27, 28]
        );
    }

    #[test]
    fn params_render_as_the_id_contract_says() {
        assert_eq!(
            params(&[("layer", &"openmp"), ("n", &256), ("pairs", &64)]),
            "layer=openmp,n=256,pairs=64"
        );
    }
    fn selection(args: &str) -> Selection {
        Selection::from_args(args.split_whitespace().map(String::from))
    }

    #[test]
    fn selection_follows_criterion_arguments() {
        let id = "task-level/matmul/layer=openmp,n=32,pairs=1/variant=naive";
        assert!(selection("--bench").runs(id));
        assert!(selection("--bench --save-baseline naive --quick").runs(id));
        assert!(!selection("--bench --save-baseline x svd").runs(id));
        assert!(selection("--bench n=32").runs(id));
        assert!(!selection("--bench --exact n=32").runs(id));
        assert!(selection(&format!("--exact {id}")).runs(id));
        assert!(!selection("--list").runs(id));
        assert_eq!(selection("--test --quick").sampling_budget(), None);
        assert!(selection("--test").is_test() && !selection("--quick").is_test());
        assert_eq!(
            selection("--quick").sampling_budget(),
            Some(QUICK_SAMPLING_BUDGET)
        );
        assert_eq!(selection("").sampling_budget(), Some(SAMPLING_BUDGET));
        assert!(
            selection("--sample-size 10 matmul").runs(id),
            "10 is the option's value"
        );
        assert!(
            selection("--measurement-time 1 matmul").runs(id),
            "1 is the option's value"
        );
    }

    #[test]
    fn slow_variants_are_sampled_flat() {
        let ms = Duration::from_millis;
        let default = selection("");
        assert!(matches!(default.sampling_mode(ms(3)), SamplingMode::Auto));
        assert!(
            matches!(default.sampling_mode(ms(25)), SamplingMode::Flat),
            "55 runs of 25 ms do not fit in the measurement time"
        );
        let longer = selection("--measurement-time 2");
        assert!(matches!(longer.sampling_mode(ms(25)), SamplingMode::Auto));
        assert!(matches!(
            selection("--measurement-time=2").sampling_mode(ms(25)),
            SamplingMode::Auto
        ));
    }

    #[test]
    fn sweeps_are_distinct_and_sorted() {
        assert_eq!(distinct([1, 1, 2]), vec![1, 2]);
        assert_eq!(distinct([4, 1, 2, 8, 0]), vec![1, 2, 4, 8]);
    }
}
