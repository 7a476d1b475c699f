//! Cost 4: serial, op-level, task-level and naive over matrix sizes at equal total work.
//!
//! Ids: `task-level/matmul/layer=L,n=N,pairs=K/variant=V,tasks=T,blas_threads=B`.

use criterion::Throughput;
use parcost::blas::TaskPool;
use parcost::harness::{Suite, fail, params};
use parcost::workload::MatmulBatch;
use task_level::{SIZES, Variant, pairs_for};

const SEED: u64 = 0x5eed_0004;

fn main() {
    let mut suite = Suite::with_blas("task-level");
    let layer = suite.layer().unwrap_or_else(|| fail("task-level", "no BLAS layer"));
    let p = suite.logical_cores();
    let variants: Vec<Variant> = if p == 1 {
        suite.skip("op-level, task-level and naive", "with P = 1 they are the serial variant");
        vec![Variant::Serial]
    } else if !layer.is_threaded() {
        suite.skip("op-level and naive", "the serial OpenBLAS layer runs every call on one thread");
        Variant::ALL.into_iter().filter(|v| !v.needs_threaded_blas()).collect()
    } else {
        Variant::ALL.to_vec()
    };
    for n in SIZES {
        let pairs = pairs_for(n);
        let batch = MatmulBatch::new(n, pairs, SEED);
        let reference = batch.reference();
        let mut group = suite.group("matmul");
        group.throughput(Throughput::Elements(batch.flop()));
        let workload = params(&[("layer", &layer), ("n", &n), ("pairs", &pairs)]);
        for &v in &variants {
            let (tasks, blas) = v.threads(p);
            let pool = TaskPool::new(tasks, blas).unwrap_or_else(|e| fail("task-level", e));
            let cell = params(&[("variant", &v.name()), ("tasks", &tasks), ("blas_threads", &blas)]);
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
