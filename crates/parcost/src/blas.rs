//! OpenBLAS through its own C API: thread count, the threading layer actually loaded, and pools
//! whose every worker runs BLAS at a set number of threads.

#[cfg(feature = "suites")]
use std::ffi::{CStr, c_char, c_int};
use std::fmt;

#[cfg(feature = "suites")]
use rayon::{ThreadPool, ThreadPoolBuilder};
use serde::{Deserialize, Serialize};

#[cfg(feature = "suites")]
use crate::kernel;
use crate::kernel::KernelSource;

#[cfg(feature = "suites")]
// Linked through openblas-src (`system`): Debian's libopenblas.so.0, whichever layer the dynamic
// loader picks (see `cargo xtask bench`, which points LD_LIBRARY_PATH at each one).
unsafe extern "C" {
    fn openblas_set_num_threads(num_threads: c_int);
    fn openblas_get_num_threads() -> c_int;
    fn openblas_get_parallel() -> c_int;
    fn openblas_get_config() -> *const c_char;
    fn openblas_get_corename() -> *const c_char;
}

/// The threading layer OpenBLAS was built with, as it reports itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlasLayer {
    /// No threads of its own: every call runs on the calling thread.
    Serial,
    /// OpenBLAS's own pthreads server: one process-wide thread count.
    Pthreads,
    /// OpenMP: the thread count is an OpenMP setting of each calling thread.
    Openmp,
}

impl BlasLayer {
    /// The layer of the OpenBLAS loaded in this process (`openblas_get_parallel`).
    #[cfg(feature = "suites")]
    pub fn loaded() -> Result<Self, BlasError> {
        // SAFETY: a plain query with no arguments.
        let code = unsafe { openblas_get_parallel() };
        match code {
            0 => Ok(Self::Serial),
            1 => Ok(Self::Pthreads),
            2 => Ok(Self::Openmp),
            other => Err(BlasError::UnknownLayer(other)),
        }
    }

    /// The name used in benchmark ids (`layer=...`).
    pub fn name(self) -> &'static str {
        use crate::id::layer;
        match self {
            Self::Serial => layer::SERIAL,
            Self::Pthreads => layer::PTHREADS,
            Self::Openmp => layer::OPENMP,
        }
    }

    /// Whether asking for more than one BLAS thread changes anything.
    pub fn is_threaded(self) -> bool {
        self != Self::Serial
    }

    /// Whether BLAS and LAPACK may be called from several threads at once.
    ///
    /// A serial OpenBLAS built without `USE_LOCKING` shares its work buffers between callers:
    /// Debian's 0.3.21 serial build returned wrong singular values from two task threads here,
    /// so the suites run the serial layer from one task thread only.
    pub fn is_thread_safe(self) -> bool {
        self != Self::Serial
    }
}

impl fmt::Display for BlasLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors from the BLAS layer.
#[derive(Debug, thiserror::Error)]
pub enum BlasError {
    #[error("openblas_get_parallel() returned {0}, which is no layer parcost knows (0, 1 or 2)")]
    UnknownLayer(i32),
    #[error("a BLAS thread count must be at least 1, got {0}")]
    ZeroThreads(usize),
    #[error(
        "{layer} runs at MATMUL_NUM_THREADS={threads} in this process (read once), not {asked}: \
         run it again with MATMUL_NUM_THREADS={asked}"
    )]
    FixedThreads {
        layer: &'static str,
        threads: usize,
        asked: usize,
    },
    #[cfg(feature = "suites")]
    #[error("could not build a pool of {tasks} task threads: {source}")]
    Pool {
        tasks: usize,
        source: rayon::ThreadPoolBuildError,
    },
}

/// What the loaded OpenBLAS says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlasInfo {
    /// `openblas_get_config()`, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64".
    pub config: String,
    /// `openblas_get_corename()`: the kernel set running in this process.
    pub core: String,
    pub layer: BlasLayer,
    /// Who chose `core`: OpenBLAS, the user's `OPENBLAS_CORETYPE`, or `cargo xtask bench`.
    #[serde(default)]
    pub kernel_source: KernelSource,
    /// The kernel OpenBLAS chooses by itself here, when known (a process started with
    /// `OPENBLAS_CORETYPE` cannot see it; `cargo xtask bench` tells it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library_core: Option<String>,
}

