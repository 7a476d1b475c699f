//! The benchmark-id vocabulary, defined once: the suites, the keys of their parameters, and how
//! an id is built and read back. Suites build their ids with it, the report parses them with
//! it, and `cargo xtask` runs the suites it lists.
//!
//! An id is `<suite>/<workload>/<key=value,...>/<key=value,...>`: every parameter of a
//! measurement is a `key=value` token (tokens separated by `/`, `,` or spaces), values are
//! plain integers or lower-case names with `-`.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde::{Deserialize, Serialize};

/// One suite: a crate under `crates/` whose bench has the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteInfo {
    pub name: &'static str,
    /// The tutorial's cost it measures (0: the BLAS kernel itself, a part of blas-tuning).
    pub cost: u8,
    /// Whether it calls BLAS, and so runs once per OpenBLAS layer (and kernel).
    pub uses_blas: bool,
    /// Whether it also runs on the Rust-native libraries (faer, matrixmultiply); MPI ranks run
    /// OpenBLAS only.
    pub native_layers: bool,
    /// The keys its grid varies within a workload instance (the configurations compared);
    /// the other keys of an id name the instance.
    pub grid: &'static [&'static str],
    /// What it asks, in one line.
    pub question: &'static str,
    /// How to read its figures, in the report.
    pub about: &'static str,
}

pub const OVERSUBSCRIPTION: SuiteInfo = SuiteInfo {
    name: "oversubscription",
    cost: 1,
    uses_blas: true,
    native_layers: true,
    grid: &[key::TASKS, key::BLAS_THREADS],
    question: "What happens when task threads each call a multithreaded BLAS op?",
    about: "Cost 1: batches of independent BLAS calls on T task threads, each calling BLAS at B \
            threads. Cells show how much slower each cell was than the best; the best is outlined.",
};

pub const BLAS_TUNING: SuiteInfo = SuiteInfo {
    name: "blas-tuning",
    cost: 2,
    uses_blas: true,
    native_layers: true,
    grid: &[key::BLAS_THREADS],
    question: "Is the default BLAS thread count the best one, per operation? And the kernel?",
    about: "Cost 2: one large operation at B BLAS threads; the physical core count and one less \
            are marked. FLOP counted: 2n^3 for a product, n^3/3 for a Cholesky factorisation, \
            2n^3/3 + 2n^2 for a solve; the SVD has no standard count.",
};

pub const TASK_LEVEL: SuiteInfo = SuiteInfo {
    name: "task-level",
    cost: 4,
    uses_blas: true,
    native_layers: true,
    grid: &[key::VARIANT, key::TASKS, key::BLAS_THREADS],
    question: "At which matrix size does BLAS at 1 thread + a task pool stop beating BLAS threading?",
    about: "Cost 4: a batch of independent products at each size, about 2 GFLOP and at least 4P \
            products (more work at the largest sizes, stated below), run four ways: serial (1x1), \
            op-level (1xP, the library default), task-level (Px1), naive (PxP). Rates are \
            GFLOP/s of the whole batch.",
};

pub const THREADS_VS_PROCESSES: SuiteInfo = SuiteInfo {
    name: "threads-vs-processes",
    cost: 3,
    uses_blas: false,
    native_layers: false,
    grid: &[key::VARIANT, key::WORKERS],
    question: "Threads share the array for free; what do processes pay to get it?",
    about: "Cost 3: element-wise work over 2^25 values on threads (shared memory) and on worker \
            processes (pipes or shared memory). Bars are speedups over serial.",
};

pub const ARRAY_SHARING: SuiteInfo = SuiteInfo {
    name: "array-sharing",
    cost: 5,
    uses_blas: false,
    native_layers: false,
    grid: &[key::TRANSPORT, key::VARIANT, key::POOL],
    question: "What does sending an array to another process cost, reading one it shares, and \
               asking the process that holds it?",
    about: "Cost 5: sending an array a worker has not seen (end to end, until it answers with a \
            sum that proves it read all of it), reading one that already lives in shared \
            memory, by each transport, against threads and memcpy; and leaving it with a server \
            process that answers small requests about it (remote), against a thread.",
};

