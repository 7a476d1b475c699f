//! Trying OpenBLAS kernels, each in a child process: a kernel that crashes takes only its child
//! down, and one that computes wrong results is named and never used.
//!
//! The child ([`run_trial`]) checks a product and a Cholesky factorisation against references
//! that do not come from OpenBLAS (`matrixmultiply`, and a plain Rust Cholesky) and against the
//! library's own kernel, at one and at P BLAS threads, and times one dgemm. The parent
//! ([`survey`]) starts one child per kernel with `OPENBLAS_CORETYPE` set and judges each.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ndarray::Array2;
use ndarray::linalg::general_mat_mul;
use ndarray_linalg::{Cholesky, UPLO};
use serde::{Deserialize, Serialize};

use crate::blas::{BlasInfo, BlasThreads};
use crate::cpu::CpuFeatures;
use crate::kernel::{self, CORETYPE_VAR, Survey, Trial, Verdict};
use crate::topology::Topology;
use crate::workload::{BLAS_TOLERANCE, random_matrix};

/// Odd sizes, so every kernel's edge handling (partial tiles) is exercised.
const CHECK_N: usize = 509;
const TIMING_N: usize = 1024;

/// How long one kernel's trial may take before it is judged hung.
pub const TRIAL_TIMEOUT: Duration = Duration::from_secs(120);

/// What a child reports of its kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialReport {
    pub loaded: String,
    /// The first check that failed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrong: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
}

/// The trial's inputs, made without OpenBLAS: two random matrices and a symmetric positive
/// definite one (`a a^T / n + I`).
struct Inputs {
    a: Array2<f64>,
    b: Array2<f64>,
    spd: Array2<f64>,
}

impl Inputs {
    fn new() -> Self {
        let a = random_matrix(CHECK_N, 0x6b65_726e);
        let b = random_matrix(CHECK_N, 0x6b65_726f);
        let mut spd = reference_product(&a, &a.t().to_owned()) / CHECK_N as f64;
        spd.diag_mut().mapv_inplace(|d| d + 1.0);
        Self { a, b, spd }
    }

    /// The checked outputs of the loaded kernel: the product and the Cholesky factor, at 1 and
    /// at P BLAS threads.
    fn outputs(&self, threads: usize) -> Vec<(String, Array2<f64>)> {
        let mut out = Vec::new();
        for t in crate::harness::distinct([1, threads]) {
            let _threads = BlasThreads::set(t).ok();
            let mut c = Array2::zeros((CHECK_N, CHECK_N));
            general_mat_mul(1.0, &self.a, &self.b, 0.0, &mut c);
            out.push((format!("dgemm at {t} BLAS threads"), c));
            let l = self
                .spd
                .cholesky(UPLO::Lower)
                .unwrap_or_else(|_| Array2::from_elem((CHECK_N, CHECK_N), f64::NAN));
            out.push((format!("potrf at {t} BLAS threads"), l));
        }
        out
    }
}

/// `a b` by `matrixmultiply`, the Rust kernel ndarray uses without BLAS.
fn reference_product(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let (m, k) = a.dim();
    let n = b.ncols();
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let mut c = Array2::<f64>::zeros((m, n));
    // SAFETY: the three arrays are contiguous row-major with the shapes and strides passed.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    c
}

/// The lower Cholesky factor by the textbook loop.
fn reference_cholesky(a: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        let d = a[[j, j]] - (0..j).map(|k| l[[j, k]] * l[[j, k]]).sum::<f64>();
        l[[j, j]] = d.sqrt();
        for i in j + 1..n {
            let s = a[[i, j]] - (0..j).map(|k| l[[i, k]] * l[[j, k]]).sum::<f64>();
            l[[i, j]] = s / l[[j, j]];
        }
    }
    l
}

