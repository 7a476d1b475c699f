//! Cost 2, BLAS tuning: one large operation at a time, swept over BLAS thread counts. This crate
//! holds the four operations it times, by OpenBLAS (through ndarray-linalg) and by faer (its
//! low-level functions, each with an explicit `Par`, so B is honoured per call).

use criterion::Throughput;
use faer::{Mat, Par};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Axis, OwnedRepr, ShapeBuilder};
use ndarray_linalg::{
    FactorizeInto, JobSvd, LUFactorized, Lapack, MatrixLayout, SVDDCInplace, Solve, UPLO,
};
use parcost::blas::BlasThreads;
use parcost::harness::{Suite, fail, params};
use parcost::layer::Layer;
use parcost::native::{LayerPool, faer_par, faer_singular_values, faer_view, faer_view_mut};
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

/// What a LAPACK routine overwrites: a fresh copy for every run, made outside the timed region
/// ([`Problem::input`]), in the layout the routine wants (column-major for Cholesky, so that
/// ndarray-linalg transposes nothing inside the timing).
#[derive(Debug, Clone)]
pub struct Input {
    a: Array2<f64>,
    rhs: Array1<f64>,
}

/// What a LAPACK op returned: the matrix that is checked, and the buffers the routine returned
/// besides (the LU factors, U and V^T), kept so that they are freed after the timed region,
/// not in it. [`Problem::result`] reads it.
pub enum Factored {
    /// A product, or a Cholesky factor whose upper triangle still holds the input.
    Matrix(Array2<f64>),
    Svd {
        singular_values: Array2<f64>,
        _u: Option<Array2<f64>>,
        _vt: Option<Array2<f64>>,
        /// The input the routine overwrote.
        _a: Array2<f64>,
    },
    Solve {
        x: Array2<f64>,
        _lu: LUFactorized<OwnedRepr<f64>>,
    },
    /// LAPACK reported an error: the check rejects the NaNs [`Problem::result`] gives.
    Failed,
}

impl std::fmt::Debug for Factored {
    // ndarray-linalg's LU factors have no Debug: the kind is what a failed test needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Matrix(_) => "Factored::Matrix",
            Self::Svd { .. } => "Factored::Svd",
            Self::Solve { .. } => "Factored::Solve",
            Self::Failed => "Factored::Failed",
        })
    }
}

/// What a faer routine overwrites: column-major copies (faer's own layout, as LAPACK's is
/// Fortran's), made outside the timed region ([`Problem::faer_input`]).
#[derive(Debug, Clone)]
pub struct FaerInput {
    a: Mat<f64>,
    rhs: Mat<f64>,
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

    /// Whether the routine overwrites its input (every LAPACK op here does), so each run
    /// needs a fresh [`Input`]: run it with [`Problem::factor`], else with [`Problem::multiply`].
    pub fn consumes_input(&self) -> bool {
        self.op != Op::Matmul
    }

    /// A fresh copy of what the routine overwrites.
    pub fn input(&self) -> Input {
        Input {
            a: if self.op == Op::Cholesky {
                let mut f = Array2::zeros((self.n, self.n).f());
                f.assign(&self.a);
                f
            } else {
                self.a.clone()
            },
            rhs: match self.op {
                Op::Solve => self.b.column(0).to_owned(),
                _ => Array1::zeros(0),
            },
        }
    }

    /// An output of the right shape for [`Problem::multiply`], allocated outside the timed loop.
    pub fn output(&self) -> Array2<f64> {
        Array2::zeros((self.n, self.n))
    }

    /// `out = A B` (dgemm) with whatever BLAS thread count is set.
    pub fn multiply(&self, out: &mut Array2<f64>) {
        general_mat_mul(1.0, &self.a, &self.b, 0.0, out);
    }

