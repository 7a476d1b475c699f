//! The Rust-native layers at work: faer and matrixmultiply on ndarray's arrays (views over the
//! same row-major data, no copy), one matrix product per library ([`Gemm`]), and the pool of a
//! grid cell under any layer ([`LayerPool`]).
//!
//! How T (tasks) and B (the library's threads) map per layer:
//! - OpenBLAS: a pool of T task threads, each calling BLAS at B threads ([`TaskPool`]).
//! - faer: a pool of max(T, B) threads; T tasks at a time, each call at `Par::rayon(B)`
//!   (`Par::Seq` for B = 1). faer's parallel loops are rayon jobs in the caller's pool and it
//!   uses min(B, pool size) of them, so a cell never has more than max(T, B) threads: with a
//!   pool of only T, "1 task x P threads" would run on one thread. The grid is "T tasks,
//!   `Par::rayon(B)`, in a pool of max(T, B)" ([`crate::id::layer::FAER_GRID_NOTE`]).
//! - matrixmultiply: a pool of T task threads; B is its own pool's size, fixed for the process
//!   by `MATMUL_NUM_THREADS` (one process per pool: 1, 2 or 4 threads), and shared by the calls
//!   of all T tasks; a product runs [`crate::layer::matmul_threads_at`] of its threads, which
//!   is the B of its id ([`crate::id::layer::MATRIXMULTIPLY_GRID_NOTE`]).

use faer::{MatMut, MatRef, Par};
use ndarray::{Array2, ArrayBase, Data, DataMut, Ix2};
use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::blas::{BLAS_STACK_SIZE, BlasError, TaskPool};
use crate::layer::Layer;

/// faer's parallelism for B threads: `Par::Seq` for 1, `Par::rayon(B)` otherwise.
pub fn faer_par(b: usize) -> Par {
    if b <= 1 { Par::Seq } else { Par::rayon(b) }
}

/// A standard-layout (row-major) ndarray matrix as faer sees it, without a copy.
///
/// # Panics
/// If `a` is not in standard layout (every array parcost makes is).
pub fn faer_view<S: Data<Elem = f64>>(a: &ArrayBase<S, Ix2>) -> MatRef<'_, f64> {
    let (m, n) = a.dim();
    let slice = a
        .as_slice()
        .unwrap_or_else(|| panic!("a {m} x {n} matrix not in standard layout"));
    MatRef::from_row_major_slice(slice, m, n)
}

/// [`faer_view`], writable.
pub fn faer_view_mut<S: DataMut<Elem = f64>>(a: &mut ArrayBase<S, Ix2>) -> MatMut<'_, f64> {
    let (m, n) = a.dim();
    let slice = a
        .as_slice_mut()
        .unwrap_or_else(|| panic!("a {m} x {n} matrix not in standard layout"));
    MatMut::from_row_major_slice_mut(slice, m, n)
}

/// A faer matrix as an ndarray (a copy, for checks outside the timed region).
pub fn to_array(m: MatRef<'_, f64>) -> Array2<f64> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)])
}

/// `c = a b` by `matrixmultiply::dgemm`, the call ndarray's `dot` makes when it does not use
/// BLAS, on its own pool (the process's `MATMUL_NUM_THREADS`).
///
/// # Panics
/// If the shapes do not agree.
pub fn matrixmultiply_gemm(a: &Array2<f64>, b: &Array2<f64>, c: &mut Array2<f64>) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(
        k == k2 && c.dim() == (m, n),
        "shapes {:?} x {:?} -> {:?}",
        a.dim(),
        b.dim(),
        c.dim()
    );
    let (sa, sb) = (a.strides(), b.strides());
    let sc = [c.strides()[0], c.strides()[1]];
    // SAFETY: the pointers and strides describe the three arrays, whose shapes were checked
    // above; `c` is borrowed mutably, so it aliases neither input.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            sa[0],
            sa[1],
            b.as_ptr(),
            sb[0],
            sb[1],
            0.0,
            c.as_mut_ptr(),
            sc[0],
            sc[1],
        );
    }
}

