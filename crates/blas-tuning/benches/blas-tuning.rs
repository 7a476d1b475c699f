//! Cost 2: single large ops at BLAS threads 1..=2P+1, always including the physical core count
//! and one less.
//!
//! Ids: `blas-tuning/<matmul|svd|solve|cholesky>/layer=L,n=N/blas_threads=B`.

use blas_tuning::{Op, Problem};
use parcost::harness::{Suite, distinct, fail, params};

const SEED: u64 = 0x5eed_0002;

fn main() {
    let mut suite = Suite::with_blas("blas-tuning");
    let layer = suite
        .layer()
        .unwrap_or_else(|| fail("blas-tuning", "no BLAS layer"));
    let (p, physical) = (suite.logical_cores(), suite.physical_cores());
    let threads = if layer.is_threaded() {
        distinct((1..=2 * p + 1).chain([physical, physical.saturating_sub(1)]))
    } else {
        suite.skip(
            "BLAS threads > 1",
            "the serial OpenBLAS layer runs every call on one thread",
        );
        vec![1]
    };
    for (op, n) in Op::SUITE {
        let problem = Problem::new(op, n, SEED);
        let workload = params(&[("layer", &layer), ("n", &n)]);
        blas_tuning::sweep(&mut suite, &problem, &workload, &threads);
    }
    suite.finish();
}
