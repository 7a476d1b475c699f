//! Seeded inputs, the batched matrix product the BLAS suites share, and the check that a
//! variant's output matches the serial reference.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayBase, Data, Dimension};
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;

use crate::blas::BlasThreads;

/// A uniform `f64` in `[0, 1)` from the top 53 bits of a 64-bit draw.
fn unit(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Fills `out` with uniform numbers in `[-1, 1)` from a generator seeded with `seed`: the same
/// seed gives the same numbers on any thread or process.
pub fn fill_uniform(out: &mut [f64], seed: u64) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    for x in out {
        *x = 2.0 * unit(&mut rng) - 1.0;
    }
}

/// An `n x n` matrix of uniform numbers in `[-1, 1)`.
pub fn random_matrix(n: usize, seed: u64) -> Array2<f64> {
    let mut m = Array2::zeros((n, n));
    if let Some(s) = m.as_slice_mut() {
        fill_uniform(s, seed);
    }
    m
}

/// How close a variant's output must be to the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// Bit for bit: the same operations in the same order.
    Exact,
    /// `|got - want| <= rel * max(1, max |want|)`: for BLAS results whose summation order may
    /// change with the thread count. A wrong result misses by orders of magnitude more.
    Relative(f64),
}

/// A variant's output that does not match the reference.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Mismatch {
    #[error("output has {got} values, the reference {want}")]
    Length { got: usize, want: usize },
    #[error("value {index} is {got}, the reference {want} (allowed: {tolerance:?})")]
    Value {
        index: usize,
        got: f64,
        want: f64,
        tolerance: Tolerance,
    },
}

impl Tolerance {
    /// Compares two sequences of values; the first value out of tolerance is the error.
    pub fn check(
        self,
        got: impl IntoIterator<Item = f64>,
        want: impl IntoIterator<Item = f64>,
    ) -> Result<(), Mismatch> {
        let got: Vec<f64> = got.into_iter().collect();
        let want: Vec<f64> = want.into_iter().collect();
        if got.len() != want.len() {
            return Err(Mismatch::Length {
                got: got.len(),
                want: want.len(),
            });
        }
        let allowed = match self {
            Self::Exact => 0.0,
            Self::Relative(rel) => rel * want.iter().fold(1.0_f64, |m, w| m.max(w.abs())),
        };
        for (index, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let ok = match self {
                Self::Exact => g.to_bits() == w.to_bits(),
                Self::Relative(_) => (g - w).abs() <= allowed,
            };
            if !ok {
                return Err(Mismatch::Value {
                    index,
                    got: g,
                    want: w,
                    tolerance: self,
                });
            }
        }
        Ok(())
    }

    /// Compares arrays element by element in logical order.
    pub fn check_arrays<S, T, D>(
        self,
        got: &ArrayBase<S, D>,
        want: &ArrayBase<T, D>,
    ) -> Result<(), Mismatch>
    where
        S: Data<Elem = f64>,
        T: Data<Elem = f64>,
        D: Dimension,
    {
        self.check(got.iter().copied(), want.iter().copied())
    }
}

/// The tolerance the BLAS suites hold every product and factorisation to.
pub const BLAS_TOLERANCE: Tolerance = Tolerance::Relative(1e-10);

/// Many independent products `a_i * b_i` of `n x n` matrices: the task-parallel workload of the
/// oversubscription and task-level suites.
#[derive(Debug, Clone)]
pub struct MatmulBatch {
    pub n: usize,
    pub pairs: Vec<(Array2<f64>, Array2<f64>)>,
}

impl MatmulBatch {
    pub fn new(n: usize, pairs: usize, seed: u64) -> Self {
        let pairs = (0..pairs as u64)
            .map(|i| {
                (
                    random_matrix(n, seed ^ (2 * i)),
                    random_matrix(n, seed ^ (2 * i + 1)),
                )
            })
            .collect();
        Self { n, pairs }
    }

    /// Floating-point operations of one pass over the batch (2 n^3 a product).
    pub fn flop(&self) -> u64 {
        2 * (self.n as u64).pow(3) * self.pairs.len() as u64
    }

