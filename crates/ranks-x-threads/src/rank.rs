//! A rank of the suite's MPI jobs: the bench (and the tests' `parcost-ranks`) run this under
//! `mpirun`. Rank 0 reads the bench's requests, broadcasts them, and answers; every rank does its
//! part. See [`crate::protocol`] for the exchange.
//!
//! BLAS threads: `OPENBLAS_NUM_THREADS` (and `OMP_NUM_THREADS`) in every rank's environment, set
//! by the bench with `mpirun -x`, and set again through OpenBLAS's API when the rank starts
//! (`BlasThreads`); every rank reports the count its calls run at, and the bench checks it. In
//! the default cell nothing is set: the rank sets no count either and reports the one OpenBLAS
//! chose at load. Every rank also reports the CPUs it may run on.
//!
//! Every wait for the other ranks' parts is bounded: each rank tells rank 0 when its part of an
//! iteration is done (an 8-byte message), and rank 0 names the ranks that have not finished by
//! the request's deadline, then aborts the job. A rank stuck where no deadline reaches (in a
//! collective, or before one) is found by the bench asking every rank where it is
//! ([`crate::whereabouts`]): each rank records its place before each step.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::datatype::{Partition, PartitionMut};
use mpi::environment::Threading;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use parcost::blas::{BlasInfo, BlasThreads, blas_threads};

use crate::batch::{Part, Shape, partition};
use crate::protocol::{
    Answer, COMMAND_WORDS, Command, Hello, RANK_FLAG, RankInfo, RankUsage, Request, Workload,
};
use crate::whereabouts::{self, Place};

/// The tag of the "my part is done" messages.
const DONE_TAG: mpi::Tag = 71;

/// When rank 0 stops waiting for the other ranks' parts of an iteration.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    after: Duration,
}

/// Bytes of one rank's self-description in the start-up gather (its CPU list too: about 5
/// bytes a CPU where it is not bound).
const INFO_BYTES: usize = 16 * 1024;

/// Call first in `main`: if this process was started as a rank (`--parcost-rank`), it serves
/// the job until the bench closes its input, and exits.
pub fn serve_if_rank() {
    if std::env::args().nth(1).as_deref() != Some(RANK_FLAG) {
        return;
    }
    let code = match serve() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("parcost rank: {e}");
            2
        }
    };
    std::process::exit(code);
}

/// The inputs and buffers of both workloads on one rank.
struct Buffers {
    /// `batch`: this rank's share, its inputs made here.
    own: Part,
    /// `scatter`: this rank's share, inputs received each iteration.
    received: Part,
    /// `scatter`, rank 0 only: the whole batch, scattered from and gathered into.
    whole: Option<Part>,
}

struct Rank {
    world: SimpleCommunicator,
    rank: usize,
    ranks: usize,
    buffers: Option<Buffers>,
    iteration: u64,
}

fn serve() -> Result<(), String> {
    // Before MPI starts, so that a rank asked where it is answers from the first moment.
    whereabouts::watch()?;
    let (universe, _threading) =
        mpi::initialize_with_threading(Threading::Funneled).ok_or("MPI was initialised already")?;
    let world = universe.world();
    let rank = usize::try_from(world.rank()).map_err(|e| e.to_string())?;
    let ranks = usize::try_from(world.size()).map_err(|e| e.to_string())?;
    whereabouts::set_rank(rank);
    let env_threads = std::env::var("OPENBLAS_NUM_THREADS").ok();
    // Kept for the life of the rank: its BLAS calls run at this count.
    let _blas = match env_threads.as_deref().map(str::parse::<usize>) {
        Some(Ok(b)) => Some(BlasThreads::set(b).map_err(|e| e.to_string())?),
        Some(Err(_)) => return Err(format!("OPENBLAS_NUM_THREADS={env_threads:?} is no count")),
        None => None,
    };
    let mut me = Rank {
        world,
        rank,
        ranks,
        buffers: None,
        iteration: 0,
    };
    let result = me.hello(env_threads).and_then(|()| me.serve_requests());
    if let Err(e) = &result {
        // One rank cannot leave on its own: the others would wait for it in a collective.
        eprintln!("parcost rank {rank}: {e}");
        me.world.abort(2);
    }
    drop(universe);
    result
}