pub const RANKS_X_THREADS: SuiteInfo = SuiteInfo {
    name: "ranks-x-threads",
    cost: 1,
    uses_blas: true,
    native_layers: false,
    grid: &[key::RANKS, key::BLAS_THREADS, key::VARIANT],
    question: "Across MPI: how many ranks, and how many BLAS threads in each?",
    about: "Cost 1 across MPI: the oversubscription batch (64 products and 16 SVDs of 256 x 256) \
            split across R MPI ranks (OpenMPI, ranks not bound), each calling BLAS at B threads; \
            one job a cell, driven from the bench. batch: every rank makes its own inputs, \
            computes, and rank 0 reduces a checksum; scatter: rank 0 scatters the inputs and \
            gathers the results as well, so scatter over batch is what moving the arrays costs. \
            Under --quick the batch is a quarter (16 products, 4 SVDs), as its ids say. Beside \
            the grid, variant=default is what a user who sets nothing runs: mpirun -np P with \
            OpenMPI's own binding (one core a rank when P <= 2) and OpenBLAS's own thread count \
            in each rank. Cells show how much slower each was than the best; start-up is mpirun \
            to the first answer, one run a cell.",
};

/// Every suite, in the order they run and are reported.
pub const SUITES: [SuiteInfo; 6] = [
    OVERSUBSCRIPTION,
    BLAS_TUNING,
    TASK_LEVEL,
    THREADS_VS_PROCESSES,
    ARRAY_SHARING,
    RANKS_X_THREADS,
];

/// The suite named `name`.
pub fn suite(name: &str) -> Option<&'static SuiteInfo> {
    SUITES.iter().find(|s| s.name == name)
}

/// The keys of id parameters used across suites.
pub mod key {
    /// The linear-algebra library and its threading runtime, as MKL calls its sequential, OpenMP
    /// and TBB builds "threading layers": one of [`super::layer`]'s names.
    pub const LAYER: &str = "layer";
    /// The OpenBLAS kernel (core type), where a sweep varies it.
    pub const KERNEL: &str = "kernel";
    pub const N: &str = "n";
    pub const PAIRS: &str = "pairs";
    pub const MATRICES: &str = "matrices";
    pub const TASKS: &str = "tasks";
    pub const BLAS_THREADS: &str = "blas_threads";
    /// MPI ranks of a job.
    pub const RANKS: &str = "ranks";
    /// Hosts an MPI job ran on, when a hostfile spread it.
    pub const HOSTS: &str = "hosts";
    pub const WORKERS: &str = "workers";
    pub const ELEMENTS: &str = "elements";
    pub const BYTES: &str = "bytes";
    pub const TRANSPORT: &str = "transport";
    /// A named way of running a measurement; its values across suites are in [`super::variant`]
    /// where more than one suite or the report needs them.
    pub const VARIANT: &str = "variant";
    pub const POOL: &str = "pool";
    /// array-sharing's `remote`: what the client asks of the array's holder, one of
    /// [`super::request`]'s names.
    pub const REQUEST: &str = "request";
}

/// The workloads of the suites, as their ids name them (the second level of an id).
pub mod workload {
    /// Products of n x n matrices (oversubscription, blas-tuning, task-level).
    pub const MATMUL: &str = "matmul";
    pub const SVD: &str = "svd";
    pub const CHOLESKY: &str = "cholesky";
    pub const SOLVE: &str = "solve";
    /// threads-vs-processes: y = sin(x) * exp(-x) over an array, and a sum of squares.
    pub const ELEMENTWISE: &str = "elementwise";
    pub const SUM_SQUARES: &str = "sum-squares";
    /// array-sharing: sending an array a worker has not seen, reading one it shares, memcpy.
    pub const SEND: &str = "send";
    pub const READ_SHARED: &str = "read-shared";
    pub const COPY: &str = "copy";
    /// array-sharing: leaving the array where it lives and sending small requests to its
    /// holder (a server process, or a thread).
    pub const REMOTE: &str = "remote";
    /// ranks-x-threads: every rank makes its own inputs; rank 0 scatters and gathers them;
    /// a job's start-up.
    pub const BATCH: &str = "batch";
    pub const SCATTER: &str = "scatter";
    pub const STARTUP: &str = "startup";
}

