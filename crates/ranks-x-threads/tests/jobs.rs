//! Real MPI jobs (OpenMPI's mpirun and this crate's `parcost-ranks`): results checked, ranks
//! that die or hang named, and nothing of a job left behind.
#![cfg(feature = "mpi")]

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use parcost::blas::BlasLayer;
use ranks_x_threads::batch::{self, Shape};
use ranks_x_threads::job::{Job, JobError, Launch};
use ranks_x_threads::procs;
use ranks_x_threads::protocol::{JOB_VAR, Request, Workload};

/// Small enough for a debug build: the same code paths as the suite's batch.
const SMALL: Shape = Shape {
    n: 48,
    pairs: 6,
    matrices: 3,
    seed: batch::SEED,
};

/// Products large enough for OpenBLAS to run them on its threads (it runs small ones on the
/// calling thread alone), for the tests that count the threads busy in a rank.
const THREADED: Shape = Shape {
    n: 256,
    pairs: 8,
    matrices: 2,
    seed: batch::SEED,
};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_parcost-ranks"))
}

/// MPI jobs take turns: on 2 cores, jobs side by side only slow each other down, and each
/// test's check for leftovers must see its own job alone.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn launch(ranks: usize, blas: usize, cell: &str) -> Launch {
    let mut l = Launch::new(exe(), ranks, blas, cell.to_owned());
    l.start_timeout = Duration::from_secs(60);
    l.answer_timeout = Duration::from_secs(60);
    l
}

/// Nothing of the job is left: not its mpirun, not a rank, not a zombie.
fn assert_gone(mark: &str, pids: &[u32]) {
    let carrying = procs::carrying(JOB_VAR, procs::Value::Is(mark));
    assert!(carrying.is_empty(), "left: {carrying:?}");
    for &pid in pids {
        assert!(
            procs::Proc::read(pid).is_none(),
            "{:?} is still there",
            procs::Proc::read(pid)
        );
    }
    let launchers = procs::children_named(&procs::LAUNCHER_NAMES);
    assert!(launchers.is_empty(), "left: {launchers:?}");
}

fn pids_of(job: &Job) -> Vec<u32> {
    let mut pids: Vec<u32> = job.local_ranks().into_iter().map(|(_, p)| p).collect();
    pids.push(job.mpirun_pid());
    pids
}

#[test]
fn both_workloads_match_the_reference_and_a_wrong_checksum_is_caught() {
    let _turn = one_at_a_time();
    let reference = batch::reference(&SMALL);
    let mut job = launch(3, 1, "test/ranks=3,blas_threads=1")
        .start()
        .expect("starts");
    assert_eq!(job.hello().ranks.len(), 3);
    assert!(job.startup() > Duration::ZERO);
    for (i, r) in job.hello().ranks.iter().enumerate() {
        assert_eq!(r.rank as usize, i);
        assert_eq!(r.env_threads.as_deref(), Some("1"));
    }
    job.prepare(SMALL).expect("prepares");
    for workload in Workload::ALL {
        for verify in [true, false] {
            let sums = job.run(workload, verify).expect("runs");
            batch::check(&sums, &reference)
                .unwrap_or_else(|e| panic!("{} verify={verify}: {e}", workload.name()));
        }
        let wrong = job.run_with(workload, true, true).expect("runs");
        assert!(
            batch::check(&wrong, &reference).is_err(),
            "{}: a spoilt result passed",
            workload.name()
        );
    }
    let usage = job.usage().expect("usage");
    assert!(usage.cpu > Duration::ZERO, "{usage:?}");
    let (mark, pids) = (job.mark().to_owned(), pids_of(&job));
    job.shutdown().expect("nothing left");
    assert_gone(&mark, &pids);
}

/// The teardown ends a job that is busy (a rank asleep in an iteration, its input still open)
/// and leaves nothing. Without the teardown (checked by removing its body) mpirun and both ranks
/// stay, and this test fails.
#[test]
fn teardown_leaves_no_process_even_of_a_busy_job() {
    let _turn = one_at_a_time();
    let mut job = launch(2, 1, "test/busy").start().expect("starts");
    let (mark, pids) = (job.mark().to_owned(), pids_of(&job));
    assert_eq!(pids.len(), 3, "mpirun and two ranks");
    job.send_only(&Request::Sleep {
        ms: 600_000,
        only: Some(1),
        deadline_ms: 600_000,
    })
    .expect("sent");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    job.shutdown().expect("nothing left");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_gone(&mark, &pids);

    // A job merely dropped goes the same way.
    let job = launch(2, 1, "test/dropped").start().expect("starts");
    let (mark, pids) = (job.mark().to_owned(), pids_of(&job));
    drop(job);
    assert_gone(&mark, &pids);
}

