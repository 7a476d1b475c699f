//! Cost 4, task-level gains: many small products go faster with BLAS at one thread and a pool of
//! tasks than with BLAS threading alone. This crate names the four ways to run a batch and sizes
//! the batches; the product itself is `parcost::workload::MatmulBatch`.

use parcost::layer::Layer;

/// The total work of every batch, so sizes can be compared at equal work.
pub const TARGET_FLOP: u64 = 2_000_000_000;

/// Independent products per task thread at least: with fewer, a pool of P tasks has nothing to
/// spread (one product of 1024 cannot use two task threads) or splits unevenly (7 products on
/// 2 threads go 4:3), and the comparison measures batch sizing instead of parallelism.
pub const PRODUCTS_PER_TASK: usize = 4;

/// Matrix sizes swept, small (call overhead dominates) to large (one product fills the
/// machine). 2048 is left out: 4P of its products are 137 GFLOP on 2 cores, seconds a run.
pub const SIZES: [usize; 6] = [32, 64, 128, 256, 512, 1024];

/// How a batch of products is spread over task threads and BLAS threads, on `P` logical cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// 1 task x 1 BLAS thread: the baseline.
    Serial,
    /// 1 task x P BLAS threads: what the library does by default.
    OpLevel,
    /// P tasks x 1 BLAS thread: parallel over the products.
    TaskLevel,
    /// P tasks x P BLAS threads: both at once.
    Naive,
}

impl Variant {
    pub const ALL: [Self; 4] = [Self::Serial, Self::OpLevel, Self::TaskLevel, Self::Naive];

    pub fn name(self) -> &'static str {
        match self {
            Self::Serial => "serial",
            Self::OpLevel => "op-level",
            Self::TaskLevel => "task-level",
            Self::Naive => "naive",
        }
    }

    /// (task threads, BLAS threads) on `p` logical cores.
    pub fn threads(self, p: usize) -> (usize, usize) {
        let p = p.max(1);
        match self {
            Self::Serial => (1, 1),
            Self::OpLevel => (1, p),
            Self::TaskLevel => (p, 1),
            Self::Naive => (p, p),
        }
    }

    /// Whether the variant asks BLAS for more than one thread.
    pub fn needs_threaded_blas(self) -> bool {
        matches!(self, Self::OpLevel | Self::Naive)
    }
}

/// One benchmark of a size: a variant, its task threads, the library threads it asks for and
/// the `blas_threads` its id names, the count that really runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub variant: Variant,
    pub tasks: usize,
    pub asked: usize,
    pub blas_threads: usize,
}

/// The cells of `variants` that `layer` runs at size `n` in this process, on `p` logical
/// cores; `runs` are the matrixmultiply processes of the suite
/// (`parcost::layer::matmul_thread_runs`). OpenBLAS and faer run every variant as asked. Under
/// matrixmultiply a variant's B is what a product of size n runs
/// ([`Layer::cell_blas_threads`]): op-level and naive ask for P threads but run 1 below
/// n = 128, where they are the serial and task-level cells, measured once, under those names.
pub fn cells(layer: Layer, p: usize, n: usize, runs: &[usize], variants: &[Variant]) -> Vec<Cell> {
    variants
        .iter()
        .filter_map(|&variant| {
            let (tasks, asked) = variant.threads(p);
            let blas_threads = layer.cell_blas_threads(asked, n, runs)?;
            Some(Cell {
                variant,
                tasks,
                asked,
                blas_threads,
            })
        })
        .collect()
}

