//! `cargo xtask bench --suite ranks-x-threads --hostfile FILE`: the hostfile reaches mpirun (one
//! host, localhost), every benchmark of a cell runs once, and no process of any job remains.

use std::process::{Command, Stdio};

fn mpi_installed() -> bool {
    Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_suite_runs_through_a_localhost_hostfile_and_leaves_no_process() {
    if !mpi_installed() {
        // `cargo xtask test` installs MPI first; a bare `cargo test` may run without it.
        eprintln!("skipped: mpirun is not installed (cargo xtask setup installs it)");
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let hostfile = home.path().join("hosts");
    std::fs::write(&hostfile, "localhost slots=2\n").expect("hostfile");
    let mark = format!("xtask-hostfile-test-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--suite", "ranks-x-threads", "--layer", "serial"])
        .arg("--hostfile")
        .arg(&hostfile)
        // Every benchmark of the 2-rank cell once.
        .args(["--", "--test", "ranks=2,"])
        .env("CRITERION_HOME", home.path().join("criterion"))
        .env("PARCOST_MPI_JOB", &mark)
        .output()
        .expect("xtask runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let log = std::fs::read_to_string(home.path().join("parcost-bench/bench.log")).expect("log");
    for id in [
        "ranks-x-threads/batch/layer=serial,n=256,pairs=64,matrices=16/ranks=2,blas_threads=1,hosts=1",
        "ranks-x-threads/scatter/layer=serial,n=256,pairs=64,matrices=16/ranks=2,blas_threads=1,hosts=1",
    ] {
        assert!(
            log.contains(&format!("Testing {id}\nSuccess")),
            "{id}: {log}"
        );
    }
    assert!(
        log.contains("ranks-x-threads/startup/layer=serial/ranks=2,blas_threads=1,hosts=1"),
        "{log}"
    );
    assert!(!log.contains("ranks=4"), "only the cell asked for: {log}");
    // Nothing of the jobs is left: every process they started carries the mark.
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|&b| b == 0)
                    .any(|v| v.starts_with(format!("PARCOST_MPI_JOB={mark}").as_bytes()))
            })
        })
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_else(|_| pid.to_string())
        })
        .collect();
    assert!(left.is_empty(), "left: {left:?}");
}
