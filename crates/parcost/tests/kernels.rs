//! `parcost-kernels survey`: every kernel this CPU can run is tried in a child process and
//! judged, and the survey lands next to Criterion's files for the report.

use std::process::Command;

use parcost::cpu::CpuFeatures;
use parcost::kernel::{self, Survey};

#[test]
fn a_survey_tries_every_runnable_kernel_and_writes_its_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_parcost-kernels"))
        .arg("survey")
        .env("CRITERION_HOME", home.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let survey: Survey = serde_json::from_slice(&out.stdout).expect("a survey on stdout");
    let library = survey
        .library()
        .expect("the library's own kernel was tried");
    assert!(library.verdict.passed(), "{library:?}");
    let runnable = kernel::runnable(&CpuFeatures::detect());
    for name in &runnable {
        let t = survey.trial(name).unwrap_or_else(|| panic!("{name} tried"));
        // A kernel this build has runs as itself; one it lacks is named so, never passed.
        if t.loaded.as_deref().is_some_and(|l| kernel::same(l, name)) {
            assert!(
                t.verdict.passed()
                    || matches!(
                        t.verdict,
                        kernel::Verdict::Wrong { .. } | kernel::Verdict::Crashed { .. }
                    ),
                "{t:?}"
            );
        } else {
            assert!(!t.verdict.passed(), "{t:?}");
        }
    }
    assert_eq!(survey.trials.len(), runnable.len() + 1);
    let file = home
        .path()
        .join("parcost")
        .join(format!("kernels.{}.json", survey.layer));
    let written: Survey =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("written")).expect("parses");
    assert_eq!(written, survey);
}

#[test]
fn a_bad_argument_is_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_parcost-kernels"))
        .arg("--nope")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: parcost-kernels"), "{err}");
}
