//! Cost 4: serial, op-level, task-level and naive over matrix sizes at about equal total work,
//! with at least 4P products at every size, under every layer the process runs.
//!
//! Ids: `task-level/matmul/layer=L,n=N,pairs=K/variant=V,tasks=T,blas_threads=B`; the work of a
//! batch is `2 n^3 K` FLOP (about 2 GFLOP, more where 4P products exceed it). Under
//! matrixmultiply a process runs the variants whose B is its `MATMUL_NUM_THREADS`.

use criterion::Throughput;
use parcost::harness::{Suite, fail, params};
use parcost::layer::Layer;
use parcost::native::LayerPool;
use parcost::workload::MatmulBatch;
use task_level::{SIZES, Variant, pairs_for};

const SEED: u64 = 0x5eed_0004;

/// The variants `layer` runs in this process, each skipped one said why.
fn variants(suite: &Suite, layer: Layer, p: usize) -> Vec<Variant> {
    let mut out = Vec::new();
    for v in Variant::ALL {
        let (tasks, blas) = v.threads(p);
        let what = format!("{} under {layer}", v.name());
        if p == 1 && v != Variant::Serial {
            suite.skip(&what, "with P = 1 it is the serial variant");
        } else if blas > 1 && !layer.is_threaded() {
            suite.skip(
                &what,
                "the serial OpenBLAS layer runs every call on one thread",
            );
        } else if tasks > 1 && !layer.is_thread_safe() {
            suite.skip(
                &what,
                "this OpenBLAS layer is not safe to call from several threads",
            );
        } else if !layer.runs_blas_threads(blas) {
            suite.skip(
                &what,
                &format!("it runs in the process with MATMUL_NUM_THREADS={blas}"),
            );
        } else {
            out.push(v);
        }
    }
    out
}

fn main() {
    let mut suite = Suite::with_blas("task-level");
    let p = suite.logical_cores();
    let layers: Vec<(Layer, Vec<Variant>)> = suite
        .layers()
        .into_iter()
        .map(|l| (l, variants(&suite, l, p)))
        .collect();
    for n in SIZES {
        let pairs = pairs_for(n, p);
        let batch = MatmulBatch::new(n, pairs, SEED);
        let reference = batch.reference();
        let mut group = suite.group("matmul");
        group.throughput(Throughput::Elements(batch.flop()));
        for (layer, variants) in &layers {
            let workload = params(&[("layer", layer), ("n", &n), ("pairs", &pairs)]);
            for &v in variants {
                let (tasks, blas) = v.threads(p);
                let pool =
                    LayerPool::new(*layer, tasks, blas).unwrap_or_else(|e| fail("task-level", e));
                let cell = params(&[
                    ("variant", &v.name()),
                    ("tasks", &tasks),
                    ("blas_threads", &blas),
                ]);
                group.bench(
                    &format!("{workload}/{cell}"),
                    batch.outputs(),
                    |out| batch.run_on(&pool, out),
                    |out| MatmulBatch::check(out, &reference),
                );
            }
        }
        group.finish();
    }
    suite.finish();
}
