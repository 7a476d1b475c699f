//! Cost 1: a grid of task threads x library threads over batches of independent calls, under
//! every layer the process runs (OpenBLAS's build, faer, matrixmultiply).
//!
//! Ids: `oversubscription/<matmul|svd>/layer=L,n=N,<pairs|matrices>=K/tasks=T,blas_threads=B`,
//! T in {1, P, 2P, 4P} (4P left out under `--quick`), B in {1, P, 2P}.
//! B is OpenBLAS's thread count, faer's `Par` or matrixmultiply's `MATMUL_NUM_THREADS` (one
//! process per B: its cells are the ones with that B). matrixmultiply has no SVD.

use criterion::Throughput;
use oversubscription::SvdBatch;
use parcost::harness::{Suite, distinct, fail, params};
use parcost::layer::Layer;
use parcost::native::LayerPool;
use parcost::workload::MatmulBatch;

const SEED: u64 = 0x5eed_0001;

/// The grid of one layer: task counts and B values this process runs.
fn grid(suite: &Suite, layer: Layer) -> (Vec<usize>, Vec<usize>) {
    let p = suite.logical_cores();
    let tasks = if layer.is_thread_safe() && suite.is_quick() {
        // Under `--quick`, 4P tasks stay out: the naive cell (2P x P) already shows the cost,
        // and 4P tasks x 2P BLAS threads took 10 to 35 s a run under OpenMP here.
        distinct([1, p, 2 * p])
    } else if layer.is_thread_safe() {
        distinct([1, p, 2 * p, 4 * p])
    } else {
        suite.skip(
            &format!("task threads > 1 under {layer}"),
            "this OpenBLAS layer is not safe to call from several threads",
        );
        vec![1]
    };
    let blas = match layer {
        Layer::Matrixmultiply { threads } => vec![threads],
        _ if layer.is_threaded() => distinct([1, p, 2 * p]),
        _ => {
            suite.skip(
                "BLAS threads > 1",
                "the serial OpenBLAS layer runs every call on one thread",
            );
            vec![1]
        }
    };
    (tasks, blas)
}

fn main() {
    let mut suite = Suite::with_blas("oversubscription");
    let pool = |layer: Layer, t: usize, b: usize| {
        LayerPool::new(layer, t, b).unwrap_or_else(|e| fail("oversubscription", e))
    };
    let cell = |t: usize, b: usize| params(&[("tasks", &t), ("blas_threads", &b)]);
    let grids: Vec<(Layer, Vec<usize>, Vec<usize>)> = suite
        .layers()
        .into_iter()
        .map(|l| {
            let (tasks, blas) = grid(&suite, l);
            (l, tasks, blas)
        })
        .collect();

    for (n, pairs) in [(256, 64), (512, 16)] {
        let batch = MatmulBatch::new(n, pairs, SEED);
        let reference = batch.reference();
        let mut group = suite.group("matmul");
        group.throughput(Throughput::Elements(batch.flop()));
        for (layer, tasks, blas) in &grids {
            let layer = *layer;
            let workload = params(&[("layer", &layer), ("n", &n), ("pairs", &pairs)]);
            for &t in tasks {
                for &b in blas {
                    let pool = pool(layer, t, b);
                    group.bench(
                        &format!("{workload}/{}", cell(t, b)),
                        batch.outputs(),
                        |out| batch.run_on(&pool, out),
                        |out| MatmulBatch::check(out, &reference),
                    );
                }
            }
        }
        group.finish();
    }

    let (n, matrices) = (256, 16);
    let svd_layers: Vec<&(Layer, Vec<usize>, Vec<usize>)> = grids
        .iter()
        .filter(|(l, _, _)| !matches!(l, Layer::Matrixmultiply { .. }))
        .collect();
    if svd_layers.is_empty() {
        suite.skip("svd", "matrixmultiply has no SVD");
    } else {
        let batch = SvdBatch::new(n, matrices, SEED);
        let reference = batch.reference();
        let mut group = suite.group("svd");
        group.throughput(Throughput::Elements(matrices as u64));
        for (layer, tasks, blas) in svd_layers {
            let layer = *layer;
            let workload = params(&[("layer", &layer), ("n", &n), ("matrices", &matrices)]);
            for &t in tasks {
                for &b in blas {
                    let pool = pool(layer, t, b);
                    group.bench(
                        &format!("{workload}/{}", cell(t, b)),
                        batch.outputs(),
                        |out| batch.run_on(&pool, out),
                        |out| SvdBatch::check(out, &reference),
                    );
                }
            }
        }
        group.finish();
    }
    suite.finish();
}
