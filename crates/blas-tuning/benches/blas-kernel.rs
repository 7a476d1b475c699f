//! Cost 0, the kernel: a matmul and a Cholesky factorisation at 1 and P BLAS threads under the
//! OpenBLAS kernel this process loaded. `cargo xtask bench` runs it once per kernel that passed
//! its trial (`OPENBLAS_CORETYPE` set per process, under the first layer); plain `cargo bench`
//! runs it once, under the library's own choice (or the environment's `OPENBLAS_CORETYPE`).
//!
//! Ids: `blas-tuning/<matmul|cholesky>/layer=L,kernel=K,n=1024/blas_threads=B`: 1024 ranks the
//! kernels as 2048 does, and the slowest kernels take seconds a 2048 product (7 s of a full run
//! for Prescott's matmul at one thread).

use blas_tuning::{Op, Problem};
use parcost::harness::{Suite, distinct, fail, params};
use parcost::kernel::token;

const SEED: u64 = 0x5eed_0002;

fn main() {
    let mut suite = Suite::kernel_sweep("blas-tuning");
    let layer = suite
        .layer()
        .unwrap_or_else(|| fail("blas-tuning", "no BLAS layer"));
    let kernel = token(suite.kernel().unwrap_or("unknown"));
    let p = suite.logical_cores();
    let threads = if layer.is_threaded() {
        distinct([1, p])
    } else {
        vec![1]
    };
    let n = 1024;
    for op in [Op::Matmul, Op::Cholesky] {
        let problem = Problem::new(op, n, SEED);
        let workload = params(&[("layer", &layer), ("kernel", &kernel), ("n", &n)]);
        blas_tuning::sweep(
            &mut suite,
            &problem,
            &[(parcost::layer::Layer::OpenBlas(layer), threads.clone())],
            |_| workload.clone(),
        );
    }
    suite.finish();
}