/// A rank killed in the middle of an iteration: one line naming the rank and the cell, and the
/// rest of the job gone.
#[test]
fn a_killed_rank_is_named_in_one_line() {
    let _turn = one_at_a_time();
    let cell = "layer=test/ranks=3,blas_threads=1";
    let mut job = launch(3, 1, cell).start().expect("starts");
    let (mark, pids) = (job.mark().to_owned(), pids_of(&job));
    let victim = job
        .local_ranks()
        .into_iter()
        .find(|(r, _)| *r == 1)
        .map(|(_, p)| p)
        .expect("rank 1 is local");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        procs::signal(victim, libc::SIGKILL);
    });
    let err = job.sleep(20_000, None).expect_err("rank 1 was killed");
    killer.join().expect("killer");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(matches!(err, JobError::Died { .. }), "{text}");
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.starts_with(&format!("cell {cell}: rank 1 (pid {victim}")),
        "{text}"
    );
    assert!(text.contains("signal 9"), "{text}");
    drop(job);
    assert_gone(&mark, &pids);
}

/// A rank that does not finish its part by the deadline is named, and the job is aborted.
#[test]
fn a_hung_rank_is_named_at_the_deadline() {
    let _turn = one_at_a_time();
    let mut l = launch(2, 1, "test/hung");
    l.answer_timeout = Duration::from_secs(2);
    let mut job = l.start().expect("starts");
    let (mark, pids) = (job.mark().to_owned(), pids_of(&job));
    let started = Instant::now();
    let err = job.sleep(60_000, Some(1)).expect_err("rank 1 hangs");
    assert!(started.elapsed() < Duration::from_secs(30));
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        text.starts_with(
            "cell test/hung: rank 1 has not finished sleeping 60000 ms on rank 1 within 2.0 s"
        ),
        "{text}"
    );
    drop(job);
    assert_gone(&mark, &pids);
}

/// A rank stuck where no deadline of the ranks' reaches (before a barrier the others wait in)
/// blocks rank 0 with it: the bench asks every rank where it is and names the one the others
/// waited for, by pid, not "rank 0".
#[test]
fn a_rank_hung_before_a_collective_is_named_not_rank_0() {
    let _turn = one_at_a_time();
    let mut l = launch(2, 1, "test/stalled");
    l.answer_timeout = Duration::from_secs(2);
    let mut job = l.start().expect("starts");
    let (mark, pids) = (job.mark().to_owned(), pids_of(&job));
    let victim = job
        .local_ranks()
        .into_iter()
        .find(|&(r, _)| r == 1)
        .map(|(_, pid)| pid)
        .expect("rank 1 is local");
    let started = Instant::now();
    let err = job.stall(60_000, 1).expect_err("rank 1 stalls");
    assert!(started.elapsed() < Duration::from_secs(30));
    let text = err.to_string();
    eprintln!("{text}");
    assert!(matches!(err, JobError::NoAnswer { .. }), "{text}");
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.starts_with(
            "cell test/stalled: rank 0 did not answer within 7 s while stalling rank 1 60000 ms \
             before a barrier: rank 1 (pid "
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "rank 1 (pid {victim} on {}) was stalling before a barrier (a test) at request ",
            ranks_x_threads::job::local_host()
        )),
        "{text}"
    );
    assert!(
        text.ends_with("while rank 0 was in a barrier; the job was killed"),
        "{text}"
    );
    drop(job);
    assert_gone(&mark, &pids);
}

/// The multi-host path on one host: `--hostfile` with `localhost`.
#[test]
fn a_localhost_hostfile_runs_the_job() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let hostfile = dir.path().join("hosts");
    std::fs::write(&hostfile, "localhost slots=2\n").expect("hostfile");
    let reference = batch::reference(&SMALL);
    let mut job = launch(2, 1, "test/hostfile")
        .hostfile(hostfile)
        .expect("hostfile")
        .start()
        .expect("starts");
    // The hosts the ranks ran on, as the ids count them.
    assert_eq!(job.hello().hosts(), 1);
    job.prepare(SMALL).expect("prepares");
    let sums = job.run(Workload::Scatter, true).expect("runs");
    batch::check(&sums, &reference).expect("matches");
    let (mark, pids) = (job.mark().to_owned(), pids_of(&job));
    job.shutdown().expect("nothing left");
    assert_gone(&mark, &pids);
}

/// The OpenBLAS layer the ranks load (the same library as this test, through the forwarded
/// `LD_LIBRARY_PATH`).
fn layer() -> BlasLayer {
    BlasLayer::loaded().expect("OpenBLAS reports its layer")
}

/// Each local rank's CPUs as it saw them (`sched_getaffinity`) are what the kernel shows from
/// outside (`Cpus_allowed_list` of its `/proc/PID/status`).
fn assert_cpus_match_proc(job: &Job) {
    for r in &job.hello().ranks {
        assert!(!r.cpus.is_empty(), "rank {} reported no CPU", r.rank);
        assert_eq!(
            procs::cpus_allowed(r.pid).as_ref(),
            Some(&r.cpus),
            "rank {}: inside and /proc disagree",
            r.rank
        );
    }
}

