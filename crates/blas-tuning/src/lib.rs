//! Cost 2, BLAS tuning: one large operation at a time, swept over BLAS thread counts. This crate
//! holds the four operations it times.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Axis};
use ndarray_linalg::{Cholesky, JobSvd, SVDDC, Solve, UPLO};
use parcost::workload::{BLAS_TOLERANCE, Mismatch, random_matrix};

/// The operations swept, each at the size the suite uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `C = A B` (dgemm): its best rate is the machine's peak DGEMM rate.
    Matmul,
    /// Singular values with thin U and V (gesdd, as numpy's `svd`).
    Svd,
    /// `A x = b` for one right-hand side (LU, gesv).
    Solve,
    /// `A = L L^T` of a symmetric positive definite matrix (potrf).
    Cholesky,
}

impl Op {
    /// Every op with the size the suite runs it at.
    pub const SUITE: [(Self, usize); 4] = [
        (Self::Matmul, 2048),
        (Self::Svd, 768),
        (Self::Solve, 2048),
        (Self::Cholesky, 2048),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Matmul => "matmul",
            Self::Svd => "svd",
            Self::Solve => "solve",
            Self::Cholesky => "cholesky",
        }
    }

    /// The textbook floating-point operation count at size `n`, where one is standard
    /// (SVD's depends on the data and the routine's path, so it has none).
    pub fn flop(self, n: usize) -> Option<u64> {
        let n = n as u64;
        match self {
            Self::Matmul => Some(2 * n.pow(3)),
            Self::Solve => Some(2 * n.pow(3) / 3 + 2 * n.pow(2)),
            Self::Cholesky => Some(n.pow(3) / 3),
            Self::Svd => None,
        }
    }
}

/// One op's inputs, made once from a seed.
#[derive(Debug, Clone)]
pub struct Problem {
    pub op: Op,
    pub n: usize,
    a: Array2<f64>,
    b: Array2<f64>,
}

impl Problem {
    pub fn new(op: Op, n: usize, seed: u64) -> Self {
        let mut a = random_matrix(n, seed);
        let b = match op {
            Op::Matmul => random_matrix(n, seed ^ 1),
            Op::Solve => random_matrix(n, seed ^ 1)
                .index_axis(Axis(1), 0)
                .to_owned()
                .insert_axis(Axis(1)),
            Op::Svd | Op::Cholesky => Array2::zeros((0, 0)),
        };
        match op {
            // Diagonally dominant: well conditioned, so the tolerance below holds for any order.
            Op::Solve => a.diag_mut().mapv_inplace(|d| d + n as f64),
            // M M^T / n + I: symmetric positive definite.
            Op::Cholesky => {
                let mut spd = a.dot(&a.t()) / n as f64;
                spd.diag_mut().mapv_inplace(|d| d + 1.0);
                a = spd;
            }
            Op::Matmul | Op::Svd => {}
        }
        Self { op, n, a, b }
    }

    /// An output of the right shape, allocated once outside the timed loop.
    pub fn output(&self) -> Array2<f64> {
        match self.op {
            Op::Matmul | Op::Cholesky => Array2::zeros((self.n, self.n)),
            Op::Svd | Op::Solve => Array2::zeros((self.n, 1)),
        }
    }

    /// Runs the op on the calling thread, with whatever BLAS thread count is set. A LAPACK error
    /// leaves NaNs, which the check rejects.
    pub fn run(&self, out: &mut Array2<f64>) {
        let column = |v: Array1<f64>| v.insert_axis(Axis(1));
        let result = match self.op {
            Op::Matmul => {
                general_mat_mul(1.0, &self.a, &self.b, 0.0, out);
                return;
            }
            Op::Svd => self.a.svddc(JobSvd::Some).map(|(_, s, _)| column(s)),
            Op::Solve => self.a.solve(&self.b.column(0).to_owned()).map(column),
            Op::Cholesky => self.a.cholesky(UPLO::Lower),
        };
        match result {
            Ok(r) => *out = r,
            Err(_) => out.fill(f64::NAN),
        }
    }

    /// The serial reference: the same op at one BLAS thread.
    pub fn reference(&self) -> Array2<f64> {
        let _one = parcost::blas::BlasThreads::set(1).ok();
        let mut out = self.output();
        self.run(&mut out);
        out
    }

    pub fn check(out: &Array2<f64>, reference: &Array2<f64>) -> Result<(), Mismatch> {
        BLAS_TOLERANCE.check_arrays(out, reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parcost::blas::BlasThreads;

    #[test]
    fn references_are_mathematically_right() {
        let _serial = parcost::blas::exclusive_blas();
        let n = 40;
        for op in [Op::Matmul, Op::Svd, Op::Solve, Op::Cholesky] {
            let p = Problem::new(op, n, 17);
            let r = p.reference();
            assert!(r.iter().all(|x| x.is_finite()), "{op:?}");
            let residual = match op {
                Op::Matmul => {
                    let naive = Array2::from_shape_fn((n, n), |(i, j)| {
                        (0..n).map(|k| p.a[[i, k]] * p.b[[k, j]]).sum::<f64>()
                    });
                    (&r - &naive).iter().fold(0.0_f64, |m, x| m.max(x.abs()))
                }
                // The squared singular values add up to the squared Frobenius norm.
                Op::Svd => (r.iter().map(|s| s * s).sum::<f64>()
                    - p.a.iter().map(|x| x * x).sum::<f64>())
                .abs(),
                Op::Solve => (p.a.dot(&r) - &p.b)
                    .iter()
                    .fold(0.0_f64, |m, x| m.max(x.abs())),
                Op::Cholesky => (r.dot(&r.t()) - &p.a)
                    .iter()
                    .fold(0.0_f64, |m, x| m.max(x.abs())),
            };
            assert!(residual < 1e-9, "{op:?}: residual {residual}");
        }
    }

    #[test]
    fn threaded_runs_match_the_reference_and_a_wrong_one_is_caught() {
        let _serial = parcost::blas::exclusive_blas();
        // Off the main thread, LAPACK at several BLAS threads needs a larger stack.
        parcost::blas::on_blas_stack(|| {
            for op in [Op::Matmul, Op::Svd, Op::Solve, Op::Cholesky] {
                let p = Problem::new(op, 300, 5);
                let reference = p.reference();
                let _threads = BlasThreads::set(3).expect("set");
                let mut out = p.output();
                p.run(&mut out);
                Problem::check(&out, &reference).expect("threaded matches serial");
                out[[0, 0]] += 1e-3;
                assert!(Problem::check(&out, &reference).is_err(), "{op:?}");
                assert!(
                    Problem::check(&p.output(), &reference).is_err(),
                    "{op:?} never run"
                );
            }
        });
    }

    #[test]
    fn flop_counts() {
        assert_eq!(Op::Matmul.flop(10), Some(2000));
        assert_eq!(Op::Cholesky.flop(30), Some(9000));
        assert_eq!(Op::Svd.flop(10), None);
    }
}
