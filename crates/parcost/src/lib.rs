//! parcost's core: what every suite needs to measure the cost of naive parallelism honestly.
//!
//! - [`blas`]: OpenBLAS's thread count and threading layer, a restoring guard, task pools.
//! - [`topology`]: logical and physical cores from the kernel's files.
//! - [`workload`]: seeded inputs, shared workloads and the check against a serial reference.
//! - [`meta`]: the machine and per-variant CPU usage, written as a sidecar to Criterion's files.
//! - [`harness`]: the Criterion frame a suite's bench runs in.
//!
//! Without the default `suites` feature only the data types, topology and metadata are built,
//! and nothing links OpenBLAS (the xtask uses the crate that way).

#[cfg(feature = "suites")]
extern crate blas_src;

pub mod blas;
pub mod fsutil;
#[cfg(feature = "suites")]
pub mod harness;
pub mod meta;
pub mod topology;
#[cfg(feature = "suites")]
pub mod workload;

/// Tests that change BLAS thread counts hold this: under pthreads the count is process-wide.
#[cfg(test)]
pub(crate) static TEST_BLAS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