    /// Runs a LAPACK op in place on `input` (no copy: ndarray-linalg's `svddc`, `solve` and
    /// `cholesky` would copy the matrix first): the routine and nothing else. Cholesky is
    /// `dpotrf` itself on the column-major input (`cholesky_into` transposes a row-major matrix
    /// before and after and clears the upper triangle, all inside the timing: 113 ms for a
    /// 54 ms routine at n = 2048 on 2 threads here). What is checked comes out of
    /// [`Problem::result`], outside the timing.
    pub fn factor(&self, input: Input) -> Factored {
        let Input { mut a, mut rhs } = input;
        let column = |v: Array1<f64>| v.insert_axis(Axis(1));
        let done = match self.op {
            Op::Matmul => {
                let mut out = self.output();
                self.multiply(&mut out);
                Ok(Factored::Matrix(out))
            }
            Op::Svd => match a.svddc_inplace(JobSvd::Some) {
                Ok((u, s, vt)) => Ok(Factored::Svd {
                    singular_values: column(s),
                    _u: u,
                    _vt: vt,
                    _a: a,
                }),
                Err(e) => Err(e),
            },
            Op::Solve => a.factorize_into().and_then(|lu| {
                lu.solve_inplace(&mut rhs)?;
                Ok(Factored::Solve {
                    x: column(rhs),
                    _lu: lu,
                })
            }),
            Op::Cholesky => {
                let n = i32::try_from(self.n).unwrap_or(i32::MAX);
                let column_major = a.t().is_standard_layout();
                match a.as_slice_memory_order_mut() {
                    Some(s) if column_major => {
                        let layout = MatrixLayout::F { col: n, lda: n };
                        <f64 as Lapack>::cholesky(layout, UPLO::Lower, s)
                            .map(|()| Factored::Matrix(a))
                            .map_err(Into::into)
                    }
                    _ => Ok(Factored::Failed),
                }
            }
        };
        done.unwrap_or(Factored::Failed)
    }

    /// The matrix [`Problem::factor`] is checked by: the product, the singular values, the
    /// solution, or the Cholesky factor with its upper triangle zero.
    pub fn result(&self, factored: &Factored) -> Array2<f64> {
        match factored {
            Factored::Matrix(m) if self.op == Op::Cholesky => lower_triangle(m),
            Factored::Matrix(m) => m.clone(),
            Factored::Svd {
                singular_values, ..
            } => singular_values.clone(),
            Factored::Solve { x, .. } => x.clone(),
            Factored::Failed => Array2::from_elem((self.n, 1), f64::NAN),
        }
    }

    /// Runs the op once, whatever its kind (for references and tests).
    pub fn run_once(&self) -> Array2<f64> {
        if self.consumes_input() {
            self.result(&self.factor(self.input()))
        } else {
            let mut out = self.output();
            self.multiply(&mut out);
            out
        }
    }

    /// A fresh column-major copy of what faer's routine overwrites.
    pub fn faer_input(&self) -> FaerInput {
        FaerInput {
            a: faer_view(&self.a).to_owned(),
            rhs: match self.op {
                Op::Solve => faer_view(&self.b).to_owned(),
                _ => Mat::zeros(0, 0),
            },
        }
    }

    /// `out = A B` by faer's matmul at `par`, on the arrays themselves (row-major views).
    pub fn multiply_faer(&self, out: &mut Array2<f64>, par: Par) {
        faer::linalg::matmul::matmul(
            faer_view_mut(out),
            faer::Accum::Replace,
            faer_view(&self.a),
            faer_view(&self.b),
            1.0,
            par,
        );
    }

    /// Runs the op by faer at `par`, in place on `input` where the routine overwrites it:
    /// the singular values (SVD with thin U and V, from the matrix itself), the solution
    /// (partial-pivoting LU, then the two triangular solves) or the Cholesky factor (its upper
    /// triangle still holds the input: [`Problem::faer_result`] clears it). A failure gives
    /// NaNs, which the check rejects.
    pub fn factor_faer(&self, input: FaerInput, par: Par) -> Mat<f64> {
        use faer::dyn_stack::{MemBuffer, MemStack};
        use faer::linalg::cholesky::llt::factor as llt;
        use faer::linalg::lu::partial_pivoting::{factor as lu, solve};
        let n = self.n;
        let nan = || Mat::from_fn(n, 1, |_, _| f64::NAN);
        let FaerInput { mut a, mut rhs } = input;
        match self.op {
            Op::Matmul => {
                let mut out = self.output();
                self.multiply_faer(&mut out, par);
                faer_view(&out).to_owned()
            }
            Op::Svd => faer_singular_values(faer_view(&self.a), par)
                .map_or_else(nan, |s| Mat::from_fn(s.len(), 1, |i, _| s[i])),
            Op::Solve => {
                let (mut perm, mut perm_inv) = (vec![0usize; n], vec![0usize; n]);
                let mut mem = MemBuffer::new(
                    lu::lu_in_place_scratch::<usize, f64>(n, n, par, Default::default()).or(
                        solve::solve_in_place_scratch::<usize, f64>(n, rhs.ncols(), par),
                    ),
                );
                let stack = MemStack::new(&mut mem);
                let (_, p) = lu::lu_in_place(
                    a.as_mut(),
                    &mut perm,
                    &mut perm_inv,
                    par,
                    stack,
                    Default::default(),
                );
                // The unit lower and the upper triangle share the factored matrix.
                solve::solve_in_place(a.as_ref(), a.as_ref(), p, rhs.as_mut(), par, stack);
                rhs
            }
            Op::Cholesky => {
                let mut mem = MemBuffer::new(llt::cholesky_in_place_scratch::<f64>(
                    n,
                    par,
                    Default::default(),
                ));
                match llt::cholesky_in_place(
                    a.as_mut(),
                    Default::default(),
                    par,
                    MemStack::new(&mut mem),
                    Default::default(),
                ) {
                    Ok(_) => a,
                    Err(_) => Mat::from_fn(n, n, |_, _| f64::NAN),
                }
            }
        }
    }

