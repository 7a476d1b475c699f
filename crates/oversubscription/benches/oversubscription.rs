//! Cost 1: a grid of task threads x BLAS threads over batches of independent BLAS calls.
//!
//! Ids: `oversubscription/<matmul|svd>/layer=L,n=N,<pairs|matrices>=K/tasks=T,blas_threads=B`.

use criterion::Throughput;
use oversubscription::SvdBatch;
use parcost::blas::TaskPool;
use parcost::harness::{Suite, distinct, fail, params};
use parcost::workload::MatmulBatch;

const SEED: u64 = 0x5eed_0001;

fn main() {
    let mut suite = Suite::with_blas("oversubscription");
    let layer = suite
        .layer()
        .unwrap_or_else(|| fail("oversubscription", "no BLAS layer"));
    let p = suite.logical_cores();
    let tasks = if layer.is_thread_safe() {
        distinct([1, p, 2 * p, 4 * p])
    } else {
        suite.skip(
            "task threads > 1",
            "this OpenBLAS layer is not safe to call from several threads",
        );
        vec![1]
    };
    let blas = if layer.is_threaded() {
        distinct([1, p, 2 * p])
    } else {
        suite.skip(
            "BLAS threads > 1",
            "the serial OpenBLAS layer runs every call on one thread",
        );
        vec![1]
    };
    let pool =
        |t: usize, b: usize| TaskPool::new(t, b).unwrap_or_else(|e| fail("oversubscription", e));
    let cell = |t: usize, b: usize| params(&[("tasks", &t), ("blas_threads", &b)]);

    for (n, pairs) in [(256, 64), (512, 16)] {
        let batch = MatmulBatch::new(n, pairs, SEED);
        let reference = batch.reference();
        let mut group = suite.group("matmul");
        group.throughput(Throughput::Elements(batch.flop()));
        let workload = params(&[("layer", &layer), ("n", &n), ("pairs", &pairs)]);
        for &t in &tasks {
            for &b in &blas {
                let pool = pool(t, b);
                group.bench(
                    &format!("{workload}/{}", cell(t, b)),
                    batch.outputs(),
                    |out| pool.install(|| batch.run(out)),
                    |out| MatmulBatch::check(out, &reference),
                );
            }
        }
        group.finish();
    }

    let (n, matrices) = (256, 16);
    let batch = SvdBatch::new(n, matrices, SEED);
    let reference = batch.reference();
    let mut group = suite.group("svd");
    group.throughput(Throughput::Elements(matrices as u64));
    let workload = params(&[("layer", &layer), ("n", &n), ("matrices", &matrices)]);
    for &t in &tasks {
        for &b in &blas {
            let pool = pool(t, b);
            group.bench(
                &format!("{workload}/{}", cell(t, b)),
                batch.outputs(),
                |out| pool.install(|| batch.run(out)),
                |out| SvdBatch::check(out, &reference),
            );
        }
    }
    group.finish();
    suite.finish();
}
