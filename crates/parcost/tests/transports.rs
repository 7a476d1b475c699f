//! Worker processes and transports, end to end with a real worker binary.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parcost::shm::{SharedArray, leftovers, temp_leftovers};
use parcost::transport::{self, Question, Shape, Spec, TransportKind, Variant, stamp};
use parcost::worker::{Request, Spawn, Via, WorkerError, process_exists};
use parcost::workload::{fill_uniform, sum};
use proptest::prelude::*;
use rustix::process::{Pid, Signal};

/// Held by every test that creates shared files, so a test that looks for leftovers in /dev/shm
/// does not see another test's file mid-run.
fn shm_tests() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_parcost-worker"))
}

fn random(elements: usize, seed: u64) -> Vec<f64> {
    let mut v = vec![0.0; elements];
    fill_uniform(&mut v, seed);
    v
}

/// Kills a worker this test started (not yet reaped, so the pid is still its).
fn sigkill(pid: u32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .expect("a pid");
    let _ = rustix::process::kill_process(pid, Signal::KILL);
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The array a transport must hold after the exchange of `generation`.
fn stamped(data: &[f64], generation: u64) -> Vec<f64> {
    let mut v = data.to_vec();
    stamp(&mut v, generation);
    v
}

/// Nothing of this process is left in /dev/shm or the temporary folder.
fn assert_nothing_left(what: &str) {
    let me = std::process::id();
    assert_eq!(
        leftovers(Some(me)),
        Vec::<PathBuf>::new(),
        "{what}: /dev/shm"
    );
    assert_eq!(
        temp_leftovers(Some(me)),
        Vec::<PathBuf>::new(),
        "{what}: temp folder"
    );
}

/// `generations` exchanges; each must answer the exact sum of the parent's array with that
/// generation, and the parent's array must be the data with it.
fn check_generations(spec: Spec, data: &[f64], generations: u64) {
    let mut t = transport::open(spec, exe(), data).unwrap_or_else(|e| panic!("{spec}: {e}"));
    assert_eq!(t.spec(), spec);
    let mut last = None;
    for generation in 1..=generations {
        let answered = t
            .exchange(generation)
            .unwrap_or_else(|e| panic!("{spec}, generation {generation}: {e}"));
        let expected = stamped(data, generation);
        assert_eq!(
            bits(t.array()),
            bits(&expected),
            "{spec}: the parent's array"
        );
        assert_eq!(
            answered.to_bits(),
            sum(&expected).to_bits(),
            "{spec}, generation {generation}: the worker's sum is not that of the array it was sent"
        );
        if !data.is_empty() {
            assert_ne!(Some(answered.to_bits()), last, "{spec}: the same sum twice");
        }
        last = Some(answered.to_bits());
    }
}

#[test]
fn every_case_answers_the_exact_sum_at_edge_sizes() {
    let _shm = shm_tests();
    for spec in Spec::all() {
        for elements in [0, 1, 7, (1 << 17) + 3] {
            check_generations(spec, &random(elements, elements as u64), 2);
        }
    }
    assert_nothing_left("after every case");
}

/// Every case's worker reads what the parent holds now, not what it held before: each exchange
/// carries a new generation along a stride of the array (`stamp_positions`), and the sum it
/// answers must be that of the new array (a stale read answers the old sum, or trips the
/// transport's own check of the stamped elements it saw). That includes the held copies of
/// pipe, pipe-vmsplice and socket (read-shared), whose worker gets only the new stamped values
/// per exchange.
#[test]
fn every_case_sees_each_new_generation() {
    let _shm = shm_tests();
    let data = random((1 << 16) + 5, 11);
    let all = Spec::all();
    for kind in [
        TransportKind::Pipe,
        TransportKind::PipeVmsplice,
        TransportKind::Socket,
    ] {
        let held = Spec::new(Question::ReadShared, kind, Shape::Persistent)
            .with_variant(Variant::HeldCopy);
        assert!(all.contains(&held), "{held} is a case");
    }
    for spec in all {
        check_generations(spec, &data, 6);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn every_case_answers_the_exact_sum_of_random_data(elements in 0usize..40_000, seed: u64) {
        let _shm = shm_tests();
        let data = random(elements, seed);
        for spec in Spec::all() {
            check_generations(spec, &data, 2);
        }
    }
}

/// ipc-channel's and iceoryx2's files (a server socket, nodes, services, shared-memory
/// segments) are gone once the transport is, and so is its worker, whether it ended normally or
/// was killed; a killed worker is an error that names it.
#[test]
fn ipc_channel_and_iceoryx2_leave_nothing_behind() {
    let _shm = shm_tests();
    let me = std::process::id();
    let data = random(10_000, 5);
    let library = |s: &Spec| matches!(s.kind, TransportKind::IpcChannel | TransportKind::Iceoryx2);
    for spec in Spec::all().into_iter().filter(library) {
        for kill in [false, true] {
            let mut t = transport::open(spec, exe(), &data).expect("open");
            t.exchange(1).expect("exchange");
            let pid = t.pid().expect("a worker");
            if spec.kind == TransportKind::Iceoryx2 {
                // The check below looks where iceoryx2 puts its files.
                assert!(
                    !leftovers(Some(me)).is_empty(),
                    "{spec}: its segments, while alive"
                );
                assert!(
                    !temp_leftovers(Some(me)).is_empty(),
                    "{spec}: its nodes, while alive"
                );
            }
            if kill {
                sigkill(pid);
                let err = t.exchange(2).expect_err("the worker is dead");
                let text = err.to_string();
                assert!(text.contains(&format!("worker {pid}")), "{spec}: {text}");
                assert!(text.contains("signal: 9"), "{spec}: {text}");
            }
            drop(t);
            assert!(!process_exists(pid), "{spec}: worker {pid} reaped");
            assert_nothing_left(&format!("{spec}, killed: {kill}"));
        }
    }
}

/// A live worker's CPU time is readable and grows with its work; in-process and per-task
/// workers have none to report (the thread is this process, and reaped children are counted by
/// `getrusage(RUSAGE_CHILDREN)`).
#[test]
fn worker_cpu_counts_a_live_worker() {
    let _shm = shm_tests();
    let data = random(1 << 20, 6);
    let persistent = Spec::new(Question::Send, TransportKind::Pipe, Shape::Persistent);
    let mut t = transport::open(persistent, exe(), &data).expect("open");
    let before = t.worker_cpu().expect("a live worker's CPU time");
    for generation in 1..=20 {
        t.exchange(generation).expect("exchange");
    }
    let after = t.worker_cpu().expect("a live worker's CPU time");
    assert!(
        after > before + Duration::from_millis(1),
        "20 reads of 8 MiB: {before:?} -> {after:?}"
    );
    let none = [
        Spec::new(Question::Send, TransportKind::Thread, Shape::Persistent),
        Spec::new(Question::Send, TransportKind::Pipe, Shape::SpawnPerTask),
        Spec::new(Question::Send, TransportKind::ForkCow, Shape::SpawnPerTask),
    ];
    for spec in none {
        let mut t = transport::open(spec, exe(), &data).expect("open");
        t.exchange(1).expect("exchange");
        assert_eq!(t.worker_cpu(), None, "{spec}");
    }
}

#[test]
fn unknown_transports_and_cases_are_clear_errors() {
    let err = TransportKind::from_name("carrier-pigeon").expect_err("unknown");
    let text = err.to_string();
    assert!(
        text.contains("carrier-pigeon") && text.contains("iceoryx2"),
        "{text}"
    );
    assert_eq!(
        TransportKind::from_name("fork-cow").expect("known"),
        TransportKind::ForkCow
    );
    let spawned_socket = Spec::new(Question::Send, TransportKind::Socket, Shape::SpawnPerTask);
    let err = transport::open(spawned_socket, exe(), &[]).expect_err("no");
    assert!(
        err.to_string()
            .contains("send/transport=socket,pool=spawn is not measured: a process per task"),
        "{err}"
    );
    let shared_pipe = Spec::new(Question::ReadShared, TransportKind::Pipe, Shape::Persistent);
    let err = transport::open(shared_pipe, exe(), &[]).expect_err("no");
    assert!(err.to_string().contains("nothing already shared"), "{err}");
    let bare_ipc = Spec::new(Question::Send, TransportKind::IpcChannel, Shape::Persistent);
    assert!(transport::open(bare_ipc, exe(), &[]).is_err());
}

#[test]
fn a_worker_given_a_bad_argument_says_so() {
    let mut w = Spawn::new(exe()).arg("bogus", 1).start().expect("spawn");
    let pid = w.pid();
    let err = w
        .send(&Request::Sleep { ms: 0 })
        .and_then(|()| w.answer("starting"))
        .expect_err("worker exits");
    let text = err.to_string();
    assert!(text.contains("unknown argument \"--bogus\""), "{text}");
    drop(w);
    assert!(!process_exists(pid), "reaped");
}

#[test]
fn a_worker_given_an_unknown_request_refuses_it() {
    let mut w = Spawn::new(exe()).start().expect("spawn");
    w.send_bytes(b"{\"op\":\"teleport\"}\n", "teleporting")
        .expect("send");
    let err = w.answer("teleporting").expect_err("refused");
    assert!(matches!(err, WorkerError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("teleport"), "{err}");
}

#[test]
fn a_hung_worker_is_an_error_within_the_timeout_and_is_reaped() {
    let mut w = Spawn::new(exe())
        .timeout(Duration::from_millis(200))
        .start()
        .expect("spawn");
    let pid = w.pid();
    let start = Instant::now();
    w.send(&Request::Sleep { ms: 60_000 }).expect("send");
    let err = w.answer("sleeping").expect_err("stalls");
    assert!(matches!(err, WorkerError::Stalled { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    drop(w);
    assert!(!process_exists(pid), "reaped");
}

#[test]
fn a_garbled_answer_is_an_error() {
    let mut w = Spawn::new(exe()).start().expect("spawn");
    w.send(&Request::Garble).expect("send");
    let err = w.answer("garbling").expect_err("garbage");
    assert!(matches!(err, WorkerError::Garbage { .. }), "{err}");
}

#[test]
fn a_worker_killed_mid_transfer_is_an_error_and_leaves_nothing_behind() {
    let elements: usize = 64 << 20; // 512 MiB: far more than the pipe holds
    let data = vec![0.5_f64; elements];
    let mut w = Spawn::new(exe()).start().expect("spawn");
    let pid = w.pid();
    w.send(&Request::Receive {
        via: Via::Pipe,
        elements: elements as u64,
    })
    .expect("request");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        sigkill(pid);
    });
    let start = Instant::now();
    let err = w
        .send_bytes(parcost::fdio::as_bytes(&data), "taking the array")
        .expect_err("the worker died");
    killer.join().expect("killer");
    assert!(start.elapsed() < Duration::from_secs(10));
    let text = err.to_string();
    assert!(matches!(err, WorkerError::Died { .. }), "{text}");
    assert!(text.contains("signal: 9"), "{text}");
    drop(w);
    assert!(!process_exists(pid), "no zombie");
}

/// Kills `pid` with SIGKILL as soon as it has touched part of its shared mapping (its
/// `RssShmem` is above zero: it is reading the shared array), and returns the kB it had
/// touched; `None` if it never touched any within 20 s or is gone.
fn kill_once_reading(pid: u32) -> Option<u64> {
    let status = format!("/proc/{pid}/status");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&status).ok()?;
        let kb = text
            .lines()
            .find_map(|l| l.strip_prefix("RssShmem:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())?;
        if kb > 0 {
            sigkill(pid);
            return Some(kb);
        }
    }
    None
}

#[test]
fn a_worker_killed_while_reading_shared_memory_leaves_no_file_and_no_zombie() {
    let _shm = shm_tests();
    let me = std::process::id();
    let elements = 16 << 20; // 128 MiB: the worker takes a while to read it
    let data = vec![0.25_f64; elements];
    // The kill may land after the worker has read everything; then try again.
    for attempt in 1..=5 {
        let spec = Spec::new(
            Question::ReadShared,
            TransportKind::MmapFile,
            Shape::Persistent,
        );
        let mut t = transport::open(spec, exe(), &data).expect("open");
        let pid = t.pid().expect("a worker");
        let killer = std::thread::spawn(move || kill_once_reading(pid));
        let result = t.exchange(1);
        let touched_kb = killer.join().expect("killer");
        let Err(err) = result else {
            eprintln!("attempt {attempt}: the worker finished reading before the kill");
            continue;
        };
        // The transport still exists: its file must already be gone, so that not even a
        // SIGKILL of the parent now could leave it behind.
        assert_eq!(
            leftovers(Some(me)),
            Vec::<std::path::PathBuf>::new(),
            "no file of the transfer in /dev/shm while the transport lives"
        );
        drop(t);
        assert_eq!(
            leftovers(Some(me)),
            Vec::<std::path::PathBuf>::new(),
            "no file of the transfer in /dev/shm after the transport"
        );
        assert!(!process_exists(pid), "worker {pid} reaped (no zombie)");
        // What the parent was told, and that the kill did land mid-read.
        let text = err.to_string();
        assert!(text.contains("signal: 9"), "{text}");
        let touched_kb = touched_kb.expect("the worker was killed while reading");
        assert!(
            touched_kb < (elements * 8 / 1024) as u64,
            "killed after reading {touched_kb} kB: mid-read"
        );
        return;
    }
    panic!("the worker always finished reading before it could be killed");
}

#[test]
fn a_panic_before_the_shared_file_is_unlinked_still_removes_it() {
    let _shm = shm_tests();
    let elements = 1 << 16;
    let mut seen = None;
    // What the mmap-file transport does when it starts, with a panic where it would unlink the
    // file (once the worker has mapped it).
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let shared = SharedArray::named(elements).expect("named");
        let path = shared.path().expect("a named file").to_owned();
        let mut worker = Spawn::new(exe()).start().expect("spawn");
        worker
            .send(&Request::OpenShared {
                path: path.to_string_lossy().into_owned(),
                elements: elements as u64,
            })
            .expect("send");
        worker.answer("mapping the shared file").expect("mapped");
        assert!(path.exists(), "not unlinked yet");
        seen = Some((path, worker.pid()));
        panic!("between mapping the shared file and unlinking it");
    }));
    assert!(result.is_err(), "it panicked");
    let (path, pid) = seen.expect("the panic came after the worker mapped the file");
    assert!(
        !path.exists(),
        "{} is left after the unwind",
        path.display()
    );
    assert!(
        !process_exists(pid),
        "worker {pid} reaped during the unwind"
    );
}

/// The syscall a thread of this process is blocked in (its number), `None` while it runs.
fn blocked_in(tid: i32) -> Option<i64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Dropping a worker waits for it to exit blocked in the kernel (poll on a pidfd, or, without
/// pidfds, on a channel from a thread blocked in waitid), never in a sleep loop: a sleep would
/// be timed in every `pool=spawn` benchmark.
#[test]
fn dropping_a_worker_waits_for_its_exit_without_sleeping() {
    let mut w = Spawn::new(exe()).start().expect("spawn");
    let pid = w.pid();
    // The worker sleeps before it reads the end of its stdin: its drop waits that long.
    let busy = Duration::from_millis(400);
    w.send(&Request::Sleep {
        ms: busy.as_millis() as u64,
    })
    .expect("send");
    let (tx, rx) = std::sync::mpsc::channel();
    let dropper = std::thread::spawn(move || {
        let _ = tx.send(rustix::thread::gettid().as_raw_nonzero().get());
        let start = Instant::now();
        drop(w);
        start.elapsed()
    });
    let tid = rx.recv().expect("tid");
    let mut calls = std::collections::BTreeMap::<i64, usize>::new();
    while !dropper.is_finished() {
        if let Some(nr) = blocked_in(tid) {
            *calls.entry(nr).or_default() += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = dropper.join().expect("dropper");
    assert!(!process_exists(pid), "reaped");
    assert!(took < Duration::from_secs(2), "exited by itself: {took:?}");
    let sleeps = [libc::SYS_nanosleep, libc::SYS_clock_nanosleep];
    let waits = [
        libc::SYS_ppoll,
        libc::SYS_waitid,
        libc::SYS_wait4,
        libc::SYS_futex,
    ];
    #[cfg(target_arch = "x86_64")]
    let waits = [waits.as_slice(), &[libc::SYS_poll]].concat();
    assert!(
        !calls.keys().any(|nr| sleeps.contains(nr)),
        "the dropping thread slept (syscall: samples): {calls:?}"
    );
    let waited: usize = calls
        .iter()
        .filter(|(nr, _)| waits.contains(nr))
        .map(|(_, n)| n)
        .sum();
    assert!(
        waited >= 10,
        "the dropping thread waited in poll, waitid or futex (syscall: samples): {calls:?}"
    );
}

#[test]
fn forked_children_are_reaped() {
    let data = random(1000, 2);
    let spec = Spec::new(Question::Send, TransportKind::ForkCow, Shape::SpawnPerTask);
    let mut t = transport::open(spec, exe(), &data).expect("open");
    for generation in 1..=20 {
        let expected = sum(&stamped(&data, generation));
        assert_eq!(
            t.exchange(generation).expect("sum").to_bits(),
            expected.to_bits()
        );
    }
    drop(t);
    // Every forked child was waited for: none is left as a zombie. Forked children carry this
    // test binary's name (workers of other tests running meanwhile are `parcost-worker`), and a
    // leak stays a zombie, where a child being reaped right now does not.
    let me = std::process::id().to_string();
    // A forked child is named after the thread that forked it: this test's thread.
    let own = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
    let comm = own.split(") ").next().unwrap_or("").to_owned();
    let zombies = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir("/proc")
            .expect("proc")
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|stat| {
                let (head, tail) = stat.split_once(") ").unwrap_or(("", ""));
                let fields: Vec<&str> = tail.split(' ').collect();
                head.split_once(" (").map(|(_, c)| c) == comm.split_once(" (").map(|(_, c)| c)
                    && fields.first() == Some(&"Z")
                    && fields.get(1) == Some(&me.as_str())
            })
            .collect()
    };
    let mut lingering = zombies();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !lingering.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        lingering = lingering.intersection(&zombies()).cloned().collect();
    }
    assert!(lingering.is_empty(), "{lingering:?}");
}

/// Run by [`a_bench_that_exits_without_destructors_leaves_nothing_behind`] in a child process:
/// opens every transport that makes files, uses it, and leaves through `exit` with all of them
/// alive, as `harness::fail` does.
#[test]
#[ignore = "a helper: run in a child process by the test below"]
fn helper_exit_with_transports_alive() {
    if std::env::var_os("PARCOST_EXIT_HELPER").is_none() {
        return;
    }
    let data = random(5000, 8);
    let mut alive = Vec::new();
    for spec in Spec::all() {
        let mut t = transport::open(spec, exe(), &data).expect("open");
        t.exchange(1).expect("exchange");
        alive.push(t);
    }
    assert!(!leftovers(Some(std::process::id())).is_empty());
    std::process::exit(3);
}

/// A bench that ends through `exit` (a failed check) runs no destructor; its files in /dev/shm
/// and the temporary folder go all the same.
#[test]
fn a_bench_that_exits_without_destructors_leaves_nothing_behind() {
    let me = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(me)
        .args([
            "--exact",
            "helper_exit_with_transports_alive",
            "--ignored",
            "--test-threads=1",
        ])
        .env("PARCOST_EXIT_HELPER", "1")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(3), "the helper exits through exit(3)");
    assert_eq!(leftovers(Some(pid)), Vec::<PathBuf>::new(), "/dev/shm");
    assert_eq!(
        temp_leftovers(Some(pid)),
        Vec::<PathBuf>::new(),
        "temp folder"
    );
}

