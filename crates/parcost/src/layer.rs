//! The linear-algebra layers a BLAS suite runs under (a library and its threading runtime, the
//! `layer` of every id): OpenBLAS's build loaded in the process, faer on rayon, and
//! matrixmultiply with its own pool. Which ones a suite process runs comes from
//! [`LAYER_VAR`]; matrixmultiply's thread count from [`MATMUL_THREADS_VAR`], read once.
//!
//! One suite process runs one OpenBLAS layer (the dynamic loader picks it) and, by default, faer
//! beside it (faer needs no system library and takes its parallelism per call); matrixmultiply
//! reads its thread count once per process, so `cargo xtask bench` runs it once per count.
//!
//! matrixmultiply does not run the count it is asked for: [`matmul_threads_at`] says what it
//! runs for one product of a size, and [`Layer::cell_blas_threads`] the B an id names for it
//! (the count that ran, each once across the processes of a suite).

use std::fmt;

use crate::blas::BlasLayer;
use crate::id::layer;

/// Which layers a suite process runs: a comma-separated list of `openblas` (the OpenBLAS
/// layer loaded, as it reports itself), `faer` and `matrixmultiply`. Unset: `openblas,faer`,
/// so a plain `cargo bench` runs faer too. `cargo xtask bench` sets it for every run.
pub const LAYER_VAR: &str = "PARCOST_LAYER";

/// matrixmultiply's thread count, read once per process by matrixmultiply itself (its
/// `threading` feature): B of the `matrixmultiply` layer.
pub const MATMUL_THREADS_VAR: &str = "MATMUL_NUM_THREADS";

/// matrixmultiply uses at most this many threads, whatever [`MATMUL_THREADS_VAR`] says
/// (`MAX_THREADS`, matrixmultiply 0.3.11 `src/threading.rs:57`).
pub const MATMUL_MAX_THREADS: usize = 4;

/// matrixmultiply's row block for f64 (`D_MC`, `src/archparam_defaults.rs:59`): its loop 3
/// splits between threads only for m >= 3 (MC / 2).
const MATMUL_MC: usize = 64;

/// matrixmultiply's size heuristic: at most (m k + k n) / 2^14 threads for a product
/// (`thread_factor`, `src/threading.rs:127`).
const MATMUL_THREAD_FACTOR: usize = 1 << 14;

/// The word for OpenBLAS in [`LAYER_VAR`].
pub const OPENBLAS_WORD: &str = "openblas";

/// A linear-algebra library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Library {
    OpenBlas,
    Faer,
    Matrixmultiply,
}

impl Library {
    /// Its word in [`LAYER_VAR`].
    pub fn word(self) -> &'static str {
        match self {
            Self::OpenBlas => OPENBLAS_WORD,
            Self::Faer => layer::FAER,
            Self::Matrixmultiply => layer::MATRIXMULTIPLY,
        }
    }

    /// The libraries a process runs when [`LAYER_VAR`] is unset.
    pub const DEFAULT: [Self; 2] = [Self::OpenBlas, Self::Faer];

    /// Parses [`LAYER_VAR`]'s value; an unknown word is an error naming the known ones.
    pub fn parse_list(value: &str) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let lib = [Self::OpenBlas, Self::Faer, Self::Matrixmultiply]
                .into_iter()
                .find(|l| l.word() == word)
                .ok_or_else(|| {
                    format!(
                        "{LAYER_VAR}={value:?}: unknown layer {word:?} (known: {OPENBLAS_WORD}, {}, {})",
                        layer::FAER,
                        layer::MATRIXMULTIPLY
                    )
                })?;
            if !out.contains(&lib) {
                out.push(lib);
            }
        }
        if out.is_empty() {
            return Err(format!("{LAYER_VAR}={value:?} names no layer"));
        }
        Ok(out)
    }

    /// The libraries this process was asked to run ([`LAYER_VAR`], else the default).
    pub fn requested() -> Result<Vec<Self>, String> {
        match std::env::var(LAYER_VAR) {
            Ok(v) if !v.trim().is_empty() => Self::parse_list(&v),
            _ => Ok(Self::DEFAULT.to_vec()),
        }
    }
}

