//! The batch every rank works on: the oversubscription suite's 64 products of 256 x 256 and 16
//! SVDs of 256 x 256 (the same seeds, so the same matrices), split across ranks, and the
//! per-item checksums that rank 0 reduces and the bench checks against the serial reference.
//!
//! Items are numbered `0..pairs` (products) then `pairs..pairs + matrices` (SVDs). Every item has
//! [`CHECKS`] checksum slots; a rank fills the slots of its own items and leaves the others 0, so
//! the sum over ranks (`MPI_Reduce`) is exactly every item's checksum whatever the rank count
//! (adding zeros is exact).

use std::ops::Range;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use ndarray_linalg::{JobSvd, SVDDC};
use oversubscription::SvdBatch;
use parcost::workload::{BLAS_TOLERANCE, MatmulBatch, Mismatch, fill_uniform, share};
use serde::{Deserialize, Serialize};

/// The oversubscription suite's seed: the same inputs as its `matmul` and `svd` batches.
pub const SEED: u64 = 0x5eed_0001;

/// Checksum slots an item: the sum of its values and a position-weighted sum.
pub const CHECKS: usize = 2;

/// The size of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub n: usize,
    pub pairs: usize,
    pub matrices: usize,
    pub seed: u64,
}

impl Shape {
    /// The suite's batch: 64 products and 16 SVDs of 256 x 256.
    pub const SUITE: Self = Self {
        n: 256,
        pairs: 64,
        matrices: 16,
        seed: SEED,
    };

    /// Under `--quick`, a quarter of the batch: 16 products and 4 SVDs. The worst cells (the
    /// OpenMP layer at 2 BLAS threads a rank) take 10-25 s an iteration of the whole batch on
    /// 2 cores, and every cell is run and checked.
    pub const QUICK: Self = Self {
        n: 256,
        pairs: 16,
        matrices: 4,
        seed: SEED,
    };

    /// Values of one matrix.
    pub fn nn(&self) -> usize {
        self.n * self.n
    }

    /// Products and SVDs.
    pub fn items(&self) -> usize {
        self.pairs + self.matrices
    }

    pub fn checksum_len(&self) -> usize {
        CHECKS * self.items()
    }

    /// Floating-point operations of the products (2 n^3 each); the SVDs have no standard count.
    pub fn product_flop(&self) -> u64 {
        2 * (self.n as u64).pow(3) * self.pairs as u64
    }

    /// The products rank `rank` of `ranks` computes: contiguous, sizes differing by at most one.
    pub fn products_of(&self, ranks: usize, rank: usize) -> Range<usize> {
        share(self.pairs, ranks, rank)
    }

    /// The SVDs rank `rank` of `ranks` computes.
    pub fn svds_of(&self, ranks: usize, rank: usize) -> Range<usize> {
        share(self.matrices, ranks, rank)
    }

    /// Fills `a` and `b` with pair `i`'s operands, as `MatmulBatch::new` makes them.
    fn fill_pair(&self, i: usize, a: &mut [f64], b: &mut [f64]) {
        fill_uniform(a, self.seed ^ (2 * i as u64));
        fill_uniform(b, self.seed ^ (2 * i as u64 + 1));
    }

    /// Fills `m` with SVD matrix `i`, as `SvdBatch::new` makes it.
    fn fill_matrix(&self, i: usize, m: &mut [f64]) {
        fill_uniform(m, self.seed ^ i as u64);
    }
}

/// The values of an item as its checksums: `[sum x_j, sum x_j * w_j]`, with a different
/// weight at every position (`1 + frac(j / phi)`, which never repeats), so that any two values
/// swapped, a transposed or a shifted result changes the second. (Weights repeating every 7
/// positions let a swap of rows 7 apart pass.)
pub fn checksum(values: impl IntoIterator<Item = f64>) -> [f64; CHECKS] {
    const INVERSE_PHI: f64 = 0.618_033_988_749_894_8;
    let mut sum = 0.0;
    let mut weighted = 0.0;
    for (j, x) in values.into_iter().enumerate() {
        sum += x;
        weighted += x * (1.0 + (j as f64 * INVERSE_PHI).fract());
    }
    [sum, weighted]
}

/// The serial reference: every item's checksums, computed on this thread with BLAS at one
/// thread (`MatmulBatch::reference`, `SvdBatch::reference`).
pub fn reference(shape: &Shape) -> Vec<f64> {
    let products = MatmulBatch::new(shape.n, shape.pairs, shape.seed).reference();
    let svds = SvdBatch::new(shape.n, shape.matrices, shape.seed).reference();
    let mut out = Vec::with_capacity(shape.checksum_len());
    for c in &products {
        out.extend(checksum(c.iter().copied()));
    }
    for s in &svds {
        out.extend(checksum(s.iter().copied()));
    }
    out
}