/// The singular values of `a` by faer's SVD, with thin U and V computed as numpy's `svd` (and
/// LAPACK's `gesdd` with `JobSvd::Some`) computes them, at parallelism `par`. `None` when it
/// does not converge.
pub fn faer_singular_values(a: MatRef<'_, f64>, par: Par) -> Option<Vec<f64>> {
    use faer::linalg::svd::{ComputeSvdVectors, svd, svd_scratch};
    let (m, n) = (a.nrows(), a.ncols());
    let k = m.min(n);
    let mut s = faer::diag::Diag::<f64>::zeros(k);
    let mut u = faer::Mat::<f64>::zeros(m, k);
    let mut v = faer::Mat::<f64>::zeros(n, k);
    let thin = ComputeSvdVectors::Thin;
    let mut mem = faer::dyn_stack::MemBuffer::new(svd_scratch::<f64>(
        m,
        n,
        thin,
        thin,
        par,
        Default::default(),
    ));
    svd(
        a,
        s.as_mut(),
        Some(u.as_mut()),
        Some(v.as_mut()),
        par,
        faer::dyn_stack::MemStack::new(&mut mem),
        Default::default(),
    )
    .ok()?;
    Some(s.column_vector().iter().copied().collect())
}

/// One matrix product: which library runs it, at what parallelism.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gemm {
    /// `ndarray::linalg::general_mat_mul` on BLAS (dgemm), at the calling thread's count.
    OpenBlas,
    /// `faer::linalg::matmul::matmul` at this parallelism.
    Faer(Par),
    /// `matrixmultiply::dgemm` on its own pool.
    Matrixmultiply,
}

impl Gemm {
    /// `c = a b`.
    pub fn multiply(self, a: &Array2<f64>, b: &Array2<f64>, c: &mut Array2<f64>) {
        match self {
            Self::OpenBlas => ndarray::linalg::general_mat_mul(1.0, a, b, 0.0, c),
            Self::Faer(par) => faer::linalg::matmul::matmul(
                faer_view_mut(c),
                faer::Accum::Replace,
                faer_view(a),
                faer_view(b),
                1.0,
                par,
            ),
            Self::Matrixmultiply => matrixmultiply_gemm(a, b, c),
        }
    }
}

/// The threads of one grid cell (T tasks, B library threads) under one layer.
#[derive(Debug)]
pub struct LayerPool {
    layer: Layer,
    tasks: usize,
    blas_threads: usize,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    OpenBlas(TaskPool),
    Native(ThreadPool),
}

impl LayerPool {
    /// The pool of cell (`tasks`, `blas_threads`) under `layer` (see the module's doc for what
    /// each means per layer). Under matrixmultiply `blas_threads` must ask for the process's
    /// pool ([`Layer::runs_blas_threads`]; what a product then runs depends on its size).
    ///
    /// Under faer the cell (P, P) on P logical cores is what users write: `par_iter` on rayon's
    /// global pool (P threads by default) with faer's default parallelism in every task. That
    /// default (`faer::get_global_parallelism()`, unset) is `Par::rayon(0)`, which faer reads at
    /// the call as `Par::rayon(rayon::current_num_threads())`, P inside a pool of P (faer
    /// 0.24.4 `src/lib.rs:942-950, 1107-1150`); faer's parallel loops (`spindle::for_each`)
    /// run as `rayon::scope` jobs of the caller's pool, global or not (spindle 0.2.6
    /// `src/lib.rs:274`). Here: a pool of max(P, P) = P threads, `Par::rayon(P)`, and
    /// [`LayerPool::run_tasks`] is a `par_iter` over it. Only the pool object differs (an
    /// explicit one, with [`BLAS_STACK_SIZE`] stacks), so the suites build no global-pool cell.
    pub fn new(layer: Layer, tasks: usize, blas_threads: usize) -> Result<Self, BlasError> {
        let tasks = tasks.max(1);
        if blas_threads == 0 {
            return Err(BlasError::ZeroThreads(0));
        }
        let inner = match layer {
            Layer::OpenBlas(_) => Inner::OpenBlas(TaskPool::new(tasks, blas_threads)?),
            Layer::Faer => Inner::Native(native_pool(
                tasks.max(blas_threads),
                format!("faer-{blas_threads}"),
            )?),
            Layer::Matrixmultiply { threads } => {
                if !layer.runs_blas_threads(blas_threads) {
                    return Err(BlasError::FixedThreads {
                        layer: layer.name(),
                        threads,
                        asked: blas_threads,
                    });
                }
                Inner::Native(native_pool(tasks, format!("mm-{threads}"))?)
            }
        };
        Ok(Self {
            layer,
            tasks,
            blas_threads,
            inner,
        })
    }

