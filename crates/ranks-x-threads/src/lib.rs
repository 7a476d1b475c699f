//! Cost 1 across MPI: R ranks, each calling BLAS at B threads, on one machine or across hosts
//! (`mpirun -np R -x OPENBLAS_NUM_THREADS=B`), with OpenMPI through rsmpi.
//!
//! - [`batch`]: the batch the ranks share (the oversubscription suite's products and SVDs),
//!   split across ranks, its per-item checksums and the serial reference.
//! - [`grid`]: the R x B cells and their benchmark ids.
//! - [`protocol`]: what the bench and rank 0 say to each other, and what rank 0 broadcasts.
//! - [`job`]: the bench's side of one job: mpirun, the start-up, requests, the teardown.
//! - [`procs`]: a job's processes in `/proc`, found by the mark each carries.
//! - `rank` (feature `mpi`): a rank's side, run under mpirun.
//! - [`whereabouts`]: where each rank is, asked by the bench when rank 0 stops answering.

pub mod batch;
pub mod grid;
pub mod job;
pub mod procs;
pub mod protocol;
#[cfg(feature = "mpi")]
pub mod rank;
pub mod whereabouts;

/// The suite's name (its entry in `parcost::id::SUITES`).
pub const SUITE: &str = parcost::id::RANKS_X_THREADS.name;
