//! What thread count faer's `Par::rayon(B)` really runs on inside a task pool, so that a cell's
//! "T tasks x B threads" under `layer=faer` means what it says: faer's parallel jobs run in the
//! caller's rayon pool (none of its own threads), on min(B, pool size) of its threads.
//!
//! Its own test binary: it counts the process's threads, which other tests would change.

use std::time::Duration;

use parcost::layer::Layer;
use parcost::native::{Gemm, LayerPool, faer_par};
use parcost::workload::MatmulBatch;

/// CPU time of each thread of the pool `op` runs in, from their pthread CPU clocks.
fn pool_thread_cpu(pool: &LayerPool) -> Vec<Duration> {
    let ids: Vec<usize> = pool.install(|| {
        // SAFETY: plain queries of the calling thread.
        rayon::broadcast(|_| unsafe { libc::pthread_self() } as usize)
    });
    ids.into_iter()
        .map(|id| {
            let mut clock: libc::clockid_t = 0;
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `id` is a live thread of the pool (the pool outlives this call); both
            // calls only write the out-parameters given.
            unsafe {
                assert_eq!(
                    libc::pthread_getcpuclockid(id as libc::pthread_t, &mut clock),
                    0
                );
                assert_eq!(libc::clock_gettime(clock, &mut ts), 0);
            }
            Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        })
        .collect()
}

fn process_threads() -> u64 {
    parcost::meta::process_threads().expect("/proc/self/status")
}

/// Runs `rounds` batches on `pool`, one after another; for each, the CPU each pool thread
/// spent on it (a thread that ran one round alone and the next alone would look busy in a
/// total: only a round tells whether they worked at the same time).
fn busy(pool: &LayerPool, batch: &MatmulBatch, rounds: usize) -> Vec<Vec<Duration>> {
    let mut out = batch.outputs();
    (0..rounds)
        .map(|_| {
            let before = pool_thread_cpu(pool);
            batch.run_on(pool, &mut out);
            pool_thread_cpu(pool)
                .iter()
                .zip(&before)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect()
        })
        .collect()
}

/// The smallest share of a round's CPU time any thread had, over all rounds.
fn least_share(rounds: &[Vec<Duration>]) -> f64 {
    rounds
        .iter()
        .map(|r| {
            let total: Duration = r.iter().sum();
            let least = r.iter().min().copied().unwrap_or_default();
            least.as_secs_f64() / total.as_secs_f64().max(1e-9)
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn faer_runs_in_the_task_pool_on_min_b_and_pool_threads_and_starts_none() {
    // One task (so only faer can use a second thread), products big enough for faer to split
    // (it goes parallel from 32^3 multiply-adds of f64).
    let batch = MatmulBatch::new(768, 2, 1);
    let start_threads = process_threads();

    // 1 task x B = 2: a pool of max(T, B) = 2 threads, and faer's jobs use both.
    let pool = LayerPool::new(Layer::Faer, 1, 2).expect("pool");
    assert_eq!(pool.pool_threads(), 2);
    let threads_before = process_threads();
    let rounds = busy(&pool, &batch, 4);
    assert!(
        least_share(&rounds) > 0.25,
        "Par::rayon(2) in a pool of 2: both threads work on every product, each at least a \
         quarter: {rounds:?}"
    );
    assert_eq!(
        process_threads(),
        threads_before,
        "faer started no thread of its own"
    );

    // The naive cell, 2 tasks x B = 2: still the pool's 2 threads, nothing more.
    let naive = LayerPool::new(Layer::Faer, 2, 2).expect("pool");
    let threads_before = process_threads();
    let rounds = busy(&naive, &batch, 2);
    assert_eq!(rounds[0].len(), 2, "the pool has max(T, B) = 2 threads");
    assert_eq!(process_threads(), threads_before, "naive starts no thread");

    let (a, b) = &batch.pairs[0];
    let mut c = ndarray::Array2::zeros((768, 768));

    // Par::Seq in a pool of 2 with one task at a time: one thread does each product.
    let rounds: Vec<Vec<Duration>> = (0..4)
        .map(|_| {
            let before = pool_thread_cpu(&pool);
            pool.install(|| Gemm::Faer(faer_par(1)).multiply(a, b, &mut c));
            pool_thread_cpu(&pool)
                .iter()
                .zip(&before)
                .map(|(x, y)| x.saturating_sub(*y))
                .collect()
        })
        .collect();
    assert!(
        least_share(&rounds) < 0.1,
        "Par::Seq: one thread does the product: {rounds:?}"
    );

    // Par::rayon(2) from a pool of 1: faer cannot use more threads than the pool has. The
    // pools above go first: their idle workers spin for a while and would count in this
    // process's CPU time (a CI run saw CPU/wall 1.96 here with them alive).
    drop(pool);
    drop(naive);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while process_threads() > start_threads && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let threads_before = process_threads();
    let ((), usage) = parcost::meta::Usage::measure(|| {
        one.install(|| {
            for _ in 0..2 {
                Gemm::Faer(faer_par(2)).multiply(a, b, &mut c);
            }
        });
    });
    assert!(
        usage.cpu_per_wall < 1.3,
        "a pool of 1 runs Par::rayon(2) on one thread: {usage:?}"
    );
    assert_eq!(process_threads(), threads_before);
}