    /// What [`Problem::factor_faer`] returned, as [`Problem::factor`] returns it: the
    /// Cholesky factor with its upper triangle zero. Outside the timed region.
    pub fn faer_result(&self, out: &Mat<f64>) -> Array2<f64> {
        let r = parcost::native::to_array(out.as_ref());
        if self.op == Op::Cholesky {
            lower_triangle(&r)
        } else {
            r
        }
    }

    /// The serial reference: the same op at one BLAS thread.
    pub fn reference(&self) -> Array2<f64> {
        let _one = parcost::blas::BlasThreads::set(1).ok();
        self.run_once()
    }

    pub fn check(out: &Array2<f64>, reference: &Array2<f64>) -> Result<(), Mismatch> {
        BLAS_TOLERANCE.check_arrays(out, reference)
    }

    /// Checks an output without BLAS (Freivalds' test): for random vectors `x`, `C x` must equal
    /// `A (B x)` for a product and `L (L^T x)` must equal `A x` for a Cholesky factor, each side
    /// computed by plain loops. A wrong kernel's output fails with near certainty, in O(n^2).
    /// Other ops are not checked this way (`Ok`).
    pub fn check_independently(&self, out: &Array2<f64>) -> Result<(), Mismatch> {
        for seed in [11, 12] {
            let x = random_matrix(self.n, seed).row(0).to_owned();
            let (got, want) = match self.op {
                Op::Matmul => (mat_vec(out, &x), mat_vec(&self.a, &mat_vec(&self.b, &x))),
                Op::Cholesky => (
                    mat_vec(out, &mat_vec(&out.t().to_owned(), &x)),
                    mat_vec(&self.a, &x),
                ),
                Op::Svd | Op::Solve => return Ok(()),
            };
            BLAS_TOLERANCE.check_arrays(&got, &want)?;
        }
        Ok(())
    }
}

/// Benchmarks `problem` under each of `layers` at each of its thread counts B, under
/// `blas-tuning/<op>/<workload(layer)>/blas_threads=B`: checked first against its serial OpenBLAS
/// reference (and, for matmul and Cholesky, that reference against a check without BLAS),
/// then timed with only the routine inside the timed region. Under OpenBLAS, B is its thread
/// count; under faer, `Par::rayon(B)` in a pool of B threads (`Par::Seq` for 1).
pub fn sweep(
    suite: &mut Suite,
    problem: &Problem,
    layers: &[(Layer, Vec<usize>)],
    workload: impl Fn(Layer) -> String,
) {
    let name = suite.name();
    // Nothing of it runs (a later round's contenders are elsewhere): no reference to compute.
    let any = layers.iter().any(|(layer, threads)| {
        threads.iter().any(|b| {
            suite.runs(&format!(
                "{}/{}/{}",
                problem.op.name(),
                workload(*layer),
                params(&[("blas_threads", b)])
            ))
        })
    });
    if !any {
        return;
    }
    let reference = problem.reference();
    if let Err(e) = problem.check_independently(&reference) {
        fail(
            name,
            format!(
                "{} n={}: the serial reference fails a check without BLAS: {e}",
                problem.op.name(),
                problem.n
            ),
        );
    }
    let mut group = suite.group(problem.op.name());
    if let Some(flop) = problem.op.flop(problem.n) {
        group.throughput(Throughput::Elements(flop));
    }
    for (layer, threads) in layers {
        sweep_layer(
            &mut group,
            problem,
            &reference,
            *layer,
            &workload(*layer),
            threads,
        );
    }
    group.finish();
}