#[cfg(feature = "suites")]
impl BlasInfo {
    pub fn loaded() -> Result<Self, BlasError> {
        // SAFETY: both return pointers to static NUL-terminated strings inside OpenBLAS.
        let (config, core) = unsafe {
            (
                c_string(openblas_get_config()),
                c_string(openblas_get_corename()),
            )
        };
        let kernel_source = KernelSource::from_env();
        let library_core = match kernel_source {
            KernelSource::Library => Some(core.clone()),
            _ => std::env::var(kernel::LIBRARY_CORE_VAR)
                .ok()
                .filter(|c| !c.is_empty()),
        };
        Ok(Self {
            config,
            core,
            layer: BlasLayer::loaded()?,
            kernel_source,
            library_core,
        })
    }
}

#[cfg(feature = "suites")]
/// # Safety
/// `ptr` is null or points to a NUL-terminated string that outlives the call.
unsafe fn c_string(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .trim()
        .to_owned()
}

#[cfg(feature = "suites")]
/// The BLAS thread count that applies to calls made from this thread.
///
/// Under pthreads it is process-wide; under OpenMP it is this thread's own setting.
pub fn blas_threads() -> usize {
    // SAFETY: a plain query.
    let n = unsafe { openblas_get_num_threads() };
    usize::try_from(n).unwrap_or(1).max(1)
}

#[cfg(feature = "suites")]
/// `openblas_get_parallel()` as it answers: 0 serial, 1 pthreads, 2 OpenMP.
pub fn openblas_parallel() -> i32 {
    // SAFETY: a plain query with no arguments.
    unsafe { openblas_get_parallel() }
}

#[cfg(feature = "suites")]
fn set_blas_threads(n: usize) {
    let n = c_int::try_from(n).unwrap_or(c_int::MAX);
    // SAFETY: OpenBLAS clamps the count to its MAX_THREADS; any positive value is valid.
    unsafe { openblas_set_num_threads(n) }
}

#[cfg(feature = "suites")]
/// Sets the BLAS thread count for calls from this thread and restores the previous count on drop.
///
/// Not `Send`: under OpenMP the count belongs to the thread that set it, so it must be restored
/// there.
#[derive(Debug)]
#[must_use = "the previous thread count is restored when the guard is dropped"]
pub struct BlasThreads {
    previous: usize,
    _not_send: std::marker::PhantomData<*const ()>,
}

#[cfg(feature = "suites")]
impl BlasThreads {
    pub fn set(threads: usize) -> Result<Self, BlasError> {
        if threads == 0 {
            return Err(BlasError::ZeroThreads(threads));
        }
        let previous = blas_threads();
        set_blas_threads(threads);
        Ok(Self {
            previous,
            _not_send: std::marker::PhantomData,
        })
    }

    /// The count this guard will restore.
    pub fn previous(&self) -> usize {
        self.previous
    }
}

#[cfg(feature = "suites")]
impl Drop for BlasThreads {
    fn drop(&mut self) {
        set_blas_threads(self.previous);
    }
}

/// The stack every thread that calls BLAS gets from parcost.
///
/// OpenBLAS keeps large work buffers on the calling thread's stack: LAPACK calls at 3 BLAS
/// threads crashed (SIGSEGV) on Rust's default 2 MiB thread stack here, and on 4 MiB, and ran
/// on 8 MiB (the main thread's).
pub const BLAS_STACK_SIZE: usize = 16 << 20;

/// Runs `f` on a thread with [`BLAS_STACK_SIZE`] of stack (for BLAS calls off the main thread,
/// as in tests) and returns its result; a panic in `f` comes back as a panic here.
pub fn on_blas_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("blas".into())
            .stack_size(BLAS_STACK_SIZE)
            .spawn_scoped(scope, f);
        match handle {
            Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(e) => panic!("cannot start a thread with a {BLAS_STACK_SIZE}-byte stack: {e}"),
        }
    })
}

