//! The linear-algebra layers a BLAS suite runs under (a library and its threading runtime, the
//! `layer` of every id): OpenBLAS's build loaded in the process, faer on rayon, and
//! matrixmultiply with its own pool. Which ones a suite process runs comes from
//! [`LAYER_VAR`]; matrixmultiply's thread count from [`MATMUL_THREADS_VAR`], read once.
//!
//! One suite process runs one OpenBLAS layer (the dynamic loader picks it) and, by default, faer
//! beside it (faer needs no system library and takes its parallelism per call); matrixmultiply
//! reads its thread count once per process, so `cargo xtask bench` runs it once per count.

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

/// matrixmultiply uses at most this many threads, whatever [`MATMUL_THREADS_VAR`] says.
pub const MATMUL_MAX_THREADS: usize = 4;

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
    /// matrixmultiply with its own pool of `threads` (the process's `MATMUL_NUM_THREADS`).
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
    /// only its own count for matrixmultiply.
    pub fn runs_blas_threads(self, b: usize) -> bool {
        match self {
            Self::Matrixmultiply { threads } => threads == b,
            _ => true,
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The thread count matrixmultiply takes from `value` (its [`MATMUL_THREADS_VAR`]), by its own
/// rule: a number clamped to 1..=4, a bad number is 1. `None` when unset or empty (then it
/// counts physical cores itself, with `num_cpus`, which parcost does not second-guess).
pub fn matmul_threads_from(value: Option<&str>) -> Option<usize> {
    let v = value.map(str::trim).filter(|v| !v.is_empty())?;
    Some(v.parse::<usize>().unwrap_or(1).clamp(1, MATMUL_MAX_THREADS))
}

/// The matrixmultiply thread counts (one process each) `cargo xtask bench` runs a suite with on
/// `p` logical cores: the suite's own B values, {1, P, 2P} for oversubscription's grid and
/// {1, P} for task-level's variants, as matrixmultiply will really use them (at most 4), each
/// once. Empty for suites without matrixmultiply workloads.
pub fn matmul_thread_runs(suite: &str, p: usize) -> Vec<usize> {
    let p = p.max(1);
    let wanted: &[usize] = match suite {
        s if s == crate::id::OVERSUBSCRIPTION.name => &[1, p, 2 * p],
        s if s == crate::id::TASK_LEVEL.name => &[1, p],
        _ => &[],
    };
    let mut v: Vec<usize> = wanted
        .iter()
        .map(|&b| b.clamp(1, MATMUL_MAX_THREADS))
        .collect();
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
        assert_eq!(matmul_threads_from(Some("8")), Some(4));
        assert_eq!(matmul_threads_from(Some("0")), Some(1));
        assert_eq!(matmul_threads_from(Some("two")), Some(1));
    }

    #[test]
    fn matrixmultiply_runs_once_per_distinct_count() {
        assert_eq!(matmul_thread_runs("oversubscription", 2), [1, 2, 4]);
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
        assert_eq!(Layer::Faer.sidecar_token(), "faer");
        assert_eq!(Layer::OpenBlas(BlasLayer::Openmp).sidecar_token(), "openmp");
        assert_eq!(crate::id::layer::library("faer"), "faer");
        assert_eq!(crate::id::layer::library("openmp"), "OpenBLAS");
        assert_eq!(crate::id::layer::describe("openmp"), "OpenBLAS openmp");
    }
}
