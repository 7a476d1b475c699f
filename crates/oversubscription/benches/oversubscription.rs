//! Cost 1: a grid of task threads x library threads over batches of independent calls, under
//! every layer the process runs (OpenBLAS's build, faer, matrixmultiply).
//!
//! Ids: `oversubscription/<matmul|svd>/layer=L,n=N,<pairs|matrices>=K/tasks=T,blas_threads=B`,
//! T in {1, P, 2P, 4P} (4P left out under `--quick`), B in {1, P, 2P}.
//! B is OpenBLAS's thread count, or faer's `Par::rayon(B)` in a pool of max(T, B) threads (the
//! P x P cell is `par_iter` on rayon's global pool with faer's default `Par`, see
//! `parcost::native::LayerPool::new`), or under matrixmultiply the threads a product of size N
//! really runs (1, 2 or 4): one process per pool (`MATMUL_NUM_THREADS`), its cells the ones
//! with its count, each count once across the processes (`Layer::cell_blas_threads`).
//! matrixmultiply has no SVD.

use criterion::Throughput;
use oversubscription::SvdBatch;
use parcost::harness::{Suite, distinct, fail, params};
use parcost::layer::Layer;
use parcost::native::LayerPool;
use parcost::workload::MatmulBatch;

const SEED: u64 = 0x5eed_0001;

/// A layer's grid at one size: its task counts and, per B asked, the count its ids name.
type SizedGrid<'a> = (Layer, &'a Vec<usize>, Vec<(usize, usize)>);

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
    let runs = parcost::layer::matmul_thread_runs(suite.name(), suite.logical_cores());
    let grids: Vec<(Layer, Vec<usize>, Vec<usize>)> = suite
        .layers()
        .into_iter()
        .map(|l| {
            let (tasks, blas) = grid(&suite, l);
            (l, tasks, blas)
        })
        .collect();

    for (n, pairs) in [(256, 64), (512, 16)] {
        // Per layer, (asked, ran): B as asked, and the count the id names.
        let sized: Vec<SizedGrid> = grids
            .iter()
            .map(|(layer, tasks, blas)| {
                let blas = blas
                    .iter()
                    .filter_map(|&b| {
                        let ran = layer.cell_blas_threads(b, n, &runs);
                        if ran.is_none() {
                            suite.skip(
                                &format!("B = {b} under {layer} at n={n}"),
                                "matrixmultiply runs a count there that another process measures",
                            );
                        }
                        Some(b).zip(ran)
                    })
                    .collect();
                (*layer, tasks, blas)
            })
            .collect();
        let id = |layer: Layer, t: usize, ran: usize| {
            let workload = params(&[("layer", &layer), ("n", &n), ("pairs", &pairs)]);
            format!("{workload}/{}", cell(t, ran))
        };
        // A size none of whose cells runs here (a later round's contenders) costs nothing.
        let any = sized.iter().any(|(layer, tasks, blas)| {
            tasks.iter().any(|&t| {
                blas.iter()
                    .any(|&(_, ran)| suite.runs(&format!("matmul/{}", id(*layer, t, ran))))
            })
        });
        if !any {
            continue;
        }
        let batch = MatmulBatch::new(n, pairs, SEED);
        let reference = batch.reference();
        let mut group = suite.group("matmul");
        group.throughput(Throughput::Elements(batch.flop()));
        for (layer, tasks, blas) in &sized {
            let layer = *layer;
            for &t in *tasks {
                for &(b, ran) in blas {
                    let id = id(layer, t, ran);
                    if !group.runs(&id) {
                        continue;
                    }
                    let pool = pool(layer, t, b);
                    group.bench(
                        &id,
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
    let svd_id = |layer: Layer, t: usize, b: usize| {
        let workload = params(&[("layer", &layer), ("n", &n), ("matrices", &matrices)]);
        format!("{workload}/{}", cell(t, b))
    };
    let any_svd = svd_layers.iter().any(|(layer, tasks, blas)| {
        tasks.iter().any(|&t| {
            blas.iter()
                .any(|&b| suite.runs(&format!("svd/{}", svd_id(*layer, t, b))))
        })
    });
    if svd_layers.is_empty() {
        suite.skip("svd", "matrixmultiply has no SVD");
    } else if any_svd {
        let batch = SvdBatch::new(n, matrices, SEED);
        let reference = batch.reference();
        let mut group = suite.group("svd");
        group.throughput(Throughput::Elements(matrices as u64));
        for (layer, tasks, blas) in svd_layers {
            let layer = *layer;
            for &t in tasks {
                for &b in blas {
                    let id = svd_id(layer, t, b);
                    if !group.runs(&id) {
                        continue;
                    }
                    let pool = pool(layer, t, b);
                    group.bench(
                        &id,
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