/// The values of `variant` the report reads.
pub mod variant {
    /// task-level: 1 x 1, 1 x P (the library default), P x 1, P x P.
    pub const SERIAL: &str = "serial";
    pub const OP_LEVEL: &str = "op-level";
    pub const TASK_LEVEL: &str = "task-level";
    pub const NAIVE: &str = "naive";
    /// threads-vs-processes: a rayon pool, scoped threads, worker processes fed by pipes or
    /// sharing memory.
    pub const RAYON: &str = "rayon";
    pub const SCOPE: &str = "scope";
    pub const PROCESS_PIPE: &str = "process-pipe";
    pub const PROCESS_SHARED: &str = "process-shared";
    /// array-sharing: a pipe's worker reading its own copy, sent once.
    pub const HELD_COPY: &str = "held-copy";
    /// What a user gets when they set nothing: no thread count, no binding, no pool size, run
    /// the way they run it (`mpirun -np P`, with OpenMPI's own binding and OpenBLAS's own
    /// thread count, in `ranks-x-threads`). Its id carries what the user did choose (`ranks=P`)
    /// and nothing it left alone (no `blas_threads`).
    pub const DEFAULT: &str = "default";
}

/// The values of `request` (array-sharing's `remote`): the sum of a 64 KiB range, a 4 KiB
/// slice returned whole, a dot product with a 4 KiB vector sent with the request.
pub mod request {
    pub const RANGE_SUM: &str = "range-sum";
    pub const SLICE: &str = "slice";
    pub const DOT: &str = "dot";
}

/// The values of `pool` (array-sharing): one worker kept for every iteration, or a process
/// started for each.
pub mod pool {
    pub const PERSISTENT: &str = "persistent";
    pub const SPAWN: &str = "spawn";
}

/// Whether an array-sharing id's `transport` stays inside the process (threads, channels,
/// memcpy: the references a process-based answer is measured against).
pub fn in_process_transport(name: &str) -> bool {
    name.starts_with("thread") || name.starts_with("channel") || name == "memcpy"
}

/// Whether an id is one of the candidates of the report's answer on moving an array to another
/// process: array-sharing's `send` by an out-of-process transport to a persistent worker. Its
/// own best decides which of them the rounds measure again (chosen over every transport, the
/// 64 MiB candidates of one full run were measured in one or two rounds and the answer fell
/// back to another size).
pub fn is_sharing_candidate(parsed: &ParsedId) -> bool {
    parsed.suite == ARRAY_SHARING.name
        && parsed.workload == workload::SEND
        && parsed
            .params
            .get(key::TRANSPORT)
            .and_then(Value::name)
            .is_some_and(|t| !in_process_transport(t))
        && parsed
            .params
            .get(key::POOL)
            .and_then(Value::name)
            .is_none_or(|p| p == pool::PERSISTENT)
}

/// The values of `layer`: the linear-algebra library and its threading runtime.
///
/// - OpenBLAS's three builds, named by what the library reports (`openblas_get_parallel`):
///   `pthreads` (its own thread server, one process-wide count), `openmp` (a team per calling
///   thread), `serial` (no threads).
/// - `faer`: faer on rayon. Its parallelism is a per-call `Par`, and its parallel loops run as
///   rayon tasks in the caller's pool: it starts no threads of its own.
/// - `matrixmultiply`: the `matrixmultiply::dgemm` ndarray's `dot` runs without BLAS, with its
///   `threading` feature: a pool of its own (1, 2 or 4 threads), sized once per process by
///   `MATMUL_NUM_THREADS` and shared by every calling thread.
///
/// In every layer `tasks` is the size of the task pool (an explicit rayon pool) and
/// `blas_threads` (B) the library's own parallelism inside each task: OpenBLAS's thread count,
/// faer's `Par` (`Par::Seq` for 1, `Par::rayon(B)` otherwise) in a pool of max(T, B) threads,
/// and under matrixmultiply the threads it really runs for a product of the id's size
/// (`parcost::layer::matmul_threads_at`), never 3. [`layer::FAER_GRID_NOTE`] and
/// [`layer::MATRIXMULTIPLY_GRID_NOTE`] say so in a sentence the report can show.
pub mod layer {
    pub const PTHREADS: &str = "pthreads";
    pub const OPENMP: &str = "openmp";
    pub const SERIAL: &str = "serial";
    pub const FAER: &str = "faer";
    pub const MATRIXMULTIPLY: &str = "matrixmultiply";

    /// What a `tasks` x `blas_threads` cell under faer is, in one sentence for the report.
    pub const FAER_GRID_NOTE: &str = "The faer T x B cell runs T tasks in a rayon pool of \
        max(T, B) threads with Par::rayon(B) (Par::Seq for 1) in each, so its \"naive nesting\" \
        at 4P x P is the cost of a 4P-thread pool, and the P x P cell is what par_iter on \
        rayon's global pool with faer's default Par gives.";