/// Checks a job's checksums against the reference ([`BLAS_TOLERANCE`]: the summation order of a
/// product may change with the BLAS thread count).
pub fn check(got: &[f64], reference: &[f64]) -> Result<(), Mismatch> {
    BLAS_TOLERANCE.check(got.iter().copied(), reference.iter().copied())
}

/// One rank's part of the batch in contiguous buffers, laid out as scatter and gather move them:
/// operands `[a_i b_i]...` of its products, its SVD matrices, the products' results and the
/// singular values.
#[derive(Debug, Clone)]
pub struct Part {
    pub shape: Shape,
    pub products: Range<usize>,
    pub svds: Range<usize>,
    /// `2 * nn` values a product: its `a`, then its `b`.
    pub operands: Vec<f64>,
    /// `nn` values an SVD.
    pub matrices: Vec<f64>,
    /// `nn` values a product.
    pub results: Vec<f64>,
    /// `n` singular values an SVD.
    pub sigma: Vec<f64>,
}

impl Part {
    /// Buffers for `products` and `svds`, inputs zeroed (to be received).
    pub fn empty(shape: Shape, products: Range<usize>, svds: Range<usize>) -> Self {
        let nn = shape.nn();
        Self {
            operands: vec![0.0; 2 * nn * products.len()],
            matrices: vec![0.0; nn * svds.len()],
            results: vec![0.0; nn * products.len()],
            sigma: vec![0.0; shape.n * svds.len()],
            shape,
            products,
            svds,
        }
    }

    /// Rank `rank`'s share, its inputs made here from their seeds.
    pub fn generate(shape: Shape, ranks: usize, rank: usize) -> Self {
        Self::generate_items(
            shape,
            shape.products_of(ranks, rank),
            shape.svds_of(ranks, rank),
        )
    }

    /// The whole batch (what rank 0 holds before it scatters).
    pub fn whole(shape: Shape) -> Self {
        Self::generate_items(shape, 0..shape.pairs, 0..shape.matrices)
    }

    fn generate_items(shape: Shape, products: Range<usize>, svds: Range<usize>) -> Self {
        let mut part = Self::empty(shape, products, svds);
        let nn = shape.nn();
        for (k, i) in part.products.clone().enumerate() {
            let (a, b) = part.operands[2 * k * nn..2 * (k + 1) * nn].split_at_mut(nn);
            shape.fill_pair(i, a, b);
        }
        for (k, i) in part.svds.clone().enumerate() {
            shape.fill_matrix(i, &mut part.matrices[k * nn..(k + 1) * nn]);
        }
        part
    }

    /// Multiplies every product and decomposes every matrix of this part, one after another on
    /// this thread (BLAS at whatever thread count is set). A LAPACK error leaves NaNs, which the
    /// check rejects.
    pub fn compute(&mut self) {
        self.multiply();
        self.decompose();
    }

    /// This part's products ([`Part::compute`]'s first half): the work that runs on every BLAS
    /// thread, where a rank counts the threads that worked.
    pub fn multiply(&mut self) {
        let (n, nn) = (self.shape.n, self.shape.nn());
        for k in 0..self.products.len() {
            let ops = &self.operands[2 * k * nn..2 * (k + 1) * nn];
            let a = ArrayView2::from_shape((n, n), &ops[..nn]);
            let b = ArrayView2::from_shape((n, n), &ops[nn..]);
            let c = ArrayViewMut2::from_shape((n, n), &mut self.results[k * nn..(k + 1) * nn]);
            if let (Ok(a), Ok(b), Ok(mut c)) = (a, b, c) {
                general_mat_mul(1.0, &a, &b, 0.0, &mut c);
            }
        }
    }

    /// This part's SVDs ([`Part::compute`]'s second half), much of them on the calling thread
    /// alone (LAPACK's reduction to bidiagonal form is mostly matrix-vector work).
    pub fn decompose(&mut self) {
        let (n, nn) = (self.shape.n, self.shape.nn());
        for k in 0..self.svds.len() {
            let sigma = &mut self.sigma[k * n..(k + 1) * n];
            let decomposed = ArrayView2::from_shape((n, n), &self.matrices[k * nn..(k + 1) * nn])
                .ok()
                .and_then(|m| m.svddc(JobSvd::Some).ok());
            match decomposed {
                Some((_, s, _)) => sigma
                    .iter_mut()
                    .zip(s.iter())
                    .for_each(|(out, v)| *out = *v),
                None => sigma.fill(f64::NAN),
            }
        }
    }

    /// This part's checksums in a vector of every item's slots (the others 0).
    pub fn checksums(&self) -> Vec<f64> {
        let (n, nn) = (self.shape.n, self.shape.nn());
        let mut out = vec![0.0; self.shape.checksum_len()];
        for (k, i) in self.products.clone().enumerate() {
            out[CHECKS * i..CHECKS * (i + 1)].copy_from_slice(&checksum(
                self.results[k * nn..(k + 1) * nn].iter().copied(),
            ));
        }
        for (k, i) in self.svds.clone().enumerate() {
            let slot = self.shape.pairs + i;
            out[CHECKS * slot..CHECKS * (slot + 1)]
                .copy_from_slice(&checksum(self.sigma[k * n..(k + 1) * n].iter().copied()));
        }
        out
    }