/// Serialises code that changes BLAS thread counts against other BLAS users of this process.
///
/// Under pthreads the count is process-wide, and OpenBLAS resizes its thread buffers when it
/// changes: a test thread setting it while another test thread was inside BLAS crashed
/// (SIGSEGV) here. The suites run their benchmarks from one thread; tests that run side by side
/// hold this guard.
pub fn exclusive_blas() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(feature = "suites")]
/// A rayon pool of `tasks` workers, each calling BLAS at `blas_threads` threads.
///
/// Every worker sets the count itself when it starts (OpenMP keeps it per thread), and the
/// thread that builds the pool holds a [`BlasThreads`] guard (pthreads keeps it per process),
/// so the previous count comes back when the pool is dropped.
#[derive(Debug)]
pub struct TaskPool {
    pool: ThreadPool,
    tasks: usize,
    blas_threads: usize,
    _guard: BlasThreads,
}

#[cfg(feature = "suites")]
impl TaskPool {
    pub fn new(tasks: usize, blas_threads: usize) -> Result<Self, BlasError> {
        let guard = BlasThreads::set(blas_threads)?;
        let pool = ThreadPoolBuilder::new()
            .num_threads(tasks.max(1))
            .thread_name(move |i| format!("task-{i}-blas-{blas_threads}"))
            .stack_size(BLAS_STACK_SIZE)
            .start_handler(move |_| set_blas_threads(blas_threads))
            .build()
            .map_err(|source| BlasError::Pool { tasks, source })?;
        Ok(Self {
            pool,
            tasks: tasks.max(1),
            blas_threads,
            _guard: guard,
        })
    }

    /// Runs `op` inside the pool: rayon's parallel iterators in it use these workers.
    pub fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R {
        self.pool.install(op)
    }

    pub fn tasks(&self) -> usize {
        self.tasks
    }

    pub fn blas_threads(&self) -> usize {
        self.blas_threads
    }
}

#[cfg(all(test, feature = "suites"))]
mod tests {
    use super::*;

    #[test]
    fn layer_is_known_and_config_names_openblas() {
        let info = BlasInfo::loaded().expect("layer");
        assert!(info.config.contains("OpenBLAS"), "config: {}", info.config);
        assert!(!info.core.is_empty());
    }

    #[test]
    fn guard_sets_and_restores() {
        let _serial = exclusive_blas();
        let layer = BlasLayer::loaded().expect("layer");
        let before = blas_threads();
        {
            let guard = BlasThreads::set(3).expect("set");
            assert_eq!(guard.previous(), before);
            let expected = if layer.is_threaded() { 3 } else { 1 };
            assert_eq!(blas_threads(), expected);
            {
                let _inner = BlasThreads::set(1).expect("set");
                assert_eq!(blas_threads(), 1);
            }
            assert_eq!(blas_threads(), expected);
        }
        assert_eq!(blas_threads(), before);
    }

    #[test]
    fn zero_threads_is_an_error() {
        assert!(matches!(
            BlasThreads::set(0),
            Err(BlasError::ZeroThreads(0))
        ));
    }

    #[test]
    fn every_pool_worker_sees_its_blas_count() {
        use rayon::prelude::*;
        let _serial = exclusive_blas();
        let layer = BlasLayer::loaded().expect("layer");
        for blas in [1, 2, 3] {
            let pool = TaskPool::new(4, blas).expect("pool");
            let seen: Vec<usize> = pool.install(|| {
                (0..64)
                    .into_par_iter()
                    .map(|_| {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        blas_threads()
                    })
                    .collect()
            });
            let expected = if layer.is_threaded() { blas } else { 1 };
            assert!(
                seen.iter().all(|&n| n == expected),
                "{seen:?} != {expected}"
            );
        }
    }
}