fn sweep_layer(
    group: &mut parcost::harness::Group<'_>,
    problem: &Problem,
    reference: &Array2<f64>,
    layer: Layer,
    workload: &str,
    threads: &[usize],
) {
    let name = parcost::id::BLAS_TUNING.name;
    for &b in threads {
        let id = format!("{workload}/{}", params(&[("blas_threads", &b)]));
        if let Layer::Faer = layer {
            let pool = LayerPool::new(layer, 1, b).unwrap_or_else(|e| fail(name, e));
            let par = faer_par(b);
            if problem.consumes_input() {
                group.bench_batched(
                    &id,
                    || problem.faer_input(),
                    |input| pool.install(|| problem.factor_faer(input, par)),
                    |out| Problem::check(&problem.faer_result(out), reference),
                );
            } else {
                group.bench(
                    &id,
                    problem.output(),
                    |out| pool.install(|| problem.multiply_faer(out, par)),
                    |out| Problem::check(out, reference),
                );
            }
            continue;
        }
        let _blas = BlasThreads::set(b).unwrap_or_else(|e| fail(name, e));
        if problem.consumes_input() {
            group.bench_batched(
                &id,
                || problem.input(),
                |input| problem.factor(input),
                |out| Problem::check(&problem.result(out), reference),
            );
        } else {
            group.bench(
                &id,
                problem.output(),
                |out| problem.multiply(out),
                |out| Problem::check(out, reference),
            );
        }
    }
}

/// `m` with its upper triangle zero, in row-major layout.
fn lower_triangle(m: &Array2<f64>) -> Array2<f64> {
    Array2::from_shape_fn(m.dim(), |(i, j)| if j > i { 0.0 } else { m[[i, j]] })
}

/// `m x` by a plain loop, so no BLAS is involved.
fn mat_vec(m: &Array2<f64>, x: &Array1<f64>) -> Array1<f64> {
    m.rows()
        .into_iter()
        .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
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
                let mut out = p.run_once();
                Problem::check(&out, &reference).expect("threaded matches serial");
                p.check_independently(&out)
                    .expect("and an independent check");
                out[[0, 0]] += 1e-3;
                assert!(Problem::check(&out, &reference).is_err(), "{op:?}");
                if matches!(op, Op::Matmul | Op::Cholesky) {
                    assert!(p.check_independently(&out).is_err(), "{op:?} independently");
                }
                assert!(
                    Problem::check(&(&reference * 0.0), &reference).is_err(),
                    "{op:?} never run"
                );
            }
        });
    }

    #[test]
    fn faer_matches_the_openblas_reference_and_a_wrong_one_is_caught() {
        let _serial = parcost::blas::exclusive_blas();
        for op in [Op::Matmul, Op::Svd, Op::Solve, Op::Cholesky] {
            let p = Problem::new(op, 300, 5);
            let reference = p.reference();
            for par in [Par::Seq, Par::rayon(2)] {
                let pool = LayerPool::new(Layer::Faer, 1, par.degree()).expect("pool");
                let out = pool.install(|| p.factor_faer(p.faer_input(), par));
                let mut got = p.faer_result(&out);
                Problem::check(&got, &reference).unwrap_or_else(|e| panic!("{op:?} {par:?}: {e}"));
                p.check_independently(&got).expect("and independently");
                let last = got.nrows() - 1;
                got[[last, 0]] += 1e-3;
                assert!(Problem::check(&got, &reference).is_err(), "{op:?}");
            }
        }
    }

    #[test]
    fn cholesky_runs_dpotrf_on_a_column_major_input_and_nothing_else() {
        let _serial = parcost::blas::exclusive_blas();
        let p = Problem::new(Op::Cholesky, 50, 3);
        let input = p.input();
        assert!(
            input.a.t().is_standard_layout(),
            "made column-major at setup"
        );
        // The routine's own output: the factor below the diagonal, the input above it (no
        // clearing inside the timing); the result clears it.
        let Factored::Matrix(raw) = p.factor(p.input()) else {
            panic!("a factor")
        };
        assert_eq!(raw[[0, 1]], p.a[[0, 1]]);
        let r = p.result(&Factored::Matrix(raw));
        assert_eq!(r[[0, 1]], 0.0);
        Problem::check(&r, &p.reference()).expect("the reference's factor");
        // A row-major input is refused, not transposed inside the timing.
        let row_major = Input {
            a: p.a.clone(),
            rhs: Array1::zeros(0),
        };
        assert!(matches!(p.factor(row_major), Factored::Failed));
    }

    #[test]
    fn flop_counts() {
        assert_eq!(Op::Matmul.flop(10), Some(2000));
        assert_eq!(Op::Cholesky.flop(30), Some(9000));
        assert_eq!(Op::Svd.flop(10), None);
    }
}