/// `remote`: a server process holding the array answers every request of every kind at every
/// window exactly as the client's array says, and so does the thread.
#[test]
fn a_server_holding_the_array_answers_every_request_as_its_copy_says() {
    use parcost::remote::{Holder, Request, Server, Thread, is_right, numbers, queries};
    let data = random(40_000, 17);
    let mut server = Server::open(exe(), &data).expect("a server");
    let mut thread = Thread::open(data.clone().into()).expect("a thread");
    for request in Request::ALL {
        let qs = queries(request, data.len());
        let want = numbers(&data, &qs).expect("in range");
        for (q, w) in qs.iter().zip(&want) {
            let got = server.ask(*q).expect("the server answers");
            assert!(is_right(&data, *q, *w, got), "server {q:?}: {got:?}");
            let got = thread.ask(*q).expect("the thread answers");
            assert!(is_right(&data, *q, *w, got), "thread {q:?}: {got:?}");
        }
    }
    assert!(server.worker_cpu().is_some());
}

/// A request outside the array is refused in words, not a dead server, and the stream stays
/// in step: the next replies are their own, of every kind.
#[test]
fn a_request_outside_the_array_is_refused_in_words() {
    use parcost::remote::{Holder, Query, Reply, Request, SMALL_VALUES, Server, dot_vector};
    use parcost::workload::dot;
    let data = random(1000, 18);
    let mut server = Server::open(exe(), &data).expect("a server");
    for request in Request::ALL {
        let past = Query {
            request,
            start: 999,
            len: 2,
        };
        let err = server.ask(past).expect_err("refused").to_string();
        assert!(err.contains("not in an array of 1000"), "{err}");
        let slice = Query {
            request: Request::Slice,
            start: 998,
            len: 2,
        };
        assert_eq!(server.ask(slice).ok(), Some(Reply::Values(&data[998..])));
        let d = Query {
            request: Request::Dot,
            start: 0,
            len: 16,
        };
        let want = dot(&data[..16], &dot_vector(SMALL_VALUES));
        assert_eq!(server.ask(d).ok(), Some(Reply::Number(want)));
    }
    // A vector longer than a request's: refused before anything is sent.
    let long = Query {
        request: Request::Dot,
        start: 0,
        len: SMALL_VALUES as u64 + 1,
    };
    assert!(server.ask(long).is_err());
    let sum = Query {
        request: Request::RangeSum,
        start: 0,
        len: 8,
    };
    let want: f64 = parcost::workload::sum(&data[..8]);
    assert_eq!(server.ask(sum).ok(), Some(Reply::Number(want)));
}