    pub fn layer(&self) -> Layer {
        self.layer
    }

    /// T: how many tasks run at once.
    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// B: the library's own parallelism inside each task.
    pub fn blas_threads(&self) -> usize {
        self.blas_threads
    }

    /// Threads of the pool itself (matrixmultiply's own pool and OpenMP teams come on top).
    pub fn pool_threads(&self) -> usize {
        match &self.inner {
            Inner::OpenBlas(p) => p.tasks(),
            Inner::Native(p) => p.current_num_threads(),
        }
    }

    /// faer's parallelism inside a task of this cell (`Par::Seq` under the other layers, where
    /// faer is not what is measured).
    pub fn par(&self) -> Par {
        match self.layer {
            Layer::Faer => faer_par(self.blas_threads),
            _ => Par::Seq,
        }
    }

    /// The matrix product of this cell's layer.
    pub fn gemm(&self) -> Gemm {
        match self.layer {
            Layer::OpenBlas(_) => Gemm::OpenBlas,
            Layer::Faer => Gemm::Faer(self.par()),
            Layer::Matrixmultiply { .. } => Gemm::Matrixmultiply,
        }
    }

    /// Runs `op` inside the pool.
    pub fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R {
        match &self.inner {
            Inner::OpenBlas(p) => p.install(op),
            Inner::Native(p) => p.install(op),
        }
    }

    /// `f(out[i], input[i])` for every i, one task an item, at most T at a time: rayon's
    /// parallel iterator over the pool when it has T threads, else (faer with B > T) T
    /// contiguous shares, each done in order by one task while faer's jobs use the rest of the
    /// pool.
    pub fn run_tasks<O: Send, I: Sync>(
        &self,
        out: &mut [O],
        input: &[I],
        f: impl Fn(&mut O, &I) + Sync,
    ) {
        let tasks = self.tasks;
        let whole_pool = self.pool_threads() == tasks;
        self.install(|| {
            if whole_pool {
                out.par_iter_mut()
                    .zip(input.par_iter())
                    .for_each(|(o, i)| f(o, i));
            } else {
                let share = out.len().div_ceil(tasks).max(1);
                out.par_chunks_mut(share)
                    .zip(input.par_chunks(share))
                    .for_each(|(os, is)| {
                        for (o, i) in os.iter_mut().zip(is) {
                            f(o, i);
                        }
                    });
            }
        });
    }
}

