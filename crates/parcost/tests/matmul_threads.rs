//! How many threads matrixmultiply really runs for one product, seen from the kernel: the
//! threads of its pool that get CPU time while one thread multiplies, against
//! `parcost::layer::matmul_threads_at` (the rule the ids' `blas_threads` comes from).
//!
//! Its own test binary: matrixmultiply reads `MATMUL_NUM_THREADS` once per process, and this
//! test sets it before the first product.

use std::collections::BTreeMap;
use std::time::Duration;

use ndarray::Array2;
use parcost::layer::{MATMUL_THREADS_VAR, matmul_threads_at};
use parcost::native::matrixmultiply_gemm;
use parcost::workload::random_matrix;

/// CPU time of every thread of this process so far, by thread id (`/proc/self/task/*/schedstat`,
/// nanoseconds on the CPU).
fn thread_cpu() -> BTreeMap<u64, Duration> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| {
            let e = e.ok()?;
            let tid: u64 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("schedstat")).ok()?;
            let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
            Some((tid, Duration::from_nanos(ns)))
        })
        .collect()
}

/// The threads besides this one that worked while it ran `reps` products of size `n`.
fn helpers_at_work(n: usize, reps: usize) -> usize {
    let (a, b) = (random_matrix(n, 1), random_matrix(n, 2));
    let mut c = Array2::zeros((n, n));
    // SAFETY: a plain query of the calling thread's id.
    let me = unsafe { libc::gettid() } as u64;
    let before = thread_cpu();
    for _ in 0..reps {
        matrixmultiply_gemm(&a, &b, &mut c);
    }
    let after = thread_cpu();
    after
        .iter()
        .filter(|(tid, cpu)| {
            **tid != me
                && cpu.saturating_sub(before.get(tid).copied().unwrap_or_default())
                    > Duration::from_millis(2)
        })
        .count()
}

#[test]
fn matrixmultiply_runs_the_threads_the_rule_says() {
    // SAFETY: this binary's only test sets it before any thread reads the environment.
    unsafe { std::env::set_var(MATMUL_THREADS_VAR, "4") };
    // Starts the pool (4 threads: the caller and 3 of its own).
    helpers_at_work(256, 1);
    // The same work at each size, 2 n^3 reps = 2^30 FLOP: tens of ms a helper when it works.
    for (n, reps) in [(64, 2048), (128, 256), (256, 64)] {
        let want = matmul_threads_at(4, n);
        assert_eq!(
            helpers_at_work(n, reps) + 1,
            want,
            "n = {n} at MATMUL_NUM_THREADS=4: the rule says {want} thread(s)"
        );
    }
}
