//! `cargo xtask bench --resume` after a real run is killed mid-way: the finished suite runs are
//! skipped, the rest run.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn an_interrupted_bench_resumes_where_it_stopped() {
    let home = tempfile::tempdir().expect("tempdir");
    let criterion = home.path().join("criterion");
    let state = home.path().join("parcost-bench/state.json");
    // Every benchmark once (`--test`): the run is real, its steps short.
    let args = [
        "bench",
        "--quick",
        "--suite",
        "blas-tuning",
        "--layer",
        "serial",
        "--",
        "--test",
    ];
    let mut first = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("CRITERION_HOME", &criterion)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("xtask starts");
    let deadline = Instant::now() + Duration::from_secs(900);
    let done = loop {
        let done: Vec<String> = std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| serde_json::from_value(v["done"].clone()).ok())
            .unwrap_or_default();
        if !done.is_empty() {
            break done;
        }
        if let Ok(Some(status)) = first.try_wait() {
            panic!("the bench ended ({status}) before a step was recorded");
        }
        assert!(Instant::now() < deadline, "no step finished in 15 minutes");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Interrupt the whole run: xtask, cargo and the bench process.
    // SAFETY: kill has no memory effects; the group is the one spawned above.
    unsafe { libc::kill(-(first.id() as i32), libc::SIGKILL) };
    let _ = first.wait();

    let second = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--resume"].iter().chain(&args[1..]))
        .env("CRITERION_HOME", &criterion)
        .output()
        .expect("xtask runs");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{err}");
    for step in &done {
        assert!(
            err.contains(&format!("{step}: skipped, finished in the interrupted run")),
            "{step} not skipped: {err}"
        );
    }
    assert!(err.contains("benchmarks in"), "the steps left ran: {err}");
    let left: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("json");
    assert_eq!(
        left["done"],
        serde_json::json!([]),
        "a finished run leaves nothing to resume"
    );
}
