//! Cost 4: serial, op-level, task-level and naive over matrix sizes at about equal total work,
//! with at least 4P products at every size.
//!
//! Ids: `task-level/matmul/layer=L,n=N,pairs=K/variant=V,tasks=T,blas_threads=B`; the work of a
//! batch is `2 n^3 K` FLOP (about 2 GFLOP, more where 4P products exceed it).

use criterion::Throughput;
use parcost::blas::TaskPool;
use parcost::harness::{Suite, fail, params};
use parcost::workload::MatmulBatch;
use task_level::{SIZES, Variant, pairs_for};

const SEED: u64 = 0x5eed_0004;

fn main() {
    let mut suite = Suite::with_blas("task-level");
    let layer = suite
        .layer()
        .unwrap_or_else(|| fail("task-level", "no BLAS layer"));
    let p = suite.logical_cores();
    let mut variants = Vec::new();
    for v in Variant::ALL {
        let (tasks, blas) = v.threads(p);
        if p == 1 && v != Variant::Serial {
            suite.skip(v.name(), "with P = 1 it is the serial variant");
        } else if blas > 1 && !layer.is_threaded() {
            suite.skip(
                v.name(),
                "the serial OpenBLAS layer runs every call on one thread",
            );
        } else if tasks > 1 && !layer.is_thread_safe() {
            suite.skip(
                v.name(),
                "this OpenBLAS layer is not safe to call from several threads",
            );
        } else {
            variants.push(v);
        }
    }
    for n in SIZES {
        let pairs = pairs_for(n, p);
        let batch = MatmulBatch::new(n, pairs, SEED);
        let reference = batch.reference();
        let mut group = suite.group("matmul");
        group.throughput(Throughput::Elements(batch.flop()));
        let workload = params(&[("layer", &layer), ("n", &n), ("pairs", &pairs)]);
        for &v in &variants {
            let (tasks, blas) = v.threads(p);
            let pool = TaskPool::new(tasks, blas).unwrap_or_else(|e| fail("task-level", e));
            let cell = params(&[
                ("variant", &v.name()),
                ("tasks", &tasks),
                ("blas_threads", &blas),
            ]);
            group.bench(
                &format!("{workload}/{cell}"),
                batch.outputs(),
                |out| pool.install(|| batch.run(out)),
                |out| MatmulBatch::check(out, &reference),
            );
        }
        group.finish();
    }
    suite.finish();
}