/// Runs in the child: checks the loaded kernel, optionally against the library's outputs dumped
/// at `compare`, writes its own to `dump`, and times one dgemm when `timing`.
pub fn run_trial(timing: bool, dump: Option<&Path>, compare: Option<&Path>) -> TrialReport {
    let loaded = BlasInfo::loaded().map_or_else(|e| e.to_string(), |i| i.core);
    let threads = Topology::detect().logical;
    let inputs = Inputs::new();
    let got = inputs.outputs(threads);
    let product = reference_product(&inputs.a, &inputs.b);
    let factor = reference_cholesky(&inputs.spd);
    let mut wrong = None;
    for (what, out) in &got {
        let want = if what.starts_with("dgemm") {
            &product
        } else {
            &factor
        };
        if let Err(e) = BLAS_TOLERANCE.check_arrays(out, want) {
            wrong = Some(format!("{what} against an independent reference: {e}"));
            break;
        }
    }
    let flat: Vec<f64> = got.iter().flat_map(|(_, o)| o.iter().copied()).collect();
    if let Some(path) = compare.filter(|_| wrong.is_none()) {
        match read_f64s(path) {
            Ok(library) => {
                if let Err(e) = BLAS_TOLERANCE.check(flat.iter().copied(), library) {
                    wrong = Some(format!("against the library's own kernel: {e}"));
                }
            }
            Err(e) => wrong = Some(format!("cannot read {}: {e}", path.display())),
        }
    }
    if let Some(path) = dump {
        let bytes: Vec<u8> = flat.iter().flat_map(|x| x.to_le_bytes()).collect();
        if let Err(e) = std::fs::write(path, bytes) {
            wrong.get_or_insert(format!("cannot write {}: {e}", path.display()));
        }
    }
    let gflops = (timing && wrong.is_none()).then(time_dgemm);
    TrialReport {
        loaded,
        wrong,
        gflops,
    }
}

