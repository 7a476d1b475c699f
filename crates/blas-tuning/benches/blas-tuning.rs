//! Cost 2: single large ops at BLAS threads 1..=2P+1, always including the physical core count
//! and one less, under OpenBLAS's layer and faer (B = `Par::rayon(B)` in a pool of B threads).
//!
//! Ids: `blas-tuning/<matmul|svd|solve|cholesky>/layer=L,n=N/blas_threads=B`.

use blas_tuning::{Op, Problem};
use parcost::harness::{Suite, distinct, params};
use parcost::layer::Layer;

const SEED: u64 = 0x5eed_0002;

fn main() {
    let mut suite = Suite::with_blas("blas-tuning");
    let (p, physical) = (suite.logical_cores(), suite.physical_cores());
    let mut layers = Vec::new();
    for layer in suite.layers() {
        let threads = match layer {
            Layer::Matrixmultiply { .. } => {
                suite.skip(
                    "matrixmultiply",
                    "its workloads are the batched products (oversubscription, task-level)",
                );
                continue;
            }
            // Under `--quick`: 1, P, 2P and the physical count and one less, without the
            // counts in between (the quick run of every suite and layer stays under 5 minutes).
            _ if layer.is_threaded() && suite.is_quick() => {
                distinct([1, p, 2 * p, physical, physical.saturating_sub(1)])
            }
            _ if layer.is_threaded() => {
                distinct((1..=2 * p + 1).chain([physical, physical.saturating_sub(1)]))
            }
            _ => {
                suite.skip(
                    "BLAS threads > 1",
                    "the serial OpenBLAS layer runs every call on one thread",
                );
                vec![1]
            }
        };
        layers.push((layer, threads));
    }
    for (op, n) in Op::SUITE {
        let problem = Problem::new(op, n, SEED);
        blas_tuning::sweep(&mut suite, &problem, &layers, |layer| {
            params(&[("layer", &layer), ("n", &n)])
        });
    }
    suite.finish();
}