    /// Zeroed outputs, one per pair, allocated once outside the timed loop.
    pub fn outputs(&self) -> Vec<Array2<f64>> {
        self.pairs
            .iter()
            .map(|_| Array2::zeros((self.n, self.n)))
            .collect()
    }

    /// Multiplies every pair, one task a pair, on the rayon pool this runs in.
    pub fn run(&self, out: &mut [Array2<f64>]) {
        out.par_iter_mut()
            .zip(self.pairs.par_iter())
            .for_each(|(c, (a, b))| general_mat_mul(1.0, a, b, 0.0, c));
    }

    /// Multiplies every pair, one task a pair, on `pool`: each product by the pool's library
    /// at its B ([`crate::native::LayerPool`]).
    pub fn run_on(&self, pool: &crate::native::LayerPool, out: &mut [Array2<f64>]) {
        let gemm = pool.gemm();
        pool.run_tasks(out, &self.pairs, |c, (a, b)| gemm.multiply(a, b, c));
    }

    /// The serial reference: one pair after another on this thread, BLAS at one thread.
    pub fn reference(&self) -> Vec<Array2<f64>> {
        let _one = BlasThreads::set(1).ok();
        self.pairs.iter().map(|(a, b)| a.dot(b)).collect()
    }

    /// Checks a variant's outputs against the reference.
    pub fn check(out: &[Array2<f64>], reference: &[Array2<f64>]) -> Result<(), Mismatch> {
        if out.len() != reference.len() {
            return Err(Mismatch::Length {
                got: out.len(),
                want: reference.len(),
            });
        }
        out.iter()
            .zip(reference)
            .try_for_each(|(got, want)| BLAS_TOLERANCE.check_arrays(got, want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blas::TaskPool;

    fn naive_product(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let n = a.nrows();
        Array2::from_shape_fn((n, n), |(i, j)| (0..n).map(|k| a[[i, k]] * b[[k, j]]).sum())
    }

    #[test]
    fn seeded_matrices_repeat_and_differ_by_seed() {
        assert_eq!(random_matrix(8, 1), random_matrix(8, 1));
        assert_ne!(random_matrix(8, 1), random_matrix(8, 2));
        let m = random_matrix(64, 3);
        assert!(m.iter().all(|x| (-1.0..1.0).contains(x)));
        let mean = m.sum() / m.len() as f64;
        assert!(mean.abs() < 0.1, "mean {mean}");
    }

    #[test]
    fn reference_matches_a_naive_triple_loop() {
        let _serial = crate::blas::exclusive_blas();
        let batch = MatmulBatch::new(33, 3, 7);
        let reference = batch.reference();
        let naive: Vec<_> = batch
            .pairs
            .iter()
            .map(|(a, b)| naive_product(a, b))
            .collect();
        MatmulBatch::check(&reference, &naive).expect("BLAS agrees with the definition");
    }

    #[test]
    fn parallel_batch_matches_reference_on_every_grid_cell() {
        let _serial = crate::blas::exclusive_blas();
        let batch = MatmulBatch::new(96, 8, 11);
        let reference = batch.reference();
        for (tasks, blas) in [(1, 1), (1, 2), (2, 1), (4, 2), (3, 3)] {
            let pool = TaskPool::new(tasks, blas).expect("pool");
            let mut out = batch.outputs();
            pool.install(|| batch.run(&mut out));
            MatmulBatch::check(&out, &reference).expect("grid cell matches");
        }
    }

    #[test]
    fn a_wrong_result_is_caught() {
        let _serial = crate::blas::exclusive_blas();
        let batch = MatmulBatch::new(16, 2, 5);
        let reference = batch.reference();
        let mut out = reference.clone();
        out[1][[3, 4]] += 1e-6;
        let err = MatmulBatch::check(&out, &reference).expect_err("perturbed");
        assert!(matches!(err, Mismatch::Value { index: 52, .. }), "{err}");
        let err = MatmulBatch::check(&out[..1], &reference).expect_err("short");
        assert_eq!(err, Mismatch::Length { got: 1, want: 2 });
        let zeros = batch.outputs();
        assert!(
            MatmulBatch::check(&zeros, &reference).is_err(),
            "never-run output"
        );
    }

    #[test]
    fn exact_tolerance_compares_bits() {
        assert!(Tolerance::Exact.check([1.0, 2.0], [1.0, 2.0]).is_ok());
        assert!(Tolerance::Exact.check([1.0], [1.0 + f64::EPSILON]).is_err());
        assert!(Tolerance::Exact.check([f64::NAN], [0.0]).is_err());
        assert!(Tolerance::Relative(1e-3).check([f64::NAN], [0.0]).is_err());
        assert!(Tolerance::Relative(1e-3).check([1000.5], [1000.0]).is_ok());
    }
}

/// A sum over 8 interleaved partial sums, added in a fixed order: vectorisable, so reading an
/// array runs at memory speed rather than at the latency of one chain of additions, and the
/// same on every side of a transport (bit for bit).
pub fn sum(values: &[f64]) -> f64 {
    let mut s = StreamingSum::default();
    s.add(values);
    s.finish()
}

/// The dot product of `a` and `b` (as long as the shorter), in eight lanes as [`sum`] adds:
/// the same bits wherever it runs, for the same values.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0; 8];
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f64>() + tail
}

/// [`sum`] over an array that arrives in pieces: equal to `sum` of the whole, bit for bit, as
/// long as every piece but the last holds a multiple of 8 values.
#[derive(Debug, Clone, Default)]
pub struct StreamingSum {
    lanes: [f64; 8],
    tail: f64,
}

impl StreamingSum {
    pub fn add(&mut self, values: &[f64]) {
        let mut chunks = values.chunks_exact(8);
        for chunk in &mut chunks {
            for (lane, x) in self.lanes.iter_mut().zip(chunk) {
                *lane += x;
            }
        }
        self.tail += chunks.remainder().iter().sum::<f64>();
    }

    pub fn finish(&self) -> f64 {
        self.lanes.iter().sum::<f64>() + self.tail
    }
}

/// Elements a block of an [`ArrayJob`]: the unit of work, seeding and partial sums, so the
/// result does not depend on how many threads or processes share the blocks.
pub const BLOCK: usize = 1 << 16;

/// The element-wise workloads of the threads-vs-processes suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArrayJob {
    /// `y = sin(x) * exp(-x)`.
    Elementwise,
    /// Fill with uniform random numbers, block `b` from a generator seeded with `seed + b`.
    Fill,
    /// Sum of squares: one partial sum a block, added in block order.
    SumSquares,
}

impl ArrayJob {
    pub const ALL: [Self; 3] = [Self::Elementwise, Self::Fill, Self::SumSquares];