    /// What `blas_threads` is under matrixmultiply, in one sentence for the report.
    pub const MATRIXMULTIPLY_GRID_NOTE: &str = "matrixmultiply runs 1, 2 or 4 threads (B = 3 \
        runs 2, more than 4 runs 4) and only 1 for products below n = 128 (at most 2 below \
        n = 182), in one process-wide pool that all T tasks share, so blas_threads is the count \
        that really ran and a T x B cell runs at most T + B - 1 threads, not T x B.";

    /// OpenBLAS's layers, in the order the report shows them.
    pub const OPENBLAS: [&str; 3] = [PTHREADS, OPENMP, SERIAL];
    /// The Rust-native layers: no system library, parallelism chosen per call or per process.
    pub const NATIVE: [&str; 2] = [FAER, MATRIXMULTIPLY];

    /// The library names as the report writes them.
    pub const LIBRARY_OPENBLAS: &str = "OpenBLAS";
    pub const LIBRARY_FAER: &str = "faer";
    pub const LIBRARY_MATRIXMULTIPLY: &str = "matrixmultiply";

    /// The library a layer belongs to (`OpenBLAS`, `faer` or `matrixmultiply`); an unknown
    /// layer (a plain OpenBLAS install is `default`) is OpenBLAS's.
    pub fn library(layer: &str) -> &'static str {
        match layer {
            FAER => LIBRARY_FAER,
            MATRIXMULTIPLY => LIBRARY_MATRIXMULTIPLY,
            _ => LIBRARY_OPENBLAS,
        }
    }

    /// Whether a layer is one of OpenBLAS's (any name that is not a native layer).
    pub fn is_openblas(layer: &str) -> bool {
        !NATIVE.contains(&layer)
    }

    /// `OpenBLAS openmp`, `faer`: a layer named with its library where that tells more.
    pub fn describe(layer: &str) -> String {
        if is_openblas(layer) {
            format!("{LIBRARY_OPENBLAS} {layer}")
        } else {
            layer.to_owned()
        }
    }
}

/// The one line the harness prints (to stderr) for each variant it times itself rather than
/// through Criterion, which prints no "Benchmarking" line for it (timed runs over 20 ms, a single
/// run over the sampling budget, a hopeless one stopped after its checked run), and how `cargo
/// xtask bench` reads it back to count what a step measured: a fixed marker, so no one parses
/// the sentences for people.
pub mod event {
    const TIMED_BY_HARNESS: &str = "parcost-event timed-by-harness ";

    /// The line for `full_id`, timed by the harness.
    pub fn timed_by_harness(full_id: &str) -> String {
        format!("{TIMED_BY_HARNESS}{full_id}")
    }

    /// The id of a [`timed_by_harness`] line.
    pub fn parse_timed_by_harness(line: &str) -> Option<&str> {
        line.strip_prefix(TIMED_BY_HARNESS)
            .map(str::trim)
            .filter(|id| !id.is_empty())
    }
}

/// The sidecar tag of a kernel sweep's run under `kernel` (its token): `kernel-<token>`.
pub fn kernel_part(kernel_token: &str) -> String {
    format!("{KERNEL_PART_PREFIX}{kernel_token}")
}

/// What every kernel sweep's sidecar tag starts with.
pub const KERNEL_PART_PREFIX: &str = "kernel-";

/// `key=value` tokens joined by `,`: one level of a benchmark id.
pub fn params(pairs: &[(&str, &dyn Display)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A parameter value: a plain integer or a lower-case name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(u64),
    Name(String),
}

impl Value {
    pub fn int(&self) -> Option<u64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Name(_) => None,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Name(s) => Some(s),
            Self::Int(_) => None,
        }
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Name(s) => f.write_str(s),
        }
    }
}

/// An id read back: its suite, workload and every parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedId {
    pub suite: String,
    pub workload: String,
    pub params: BTreeMap<String, Value>,
}

