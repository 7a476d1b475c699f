//! Cost 4, task-level gains: many small products go faster with BLAS at one thread and a pool of
//! tasks than with BLAS threading alone. This crate names the four ways to run a batch and sizes
//! the batches; the product itself is `parcost::workload::MatmulBatch`.

/// The total work of every batch, so sizes can be compared at equal work.
pub const TARGET_FLOP: u64 = 2_000_000_000;

/// Matrix sizes swept, small (call overhead dominates) to large (one product fills the machine).
pub const SIZES: [usize; 7] = [32, 64, 128, 256, 512, 1024, 2048];

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

/// Pairs of `n x n` matrices whose products add up to about [`TARGET_FLOP`] (at least one).
pub fn pairs_for(n: usize) -> usize {
    let per_product = 2 * (n as u64).pow(3);
    usize::try_from((TARGET_FLOP + per_product / 2) / per_product)
        .unwrap_or(usize::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parcost::blas::TaskPool;
    use parcost::workload::MatmulBatch;

    #[test]
    fn batches_do_about_the_same_work() {
        for n in SIZES.into_iter().filter(|&n| n <= 1024) {
            let flop = 2.0 * (n as f64).powi(3) * pairs_for(n) as f64;
            let ratio = flop / TARGET_FLOP as f64;
            assert!((0.9..1.1).contains(&ratio), "n={n}: {ratio}");
        }
        assert_eq!(pairs_for(2048), 1, "one product is more than the target");
        assert_eq!(pairs_for(32), 30518);
    }

    #[test]
    fn variants_map_to_the_grid() {
        assert_eq!(Variant::OpLevel.threads(2), (1, 2));
        assert_eq!(Variant::TaskLevel.threads(8), (8, 1));
        assert_eq!(Variant::Naive.threads(0), (1, 1));
        let names: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
        assert_eq!(names, ["serial", "op-level", "task-level", "naive"]);
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