/// Pairs of `n x n` matrices for `p` task threads: about [`TARGET_FLOP`] of products, and at
/// least [`PRODUCTS_PER_TASK`] x `p` of them (so the largest sizes do more work than the target:
/// the report states each size's real figure from `pairs` in its id).
pub fn pairs_for(n: usize, p: usize) -> usize {
    let per_product = 2 * (n as u64).pow(3);
    usize::try_from((TARGET_FLOP + per_product / 2) / per_product)
        .unwrap_or(usize::MAX)
        .max(PRODUCTS_PER_TASK * p.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parcost::blas::TaskPool;
    use parcost::workload::MatmulBatch;

    #[test]
    fn batches_do_about_the_same_work_with_room_for_every_task() {
        for p in [1, 2, 4] {
            for n in SIZES {
                let pairs = pairs_for(n, p);
                assert!(pairs >= PRODUCTS_PER_TASK * p, "n={n}, p={p}: {pairs}");
                let flop = 2.0 * (n as f64).powi(3) * pairs as f64;
                let ratio = flop / TARGET_FLOP as f64;
                if 2 * n.pow(3) * PRODUCTS_PER_TASK * p <= TARGET_FLOP as usize {
                    assert!((0.9..1.1).contains(&ratio), "n={n}, p={p}: {ratio}");
                }
            }
        }
        assert_eq!(pairs_for(32, 2), 30518);
        assert_eq!(pairs_for(512, 2), 8, "7 would split 4:3 on 2 threads");
        assert_eq!(pairs_for(1024, 2), 8, "more than the target: 17 GFLOP");
    }

    #[test]
    fn variants_map_to_the_grid() {
        assert_eq!(Variant::OpLevel.threads(2), (1, 2));
        assert_eq!(Variant::TaskLevel.threads(8), (8, 1));
        assert_eq!(Variant::Naive.threads(0), (1, 1));
        let names: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
        assert_eq!(names, ["serial", "op-level", "task-level", "naive"]);
    }

    /// Under matrixmultiply, across the processes of the suite's run (one a pool), at every
    /// size: no two ids name the same run, and each names the count that ran.
    #[test]
    fn matrixmultiply_cells_name_each_count_that_runs_once() {
        use parcost::layer::{matmul_thread_runs, matmul_threads_at};
        for p in 1..=9 {
            let runs = matmul_thread_runs("task-level", p);
            // With P = 1 the bench runs the serial variant only (the others are it).
            let variants: &[Variant] = if p == 1 {
                &[Variant::Serial]
            } else {
                &Variant::ALL
            };
            for n in SIZES {
                let all: Vec<Cell> = runs
                    .iter()
                    .flat_map(|&threads| {
                        cells(Layer::Matrixmultiply { threads }, p, n, &runs, variants)
                    })
                    .collect();
                let mut ran: Vec<(usize, usize)> =
                    all.iter().map(|c| (c.tasks, c.blas_threads)).collect();
                ran.sort_unstable();
                let before = ran.len();
                ran.dedup();
                assert_eq!(ran.len(), before, "p={p}, n={n}: {all:?}");
                for c in &all {
                    assert_eq!(c.blas_threads, matmul_threads_at(c.asked, n), "{c:?}");
                    assert_ne!(c.blas_threads, 3, "p={p}, n={n}: {c:?}");
                    if n <= 64 {
                        assert_eq!(c.blas_threads, 1, "p={p}, n={n}: {c:?}");
                    }
                }
                // Every (tasks, count) a variant really runs is measured.
                let mut wanted: Vec<(usize, usize)> = variants
                    .iter()
                    .map(|v| {
                        let (t, b) = v.threads(p);
                        (t, matmul_threads_at(b, n))
                    })
                    .collect();
                wanted.sort_unstable();
                wanted.dedup();
                assert_eq!(ran, wanted, "p={p}, n={n}");
            }
        }
        let runs = matmul_thread_runs("task-level", 2);
        let at = |threads, n| {
            cells(
                Layer::Matrixmultiply { threads },
                2,
                n,
                &runs,
                &Variant::ALL,
            )
        };
        assert!(
            at(2, 64).is_empty(),
            "op-level and naive run 1 thread at 64"
        );
        assert_eq!(at(2, 128).len(), 2);
        assert_eq!(at(1, 64).len(), 2, "serial and task-level");
        assert_eq!(cells(Layer::Faer, 2, 32, &runs, &Variant::ALL).len(), 4);
    }

    #[test]
    fn every_variant_under_every_layer_matches_serial() {
        use parcost::native::LayerPool;
        let _serial = parcost::blas::exclusive_blas();
        let batch = MatmulBatch::new(48, 8, 3);
        let reference = batch.reference();
        for layer in [Layer::Faer, Layer::Matrixmultiply { threads: 2 }] {
            for v in Variant::ALL {
                let (tasks, blas) = v.threads(2);
                if !layer.runs_blas_threads(blas) {
                    continue;
                }
                let pool = LayerPool::new(layer, tasks, blas).expect("pool");
                let mut out = batch.outputs();
                batch.run_on(&pool, &mut out);
                if let Err(e) = MatmulBatch::check(&out, &reference) {
                    panic!("{layer} {}: {e}", v.name());
                }
            }
        }
    }

    #[test]
    fn every_variant_matches_serial() {
        let _serial = parcost::blas::exclusive_blas();
        let batch = MatmulBatch::new(64, 6, 9);
        let reference = batch.reference();
        for v in Variant::ALL {
            let (tasks, blas) = v.threads(2);
            let pool = TaskPool::new(tasks, blas).expect("pool");
            let mut out = batch.outputs();
            pool.install(|| batch.run(&mut out));
            if let Err(e) = MatmulBatch::check(&out, &reference) {
                panic!("{}: {e}", v.name());
            }
        }
    }
}
