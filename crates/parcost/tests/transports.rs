//! Worker processes and transports, end to end with a real worker binary.

use std::path::Path;
use std::time::{Duration, Instant};

use parcost::fdio::{as_bytes, as_bytes_mut};
use parcost::shm::{SharedArray, leftovers};
use parcost::transport::{self, Shape, TransportError, TransportKind};
use parcost::worker::{Compute, Request, Spawn, Via, WorkerError, process_exists};
use parcost::workload::{ArrayJob, BLOCK, fill_uniform, sum};
use proptest::prelude::*;

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

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn shapes(kind: TransportKind) -> Vec<Shape> {
    if kind.can_spawn_per_task() {
        vec![Shape::Persistent, Shape::SpawnPerTask]
    } else {
        vec![Shape::Persistent]
    }
}

fn check_round_trip(kind: TransportKind, shape: Shape, data: &[f64]) {
    let mut t = transport::open(kind, shape, exe(), data).expect("open");
    assert_eq!(bits(t.array()), bits(data), "{kind} holds the data");
    let back = t.round_trip().expect("round trip");
    assert_eq!(bits(&back), bits(data), "{kind} ({shape:?}) round trip");
    let s = t.exchange().expect("exchange");
    assert_eq!(s.to_bits(), sum(data).to_bits(), "{kind} ({shape:?}) sum");
    // Twice: a persistent worker serves more than one request.
    let s = t.exchange().expect("exchange again");
    assert_eq!(
        s.to_bits(),
        sum(data).to_bits(),
        "{kind} ({shape:?}) second sum"
    );
}

#[test]
fn every_transport_round_trips_edge_sizes() {
    let _shm = shm_tests();
    for kind in TransportKind::ALL {
        for shape in shapes(kind) {
            for elements in [0, 1, 7, (1 << 17) + 3] {
                check_round_trip(kind, shape, &random(elements, elements as u64));
            }
        }
    }
    assert!(leftovers(Some(std::process::id())).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn every_transport_round_trips_random_data(elements in 0usize..40_000, seed: u64) {
        let _shm = shm_tests();
        let data = random(elements, seed);
        for kind in TransportKind::ALL {
            for shape in shapes(kind) {
                check_round_trip(kind, shape, &data);
            }
        }
    }
}

#[test]
fn shared_transports_write_through() {
    let _shm = shm_tests();
    for kind in [TransportKind::MmapFile, TransportKind::MemfdInherited] {
        for shape in shapes(kind) {
            let data = random(10_001, 3);
            let mut t = transport::open(kind, shape, exe(), &data).expect("open");
            let written = t.exchange_write().expect("write");
            let expected: Vec<f64> = data.iter().map(|x| x + 1.0).collect();
            assert_eq!(
                bits(t.array()),
                bits(&expected),
                "{kind}: the parent sees the change"
            );
            assert_eq!(written.to_bits(), sum(&expected).to_bits());
        }
    }
    let mut t =
        transport::open(TransportKind::Pipe, Shape::Persistent, exe(), &[1.0]).expect("open");
    assert!(matches!(
        t.exchange_write(),
        Err(TransportError::Unsupported(..))
    ));
}

#[test]
fn unknown_transports_and_shapes_are_clear_errors() {
    let err = TransportKind::from_name("carrier-pigeon").expect_err("unknown");
    let text = err.to_string();
    assert!(
        text.contains("carrier-pigeon") && text.contains("memfd-inherited"),
        "{text}"
    );
    assert_eq!(
        TransportKind::from_name("fork-cow").expect("known"),
        TransportKind::ForkCow
    );
    let err =
        transport::open(TransportKind::Socket, Shape::SpawnPerTask, exe(), &[]).expect_err("no");
    assert!(
        err.to_string()
            .contains("socket does not support a process per task"),
        "{err}"
    );
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
        echo: false,
    })
    .expect("request");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        // SAFETY: signals the worker this test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
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
            // SAFETY: signals the worker this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
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
        let mut t = transport::open(TransportKind::MmapFile, Shape::Persistent, exe(), &data)
            .expect("open");
        let pid = t.pid().expect("a worker");
        let killer = std::thread::spawn(move || kill_once_reading(pid));
        let result = t.exchange();
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
        // SAFETY: gettid has no preconditions.
        let _ = tx.send(unsafe { libc::gettid() });
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

/// The proxy server's array is the worker's held array: a compute on the same worker returns
/// its result and leaves the held array as it was.
#[test]
fn a_compute_leaves_a_proxy_servers_array_alone() {
    let held = random(3 * BLOCK + 5, 4);
    let mut w = Spawn::new(exe()).start().expect("spawn");
    w.send(&Request::Hold {
        elements: held.len() as u64,
    })
    .expect("hold");
    w.send_bytes(as_bytes(&held), "taking the array to hold")
        .expect("send");
    w.answer_sum("taking the array to hold").expect("held");

    let input = random(2 * BLOCK, 5);
    w.send(&Request::Compute(Compute {
        job: ArrayJob::Elementwise,
        seed: 0,
        first_block: 0,
        blocks: 2,
        elements: input.len() as u64,
        via: Via::Pipe,
    }))
    .expect("compute");
    w.send_bytes(as_bytes(&input), "taking its share")
        .expect("send");
    w.answer("computing").expect("computed");
    let mut out = vec![0.0; input.len()];
    w.read_bytes(as_bytes_mut(&mut out), "sending the result")
        .expect("result");
    let mut expected = vec![0.0; input.len()];
    ArrayJob::Elementwise.run_blocks(0, 0, &input, &mut expected);
    assert_eq!(bits(&out), bits(&expected), "the compute's result");

    w.send(&Request::Slice {
        offset: 0,
        len: held.len() as u64,
    })
    .expect("slice");
    w.answer("serving the held array").expect("served");
    let mut back = vec![0.0; held.len()];
    w.read_bytes(as_bytes_mut(&mut back), "serving the held array")
        .expect("held array");
    assert_eq!(bits(&back), bits(&held), "the held array after a compute");
}

#[test]
fn forked_children_are_reaped() {
    let data = random(1000, 2);
    let mut t =
        transport::open(TransportKind::ForkCow, Shape::SpawnPerTask, exe(), &data).expect("open");
    for _ in 0..20 {
        assert_eq!(t.exchange().expect("sum").to_bits(), sum(&data).to_bits());
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
