//! parcost's core: what every suite needs to measure the cost of naive parallelism honestly.
//!
//! - [`blas`]: OpenBLAS's thread count and threading layer, a restoring guard, task pools.
//! - [`cpu`]: the CPU's vector features, its measured clock and the theoretical DGEMM peak.
//! - [`kernel`], [`kernel_trial`]: which OpenBLAS kernels this CPU can run, a trial of each in a
//!   child process, and the choice of one.
//! - [`layer`]: the linear-algebra layers (OpenBLAS's builds, faer on rayon, matrixmultiply's
//!   own pool), which ones a process runs and matrixmultiply's thread count.
//! - [`native`]: faer and matrixmultiply on ndarray's arrays, and the pool of a grid cell
//!   (tasks x library threads) under any layer.
//! - [`topology`]: logical and physical cores from the kernel's files.
//! - [`workload`]: seeded inputs, shared workloads and the check against a serial reference.
//! - [`meta`]: the machine and per-variant CPU usage, written as a sidecar to Criterion's files.
//! - [`probe`]: what `parcost-probe` sees through the libraries' APIs (the report tries every
//!   setting it prints against it).
//! - [`noise`]: the machine's delivered parallel capacity, steal and foreign load around a suite.
//! - [`id`]: the benchmark-id vocabulary (suites, keys) that suites, report and xtask share.
//! - [`harness`]: the Criterion frame a suite's bench runs in.
//! - [`worker`], [`transport`], [`shm`], [`fdio`]: worker processes, the ways to move an array
//!   to them, shared memory, and I/O with deadlines.
//! - [`observe`], [`group`]: a user's command run in a process group of its own, and what its
//!   threads really do (`cargo xtask try`).
//!
//! Without the default `suites` feature only the data types, topology and metadata are built,
//! and nothing links OpenBLAS (the xtask uses the crate that way).

#[cfg(feature = "suites")]
extern crate blas_src;

pub mod blas;
pub mod cpu;
#[cfg(feature = "suites")]
pub mod fdio;
pub mod fsutil;
pub mod group;
#[cfg(feature = "suites")]
pub mod harness;
pub mod id;
pub mod kernel;
#[cfg(feature = "suites")]
pub mod kernel_trial;
pub mod layer;
pub mod meta;
#[cfg(feature = "suites")]
pub mod native;
pub mod noise;
pub mod observe;
pub mod probe;
#[cfg(feature = "suites")]
pub mod remote;
#[cfg(feature = "suites")]
pub mod shm;
pub mod topology;
#[cfg(feature = "suites")]
pub mod transport;
#[cfg(feature = "suites")]
pub mod worker;
#[cfg(feature = "suites")]
pub mod workload;