fn native_pool(threads: usize, what: String) -> Result<ThreadPool, BlasError> {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("task-{i}-{what}"))
        .stack_size(BLAS_STACK_SIZE)
        .build()
        .map_err(|source| BlasError::Pool {
            tasks: threads,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blas::BlasLayer;
    use crate::workload::{BLAS_TOLERANCE, MatmulBatch, random_matrix};

    #[test]
    fn every_library_multiplies_like_openblas() {
        let _serial = crate::blas::exclusive_blas();
        let (a, b) = (random_matrix(97, 1), random_matrix(97, 2));
        let mut want = Array2::zeros((97, 97));
        {
            let _one = crate::blas::BlasThreads::set(1).expect("set");
            Gemm::OpenBlas.multiply(&a, &b, &mut want);
        }
        for gemm in [
            Gemm::Faer(Par::Seq),
            Gemm::Faer(Par::rayon(2)),
            Gemm::Matrixmultiply,
        ] {
            let mut got = Array2::zeros((97, 97));
            gemm.multiply(&a, &b, &mut got);
            BLAS_TOLERANCE
                .check_arrays(&got, &want)
                .unwrap_or_else(|e| panic!("{gemm:?}: {e}"));
        }
    }

    #[test]
    fn faer_singular_values_are_lapacks() {
        use ndarray_linalg::{JobSvd, SVDDC};
        let _serial = crate::blas::exclusive_blas();
        let a = random_matrix(64, 9);
        let want = {
            let _one = crate::blas::BlasThreads::set(1).expect("set");
            a.svddc(JobSvd::None).expect("gesdd").1
        };
        for par in [Par::Seq, Par::rayon(2)] {
            let got = faer_singular_values(faer_view(&a), par).expect("converges");
            BLAS_TOLERANCE
                .check(got, want.iter().copied())
                .unwrap_or_else(|e| panic!("{par:?}: {e}"));
        }
    }

    #[test]
    fn faer_views_are_the_arrays_themselves() {
        let a = random_matrix(5, 3);
        let v = faer_view(&a);
        assert_eq!((v.nrows(), v.ncols()), (5, 5));
        assert_eq!(v[(1, 3)], a[[1, 3]]);
        assert_eq!(to_array(v), a);
    }

    #[test]
    fn cells_map_to_pools_as_documented() {
        let faer = LayerPool::new(Layer::Faer, 1, 2).expect("pool");
        assert_eq!((faer.tasks(), faer.pool_threads()), (1, 2), "max(T, B)");
        assert_eq!(faer.par(), Par::rayon(2));
        assert_eq!(
            LayerPool::new(Layer::Faer, 4, 1).expect("pool").par(),
            Par::Seq
        );
        let mm = Layer::Matrixmultiply { threads: 2 };
        assert_eq!(LayerPool::new(mm, 3, 2).expect("pool").pool_threads(), 3);
        assert!(
            LayerPool::new(mm, 3, 3).is_ok(),
            "B = 3 asks for the pool of 2"
        );
        let err = LayerPool::new(mm, 3, 1).expect_err("fixed per process");
        assert!(err.to_string().contains("MATMUL_NUM_THREADS=2"), "{err}");
        let _serial = crate::blas::exclusive_blas();
        let ob = LayerPool::new(Layer::OpenBlas(BlasLayer::Pthreads), 2, 1).expect("pool");
        assert_eq!(ob.gemm(), Gemm::OpenBlas);
    }

    /// The faer cell (P, P) is `par_iter` on rayon's global pool with faer's default `Par`:
    /// the default, read inside the global pool's tasks, is the cell's `Par`.
    #[test]
    fn faer_cell_p_by_p_is_par_iter_on_the_global_pool_with_the_default_par() {
        let global: Vec<(usize, Par)> = (0..8)
            .into_par_iter()
            .map(|_| (rayon::current_num_threads(), faer::get_global_parallelism()))
            .collect();
        let p = global[0].0;
        let cell = LayerPool::new(Layer::Faer, p, p).expect("pool");
        assert_eq!(
            (cell.tasks(), cell.pool_threads()),
            (p, p),
            "par_iter over P"
        );
        let in_cell = cell.install(faer::get_global_parallelism);
        for (threads, par) in global {
            assert_eq!(threads, p);
            assert_eq!(par, in_cell, "the default is the same in both pools");
            if p > 1 {
                assert_eq!(par, cell.par(), "the default is Par::rayon(P)");
            } else {
                assert_eq!(par.degree(), cell.par().degree(), "one thread either way");
            }
        }
    }

    #[test]
    fn every_cell_of_every_layer_matches_the_reference() {
        let _serial = crate::blas::exclusive_blas();
        let batch = MatmulBatch::new(80, 7, 13);
        let reference = batch.reference();
        let layer = Layer::OpenBlas(BlasLayer::loaded().expect("layer"));
        for l in [layer, Layer::Faer, Layer::Matrixmultiply { threads: 1 }] {
            for (t, b) in [(1, 1), (2, 1), (1, 2), (3, 2), (2, 4)] {
                if !l.runs_blas_threads(b) || (t > 1 && !l.is_thread_safe()) {
                    continue;
                }
                let pool = LayerPool::new(l, t, b).expect("pool");
                let mut out = batch.outputs();
                batch.run_on(&pool, &mut out);
                MatmulBatch::check(&out, &reference).unwrap_or_else(|e| panic!("{l} {t}x{b}: {e}"));
            }
        }
    }
}
