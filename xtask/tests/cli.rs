//! The xtask's bad input: one line that says what and how to fix it, never a panic trace.

use std::process::{Command, Output};

fn xtask(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("xtask runs")
}

fn one_line_error(o: &Output) -> String {
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

#[test]
fn a_missing_openblas_says_how_to_install_it() {
    let env = [
        ("PARCOST_LIB_DIRS", "/nonexistent"),
        ("PARCOST_NO_INSTALL", "1"),
    ];
    for task in [&["setup"][..], &["bench", "--quick"], &["test"]] {
        let err = one_line_error(&xtask(task, &env));
        assert!(err.contains("OpenBLAS not found"), "{err}");
        assert!(err.contains("apt-get install libopenblas-dev"), "{err}");
        assert!(err.contains("brew install openblas"), "{err}");
    }
}

#[test]
fn without_mpi_the_suite_is_skipped_in_one_line_and_the_rest_goes_on() {
    let env = [
        ("PARCOST_MPIRUN", "/nonexistent/mpirun"),
        ("PARCOST_NO_INSTALL", "1"),
    ];
    for task in [&["setup"][..], &["bench", "--suite", "ranks-x-threads"]] {
        let o = xtask(task, &env);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{task:?}: {err}");
        let notes: Vec<&str> = err.lines().filter(|l| l.contains("MPI")).collect();
        assert_eq!(notes.len(), 1, "{task:?}: {err}");
        assert!(
            notes[0].starts_with("note: MPI not found (missing: openmpi-bin)")
                && notes[0].contains("ranks-x-threads suite is skipped")
                && notes[0]
                    .contains("apt-get install libopenmpi-dev openmpi-bin libclang-dev pkgconf"),
            "{}",
            notes[0]
        );
    }
    let err = one_line_error(&xtask(
        &["bench", "--suite", "task-level", "--hostfile", "h"],
        &env,
    ));
    assert!(
        err.contains("--hostfile is for the ranks-x-threads suite"),
        "{err}"
    );
}

#[test]
fn unknown_tasks_suites_and_layers_are_named() {
    let err = one_line_error(&xtask(&["frobnicate"], &[]));
    assert!(err.contains("unknown task \"frobnicate\""), "{err}");
    let err = one_line_error(&xtask(&["bench", "--suite", "nope"], &[]));
    assert!(
        err.contains("unknown suite \"nope\"") && err.contains("array-sharing"),
        "{err}"
    );
    let o = xtask(&["bench", "--layer", "nope", "--suite", "task-level"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("layer \"nope\" is not installed"), "{err}");
}

#[test]
fn no_task_lists_the_tasks() {
    let o = xtask(&[], &[]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for task in ["setup", "bench", "test", "report"] {
        assert!(out.contains(task), "{out}");
    }
}