/// Splits a full id into suite, workload and its `key=value` parameters, or says which part of
/// the contract it breaks.
pub fn parse(full_id: &str) -> Result<ParsedId, String> {
    let mut parts = full_id.splitn(3, '/');
    let suite = parts.next().unwrap_or_default();
    if self::suite(suite).is_none() {
        return Err(format!("unknown suite {suite:?}"));
    }
    let workload = parts
        .next()
        .filter(|w| !w.is_empty())
        .ok_or("no workload")?;
    if !is_name(workload) {
        return Err(format!("workload {workload:?} is not a lower-case name"));
    }
    let rest = parts.next().ok_or("no parameters")?;
    let mut params = BTreeMap::new();
    for token in rest.split(['/', ',', ' ']).filter(|t| !t.is_empty()) {
        let (key, value) = token
            .split_once('=')
            .ok_or_else(|| format!("token {token:?} is not key=value"))?;
        if !is_name(key) {
            return Err(format!("key {key:?} is not a lower-case name"));
        }
        let value = match value.parse::<u64>() {
            Ok(i) => Value::Int(i),
            Err(_) if is_name(value) => Value::Name(value.to_owned()),
            Err(_) => {
                return Err(format!(
                    "value {value:?} of {key} is neither an integer nor a name"
                ));
            }
        };
        if params.insert(key.to_owned(), value).is_some() {
            return Err(format!("key {key:?} appears twice"));
        }
    }
    Ok(ParsedId {
        suite: suite.to_owned(),
        workload: workload.to_owned(),
        params,
    })
}

/// A name as ids spell them: lower-case letters, digits, `-` and `_`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Rounds: `cargo xtask bench` measures every compared configuration in several rounds, each a
/// fresh process, so that the intervals the report judges by hold between runs and not only
/// within one process's samples (Kalibera and Jones, "Rigorous benchmarking in reasonable
/// time", 2013). These are the names the xtask, the harness and the report share.
pub mod round {
    /// The run every round belongs to (ms since the epoch when `cargo xtask bench` started):
    /// the rounds of one run share their sidecar's run record.
    pub const RUN_VAR: &str = "PARCOST_RUN";
    /// The round this process measures: 1, 2, ...
    pub const ROUND_VAR: &str = "PARCOST_ROUND";
    /// A file of full ids, one a line: the only benchmarks this round runs (the contenders of
    /// the rounds after the first).
    pub const ONLY_VAR: &str = "PARCOST_ONLY";

    /// A variant whose checked run is more than this many times the best of its instance so
    /// far (and longer than the harness's `HOPELESS_ABOVE`) is stopped there: recorded as a
    /// bound ("at least 10x the best"), never timed further nor used as an estimate. A default
    /// never is.
    pub const HOPELESS_FACTOR: u64 = 10;

    /// The most rounds a run has (the report keeps this many; the sidecar's round bitmasks
    /// hold 32).
    pub const MAX: u32 = 16;

    /// Criterion's warm-up: short, as each variant has just run once in its check (caches,
    /// pages and pools are warm), and a full run of every suite and layer must fit in 20
    /// minutes.
    pub const WARM_UP_TIME: std::time::Duration = std::time::Duration::from_millis(50);

    /// How long Criterion samples a variant (`--measurement-time` overrides it): ten samples in
    /// 0.2 s, thousands of runs for the variants it samples (those under the harness's
    /// `HARNESS_TIMED_ABOVE`). Each round is a fresh process and the spread between rounds is
    /// what the report's intervals rest on, so a round's own precision buys little: the time
    /// goes to rounds instead (a full run of three rounds must fit in 20 minutes with the
    /// install).
    pub const MEASUREMENT_TIME: std::time::Duration = std::time::Duration::from_millis(200);

    /// Timed runs of a variant the harness times, each round (after its checked run, which
    /// warms it): the round's figure is their median, and their range its interval within the
    /// round.
    pub const RUNS_A_ROUND: usize = 2;

    /// Criterion's baseline a round's estimates are saved under (`--save-baseline`).
    pub fn baseline(round: u32) -> String {
        format!("round-{round}")
    }

    /// The round of a [`baseline`] name.
    pub fn of_baseline(name: &str) -> Option<u32> {
        name.strip_prefix("round-")?.parse().ok().filter(|&r| r > 0)
    }
}

/// Whether a measurement is what a user gets who sets nothing: `variant=default`, or one task
/// at P BLAS threads (the library default of every grid with tasks or BLAS threads). The
/// harness never stops a default early, and the rounds after the first always measure it.
pub fn is_default(parsed: &ParsedId, logical_cores: usize) -> bool {
    let get = |k: &str| parsed.params.get(k);
    if get(key::VARIANT).and_then(Value::name) == Some(variant::DEFAULT) {
        return true;
    }
    // The kernel sweep's B = P cells are every kernel's: the default kernel is the library's.
    get(key::RANKS).is_none()
        && get(key::KERNEL).is_none()
        && get(key::BLAS_THREADS).and_then(Value::int) == Some(logical_cores as u64)
        && get(key::TASKS).is_none_or(|t| t.int() == Some(1))
}

