//! Cost 1, oversubscription: task threads that each call a multithreaded BLAS op step on each
//! other. The batched products come from `parcost::workload`; the SVD batch lives here.

use ndarray::{Array1, Array2};
use ndarray_linalg::{JobSvd, SVDDC};
use parcost::layer::Layer;
use parcost::native::{LayerPool, faer_singular_values, faer_view};
use parcost::workload::{BLAS_TOLERANCE, Mismatch, random_matrix};
use rayon::prelude::*;

/// Singular values (with thin U and V, as numpy's `svd` computes them) of many independent
/// matrices, one task a matrix.
#[derive(Debug, Clone)]
pub struct SvdBatch {
    pub n: usize,
    pub matrices: Vec<Array2<f64>>,
}

impl SvdBatch {
    pub fn new(n: usize, count: usize, seed: u64) -> Self {
        let matrices = (0..count as u64)
            .map(|i| random_matrix(n, seed ^ i))
            .collect();
        Self { n, matrices }
    }

    pub fn outputs(&self) -> Vec<Array1<f64>> {
        vec![Array1::zeros(self.n); self.matrices.len()]
    }

    /// Decomposes every matrix with `gesdd` (divide and conquer, numpy's routine) on the rayon
    /// pool this runs in. A LAPACK error leaves NaNs, which the check rejects.
    pub fn run(&self, out: &mut [Array1<f64>]) {
        out.par_iter_mut()
            .zip(self.matrices.par_iter())
            .for_each(|(s, m)| match m.svddc(JobSvd::Some) {
                Ok((_, sigma, _)) => *s = sigma,
                Err(_) => s.fill(f64::NAN),
            });
    }

    /// Decomposes every matrix on `pool`, one task a matrix: LAPACK's `gesdd` under OpenBLAS,
    /// faer's SVD (thin U and V too) at the pool's `Par` under faer. No SVD is matrixmultiply's:
    /// that layer is not run here (NaNs, which the check rejects).
    pub fn run_on(&self, pool: &LayerPool, out: &mut [Array1<f64>]) {
        match pool.layer() {
            Layer::OpenBlas(_) => {
                pool.run_tasks(out, &self.matrices, |s, m| match m.svddc(JobSvd::Some) {
                    Ok((_, sigma, _)) => *s = sigma,
                    Err(_) => s.fill(f64::NAN),
                })
            }
            Layer::Faer => {
                let par = pool.par();
                pool.run_tasks(out, &self.matrices, |s, m| {
                    match faer_singular_values(faer_view(m), par) {
                        Some(sigma) => *s = Array1::from(sigma),
                        None => s.fill(f64::NAN),
                    }
                });
            }
            Layer::Matrixmultiply { .. } => out.iter_mut().for_each(|s| s.fill(f64::NAN)),
        }
    }

    /// The serial reference: one matrix after another on this thread, BLAS at one thread.
    pub fn reference(&self) -> Vec<Array1<f64>> {
        let _one = parcost::blas::BlasThreads::set(1).ok();
        let mut out = self.outputs();
        for (s, m) in out.iter_mut().zip(&self.matrices) {
            if let Ok((_, sigma, _)) = m.svddc(JobSvd::None) {
                *s = sigma;
            } else {
                s.fill(f64::NAN);
            }
        }
        out
    }

    pub fn check(out: &[Array1<f64>], reference: &[Array1<f64>]) -> Result<(), Mismatch> {
        BLAS_TOLERANCE.check(
            out.iter().flat_map(|s| s.iter().copied()),
            reference.iter().flat_map(|s| s.iter().copied()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parcost::blas::TaskPool;

    #[test]
    fn threaded_svd_matches_serial_and_a_wrong_one_is_caught() {
        let _serial = parcost::blas::exclusive_blas();
        let batch = SvdBatch::new(48, 4, 3);
        let reference = batch.reference();
        assert!(
            reference
                .iter()
                .all(|s| s.iter().all(|x| x.is_finite() && *x >= 0.0))
        );
        for (tasks, blas) in [(1, 2), (2, 1), (4, 2)] {
            let pool = TaskPool::new(tasks, blas).expect("pool");
            let mut out = batch.outputs();
            pool.install(|| batch.run(&mut out));
            SvdBatch::check(&out, &reference).expect("matches serial");
        }
        let mut wrong = reference.clone();
        wrong[2][0] *= 1.0 + 1e-6;
        assert!(SvdBatch::check(&wrong, &reference).is_err());
        assert!(SvdBatch::check(&batch.outputs(), &reference).is_err());
    }

    #[test]
    fn every_layer_matches_the_openblas_reference() {
        let _serial = parcost::blas::exclusive_blas();
        let batch = SvdBatch::new(40, 5, 8);
        let reference = batch.reference();
        let openblas = Layer::OpenBlas(parcost::blas::BlasLayer::loaded().expect("layer"));
        for layer in [openblas, Layer::Faer] {
            for (t, b) in [(1, 1), (2, 1), (1, 2), (3, 2)] {
                if t > 1 && !layer.is_thread_safe() {
                    continue;
                }
                let pool = LayerPool::new(layer, t, b).expect("pool");
                let mut out = batch.outputs();
                batch.run_on(&pool, &mut out);
                SvdBatch::check(&out, &reference)
                    .unwrap_or_else(|e| panic!("{layer} {t}x{b}: {e}"));
            }
        }
        let pool = LayerPool::new(Layer::Matrixmultiply { threads: 1 }, 1, 1).expect("pool");
        let mut out = batch.outputs();
        batch.run_on(&pool, &mut out);
        assert!(
            SvdBatch::check(&out, &reference).is_err(),
            "no SVD under matrixmultiply"
        );
    }

    #[test]
    fn singular_values_of_a_diagonal_matrix_are_its_entries() {
        let _serial = parcost::blas::exclusive_blas();
        let batch = SvdBatch {
            n: 3,
            matrices: vec![Array2::from_diag(&ndarray::arr1(&[3.0, -2.0, 1.0]))],
        };
        let s = batch.reference();
        BLAS_TOLERANCE
            .check(s[0].iter().copied(), [3.0, 2.0, 1.0])
            .expect("|diagonal| in descending order");
    }
}