    pub fn name(self) -> &'static str {
        match self {
            Self::Elementwise => "elementwise",
            Self::Fill => "fill",
            Self::SumSquares => "sum-squares",
        }
    }

    /// Whether the job reads an input array.
    pub fn reads_input(self) -> bool {
        self != Self::Fill
    }

    /// Output values for `blocks` blocks holding `elements` values.
    pub fn output_len(self, elements: usize, blocks: usize) -> usize {
        match self {
            Self::SumSquares => blocks,
            Self::Elementwise | Self::Fill => elements,
        }
    }

    /// Runs the blocks starting at `first_block` whose input is `input` (empty for
    /// [`ArrayJob::Fill`]) into `out` (one value per element, or per block for sums).
    pub fn run_blocks(self, seed: u64, first_block: usize, input: &[f64], out: &mut [f64]) {
        match self {
            Self::Elementwise => {
                for (y, x) in out.iter_mut().zip(input) {
                    *y = x.sin() * (-x).exp();
                }
            }
            Self::Fill => {
                for (i, block) in out.chunks_mut(BLOCK).enumerate() {
                    fill_uniform(block, seed.wrapping_add((first_block + i) as u64));
                }
            }
            Self::SumSquares => {
                for (partial, block) in out.iter_mut().zip(input.chunks(BLOCK)) {
                    let mut lanes = [0.0_f64; 8];
                    let mut chunks = block.chunks_exact(8);
                    for chunk in &mut chunks {
                        for (lane, x) in lanes.iter_mut().zip(chunk) {
                            *lane += x * x;
                        }
                    }
                    let tail: f64 = chunks.remainder().iter().map(|x| x * x).sum();
                    *partial = lanes.iter().sum::<f64>() + tail;
                }
            }
        }
    }
}