/// The default cell, as a user who sets nothing runs it: `mpirun -np P`, OpenMPI's own binding,
/// no thread count. With np <= 2 OpenMPI 4.1 binds each rank to a core. What OpenBLAS 0.3.21
/// then reports (`openblas_get_num_threads`) depends on its layer: the pthreads build counts the
/// CPUs the rank may run on (1), the OpenMP build counts the host's CPUs whatever the binding
/// (P), the serial build 1; but the threads that work during a product are as many as the rank
/// has CPUs (the OpenMP build runs at OpenMP's count, which follows the binding). On this 2-core
/// machine: rank 0 on CPU 0, rank 1 on CPU 1, one thread busy in each, where the report once
/// assumed P x P. Forwarding `OPENBLAS_NUM_THREADS=P` to this job (tried once) makes it fail.
#[test]
fn the_default_cell_keeps_openmpis_binding_and_openblass_own_count() {
    let _turn = one_at_a_time();
    let topology = parcost::topology::Topology::detect();
    let p = topology.logical;
    let mut l = Launch::user_default(exe(), p, "test/variant=default".to_owned());
    l.start_timeout = Duration::from_secs(60);
    l.answer_timeout = Duration::from_secs(60);
    let mut job = l.start().expect("starts");
    let ranks = &job.hello().ranks;
    assert_eq!(ranks.len(), p);
    assert_cpus_match_proc(&job);
    for r in ranks {
        eprintln!(
            "default cell: rank {} (pid {}) may run on CPUs {:?}, OpenBLAS {} at {} thread(s)",
            r.rank, r.pid, r.cpus, r.layer, r.blas_threads
        );
        assert_eq!(r.env_threads, None, "rank {} saw a thread count", r.rank);
        let chosen = match layer() {
            BlasLayer::Pthreads => r.cpus.len(),
            BlasLayer::Openmp => p,
            BlasLayer::Serial => 1,
        };
        assert_eq!(
            r.blas_threads as usize,
            chosen,
            "rank {} on CPUs {:?}: OpenBLAS {}'s own count",
            r.rank,
            r.cpus,
            layer()
        );
    }
    let two_cores = p == 2 && topology.physical == 2;
    if two_cores {
        // OpenMPI binds np <= 2 to cores: one CPU each, not the same one.
        for r in ranks {
            assert_eq!(r.cpus.len(), 1, "rank {} is bound to one core", r.rank);
        }
        assert_ne!(ranks[0].cpus, ranks[1].cpus);
    } else {
        eprintln!(
            "{p} logical / {} physical cores: not the 2-core case",
            topology.physical
        );
    }
    // The default cell is checked like every other; its checked runs count the busy threads.
    let reference = batch::reference(&THREADED);
    job.prepare(THREADED).expect("prepares");
    for workload in Workload::ALL {
        let sums = job.run(workload, true).expect("runs");
        batch::check(&sums, &reference).unwrap_or_else(|e| panic!("{}: {e}", workload.name()));
        let busy = job.take_busy_threads().expect("a checked run counts");
        let seen = job.hello().seen_running(Some(&busy));
        eprintln!(
            "default cell, {}: busy threads by rank {busy:?}",
            workload.name()
        );
        for s in &seen {
            let busy = s.busy_threads.expect("schedstat is kept here");
            assert!(
                (1..=s.cpus.len() as u32).contains(&busy),
                "rank {}: {busy} threads busy on CPUs {:?}",
                s.rank,
                s.cpus
            );
            if two_cores {
                assert_eq!(busy, 1, "rank {}: one thread works on its one core", s.rank);
            }
        }
    }
    let (mark, pids) = (job.mark().to_owned(), pids_of(&job));
    job.shutdown().expect("nothing left");
    assert_gone(&mark, &pids);
}

/// A grid cell (`--bind-to none`, B set): every rank may run on every CPU this test may, and
/// runs BLAS at the B it was given.
#[test]
fn a_grid_cell_is_unbound_at_the_count_it_set() {
    let _turn = one_at_a_time();
    let mine = procs::allowed_cpus().expect("affinity");
    let b = 2;
    let mut job = launch(2, b, "test/ranks=2,blas_threads=2")
        .start()
        .expect("starts");
    assert_cpus_match_proc(&job);
    let want = if layer().is_threaded() { b } else { 1 };
    for r in &job.hello().ranks {
        assert_eq!(r.cpus, mine, "rank {} is not bound", r.rank);
        assert_eq!(r.blas_threads as usize, want, "rank {}", r.rank);
        assert_eq!(r.env_threads.as_deref(), Some("2"));
    }
    let seen = job.hello().seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[1].rank, &seen[1].cpus, seen[1].blas_threads),
        (1, &mine, want)
    );
    // B threads work in each rank during a product (the pthreads build's wait by spinning).
    job.prepare(THREADED).expect("prepares");
    let sums = job.run(Workload::Batch, true).expect("runs");
    batch::check(&sums, &batch::reference(&THREADED)).expect("matches");
    let busy = job.take_busy_threads().expect("a checked run counts");
    eprintln!("grid cell ranks=2,blas_threads=2: busy threads by rank {busy:?}");
    assert_eq!(busy, [want as u32; 2]);
    let (mark, pids) = (job.mark().to_owned(), pids_of(&job));
    job.shutdown().expect("nothing left");
    assert_gone(&mark, &pids);
}
