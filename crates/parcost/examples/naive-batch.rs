//! A naive batch, written the way many programs are: 16 SVDs of 256 x 256 (thin U and V, as
//! numpy's `svd`), each a task of rayon's global pool (as many threads as CPUs), each calling
//! OpenBLAS at its default thread count (as many threads again), five times over. The suites'
//! nearest cell is oversubscription's `svd/n=256,matrices=16` at P tasks x P BLAS threads.
//!
//! `cargo build --release --example naive-batch`, then
//! `cargo xtask try --like oversubscription/svd/n=256,matrices=16 -- target/release/examples/naive-batch`
//! runs it as it is and with the verdict's settings. It prints the sum of every singular value,
//! rounded so that a thread count does not change it, for `--check-output`.

use ndarray::Array2;
use ndarray_linalg::{JobSvd, SVDDC};
use rayon::prelude::*;

const N: usize = 256;
const MATRICES: usize = 16;
const BATCHES: usize = 5;

/// A well-conditioned matrix from a formula (no random generator: every run the same input).
fn matrix(seed: usize) -> Array2<f64> {
    Array2::from_shape_fn((N, N), |(i, j)| {
        let x = ((i * 7 + j * 13 + seed * 31) % 101) as f64 / 101.0 - 0.5;
        if i == j { x + 2.0 } else { x }
    })
}

fn main() -> std::process::ExitCode {
    let inputs: Vec<Array2<f64>> = (0..MATRICES).map(matrix).collect();
    let mut total = 0.0;
    for _ in 0..BATCHES {
        let sums: Result<Vec<f64>, String> = inputs
            .par_iter()
            .map(|a| match a.svddc(JobSvd::Some) {
                Ok((_, s, _)) => Ok(s.sum()),
                Err(e) => Err(e.to_string()),
            })
            .collect();
        match sums {
            Ok(s) => total += s.iter().sum::<f64>(),
            Err(e) => {
                eprintln!("error: an SVD failed: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    println!("sum of singular values: {total:.6e}");
    std::process::ExitCode::SUCCESS
}