/// One layer a suite runs its workloads under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The OpenBLAS build loaded in the process, as it reports itself.
    OpenBlas(BlasLayer),
    /// faer on rayon: B is the `Par` of each call, run in the task pool itself.
    Faer,
    /// matrixmultiply with its own pool of `threads`: 1, 2 or 4, what it makes of the process's
    /// `MATMUL_NUM_THREADS` ([`matmul_pool_threads`]). A product of size n runs
    /// [`matmul_threads_at`]`(threads, n)` of them.
    Matrixmultiply { threads: usize },
}

impl Layer {
    /// The name in ids (`layer=...`).
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenBlas(l) => l.name(),
            Self::Faer => layer::FAER,
            Self::Matrixmultiply { .. } => layer::MATRIXMULTIPLY,
        }
    }

    pub fn library(self) -> Library {
        match self {
            Self::OpenBlas(_) => Library::OpenBlas,
            Self::Faer => Library::Faer,
            Self::Matrixmultiply { .. } => Library::Matrixmultiply,
        }
    }

    /// The token of this layer's sidecar file: its name, and matrixmultiply's thread count
    /// (one process, so one sidecar, per count).
    pub fn sidecar_token(self) -> String {
        match self {
            Self::Matrixmultiply { threads } => format!("{}-b{threads}", self.name()),
            _ => self.name().to_owned(),
        }
    }

    /// Whether asking the library for more than one thread changes anything.
    pub fn is_threaded(self) -> bool {
        match self {
            Self::OpenBlas(l) => l.is_threaded(),
            Self::Faer | Self::Matrixmultiply { .. } => true,
        }
    }

    /// Whether the library may be called from several task threads at once.
    pub fn is_thread_safe(self) -> bool {
        match self {
            Self::OpenBlas(l) => l.is_thread_safe(),
            Self::Faer | Self::Matrixmultiply { .. } => true,
        }
    }

    /// B values this process can run: any for OpenBLAS and faer (set per pool or per call),
    /// under matrixmultiply those its pool is the answer to (B = 3 is the 2-thread pool's).
    pub fn runs_blas_threads(self, b: usize) -> bool {
        match self {
            Self::Matrixmultiply { threads } => matmul_pool_threads(b) == threads,
            _ => true,
        }
    }

    /// The B an id names for a cell that asks for `b` threads on `n x n` products, or `None`
    /// where this process does not run that cell. OpenBLAS and faer run what they are asked.
    /// matrixmultiply runs [`matmul_threads_at`]`(threads, n)`, which is the id's B; the cell
    /// is this process's when that count is its own pool's, or when no process of `runs` (the
    /// suite's [`matmul_thread_runs`]) has that pool: so across the processes of a suite every
    /// count that really runs is measured once, and `blas_threads=3` never appears.
    pub fn cell_blas_threads(self, b: usize, n: usize, runs: &[usize]) -> Option<usize> {
        match self {
            Self::Matrixmultiply { threads } => {
                if !self.runs_blas_threads(b) {
                    return None;
                }
                let ran = matmul_threads_at(threads, n);
                (ran == threads || !runs.contains(&ran)).then_some(ran)
            }
            _ => Some(b),
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many threads matrixmultiply 0.3 really runs for one `n x n` f64 product when
/// [`MATMUL_THREADS_VAR`] asks for `requested`: 1, 2 or 4.
///
/// Its rule (matrixmultiply 0.3.11, the version in Cargo.lock; `src/` of the crate):
/// - `threading.rs:60-75`: the variable is read once per process and clamped to
///   1..=`MAX_THREADS` (4, line 57).
/// - `threading.rs:77-83`: the pool is no thread for 1, a level-1 `thread_tree` (2 threads)
///   for 2 or 3, a level-2 tree (4 threads) for 4.
/// - `gemm.rs:290-291`: every call takes the count and decides per product
///   (`LoopThreadConfig::new`): `threading.rs:115-117`, one thread if the count is 1; else
///   `threading.rs:124-149`: at most (m k + k n) / 2^14 threads (2^14 / 20 on 32-bit ARM), loop
///   3 split in 2 if at least 2 remain and m >= 3 (MC / 2) = 96 (MC = `D_MC` = 64,
///   `archparam_defaults.rs:59`), halving what remains, then loop 2 split in 2 if at least 2
///   remain.
/// - `threading.rs:260-270`: loop 3 and loop 2 each run on their 1 or 2 threads (`join`); the
///   calls of all task threads share the one pool (`threading.rs:32-35`).
///
/// So for square products: 1 thread below n = 128 (2 n^2 / 2^14 < 2), at most 2 below n = 182,
/// and B = 3 runs 2 (loop 3 takes 2, leaving 1 for loop 2).
pub fn matmul_threads_at(requested: usize, n: usize) -> usize {
    let nthreads = requested.clamp(1, MATMUL_MAX_THREADS);
    if nthreads == 1 {
        return 1;
    }
    let arch_factor = if cfg!(target_arch = "arm") { 20 } else { 1 };
    let size_factor = n.saturating_mul(n).saturating_mul(2);
    let mut max = nthreads.min(size_factor / (MATMUL_THREAD_FACTOR / arch_factor));
    let loop3 = if max >= 2 && n >= 3 * (MATMUL_MC / 2) {
        max /= 2;
        2
    } else {
        1
    };
    let loop2 = if max >= 2 { 2 } else { 1 };
    loop3 * loop2
}

/// The threads matrixmultiply's pool has when [`MATMUL_THREADS_VAR`] asks for `requested`: what
/// it runs on large products, 1, 2 or 4.
pub fn matmul_pool_threads(requested: usize) -> usize {
    matmul_threads_at(requested, usize::MAX)
}

/// The pool matrixmultiply makes of `value` (its [`MATMUL_THREADS_VAR`]), by its own rule: a
/// number clamped to 1..=4, a bad number is 1, and 3 is the pool of 2 ([`matmul_pool_threads`]).
/// `None` when unset or empty (then it counts physical cores itself, with `num_cpus`, which
/// parcost does not second-guess).
pub fn matmul_threads_from(value: Option<&str>) -> Option<usize> {
    let v = value.map(str::trim).filter(|v| !v.is_empty())?;
    Some(matmul_pool_threads(v.parse::<usize>().unwrap_or(1)))
}

/// The matrixmultiply thread counts (one process each) `cargo xtask bench` runs a suite with on
/// `p` logical cores: the suite's own B values, {1, P, 2P} for oversubscription's grid and
/// {1, P} for task-level's variants, as the pools matrixmultiply makes of them (1, 2 or 4), each
/// once. Empty for suites without matrixmultiply workloads.
pub fn matmul_thread_runs(suite: &str, p: usize) -> Vec<usize> {
    let p = p.max(1);
    let wanted: &[usize] = match suite {
        s if s == crate::id::OVERSUBSCRIPTION.name => &[1, p, 2 * p],
        s if s == crate::id::TASK_LEVEL.name => &[1, p],
        _ => &[],
    };
    let mut v: Vec<usize> = wanted.iter().map(|&b| matmul_pool_threads(b)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The native layers a suite runs besides OpenBLAS: faer for every BLAS suite, matrixmultiply
/// for the two whose workloads are products.
pub fn native_layers(suite: &str) -> Vec<Library> {
    let info = crate::id::suite(suite);
    if !info.is_some_and(|s| s.native_layers) {
        return Vec::new();
    }
    let mut out = vec![Library::Faer];
    if !matmul_thread_runs(suite, 1).is_empty() {
        out.push(Library::Matrixmultiply);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_lists_parse_and_bad_words_are_named() {
        assert_eq!(Library::parse_list("faer").expect("ok"), [Library::Faer]);
        assert_eq!(
            Library::parse_list(" openblas , faer,faer").expect("ok"),
            [Library::OpenBlas, Library::Faer]
        );
        let e = Library::parse_list("faer,mkl").expect_err("unknown");
        assert!(e.contains("\"mkl\"") && e.contains("matrixmultiply"), "{e}");
        assert!(Library::parse_list(",").is_err());
    }

    #[test]
    fn matmul_threads_follow_matrixmultiply_rule() {
        assert_eq!(matmul_threads_from(None), None);
        assert_eq!(matmul_threads_from(Some(" ")), None);
        assert_eq!(matmul_threads_from(Some("2")), Some(2));
        assert_eq!(
            matmul_threads_from(Some("3")),
            Some(2),
            "3 is the pool of 2"
        );
        assert_eq!(matmul_threads_from(Some("8")), Some(4));
        assert_eq!(matmul_threads_from(Some("0")), Some(1));
        assert_eq!(matmul_threads_from(Some("two")), Some(1));
    }

    #[test]
    fn matmul_threads_at_follows_matrixmultiplys_loop_rule() {
        assert_eq!(matmul_threads_at(3, 512), 2, "B = 3 runs 2");
        assert_eq!(matmul_threads_at(8, 512), 4, "B = 8 runs 4");
        assert_eq!(matmul_threads_at(4, 64), 1, "n = 64 runs 1");
        assert_eq!(matmul_threads_at(0, 512), 1);
        for b in 1..=8 {
            for n in [1, 32, 64, 127] {
                assert_eq!(matmul_threads_at(b, n), 1, "b={b}, n={n}");
            }
        }
        // 2 n^2 / 2^14 threads at most: 2 from n = 128, 4 from n = 182.
        assert_eq!(matmul_threads_at(4, 128), 2);
        assert_eq!(matmul_threads_at(4, 181), 2);
        assert_eq!(matmul_threads_at(4, 182), 4);
        assert_eq!(matmul_threads_at(2, 128), 2);
        assert_eq!(matmul_threads_at(1, 1024), 1);
        assert_eq!(matmul_threads_at(usize::MAX, usize::MAX), 4);
        let pools: Vec<usize> = (0..=9).map(matmul_pool_threads).collect();
        assert_eq!(pools, [1, 1, 2, 2, 4, 4, 4, 4, 4, 4]);
    }

    /// Across the processes of oversubscription's run (its grid asks B in {1, P, 2P}, one
    /// process a pool), at the suites' sizes and around matrixmultiply's thresholds: each count
    /// that runs is measured once, as itself.
    #[test]
    fn no_two_matrixmultiply_processes_measure_the_same_count() {
        for p in 1..=9 {
            let runs = matmul_thread_runs("oversubscription", p);
            for n in [32, 64, 100, 128, 181, 182, 256, 512] {
                // Each process asks for its own count (the grid's B under matrixmultiply).
                let ran: Vec<usize> = runs
                    .iter()
                    .filter_map(|&threads| {
                        Layer::Matrixmultiply { threads }.cell_blas_threads(threads, n, &runs)
                    })
                    .collect();
                let mut distinct = ran.clone();
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(distinct.len(), ran.len(), "p={p}, n={n}: {ran:?}");
                assert!(!ran.contains(&3), "p={p}, n={n}: {ran:?}");
                if n <= 64 {
                    assert_eq!(ran, [1], "p={p}, n={n}");
                }
                let mut wanted: Vec<usize> = [1, p, 2 * p]
                    .iter()
                    .map(|&b| matmul_threads_at(b, n))
                    .collect();
                wanted.sort_unstable();
                wanted.dedup();
                assert_eq!(
                    distinct, wanted,
                    "p={p}, n={n}: every count that runs, once"
                );
            }
        }
    }

    #[test]
    fn matrixmultiply_runs_once_per_distinct_count() {
        assert_eq!(matmul_thread_runs("oversubscription", 2), [1, 2, 4]);
        assert_eq!(
            matmul_thread_runs("oversubscription", 3),
            [1, 2, 4],
            "3 is 2"
        );
        assert_eq!(matmul_thread_runs("oversubscription", 4), [1, 4], "8 is 4");
        assert_eq!(matmul_thread_runs("task-level", 2), [1, 2]);
        assert!(matmul_thread_runs("blas-tuning", 2).is_empty());
        assert_eq!(native_layers("blas-tuning"), [Library::Faer]);
        assert_eq!(
            native_layers("task-level"),
            [Library::Faer, Library::Matrixmultiply]
        );
        assert!(native_layers("array-sharing").is_empty());
    }

    #[test]
    fn layers_name_themselves_and_their_sidecars() {
        let mm = Layer::Matrixmultiply { threads: 2 };
        assert_eq!(mm.name(), "matrixmultiply");
        assert_eq!(mm.sidecar_token(), "matrixmultiply-b2");
        assert!(mm.runs_blas_threads(2) && !mm.runs_blas_threads(1));
        assert!(mm.runs_blas_threads(3), "3 is the pool of 2");
        assert_eq!(Layer::Faer.sidecar_token(), "faer");
        assert_eq!(Layer::OpenBlas(BlasLayer::Openmp).sidecar_token(), "openmp");
        assert_eq!(crate::id::layer::library("faer"), "faer");
        assert_eq!(crate::id::layer::library("openmp"), "OpenBLAS");
        assert_eq!(crate::id::layer::describe("openmp"), "OpenBLAS openmp");
    }
}
