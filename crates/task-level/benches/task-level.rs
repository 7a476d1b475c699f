//! Cost 4: serial, op-level, task-level and naive over matrix sizes at about equal total work,
//! with at least 4P products at every size, under every layer the process runs.
//!
//! Ids: `task-level/matmul/layer=L,n=N,pairs=K/variant=V,tasks=T,blas_threads=B`; the work of a
//! batch is `2 n^3 K` FLOP (about 2 GFLOP, more where 4P products exceed it). Under
//! matrixmultiply a process runs the variants whose B asks for its pool (`MATMUL_NUM_THREADS`),
//! B is the count a product of size N really runs (1 below N = 128: there op-level and naive
//! are the serial and task-level cells and are left out), and each count once across the
//! suite's processes (`task_level::cells`).

use criterion::Throughput;
use parcost::harness::{Suite, fail, params};
use parcost::layer::Layer;
use parcost::native::LayerPool;
use parcost::workload::MatmulBatch;
use task_level::{Cell, SIZES, Variant, cells, pairs_for};

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
                &format!(
                    "it runs in the process with MATMUL_NUM_THREADS={}",
                    parcost::layer::matmul_pool_threads(blas)
                ),
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
    let runs = parcost::layer::matmul_thread_runs(suite.name(), p);
    let layers: Vec<(Layer, Vec<Variant>)> = suite
        .layers()
        .into_iter()
        .map(|l| (l, variants(&suite, l, p)))
        .collect();
    let cell_id = |layer: &Layer, n: usize, pairs: usize, c: &Cell| {
        let workload = params(&[("layer", layer), ("n", &n), ("pairs", &pairs)]);
        let cell = params(&[
            ("variant", &c.variant.name()),
            ("tasks", &c.tasks),
            ("blas_threads", &c.blas_threads),
        ]);
        format!("{workload}/{cell}")
    };
    for n in SIZES {
        let pairs = pairs_for(n, p);
        let cells: Vec<(Layer, Vec<Cell>)> = layers
            .iter()
            .map(|(layer, variants)| {
                let cells = cells(*layer, p, n, &runs, variants);
                for v in variants
                    .iter()
                    .filter(|v| !cells.iter().any(|c| c.variant == **v))
                {
                    suite.skip(
                        &format!("{} under {layer} at n={n}", v.name()),
                        "matrixmultiply runs another count at this size, measured under its own \
                         name or in the process with that pool",
                    );
                }
                (*layer, cells)
            })
            .collect();
        // A size none of whose cells runs here (a later round's contenders) costs nothing.
        let runs_here = |layer: &Layer, c: &Cell| {
            suite.runs(&format!("matmul/{}", cell_id(layer, n, pairs, c)))
        };
        if !cells
            .iter()
            .any(|(l, cs)| cs.iter().any(|c| runs_here(l, c)))
        {
            continue;
        }
        let batch = MatmulBatch::new(n, pairs, SEED);
        let reference = batch.reference();
        let mut group = suite.group("matmul");
        group.throughput(Throughput::Elements(batch.flop()));
        for (layer, cells) in cells {
            for c in cells {
                let id = cell_id(&layer, n, pairs, &c);
                if !group.runs(&id) {
                    continue;
                }
                let pool = LayerPool::new(layer, c.tasks, c.asked)
                    .unwrap_or_else(|e| fail("task-level", e));
                group.bench(
                    &id,
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
