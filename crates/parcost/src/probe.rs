//! What `parcost-probe` prints: one JSON line of what a process sees through the libraries' own
//! APIs (OpenBLAS's thread count, kernel and layer, rayon's pool, matrixmultiply's thread count,
//! the CPUs it may run on, its MPI rank). The report runs each setting it prints against the
//! probe before it shows it (`report::settings`); this module is the line both sides read.
//!
//! The types build without the `suites` feature (the report reads them); [`look`] needs it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::layer::{MATMUL_MAX_THREADS, MATMUL_THREADS_VAR};

/// The probe's binary (`crates/parcost/src/bin/parcost-probe.rs`).
pub const BIN: &str = "parcost-probe";

/// Its flag that builds a rayon pool of T threads as the printed line does.
pub const RAYON_POOL_FLAG: &str = "--rayon-pool";
/// Its flags that run a faer product at `Par` B in each of T tasks.
pub const FAER_PAR_FLAG: &str = "--faer-par";
pub const TASKS_FLAG: &str = "--tasks";

/// The environment variables the probe reports when set: what the libraries read for their
/// threads and kernel, and the loader's path.
pub const ENV_VARS: [&str; 7] = [
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "GOTO_NUM_THREADS",
    "OMP_NUM_THREADS",
    "RAYON_NUM_THREADS",
    MATMUL_THREADS_VAR,
    "LD_LIBRARY_PATH",
];

/// The order of the square matrices of the faer check.
pub const FAER_N: usize = 64;

/// One process's view, as `parcost-probe` prints it (one line of JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub pid: u32,
    /// `openblas_get_num_threads()`.
    pub openblas_threads: usize,
    /// The threads this process had after one 256 x 256 dgemm, before anything else started a
    /// thread (`/proc/self/task`): the threads OpenBLAS ran it on. Under the OpenMP build
    /// `openblas_get_num_threads()` answers `omp_get_max_threads()` whatever
    /// `OPENBLAS_NUM_THREADS` says; this count is what the product used.
    pub threads_in_dgemm: usize,
    /// `openblas_get_corename()`: the kernel running.
    pub openblas_core: String,
    /// `openblas_get_parallel()`: 0 serial, 1 pthreads, 2 OpenMP.
    pub openblas_parallel: i32,
    /// `openblas_get_config()`.
    pub openblas_config: String,
    /// `rayon::current_num_threads()` outside any pool: the global pool, sized the way rayon
    /// sizes it (`RAYON_NUM_THREADS`, else the CPUs).
    pub rayon_threads: usize,
    /// matrixmultiply's thread count, read the way matrixmultiply 0.3 reads it
    /// ([`matmul_threads_as_matrixmultiply`]).
    pub matmul_threads: usize,
    /// The CPUs this process may run on (`sched_getaffinity`).
    pub cpus: Vec<usize>,
    /// The variables of [`ENV_VARS`] that are set, as set (`OMP_NUM_THREADS` among them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `OMPI_COMM_WORLD_RANK` and `OMPI_COMM_WORLD_SIZE` under OpenMPI's mpirun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpi_rank: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpi_size: Option<u64>,
    /// With `--rayon-pool T`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rayon_pool: Option<PoolSeen>,
    /// With `--faer-par B --tasks T`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faer: Option<FaerSeen>,
}

/// A rayon pool built as `rayon::ThreadPoolBuilder::new().num_threads(T).build()?`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSeen {
    pub asked: usize,
    /// `rayon::current_num_threads()` inside `pool.install`.
    pub current_num_threads: usize,
}

/// T tasks of a pool of max(T, B) threads, each one faer product at `Par` B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaerSeen {
    pub tasks: usize,
    pub par: usize,
    pub pool_threads: usize,
    /// How many tasks ran their product.
    pub ran: usize,
    /// Whether every product equals the serial triple loop's bit for bit (the inputs are small
    /// integers, so every order of summation is exact).
    pub matches: bool,
}

/// matrixmultiply 0.3's thread count for `value` (its `MATMUL_NUM_THREADS`), by its own code
/// (`threading.rs`): unset or empty -> `physical()` (it calls `num_cpus::get_physical`); a value
/// `usize::from_str` rejects (including one with spaces) -> 1; then clamped to 1..=4.
pub fn matmul_threads_as_matrixmultiply(
    value: Option<&str>,
    physical: impl FnOnce() -> usize,
) -> usize {
    let threads = match value {
        Some(s) if !s.is_empty() => s.parse::<usize>().unwrap_or(1),
        _ => physical(),
    };
    threads.clamp(1, MATMUL_MAX_THREADS)
}

/// The CPUs this process may run on.
pub fn affinity() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

#[cfg(feature = "suites")]
fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// What this process sees (without the flags' parts).
#[cfg(feature = "suites")]
pub fn look() -> Result<Seen, crate::blas::BlasError> {
    let info = crate::blas::BlasInfo::loaded()?;
    let threads_in_dgemm = threads_in_dgemm();
    Ok(Seen {
        pid: std::process::id(),
        openblas_threads: crate::blas::blas_threads(),
        threads_in_dgemm,
        openblas_core: info.core,
        openblas_parallel: crate::blas::openblas_parallel(),
        openblas_config: info.config,
        rayon_threads: rayon::current_num_threads(),
        matmul_threads: matmul_threads_as_matrixmultiply(
            std::env::var(MATMUL_THREADS_VAR).ok().as_deref(),
            num_cpus::get_physical,
        ),
        cpus: affinity(),
        env: ENV_VARS
            .iter()
            .filter_map(|v| Some(((*v).to_owned(), std::env::var(v).ok()?)))
            .collect(),
        mpi_rank: env_u64("OMPI_COMM_WORLD_RANK"),
        mpi_size: env_u64("OMPI_COMM_WORLD_SIZE"),
        rayon_pool: None,
        faer: None,
    })
}

/// The threads of this process after one threaded-size dgemm (see [`Seen::threads_in_dgemm`]).
#[cfg(feature = "suites")]
fn threads_in_dgemm() -> usize {
    let n = 256;
    let a = ndarray::Array2::<f64>::ones((n, n));
    let mut c = ndarray::Array2::<f64>::zeros((n, n));
    ndarray::linalg::general_mat_mul(1.0, &a, &a, 0.0, &mut c);
    std::hint::black_box(&c);
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_threads_are_read_as_matrixmultiply_reads_them() {
        let four = || 4;
        assert_eq!(matmul_threads_as_matrixmultiply(None, four), 4);
        assert_eq!(matmul_threads_as_matrixmultiply(Some(""), || 2), 2);
        assert_eq!(matmul_threads_as_matrixmultiply(Some("2"), four), 2);
        assert_eq!(matmul_threads_as_matrixmultiply(Some("9"), four), 4);
        assert_eq!(matmul_threads_as_matrixmultiply(Some("0"), four), 1);
        // usize::from_str takes no spaces: matrixmultiply falls back to 1.
        assert_eq!(matmul_threads_as_matrixmultiply(Some(" 2"), four), 1);
        assert_eq!(matmul_threads_as_matrixmultiply(Some(" "), four), 1);
        assert_eq!(matmul_threads_as_matrixmultiply(Some("two"), four), 1);
        assert_eq!(matmul_threads_as_matrixmultiply(None, || 0), 1);
    }

    #[test]
    fn this_process_may_run_somewhere() {
        assert!(!affinity().is_empty());
    }
}