/// Whether a measurement is P tasks (or ranks) at one BLAS thread each: the alternative to
/// the library default that the settings lines name (`OPENBLAS_NUM_THREADS=1` and a pool of
/// P). The rounds after the first measure it whatever its first round's time (unless it was
/// stopped as hopeless, [`round::HOPELESS_FACTOR`] times the best), beside the defaults: one
/// disturbed first-round figure (1.41x the best, where two other runs had it tied with the
/// best) left it out of one run's rounds and changed that run's pick.
pub fn is_p_by_one(parsed: &ParsedId, logical_cores: usize) -> bool {
    let get = |k: &str| parsed.params.get(k);
    get(key::KERNEL).is_none()
        && get(key::BLAS_THREADS).and_then(Value::int) == Some(1)
        && [key::TASKS, key::RANKS]
            .iter()
            .any(|k| get(k).and_then(Value::int) == Some(logical_cores as u64))
}

/// The instance a measurement belongs to: its suite, workload and the parameters that are not
/// configurations compared (its suite's grid, and `without` besides: `layer` and `kernel` to
/// compare across libraries and kernels).
pub fn instance(parsed: &ParsedId, without: &[&str]) -> String {
    let grid = suite(&parsed.suite).map_or(&[][..], |s| s.grid);
    let rest: Vec<String> = parsed
        .params
        .iter()
        .filter(|(k, _)| !grid.contains(&k.as_str()) && !without.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{}/{}/{}", parsed.suite, parsed.workload, rest.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn p_by_one_is_p_tasks_or_ranks_at_one_blas_thread() {
        let p_by_one = |id: &str| is_p_by_one(&parse(id).expect("valid"), 2);
        assert!(p_by_one(
            "oversubscription/matmul/layer=pthreads,n=256,pairs=64/tasks=2,blas_threads=1"
        ));
        assert!(p_by_one(
            "task-level/matmul/layer=openmp,n=64,pairs=3815/variant=task-level,tasks=2,blas_threads=1"
        ));
        assert!(p_by_one(
            "ranks-x-threads/batch/layer=serial,n=256,pairs=64,matrices=16/ranks=2,blas_threads=1"
        ));
        assert!(!p_by_one(
            "oversubscription/matmul/layer=pthreads,n=256,pairs=64/tasks=4,blas_threads=1"
        ));
        assert!(!p_by_one(
            "oversubscription/matmul/layer=pthreads,n=256,pairs=64/tasks=2,blas_threads=2"
        ));
        assert!(!p_by_one(
            "blas-tuning/cholesky/layer=pthreads,kernel=haswell,n=1024/blas_threads=1"
        ));
    }

    #[test]
    fn ids_parse_by_the_contract() {
        let id =
            parse("oversubscription/matmul/layer=openmp,n=256,pairs=64/tasks=4,blas_threads=2")
                .expect("valid");
        assert_eq!(
            (id.suite.as_str(), id.workload.as_str()),
            ("oversubscription", "matmul")
        );
        assert_eq!(id.params[key::LAYER], Value::Name("openmp".into()));
        assert_eq!(id.params[key::BLAS_THREADS], Value::Int(2));
        for bad in [
            "nosuch/matmul/n=1",
            "task-level/matmul",
            "task-level/matmul/n",
            "task-level/matmul/n=1,n=2",
            "task-level/Matmul/n=1",
            "task-level/matmul/n=1.5",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,8}"
    }

    proptest! {
        /// Whatever `params` builds, `parse` reads back.
        #[test]
        fn params_round_trip(
            suite in 0..SUITES.len(),
            workload in name(),
            ints in proptest::collection::btree_map(name(), 0u64..1 << 40, 0..4),
            names in proptest::collection::btree_map(name(), name(), 0..3),
        ) {
            let mut all: BTreeMap<String, Value> = ints.into_iter().map(|(k, v)| (k, Value::Int(v))).collect();
            for (k, v) in names {
                // A name that is all digits would read back as an integer.
                if v.parse::<u64>().is_err() {
                    all.entry(k).or_insert(Value::Name(v));
                }
            }
            prop_assume!(!all.is_empty());
            let pairs: Vec<(&str, &dyn Display)> = all.iter().map(|(k, v)| (k.as_str(), v as &dyn Display)).collect();
            let id = format!("{}/{workload}/{}", SUITES[suite].name, params(&pairs));
            let parsed = parse(&id).expect("parses");
            prop_assert_eq!(parsed.suite, SUITES[suite].name);
            prop_assert_eq!(parsed.workload, workload);
            prop_assert_eq!(parsed.params, all);
        }
    }
}
