//! Cost 3, threads against processes: element-wise work, random fills and a reduction over one
//! large array, on threads that share it and on worker processes that must be sent it (pipes)
//! or map it (shared memory). The kernels are `parcost::workload::ArrayJob`; this crate spreads
//! them over threads and processes.

use std::ops::Range;
use std::path::Path;

use parcost::blas::TaskPool;
use parcost::fdio::{as_bytes, as_bytes_mut};
use parcost::shm::SharedArray;
use parcost::worker::{Compute, Request, Spawn, Via, Worker, WorkerError};
use parcost::workload::{ArrayJob, blocks_of, share};
use rayon::prelude::*;

/// Values in the suite's array: 2^25 f64, 256 MiB.
pub const ELEMENTS: usize = 1 << 25;

/// How the blocks of the array are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// One thread, no pool.
    Serial,
    /// A rayon pool of W threads, one task a block.
    Rayon,
    /// `std::thread::scope` with W threads, one contiguous share each.
    Scope,
    /// W worker processes; each share is sent down a pipe and its result sent back.
    ProcessPipe,
    /// W worker processes mapping one memfd that holds the input and the output.
    ProcessShared,
}

impl Variant {
    pub const PARALLEL: [Self; 4] = [
        Self::Rayon,
        Self::Scope,
        Self::ProcessPipe,
        Self::ProcessShared,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Serial => "serial",
            Self::Rayon => "rayon",
            Self::Scope => "scope",
            Self::ProcessPipe => "process-pipe",
            Self::ProcessShared => "process-shared",
        }
    }
}

/// Splits the whole output into the disjoint parts that `parts` contiguous shares of the
/// blocks write.
fn split_output(
    job: ArrayJob,
    elements: usize,
    out: &mut [f64],
    parts: usize,
) -> Vec<(Range<usize>, &mut [f64])> {
    let blocks = blocks_of(elements);
    let mut rest = out;
    let mut consumed = 0;
    let mut pieces = Vec::with_capacity(parts);
    for i in 0..parts {
        let r = share(blocks, parts, i);
        let end = job.output_range(elements, r.clone()).end;
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(end - consumed);
        consumed = end;
        pieces.push((r, head));
        rest = tail;
    }
    pieces
}

/// Length of the whole output of `job` over `elements` values.
pub fn output_len(job: ArrayJob, elements: usize) -> usize {
    job.output_len(elements, blocks_of(elements))
}

/// One variant with its threads or processes, set up once outside the timed loop.
#[derive(Debug)]
pub struct Runner {
    variant: Variant,
    workers: usize,
    job: ArrayJob,
    seed: u64,
    elements: usize,
    pool: Option<TaskPool>,
    processes: Vec<Worker>,
    shared: Option<SharedArray>,
}

impl Runner {
    /// CPU time of the worker processes so far (`None` for threads, or when a worker's
    /// clock cannot be read): they stay alive across runs, so `getrusage` of the bench cannot
    /// see it.
    pub fn worker_cpu(&self) -> Option<std::time::Duration> {
        if self.processes.is_empty() {
            return None;
        }
        self.processes
            .iter()
            .map(|w| w.cpu_time().ok())
            .sum::<Option<std::time::Duration>>()
    }

    /// Sets up `variant` with `workers` threads or processes (running `exe`) for `job` over
    /// `input` (empty for fills, which have none) of `elements` values.
    pub fn new(
        variant: Variant,
        workers: usize,
        job: ArrayJob,
        seed: u64,
        elements: usize,
        input: &[f64],
        exe: &Path,
    ) -> Result<Self, WorkerError> {
        let workers = workers.max(1);
        let mut runner = Self {
            variant,
            workers,
            job,
            seed,
            elements,
            pool: None,
            processes: Vec::new(),
            shared: None,
        };
        match variant {
            Variant::Serial | Variant::Scope => {}
            Variant::Rayon => {
                let pool = TaskPool::new(workers, 1).map_err(std::io::Error::other)?;
                runner.pool = Some(pool);
            }
            Variant::ProcessPipe => {
                for _ in 0..workers {
                    runner.processes.push(Spawn::new(exe).start()?);
                }
            }
            Variant::ProcessShared => {
                let mut shared = SharedArray::memfd(2 * elements)?;
                if job.reads_input() {
                    shared.as_mut_slice()[..elements].copy_from_slice(input);
                }
                for _ in 0..workers {
                    let worker = Spawn::new(exe)
                        .inherit("shared", shared.raw_fd())
                        .arg("shared-elements", 2 * elements)
                        .start()?;
                    runner.processes.push(worker);
                }
                runner.shared = Some(shared);
            }
        }
        Ok(runner)
    }

    /// Runs the job over the whole array; the result is then [`Runner::output`].
    pub fn run(&mut self, input: &[f64], out: &mut [f64]) -> Result<(), WorkerError> {
        let (job, seed, elements) = (self.job, self.seed, self.elements);
        let blocks = blocks_of(elements);
        match self.variant {
            Variant::Serial => job.run_range(seed, elements, input, 0..blocks, out),
            Variant::Scope => std::thread::scope(|s| {
                for (r, piece) in split_output(job, elements, out, self.workers) {
                    s.spawn(move || job.run_range(seed, elements, input, r, piece));
                }
            }),
            Variant::Rayon => {
                let pool = self
                    .pool
                    .as_ref()
                    .ok_or_else(|| WorkerError::Setup(std::io::Error::other("no pool")))?;
                pool.install(|| {
                    split_output(job, elements, out, blocks)
                        .into_par_iter()
                        .for_each(|(r, piece)| job.run_range(seed, elements, input, r, piece));
                });
            }
            Variant::ProcessPipe => {
                let workers = self.processes.len();
                for (i, w) in self.processes.iter_mut().enumerate() {
                    let r = share(blocks, workers, i);
                    w.send(&self::compute(job, seed, elements, r.clone(), Via::Pipe))?;
                    if job.reads_input() {
                        let lo = (r.start * parcost::workload::BLOCK).min(elements);
                        let hi = (r.end * parcost::workload::BLOCK).min(elements);
                        w.send_bytes(as_bytes(&input[lo..hi]), "taking its share")?;
                    }
                }
                let pieces = split_output(job, elements, out, workers);
                for (w, (_, piece)) in self.processes.iter_mut().zip(pieces) {
                    w.answer("computing its share")?;
                    w.read_bytes(as_bytes_mut(piece), "sending its share back")?;
                }
            }
            Variant::ProcessShared => {
                let workers = self.processes.len();
                for (i, w) in self.processes.iter_mut().enumerate() {
                    w.send(&compute(
                        job,
                        seed,
                        elements,
                        share(blocks, workers, i),
                        Via::Shared,
                    ))?;
                }
                for w in &mut self.processes {
                    w.answer("computing its share in shared memory")?;
                }
            }
        }
        Ok(())
    }

    /// The result of the last run: `out` itself, or the output half of the shared array.
    pub fn output<'a>(&'a self, out: &'a [f64]) -> &'a [f64] {
        match &self.shared {
            Some(shared) => {
                let len = output_len(self.job, self.elements);
                &shared.as_slice()[self.elements..self.elements + len]
            }
            None => out,
        }
    }
}

fn compute(job: ArrayJob, seed: u64, elements: usize, blocks: Range<usize>, via: Via) -> Request {
    Request::Compute(Compute {
        job,
        seed,
        first_block: blocks.start as u64,
        blocks: blocks.len() as u64,
        elements: elements as u64,
        via,
    })
}