    /// Tests: spoils one result value, as a wrong kernel would.
    pub fn corrupt(&mut self) {
        if let Some(x) = self.results.first_mut().or(self.sigma.first_mut()) {
            *x += 1e-3;
        }
    }
}

/// Counts and offsets of each rank's share of a buffer of `per_item` values an item, for
/// `MPI_Scatterv` and `MPI_Gatherv` (MPI counts are `i32`).
pub fn partition(
    items: usize,
    per_item: usize,
    ranks: usize,
) -> Result<(Vec<i32>, Vec<i32>), String> {
    let mut counts = Vec::with_capacity(ranks);
    let mut displs = Vec::with_capacity(ranks);
    for rank in 0..ranks {
        let r = share(items, ranks, rank);
        let count = i32::try_from(r.len() * per_item);
        let displ = i32::try_from(r.start * per_item);
        match (count, displ) {
            (Ok(c), Ok(d)) => {
                counts.push(c);
                displs.push(d);
            }
            _ => {
                return Err(format!(
                    "{items} items of {per_item} values overflow MPI's counts"
                ));
            }
        }
    }
    Ok((counts, displs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Shape = Shape {
        n: 24,
        pairs: 7,
        matrices: 3,
        seed: SEED,
    };

    #[test]
    fn inputs_are_the_oversubscription_suites() {
        let whole = Part::whole(SMALL);
        let batch = MatmulBatch::new(SMALL.n, SMALL.pairs, SMALL.seed);
        let nn = SMALL.nn();
        for (i, (a, b)) in batch.pairs.iter().enumerate() {
            assert_eq!(
                &whole.operands[2 * i * nn..(2 * i + 1) * nn],
                a.as_slice().expect("a")
            );
            assert_eq!(
                &whole.operands[(2 * i + 1) * nn..(2 * i + 2) * nn],
                b.as_slice().expect("b")
            );
        }
        let svd = SvdBatch::new(SMALL.n, SMALL.matrices, SMALL.seed);
        for (i, m) in svd.matrices.iter().enumerate() {
            assert_eq!(
                &whole.matrices[i * nn..(i + 1) * nn],
                m.as_slice().expect("m")
            );
        }
    }

    #[test]
    fn every_split_sums_to_the_reference_and_a_wrong_one_is_caught() {
        let _serial = parcost::blas::exclusive_blas();
        let reference = reference(&SMALL);
        assert_eq!(reference.len(), SMALL.checksum_len());
        for ranks in [1, 2, 3, 4, 11] {
            let mut total = vec![0.0; SMALL.checksum_len()];
            for rank in 0..ranks {
                let mut part = Part::generate(SMALL, ranks, rank);
                part.compute();
                for (t, c) in total.iter_mut().zip(part.checksums()) {
                    *t += c;
                }
            }
            check(&total, &reference).unwrap_or_else(|e| panic!("{ranks} ranks: {e}"));
        }
        let mut part = Part::whole(SMALL);
        part.compute();
        part.corrupt();
        assert!(
            check(&part.checksums(), &reference).is_err(),
            "a spoilt value"
        );
        assert!(
            check(&vec![0.0; SMALL.checksum_len()], &reference).is_err(),
            "never run"
        );
        assert!(check(&reference[1..], &reference).is_err(), "short");
    }

    #[test]
    fn partitions_cover_the_buffer() {
        let (counts, displs) = partition(10, 5, 3).expect("fits");
        assert_eq!(counts, [20, 15, 15]);
        assert_eq!(displs, [0, 20, 35]);
        assert!(partition(1 << 20, 1 << 20, 2).is_err());
    }

    #[test]
    fn checksums_tell_positions_apart() {
        let a = checksum([1.0, 2.0, 3.0]);
        let b = checksum([3.0, 2.0, 1.0]);
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
        // A product of 16 x 16 with two rows 7 apart swapped, and two values 7 apart, and a
        // shift by one: each changes the weighted sum beyond the check's tolerance.
        let n = 16;
        let c: Vec<f64> = (0..n * n).map(|k| ((k * 37) % 101) as f64 - 50.0).collect();
        let mut rows = c.clone();
        for j in 0..n {
            rows.swap(2 * n + j, 9 * n + j);
        }
        let mut values = c.clone();
        values.swap(3, 10);
        let mut shifted = c.clone();
        shifted.rotate_right(1);
        let want = checksum(c.iter().copied());
        for wrong in [rows, values, shifted] {
            let got = checksum(wrong.iter().copied());
            assert!(check(&got, &want).is_err(), "{got:?} against {want:?}");
        }
    }
}
