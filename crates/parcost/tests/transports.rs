//! Worker processes and transports, end to end with a real worker binary.

use std::path::Path;
use std::time::{Duration, Instant};

use parcost::shm::leftovers;
use parcost::transport::{self, Shape, TransportError, TransportKind};
use parcost::worker::{Request, Spawn, Via, WorkerError, process_exists};
use parcost::workload::{fill_uniform, sum};
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

#[test]
fn shared_files_are_gone_after_a_dead_worker_or_a_panic() {
    let _shm = shm_tests();
    let data = random(1 << 16, 1);
    let result = std::panic::catch_unwind(|| {
        let mut t = transport::open(TransportKind::MmapFile, Shape::Persistent, exe(), &data)
            .expect("open");
        t.exchange().expect("exchange");
        panic!("mid-benchmark");
    });
    assert!(result.is_err());
    assert!(
        leftovers(Some(std::process::id())).is_empty(),
        "no leftover in /dev/shm"
    );
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
