//! Real MPI jobs (OpenMPI's mpirun and this crate's `parcost-ranks`): results checked, ranks
//! that die or hang named, and nothing of a job left behind.
#![cfg(feature = "mpi")]

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    job.prepare(SMALL).expect("prepares");
    let sums = job.run(Workload::Scatter, true).expect("runs");
    batch::check(&sums, &reference).expect("matches");
    let (mark, pids) = (job.mark().to_owned(), pids_of(&job));
    job.shutdown().expect("nothing left");
    assert_gone(&mark, &pids);
}