impl ArrayJob {
    /// Runs `blocks` of an array of `elements` values, reading from the whole `input` (empty for
    /// [`ArrayJob::Fill`]) and writing into `out`, which holds exactly those blocks' outputs.
    pub fn run_range(
        self,
        seed: u64,
        elements: usize,
        input: &[f64],
        blocks: std::ops::Range<usize>,
        out: &mut [f64],
    ) {
        let lo = (blocks.start * BLOCK).min(elements);
        let hi = (blocks.end * BLOCK).min(elements);
        let input = if self.reads_input() {
            &input[lo..hi]
        } else {
            &[]
        };
        self.run_blocks(seed, blocks.start, input, out);
    }

    /// The part of the whole output that `blocks` write.
    pub fn output_range(
        self,
        elements: usize,
        blocks: std::ops::Range<usize>,
    ) -> std::ops::Range<usize> {
        match self {
            Self::SumSquares => blocks,
            Self::Elementwise | Self::Fill => {
                (blocks.start * BLOCK).min(elements)..(blocks.end * BLOCK).min(elements)
            }
        }
    }
}

/// Blocks of `elements` values (the last one may be short).
pub fn blocks_of(elements: usize) -> usize {
    elements.div_ceil(BLOCK)
}

/// The blocks worker `index` of `workers` takes: contiguous, sizes differing by at most one.
pub fn share(blocks: usize, workers: usize, index: usize) -> std::ops::Range<usize> {
    let workers = workers.max(1);
    let (base, extra) = (blocks / workers, blocks % workers);
    let start = index * base + index.min(extra);
    start..start + base + usize::from(index < extra)
}

#[cfg(test)]
mod array_job_tests {
    use super::*;

    #[test]
    fn shares_cover_every_block_once() {
        for (blocks, workers) in [(10, 3), (3, 4), (512, 2), (0, 2)] {
            let ranges: Vec<_> = (0..workers).map(|i| share(blocks, workers, i)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[workers - 1].end, blocks);
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_split() {
        let elements = 3 * BLOCK + 100;
        let blocks = blocks_of(elements);
        let mut input = vec![0.0; elements];
        ArrayJob::Fill.run_blocks(9, 0, &[], &mut input);
        for job in ArrayJob::ALL {
            let whole_len = job.output_len(elements, blocks);
            let mut whole = vec![0.0; whole_len];
            job.run_blocks(9, 0, &input, &mut whole);
            let mut split = vec![0.0; whole_len];
            for i in 0..3 {
                let r = share(blocks, 3, i);
                let (lo, hi) = (r.start * BLOCK, (r.end * BLOCK).min(elements));
                let out = match job {
                    ArrayJob::SumSquares => &mut split[r.clone()],
                    _ => &mut split[lo..hi],
                };
                job.run_blocks(9, r.start, &input[lo..hi], out);
            }
            if let Err(e) = Tolerance::Exact.check(split, whole) {
                panic!("{}: {e}", job.name());
            }
        }
    }

    #[test]
    fn the_sum_is_the_sum() {
        let v: Vec<f64> = (0..1001).map(f64::from).collect();
        assert_eq!(sum(&v), 500_500.0);
        assert_eq!(sum(&[]), 0.0);
    }

    #[test]
    fn a_streamed_sum_equals_the_whole_sum_bit_for_bit() {
        let mut v = vec![0.0; 100_003];
        fill_uniform(&mut v, 4);
        let mut s = StreamingSum::default();
        for piece in v.chunks(4096) {
            s.add(piece);
        }
        assert_eq!(s.finish().to_bits(), sum(&v).to_bits());
    }
}
