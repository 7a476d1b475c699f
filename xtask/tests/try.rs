//! `cargo xtask try` on tiny programs: one whose busy threads are known (the diagnosis), and a
//! failing, a hanging and a missing command (one line each, nothing left running, no try.json).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-try-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A summary.json to take the verdict's settings from: the report of the complete fixture.
fn summary(dir: &Path) -> PathBuf {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/report/tests/fixtures/complete");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["report", "--criterion"])
        .arg(&fixture)
        .arg("--out")
        .arg(dir)
        .output()
        .expect("xtask runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dir.join("summary.json")
}

fn try_(summary: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("try")
        .arg("--summary")
        .arg(summary)
        .args(args)
        // Not the machine's results: the page is left alone.
        .env("CRITERION_HOME", summary.with_file_name("no-criterion"))
        .output()
        .expect("xtask runs")
}

/// The error line of a failed run: exactly one, no panic trace.
fn error_line(o: &Output) -> String {
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    errors[0].to_owned()
}

/// The `try.json` a run wrote beside the summary in `dir`.
fn tried_in(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("try.json")).expect("try.json beside the summary");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn a_program_of_three_busy_threads_is_diagnosed_with_them() {
    let dir = temp("busy");
    let summary = summary(&dir);
    let o = try_(
        &summary,
        &[
            "--runs",
            "3",
            "--check-output",
            "--",
            "sh",
            "-c",
            "for k in 1 2 3; do (i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done) & done; wait; echo done",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.starts_with("Your program: "), "the answer first: {out}");
    let tried = tried_in(&dir);
    let configs = tried["configurations"].as_array().expect("configurations");
    assert!(configs.len() >= 3, "{tried}");
    for c in configs {
        // The shell and its three loops: four processes, three of them busy at once whatever
        // the environment (the loops read no thread count).
        assert!(c["peak_threads"].as_u64().is_some_and(|t| t >= 4), "{c}");
        assert!(c["peak_busy"].as_u64().is_some_and(|b| b >= 3), "{c}");
        assert_eq!(c["runs"], 3, "{c}");
        assert_eq!(c["output_changed"], false, "{c}");
    }
    assert_eq!(configs[0]["name"], "as is");
    assert!(tried["answer"]["answer"].is_string(), "{tried}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_configuration_that_changes_the_output_is_named_and_never_the_answer() {
    let dir = temp("output");
    let summary = summary(&dir);
    // It prints the BLAS thread count it was given: every configuration that sets one
    // changes the output.
    let o = try_(
        &summary,
        &[
            "--runs",
            "3",
            "--check-output",
            "--",
            "sh",
            "-c",
            "echo ${OPENBLAS_NUM_THREADS:-unset}",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tried = tried_in(&dir);
    let configs = tried["configurations"].as_array().expect("configurations");
    assert_eq!(configs[0]["output_changed"], false, "{tried}");
    for c in &configs[1..] {
        assert_eq!(c["output_changed"], true, "{c}");
    }
    assert_eq!(tried["answer"]["answer"], "as-is-stands", "{tried}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("every other configuration changed its output"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failing_a_hanging_and_a_missing_command_are_one_line_each() {
    let dir = temp("bad");
    let summary = summary(&dir);
    let err = error_line(&try_(
        &summary,
        &["--runs", "3", "--", "sh", "-c", "echo boom >&2; exit 3"],
    ));
    assert!(
        err.contains("exited with status 3") && err.contains("boom"),
        "{err}"
    );

    // A hang with a child of its own: both ended at the timeout.
    let marker = dir.join("child.pid");
    let started = std::time::Instant::now();
    let err = error_line(&try_(
        &summary,
        &[
            "--timeout",
            "1",
            "--",
            "sh",
            "-c",
            &format!("sleep 60 & echo $! > {}; wait", marker.display()),
        ],
    ));
    assert!(err.contains("did not finish within 1 s"), "{err}");
    assert!(started.elapsed().as_secs() < 30, "{err}");
    let child: u32 = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .expect("the child's pid");
    let gone = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::read_to_string(format!("/proc/{child}/stat")).map_or(true, |s| s.contains(") Z"))
    });
    assert!(gone, "the hanging command's child is still running");

    let err = error_line(&try_(&summary, &["--", "/no/such/program"]));
    assert!(err.contains("cannot start /no/such/program"), "{err}");
    // Without a command, or without a summary: one line each.
    let err = error_line(&try_(&summary, &[]));
    assert!(err.contains("needs the command"), "{err}");
    let err = error_line(&try_(&dir.join("none.json"), &["--", "true"]));
    assert!(err.contains("cargo xtask bench --quick"), "{err}");
    assert!(
        !dir.join("try.json").exists(),
        "no try.json from a failed try"
    );
    let _ = std::fs::remove_dir_all(dir);
}