/// This process's CPU time (every thread) and context switches so far.
fn own_usage() -> RankUsage {
    // SAFETY: getrusage fills the zeroed struct; RUSAGE_SELF cannot fail.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let us = |t: libc::timeval| t.tv_sec.max(0) as u64 * 1_000_000 + t.tv_usec.max(0) as u64;
    RankUsage {
        cpu_ns: 1000 * (us(ru.ru_utime) + us(ru.ru_stime)),
        voluntary: ru.ru_nvcsw.max(0) as u64,
        involuntary: ru.ru_nivcsw.max(0) as u64,
    }
}

/// Rank 0 writes one answer line and flushes it (mpirun forwards it to the bench).
fn answer(a: &Answer) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(a.line().as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("answering the bench: {e}"))
}

impl Rank {
    fn root(&self) -> mpi::topology::Process<'_> {
        self.world.process_at_rank(0)
    }

    fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Every rank's self-description and usage, gathered and answered by rank 0: the job is up.
    /// Its BLAS thread count is read here, after the count it set (if any): with none set, the
    /// count OpenBLAS chose when it was loaded.
    fn hello(&mut self, env_threads: Option<String>) -> Result<(), String> {
        let blas = BlasInfo::loaded().map_err(|e| e.to_string())?;
        let cpus = crate::procs::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
        let info = RankInfo {
            rank: self.rank as u32,
            host: crate::job::local_host(),
            pid: std::process::id(),
            layer: blas.layer.name().to_owned(),
            core: blas.core,
            blas_threads: u32::try_from(blas_threads()).unwrap_or(u32::MAX),
            env_threads,
            cpus,
        };
        let mut mine = serde_json::to_vec(&info).map_err(|e| e.to_string())?;
        if mine.len() > INFO_BYTES {
            return Err(format!("rank description over {INFO_BYTES} bytes"));
        }
        mine.resize(INFO_BYTES, 0);
        let usage = self.reduce_usage();
        whereabouts::at(Place::Gather, self.iteration);
        if self.is_root() {
            let mut all = vec![0u8; INFO_BYTES * self.ranks];
            self.root().gather_into_root(&mine[..], &mut all[..]);
            let ranks = all
                .chunks(INFO_BYTES)
                .map(|c| {
                    let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                    serde_json::from_slice::<RankInfo>(&c[..end]).map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            answer(&Answer {
                hello: Some(Hello {
                    ranks,
                    usage: usage.unwrap_or_default(),
                }),
                ..Answer::default()
            })?;
        } else {
            self.root().gather_into(&mine[..]);
        }
        Ok(())
    }

    /// Every rank's usage summed on rank 0 (`None` elsewhere).
    fn reduce_usage(&self) -> Option<RankUsage> {
        let u = own_usage();
        let mine = [u.cpu_ns, u.voluntary, u.involuntary];
        whereabouts::at(Place::Reduce, self.iteration);
        if self.is_root() {
            let mut sum = [0u64; 3];
            self.root()
                .reduce_into_root(&mine[..], &mut sum[..], SystemOperation::sum());
            Some(RankUsage {
                cpu_ns: sum[0],
                voluntary: sum[1],
                involuntary: sum[2],
            })
        } else {
            self.root().reduce_into(&mine[..], SystemOperation::sum());
            None
        }
    }

    /// Rank 0: the next request, its command and deadline; `None` at the end of input. A line
    /// that is no request is refused and skipped.
    fn next_request(
        input: &mut impl BufRead,
    ) -> Result<Option<(Request, Option<Deadline>)>, String> {
        let mut line = String::new();
        loop {
            line.clear();
            match input.read_line(&mut line) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) => return Err(format!("reading a request: {e}")),
            }
            match serde_json::from_str::<Request>(line.trim_end()) {
                Ok(request) => {
                    let deadline = match request {
                        Request::Run { deadline_ms, .. } | Request::Sleep { deadline_ms, .. } => {
                            let after = Duration::from_millis(deadline_ms);
                            Some(Deadline {
                                at: Instant::now() + after,
                                after,
                            })
                        }
                        _ => None,
                    };
                    return Ok(Some((request, deadline)));
                }
                Err(e) => answer(&Answer::error(format!(
                    "not a request ({e}): {}",
                    line.trim_end()
                )))?,
            }
        }
    }

    fn serve_requests(&mut self) -> Result<(), String> {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        loop {
            let mut words = [0u64; COMMAND_WORDS];
            let mut deadline = None;
            let mut doing = String::new();
            whereabouts::at(Place::Idle, self.iteration);
            if self.is_root() {
                match Self::next_request(&mut input)? {
                    Some((request, d)) => {
                        words = Command::of(&request).encode();
                        deadline = d;
                        doing = request.describe();
                    }
                    None => words = Command::Quit.encode(),
                }
            }
            self.root().broadcast_into(&mut words[..]);
            let command = Command::decode(&words).ok_or("an unknown command was broadcast")?;
            self.iteration += 1;
            match command {
                Command::Quit => return Ok(()),
                Command::Prepare(shape) => self.prepare(shape)?,
                Command::Usage => {
                    if let Some(usage) = self.reduce_usage() {
                        answer(&Answer {
                            usage: Some(usage),
                            ..Answer::default()
                        })?;
                    }
                }
                Command::Sleep { ms, only } => {
                    if only.is_none_or(|r| r as usize == self.rank) {
                        whereabouts::at(Place::Sleeping, self.iteration);
                        std::thread::sleep(Duration::from_millis(ms));
                    }
                    self.parts_done(deadline, &doing)?;
                    if self.is_root() {
                        answer(&Answer::default())?;
                    }
                }
                Command::Run {
                    workload,
                    verify,
                    corrupt,
                } => self.run(workload, verify, corrupt, deadline, &doing)?,
                Command::Stall { ms, only } => {
                    if only as usize == self.rank {
                        whereabouts::at(Place::Stalling, self.iteration);
                        std::thread::sleep(Duration::from_millis(ms));
                    }
                    whereabouts::at(Place::Barrier, self.iteration);
                    self.world.barrier();
                    if self.is_root() {
                        answer(&Answer::default())?;
                    }
                }
            }
        }
    }

    fn prepare(&mut self, shape: Shape) -> Result<(), String> {
        let (ranks, rank) = (self.ranks, self.rank);
        whereabouts::at(Place::Preparing, self.iteration);
        self.buffers = Some(Buffers {
            own: Part::generate(shape, ranks, rank),
            received: Part::empty(
                shape,
                shape.products_of(ranks, rank),
                shape.svds_of(ranks, rank),
            ),
            whole: self.is_root().then(|| Part::whole(shape)),
        });
        whereabouts::at(Place::Barrier, self.iteration);
        self.world.barrier();
        if self.is_root() {
            answer(&Answer::default())?;
        }
        Ok(())
    }

    /// Each rank tells rank 0 its part of this iteration is done; rank 0 waits for all of them
    /// until `deadline`, and names the ranks it has not heard from (then the job is aborted).
    fn parts_done(&self, deadline: Option<Deadline>, doing: &str) -> Result<(), String> {
        if !self.is_root() {
            self.root().send_with_tag(&self.iteration, DONE_TAG);
            return Ok(());
        }
        whereabouts::at(Place::WaitingForParts, self.iteration);
        let mut done = vec![false; self.ranks];
        done[0] = true;
        loop {
            while let Some((message, _)) = self
                .world
                .any_process()
                .immediate_matched_probe_with_tag(DONE_TAG)
            {
                let (iteration, status) = message.matched_receive::<u64>();
                if iteration == self.iteration
                    && let Some(d) = usize::try_from(status.source_rank())
                        .ok()
                        .and_then(|r| done.get_mut(r))
                {
                    *d = true;
                }
            }
            if done.iter().all(|&d| d) {
                return Ok(());
            }
            if let Some(d) = deadline.filter(|d| Instant::now() >= d.at) {
                let missing: Vec<String> = done
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| !**d)
                    .map(|(r, _)| r.to_string())
                    .collect();
                let (s, verb) = if missing.len() == 1 {
                    ("", "has")
                } else {
                    ("s", "have")
                };
                let message = format!(
                    "rank{s} {} {verb} not finished {doing} within {:.1} s",
                    missing.join(", "),
                    d.after.as_secs_f64()
                );
                answer(&Answer::error(message.clone()))?;
                return Err(message);
            }
            std::thread::yield_now();
        }
    }

    fn run(
        &mut self,
        workload: Workload,
        verify: bool,
        corrupt: bool,
        deadline: Option<Deadline>,
        doing: &str,
    ) -> Result<(), String> {
        let ranks = self.ranks;
        let last = self.rank + 1 == ranks;
        let mut buffers = self.buffers.take().ok_or("run before prepare")?;
        let shape = buffers.own.shape;
        let nn = shape.nn();
        let result = (|| {
            let part = match workload {
                Workload::Batch => &mut buffers.own,
                Workload::Scatter => {
                    whereabouts::at(Place::Scatter, self.iteration);
                    let root = self.root();
                    let received = &mut buffers.received;
                    match buffers.whole.as_ref() {
                        Some(whole) => {
                            let (c, d) = partition(shape.pairs, 2 * nn, ranks)?;
                            let p = Partition::new(&whole.operands[..], c, d);
                            root.scatter_varcount_into_root(&p, &mut received.operands[..]);
                            let (c, d) = partition(shape.matrices, nn, ranks)?;
                            let p = Partition::new(&whole.matrices[..], c, d);
                            root.scatter_varcount_into_root(&p, &mut received.matrices[..]);
                        }
                        None => {
                            root.scatter_varcount_into(&mut received.operands[..]);
                            root.scatter_varcount_into(&mut received.matrices[..]);
                        }
                    }
                    received
                }
            };
            // A checked run also counts the threads that worked on this rank's products: over
            // the SVDs too, whose bidiagonal reduction runs mostly on the calling thread, a
            // second BLAS thread's share fell below the tenth that counts it in 1 run of 6.
            whereabouts::at(Place::Computing, self.iteration);
            let threads_before = verify.then(crate::procs::thread_cpu_times);
            let started = Instant::now();
            part.multiply();
            let busy = threads_before.map(|before| {
                let after = crate::procs::thread_cpu_times();
                crate::procs::busy_threads(&before, &after, started.elapsed()).unwrap_or(u32::MAX)
            });
            part.decompose();
            if corrupt && last {
                part.corrupt();
            }
            self.parts_done(deadline, doing)?;
            let mine = part.checksums();
            whereabouts::at(Place::Reduce, self.iteration);
            let reduced = if self.is_root() {
                let mut sum = vec![0.0; mine.len()];
                self.root()
                    .reduce_into_root(&mine[..], &mut sum[..], SystemOperation::sum());
                Some(sum)
            } else {
                self.root().reduce_into(&mine[..], SystemOperation::sum());
                None
            };
            whereabouts::at(Place::Gather, self.iteration);
            let busy = match busy {
                Some(mine) if self.is_root() => {
                    let mut all = vec![0u32; ranks];
                    self.root().gather_into_root(&mine, &mut all[..]);
                    Some(all)
                }
                Some(mine) => {
                    self.root().gather_into(&mine);
                    None
                }
                None => None,
            };
            let mut sums = reduced;
            if workload == Workload::Scatter {
                let root = self.root();
                let part = &buffers.received;
                match buffers.whole.as_mut() {
                    Some(whole) => {
                        let (c, d) = partition(shape.pairs, nn, ranks)?;
                        let mut p = PartitionMut::new(&mut whole.results[..], c, d);
                        root.gather_varcount_into_root(&part.results[..], &mut p);
                        let (c, d) = partition(shape.matrices, shape.n, ranks)?;
                        let mut p = PartitionMut::new(&mut whole.sigma[..], c, d);
                        root.gather_varcount_into_root(&part.sigma[..], &mut p);
                        if verify {
                            // What the gather delivered, not what the ranks said they computed.
                            sums = Some(whole.checksums());
                        }
                    }
                    None => {
                        root.gather_varcount_into(&part.results[..]);
                        root.gather_varcount_into(&part.sigma[..]);
                    }
                }
            }
            if let Some(sums) = sums {
                answer(&Answer {
                    checksum_bits: Some(sums.iter().map(|x| x.to_bits()).collect()),
                    busy_threads: busy,
                    ..Answer::default()
                })?;
            }
            Ok::<(), String>(())
        })();
        self.buffers = Some(buffers);
        result
    }
}