fn read_f64s(path: &Path) -> std::io::Result<Vec<f64>> {
    let bytes = std::fs::read(path)?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// One 1024 dgemm on one BLAS thread, best of three after a warm-up, in GFLOP/s.
fn time_dgemm() -> f64 {
    let _one = BlasThreads::set(1).ok();
    let a = random_matrix(TIMING_N, 1);
    let b = random_matrix(TIMING_N, 2);
    let mut c = Array2::zeros((TIMING_N, TIMING_N));
    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    let best = (0..3)
        .map(|_| {
            let start = Instant::now();
            general_mat_mul(1.0, &a, &b, 0.0, &mut c);
            start.elapsed()
        })
        .min()
        .unwrap_or(Duration::MAX);
    2.0 * (TIMING_N as f64).powi(3) / best.as_secs_f64().max(1e-9) / 1e9
}

/// Errors of a survey as a whole (a kernel's failure is its verdict, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    #[error("cannot make a folder for the trials' outputs: {0}")]
    TempDir(std::io::Error),
    #[error(transparent)]
    Blas(#[from] crate::blas::BlasError),
}

/// Tries the library's own kernel, then every kernel this CPU can run, each in a child process
/// of `exe` (`exe trial ...`), with the user's `OPENBLAS_CORETYPE` from this process's
/// environment. `timing` adds the quick dgemm timing the choice ranks by.
pub fn survey(exe: &Path, timing: bool) -> Result<Survey, SurveyError> {
    let user = std::env::var(CORETYPE_VAR).ok().filter(|v| !v.is_empty());
    survey_with(exe, timing, user)
}

/// The same with the user's kernel `user_coretype`. Beside the kernels this CPU can run, two
/// more are tried like them: the library's own kernel under the name it reports (a kernel
/// newer than [`kernel::X86_64_KERNELS`], `SapphireRapids` from OpenBLAS 0.3.22, or the target
/// of a build without `DYNAMIC_ARCH`: swept under that name too), and the user's (a typo is
/// a trial that loaded another kernel, and the decision says so in one line).
pub fn survey_with(
    exe: &Path,
    timing: bool,
    user_coretype: Option<String>,
) -> Result<Survey, SurveyError> {
    let info = BlasInfo::loaded()?;
    let cpu = CpuFeatures::detect();
    let dir = tempfile::tempdir().map_err(SurveyError::TempDir)?;
    let library_dump = dir.path().join("library.f64");
    let mut trials = vec![child_trial(
        exe,
        None,
        timing,
        Some(&library_dump),
        None,
        TRIAL_TIMEOUT,
    )];
    // The library's kernel is a reference for the others only when it passed its own
    // checks: a wrong library kernel, the case the survey exists for, would fail every kernel
    // judged against it.
    let library_passed = trials
        .first()
        .is_some_and(|t| matches!(t.verdict, Verdict::Passed));
    let compare = (library_passed && library_dump.is_file()).then_some(library_dump.as_path());
    let mut names: Vec<String> = kernel::runnable(&cpu)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let reported = trials.first().and_then(|t| t.loaded.clone());
    for extra in [reported, user_coretype.clone()].into_iter().flatten() {
        if !names.iter().any(|n| kernel::same(n, &extra)) {
            names.push(extra);
        }
    }
    for name in &names {
        trials.push(child_trial(
            exe,
            Some(name),
            timing,
            None,
            compare,
            TRIAL_TIMEOUT,
        ));
    }
    Ok(Survey {
        layer: info.layer.name().to_owned(),
        config: info.config,
        user_coretype,
        cpu,
        trials,
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

fn child_trial(
    exe: &Path,
    kernel: Option<&str>,
    timing: bool,
    dump: Option<&PathBuf>,
    compare: Option<&Path>,
    timeout: Duration,
) -> Trial {
    let mut cmd = Command::new(exe);
    cmd.arg("trial")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match kernel {
        Some(k) => cmd.env(CORETYPE_VAR, k),
        None => cmd.env_remove(CORETYPE_VAR),
    };
    if timing {
        cmd.arg("--timing");
    }
    if let Some(d) = dump {
        cmd.arg("--dump").arg(d);
    }
    if let Some(c) = compare {
        cmd.arg("--compare").arg(c);
    }
    let requested = kernel.map(str::to_owned);
    let judged = |loaded: Option<String>, verdict| Trial {
        requested: requested.clone(),
        loaded,
        verdict,
        gflops: None,
    };
    let output = match run_bounded(&mut cmd, timeout) {
        Ok(Some(out)) => out,
        Ok(None) => {
            return judged(
                None,
                Verdict::TimedOut {
                    seconds: timeout.as_secs(),
                },
            );
        }
        Err(e) => {
            return judged(
                None,
                Verdict::Crashed {
                    detail: format!("could not start {}: {e}", exe.display()),
                },
            );
        }
    };
    if !output.status.success() {
        let last = String::from_utf8_lossy(&output.stderr)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        return judged(
            None,
            Verdict::Crashed {
                detail: format!("{}{last}", describe_exit(output.status)),
            },
        );
    }
    let report: TrialReport = match serde_json::from_slice(&output.stdout) {
        Ok(r) => r,
        Err(e) => {
            return judged(
                None,
                Verdict::Crashed {
                    detail: format!("its report was not readable: {e}"),
                },
            );
        }
    };
    let verdict = match (&report.wrong, kernel) {
        (_, Some(k)) if !kernel::same(k, &report.loaded) => Verdict::NotInBuild {
            loaded: report.loaded.clone(),
        },
        (Some(detail), _) => Verdict::Wrong {
            detail: detail.clone(),
        },
        (None, _) => Verdict::Passed,
    };
    Trial {
        gflops: report.gflops.filter(|_| verdict.passed()),
        ..judged(Some(report.loaded), verdict)
    }
}

/// Runs `cmd` to its end or kills it after `timeout`; `None` when it was killed.
///
/// The child is polled every 10 ms: a trial is never timed from outside, so a short sleep here
/// costs nothing that is measured.
fn run_bounded(
    cmd: &mut Command,
    timeout: Duration,
) -> std::io::Result<Option<std::process::Output>> {
    let mut child = cmd.spawn()?;
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(status.map(|status| std::process::Output {
        status,
        stdout,
        stderr,
    }))
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(sig) => {
            let name = match sig {
                libc::SIGILL => " (SIGILL: an instruction this CPU does not have)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGFPE => " (SIGFPE)",
                libc::SIGABRT => " (SIGABRT)",
                _ => "",
            };
            format!("killed by signal {sig}{name}")
        }
        None => format!("exited with {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_independent_references_are_right() {
        let a = random_matrix(7, 1);
        let b = random_matrix(7, 2);
        let naive = Array2::from_shape_fn((7, 7), |(i, j)| {
            (0..7).map(|k| a[[i, k]] * b[[k, j]]).sum::<f64>()
        });
        BLAS_TOLERANCE
            .check_arrays(&reference_product(&a, &b), &naive)
            .expect("matrixmultiply");
        let mut spd = reference_product(&a, &a.t().to_owned());
        spd.diag_mut().mapv_inplace(|d| d + 1.0);
        let l = reference_cholesky(&spd);
        BLAS_TOLERANCE
            .check_arrays(&reference_product(&l, &l.t().to_owned()), &spd)
            .expect("l l^T = a");
    }

    /// A stand-in for the trial binary: a shell script.
    fn script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("trial.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[test]
    fn a_child_that_crashes_hangs_or_loads_another_kernel_is_judged_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let judge = |body: &str| {
            let exe = script(dir.path(), body);
            child_trial(
                &exe,
                Some("SkylakeX"),
                true,
                None,
                None,
                Duration::from_secs(2),
            )
            .verdict
        };
        let crashed = judge("kill -ILL $$");
        assert!(
            matches!(&crashed, Verdict::Crashed { detail } if detail.contains("SIGILL")),
            "{crashed:?}"
        );
        let other = judge(r#"echo '{"loaded":"Haswell","gflops":30.0}'"#);
        assert_eq!(
            other,
            Verdict::NotInBuild {
                loaded: "Haswell".into()
            }
        );
        let wrong = judge(r#"echo '{"loaded":"SkylakeX","wrong":"value 3 is 1"}'"#);
        assert!(matches!(wrong, Verdict::Wrong { .. }), "{wrong:?}");
        let ok = judge(r#"echo '{"loaded":"SkylakeX","gflops":70.5}'"#);
        assert_eq!(ok, Verdict::Passed);
        assert_eq!(judge("exec sleep 30"), Verdict::TimedOut { seconds: 2 });
        let garbage = judge("echo nonsense; echo 'oops' >&2; exit 3");
        assert!(
            matches!(&garbage, Verdict::Crashed { detail } if detail.contains("oops")),
            "{garbage:?}"
        );
    }

    #[test]
    fn a_wrong_library_kernel_is_no_reference_for_the_others() {
        let _serial = crate::blas::exclusive_blas();
        let dir = tempfile::tempdir().expect("tempdir");
        // The library's own kernel computes wrong (and dumps its outputs); every named kernel
        // is right, unless judged against that dump.
        let exe = script(
            dir.path(),
            r#"cmp=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dump) : > "$2"; shift ;;
    --compare) cmp=1; shift ;;
  esac
  shift
done
if [ -z "$OPENBLAS_CORETYPE" ]; then
  echo '{"loaded":"Library","wrong":"dgemm against an independent reference: off by 1"}'
elif [ -n "$cmp" ]; then
  echo "{\"loaded\":\"$OPENBLAS_CORETYPE\",\"wrong\":\"against the library's own kernel\"}"
else
  echo "{\"loaded\":\"$OPENBLAS_CORETYPE\"}"
fi"#,
        );
        let survey = survey(&exe, false).expect("a survey");
        assert!(matches!(survey.trials[0].verdict, Verdict::Wrong { .. }));
        let named = &survey.trials[1..];
        assert!(!named.is_empty(), "this CPU runs some kernel");
        assert!(
            named.iter().all(|t| t.verdict == Verdict::Passed),
            "{named:?}"
        );
    }

    #[test]
    fn the_librarys_own_kernel_and_the_users_are_tried_by_name() {
        let _serial = crate::blas::exclusive_blas();
        let dir = tempfile::tempdir().expect("tempdir");
        // A library that reports a kernel newer than the nine named ones, and loads its own
        // for a name it does not know (as OpenBLAS does with a misspelt OPENBLAS_CORETYPE).
        let exe = script(
            dir.path(),
            r#"case "$OPENBLAS_CORETYPE" in
  ""|SapphireRapids|SkylakeX|Haswell|Zen|Sandybridge|Nehalem|Penryn|Core2|Prescott|Cooperlake)
    echo "{\"loaded\":\"${OPENBLAS_CORETYPE:-SapphireRapids}\"}" ;;
  *) echo '{"loaded":"SapphireRapids"}' ;;
esac"#,
        );
        let survey = survey_with(&exe, false, Some("SkylakeXX".into())).expect("a survey");
        let verdict = |name: &str| survey.trial(name).map(|t| t.verdict.clone());
        assert_eq!(verdict("SapphireRapids"), Some(Verdict::Passed));
        assert!(
            survey
                .sweep_kernels(None)
                .iter()
                .any(|k| k == "SapphireRapids"),
            "the library's own kernel is swept under the name it reports"
        );
        assert_eq!(
            verdict("SkylakeXX"),
            Some(Verdict::NotInBuild {
                loaded: "SapphireRapids".into()
            })
        );
        let err = survey
            .decide(&crate::kernel::KernelPolicy::Auto)
            .expect_err("a typo is an error");
        assert!(err.contains("OPENBLAS_CORETYPE=SkylakeXX"), "{err}");
    }

    #[test]
    fn a_trial_of_the_loaded_kernel_passes_and_a_wrong_library_dump_is_caught() {
        let _serial = crate::blas::exclusive_blas();
        let dir = tempfile::tempdir().expect("tempdir");
        let dump = dir.path().join("library.f64");
        let report = crate::blas::on_blas_stack(|| run_trial(false, Some(&dump), None));
        assert_eq!(report.wrong, None, "{report:?}");
        let again = crate::blas::on_blas_stack(|| run_trial(false, None, Some(&dump)));
        assert_eq!(again.wrong, None, "the same kernel matches itself");
        let mut values = read_f64s(&dump).expect("dump");
        values[12345] += 1e-3;
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&dump, bytes).expect("write");
        let caught = crate::blas::on_blas_stack(|| run_trial(false, None, Some(&dump)));
        assert!(
            caught
                .wrong
                .as_deref()
                .is_some_and(|w| w.contains("library's own kernel")),
            "{caught:?}"
        );
    }
}
