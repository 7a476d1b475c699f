//! The settings block: every line a user may copy, typed, and tried on this machine against
//! `parcost-probe` before the report shows it; a line that fails is left out with its reason.
//!
//! A [`Setting`] prints its own line ([`Setting::line`]): shell lines end with `   # comment`,
//! code lines with `   // comment`. [`try_all`] runs each one as printed:
//! - an `export`/`unset` line: `bash -e -c "<the export lines above it that ran>\n<line>\n<probe>"`
//!   (the block is pasted as a whole, so a line is tried with the exports before it; `-e` stops
//!   at a line that errors), and the probe's readback is checked against the setting;
//! - an `mpirun` line: the same, with `./your-program` replaced by the probe's path and nothing
//!   else changed; as root the trial's environment (not the line) carries
//!   `OMPI_ALLOW_RUN_AS_ROOT=1` and `OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`;
//! - a code line: the probe with the flag that runs that same code (`--rayon-pool T`,
//!   `--faer-par B --tasks T`), under the exports above it.
//!
//! Every trial runs in its own process group with a time limit; past it the whole group is
//! killed (SIGTERM, so mpirun takes its ranks down, then SIGKILL). The process that tries becomes
//! a child subreaper, so the group's orphans are reaped here too: no zombie is left, even where
//! PID 1 reaps nothing.
//!
//! The OpenBLAS layer: Debian installs each build in its own folder
//! (`/usr/lib/<arch>-linux-gnu/openblas-{pthread,openmp,serial}`) and `libopenblas.so.0` is
//! whichever one `update-alternatives` points at. The report prints the `LD_LIBRARY_PATH` line
//! for every layer, pthreads included: it selects that build whatever the alternatives say, in
//! the user's shell only, without root, and it can be tried like any other line. It prepends to
//! the user's `LD_LIBRARY_PATH` instead of replacing it.

use std::fmt::Write as _;
use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use parcost::probe::{self, Seen};
use serde::{Deserialize, Serialize};

use crate::facts::count;

/// The program name in printed `mpirun` lines; the trial puts the probe's path in its place.
pub const PROGRAM: &str = "./your-program";

/// How long one trial may take before its process group is killed.
pub const TRIAL_LIMIT: Duration = Duration::from_secs(30);

/// What the report says in place of the settings when there was no probe to try them with.
pub const NO_PROBE: &str = "the settings to copy are not shown: they could not be tried on \
                            this machine (no parcost-probe; `cargo xtask report` builds it and \
                            says why it could not)";

/// An environment variable a setting may set: the ones the libraries read, no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EnvVar {
    #[serde(rename = "OPENBLAS_NUM_THREADS")]
    OpenblasNumThreads,
    #[serde(rename = "OPENBLAS_CORETYPE")]
    OpenblasCoretype,
    #[serde(rename = "MATMUL_NUM_THREADS")]
    MatmulNumThreads,
    #[serde(rename = "RAYON_NUM_THREADS")]
    RayonNumThreads,
    #[serde(rename = "OMP_NUM_THREADS")]
    OmpNumThreads,
}

impl EnvVar {
    pub const ALL: [Self; 5] = [
        Self::OpenblasNumThreads,
        Self::OpenblasCoretype,
        Self::MatmulNumThreads,
        Self::RayonNumThreads,
        Self::OmpNumThreads,
    ];

    /// The variable's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenblasNumThreads => "OPENBLAS_NUM_THREADS",
            Self::OpenblasCoretype => parcost::kernel::CORETYPE_VAR,
            Self::MatmulNumThreads => parcost::layer::MATMUL_THREADS_VAR,
            Self::RayonNumThreads => "RAYON_NUM_THREADS",
            Self::OmpNumThreads => "OMP_NUM_THREADS",
        }
    }
}

/// One line of the settings block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Setting {
    /// `export NAME=VALUE`.
    Env {
        var: EnvVar,
        value: String,
        for_what: String,
    },
    /// `unset NAME`: the library's default (e.g. OpenBLAS at P threads for large products).
    Unset { var: EnvVar, for_what: String },
    /// `export LD_LIBRARY_PATH=/usr/lib/<arch>-linux-gnu/openblas-<folder>${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}`
    /// for the layer `pthreads`, `openmp` or `serial` (see the module's notes).
    OpenBlasLayer { layer: String, for_what: String },
    /// `mpirun [--bind-to none] [--oversubscribe] -np R [-x OPENBLAS_NUM_THREADS=B] ./your-program`.
    Mpirun {
        ranks: u64,
        bind_none: bool,
        oversubscribe: bool,
        blas_threads: Option<u64>,
        for_what: String,
    },
    /// `let pool = rayon::ThreadPoolBuilder::new().num_threads(T).build()?;`
    RayonPool { threads: u64, for_what: String },
    /// `let par = faer::Par::rayon(B);` (`faer::Par::Seq` for 1), in each of T tasks of a rayon
    /// pool of max(T, B) threads.
    FaerPar {
        tasks: u64,
        par: u64,
        for_what: String,
    },
}

/// The folder of an OpenBLAS layer's build on Debian (`pthreads` lives in `openblas-pthread`).
pub fn layer_dir(layer: &str) -> PathBuf {
    let folder = match layer {
        "pthreads" => "pthread",
        other => other,
    };
    PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu/openblas-{folder}",
        std::env::consts::ARCH
    ))
}

/// `openblas_get_parallel()` of a layer's build.
fn parallel_code(layer: &str) -> Option<i32> {
    match layer {
        "serial" => Some(0),
        "pthreads" => Some(1),
        "openmp" => Some(2),
        _ => None,
    }
}

fn layer_name(code: i32) -> &'static str {
    match code {
        0 => "serial",
        1 => "pthreads",
        2 => "openmp",
        _ => "an unknown layer",
    }
}

/// `s` as one shell word: as is when it needs no quoting, else in single quotes.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./,:=+@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A comment on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Setting {
    /// The exact text the report prints.
    pub fn line(&self) -> String {
        let (code, comment) = match self {
            Self::Env {
                var,
                value,
                for_what,
            } => (
                format!("export {}={}", var.name(), shell_word(value)),
                for_what.clone(),
            ),
            Self::Unset { var, for_what } => (format!("unset {}", var.name()), for_what.clone()),
            Self::OpenBlasLayer { layer, for_what } => (
                format!(
                    "export LD_LIBRARY_PATH={}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}",
                    shell_word(&layer_dir(layer).display().to_string())
                ),
                for_what.clone(),
            ),
            Self::Mpirun {
                ranks,
                bind_none,
                oversubscribe,
                blas_threads,
                for_what,
            } => {
                let mut l = "mpirun".to_owned();
                if *bind_none {
                    l.push_str(" --bind-to none");
                }
                if *oversubscribe {
                    l.push_str(" --oversubscribe");
                }
                let _ = write!(l, " -np {ranks}");
                if let Some(b) = blas_threads {
                    let _ = write!(l, " -x OPENBLAS_NUM_THREADS={b}");
                }
                let _ = write!(l, " {PROGRAM}");
                (l, for_what.clone())
            }
            Self::RayonPool { threads, for_what } => (
                format!(
                    "let pool = rayon::ThreadPoolBuilder::new().num_threads({threads}).build()?;"
                ),
                for_what.clone(),
            ),
            Self::FaerPar {
                tasks,
                par,
                for_what,
            } => {
                let par_code = if *par <= 1 {
                    "faer::Par::Seq".to_owned()
                } else {
                    format!("faer::Par::rayon({par})")
                };
                let pool = count((*tasks).max(*par).max(1), "thread");
                // "In each of 1 task" reads as a slip: one task is one call at a time.
                let place = if *tasks <= 1 {
                    format!("one call at a time, in a rayon pool of {pool}")
                } else {
                    format!(
                        "in each of {} of a rayon pool of {pool}",
                        count(*tasks, "task")
                    )
                };
                let comment = if for_what.trim().is_empty() {
                    place
                } else {
                    format!("{place}: {for_what}")
                };
                (format!("let par = {par_code};"), comment)
            }
        };
        let comment = one_line(&comment);
        let mark = if self.is_code() { "//" } else { "#" };
        if comment.is_empty() {
            code
        } else {
            format!("{code}   {mark} {comment}")
        }
    }

    /// Whether the line is Rust code (else a shell line).
    pub fn is_code(&self) -> bool {
        matches!(self, Self::RayonPool { .. } | Self::FaerPar { .. })
    }

    /// Whether the line changes the environment of the lines after it (`export`, `unset`).
    fn is_export(&self) -> bool {
        matches!(
            self,
            Self::Env { .. } | Self::Unset { .. } | Self::OpenBlasLayer { .. }
        )
    }
}

/// What trying a line found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// It ran, and the probe saw what it sets.
    Ran { seen: String },
    /// It did not run, or did not do what it says: one line.
    Failed { why: String },
}

/// A setting, its line and what trying it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tried {
    pub setting: Setting,
    pub line: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Tried {
    /// Whether the report may show its line.
    pub fn ran(&self) -> bool {
        matches!(self.outcome, Outcome::Ran { .. })
    }
}

/// Every setting as not tried, for `why` (e.g. [`NO_PROBE`]).
pub fn not_tried(settings: &[Setting], why: &str) -> Vec<Tried> {
    settings
        .iter()
        .map(|s| Tried {
            setting: s.clone(),
            line: s.line(),
            outcome: Outcome::Failed {
                why: why.to_owned(),
            },
        })
        .collect()
}

/// Tries every setting on this machine with `probe` (the `parcost-probe` binary), in order,
/// each within [`TRIAL_LIMIT`].
pub fn try_all(settings: &[Setting], probe: &Path) -> Vec<Tried> {
    try_all_within(settings, probe, TRIAL_LIMIT)
}

/// [`try_all`] with another time limit per trial.
pub fn try_all_within(settings: &[Setting], probe: &Path, limit: Duration) -> Vec<Tried> {
    let mut exports: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for s in settings {
        let line = s.line();
        let outcome = try_one(s, &line, &exports, probe, limit);
        if s.is_export() && matches!(outcome, Outcome::Ran { .. }) {
            exports.push(line.clone());
        }
        out.push(Tried {
            setting: s.clone(),
            line,
            outcome,
        });
    }
    out
}

fn failed(why: impl Into<String>) -> Outcome {
    Outcome::Failed { why: why.into() }
}

fn try_one(s: &Setting, line: &str, exports: &[String], probe: &Path, limit: Duration) -> Outcome {
    let program = shell_word(&probe.display().to_string());
    let mut script: String = exports.iter().map(|e| format!("{e}\n")).collect();
    match s {
        Setting::Mpirun { .. } => {
            if !line.contains(PROGRAM) {
                return failed(format!("the line does not name {PROGRAM}"));
            }
            script.push_str(&line.replacen(PROGRAM, &program, 1));
        }
        Setting::RayonPool { threads, .. } => {
            let _ = write!(script, "{program} {} {threads}", probe::RAYON_POOL_FLAG);
        }
        Setting::FaerPar { tasks, par, .. } => {
            let _ = write!(
                script,
                "{program} {} {par} {} {tasks}",
                probe::FAER_PAR_FLAG,
                probe::TASKS_FLAG
            );
        }
        _ => {
            let _ = write!(script, "{line}\n{program}");
        }
    }
    let mut cmd = Command::new("bash");
    cmd.arg("-e").arg("-c").arg(&script);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // OpenMPI refuses to run as root without these: the trial's, not the line's.
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    let ran = match run_bounded(&mut cmd, limit) {
        Ok(r) => r,
        Err(why) => return failed(why),
    };
    if ran.timed_out {
        return failed(format!(
            "did not finish within {:.0} s (killed)",
            limit.as_secs_f64()
        ));
    }
    let seen: Vec<Seen> = ran
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect();
    if !ran.status.success() {
        let what = if matches!(s, Setting::Mpirun { .. }) {
            "mpirun"
        } else {
            "it"
        };
        return failed(match first_error(&ran.stderr) {
            Some(e) => format!("{what} failed ({}): {e}", ran.status),
            None => format!("{what} failed ({})", ran.status),
        });
    }
    if let Setting::Mpirun {
        ranks,
        blas_threads,
        ..
    } = s
    {
        return check_ranks(*ranks, *blas_threads, &seen);
    }
    let Some(one) = seen.last() else {
        return failed(match first_error(&ran.stderr) {
            Some(e) => format!("the probe printed nothing: {e}"),
            None => "the probe printed nothing".to_owned(),
        });
    };
    check(s, one, first_error(&ran.stderr))
}

/// Whether `seen` shows what `s` sets.
fn check(s: &Setting, seen: &Seen, stderr: Option<String>) -> Outcome {
    let said = stderr
        .map(|e| format!(" (it said: {e})"))
        .unwrap_or_default();
    let blas = |seen: &Seen| {
        format!(
            "OpenBLAS {} ran a product on {}",
            layer_name(seen.openblas_parallel),
            count(seen.threads_in_dgemm as u64, "thread")
        )
    };
    match s {
        Setting::Env { var, value, .. } => {
            let set = seen.env.get(var.name());
            if set.map(String::as_str) != Some(value.as_str()) {
                return failed(format!(
                    "the program saw {}={}",
                    var.name(),
                    set.map_or("(unset)", String::as_str)
                ));
            }
            let want = value.parse::<usize>().ok();
            match var {
                EnvVar::OpenblasNumThreads => {
                    let b = want.unwrap_or(0);
                    if seen.threads_in_dgemm == b && seen.openblas_threads == b {
                        Outcome::Ran { seen: blas(seen) }
                    } else {
                        let mut why = format!(
                            "{} (openblas_get_num_threads {}), not {value}",
                            blas(seen),
                            seen.openblas_threads
                        );
                        if seen.openblas_parallel == 2 {
                            why.push_str(": the OpenMP build follows OMP_NUM_THREADS");
                        } else if b > seen.cpus.len() {
                            let _ = write!(
                                why,
                                ": it stops at the {} this process may use",
                                count(seen.cpus.len() as u64, "CPU")
                            );
                        }
                        failed(why)
                    }
                }
                EnvVar::OpenblasCoretype => {
                    if parcost::kernel::same(&seen.openblas_core, value) {
                        Outcome::Ran {
                            seen: format!("OpenBLAS runs the {} kernel", seen.openblas_core),
                        }
                    } else {
                        failed(format!(
                            "OpenBLAS runs {}, not {value}{said}",
                            seen.openblas_core
                        ))
                    }
                }
                EnvVar::MatmulNumThreads => {
                    let text = format!(
                        "matrixmultiply runs {}",
                        count(seen.matmul_threads as u64, "thread")
                    );
                    if want == Some(seen.matmul_threads) {
                        Outcome::Ran { seen: text }
                    } else {
                        failed(format!(
                            "{text}, not {value} (it reads 1 to {})",
                            parcost::layer::MATMUL_MAX_THREADS
                        ))
                    }
                }
                EnvVar::RayonNumThreads => {
                    let text = format!(
                        "rayon's global pool has {}",
                        count(seen.rayon_threads as u64, "thread")
                    );
                    if want == Some(seen.rayon_threads) {
                        Outcome::Ran { seen: text }
                    } else {
                        failed(format!("{text}, not {value}"))
                    }
                }
                EnvVar::OmpNumThreads => {
                    if seen.openblas_parallel == 2 && want != Some(seen.threads_in_dgemm) {
                        failed(format!("{}, not {value}", blas(seen)))
                    } else {
                        Outcome::Ran {
                            seen: format!("OMP_NUM_THREADS={value}; {}", blas(seen)),
                        }
                    }
                }
            }
        }
        Setting::Unset { var, .. } => match seen.env.get(var.name()) {
            Some(v) => failed(format!("the program still saw {}={v}", var.name())),
            None => Outcome::Ran {
                seen: match var {
                    EnvVar::OpenblasNumThreads | EnvVar::OmpNumThreads => blas(seen),
                    EnvVar::OpenblasCoretype => {
                        format!("OpenBLAS chose the {} kernel", seen.openblas_core)
                    }
                    EnvVar::MatmulNumThreads => format!(
                        "matrixmultiply runs {}",
                        count(seen.matmul_threads as u64, "thread")
                    ),
                    EnvVar::RayonNumThreads => format!(
                        "rayon's global pool has {}",
                        count(seen.rayon_threads as u64, "thread")
                    ),
                },
            },
        },
        Setting::OpenBlasLayer { layer, .. } => {
            if parallel_code(layer) == Some(seen.openblas_parallel) {
                Outcome::Ran {
                    seen: format!(
                        "{} (openblas_get_parallel {})",
                        blas(seen),
                        seen.openblas_parallel
                    ),
                }
            } else {
                let dir = layer_dir(layer);
                let missing = if dir.is_dir() {
                    String::new()
                } else {
                    format!(" ({} does not exist)", dir.display())
                };
                failed(format!(
                    "the program loaded OpenBLAS {} (openblas_get_parallel {}), not {layer}{missing}",
                    layer_name(seen.openblas_parallel),
                    seen.openblas_parallel
                ))
            }
        }
        Setting::RayonPool { threads, .. } => match &seen.rayon_pool {
            Some(p) if p.current_num_threads as u64 == *threads => Outcome::Ran {
                seen: format!(
                    "the pool runs {} (current_num_threads inside it)",
                    count(p.current_num_threads as u64, "thread")
                ),
            },
            Some(p) => failed(format!(
                "the pool runs {}, not {threads}",
                count(p.current_num_threads as u64, "thread")
            )),
            None => failed("the probe built no pool"),
        },
        Setting::FaerPar { tasks, par, .. } => match &seen.faer {
            Some(f) if f.ran as u64 == *tasks && f.matches => Outcome::Ran {
                seen: format!(
                    "{} in a pool of {} each ran a {n} x {n} faer product at {}, equal to the serial one",
                    count(f.ran as u64, "task"),
                    count(f.pool_threads as u64, "thread"),
                    if *par <= 1 {
                        "Par::Seq".to_owned()
                    } else {
                        format!("Par::rayon({par})")
                    },
                    n = probe::FAER_N
                ),
            },
            Some(f) if !f.matches => failed("a faer product differed from the serial one"),
            Some(f) => failed(format!("{} of {tasks} tasks ran", f.ran)),
            None => failed("the probe ran no faer product"),
        },
        Setting::Mpirun { .. } => failed("an mpirun line is checked by its ranks"),
    }
}

/// Whether the ranks of an `mpirun -np R` line all started, once each, with the BLAS threads
/// asked.
fn check_ranks(ranks: u64, blas_threads: Option<u64>, seen: &[Seen]) -> Outcome {
    let mut got: Vec<u64> = seen.iter().filter_map(|s| s.mpi_rank).collect();
    got.sort_unstable();
    let want: Vec<u64> = (0..ranks).collect();
    if got != want || seen.len() as u64 != ranks {
        return failed(format!(
            "{} of {ranks} ranks answered (ranks {got:?})",
            seen.len()
        ));
    }
    if let Some(s) = seen.iter().find(|s| s.mpi_size != Some(ranks)) {
        return failed(format!(
            "rank {} saw a world of {:?}, not {ranks}",
            s.mpi_rank.unwrap_or(0),
            s.mpi_size
        ));
    }
    for s in seen {
        let rank = s.mpi_rank.unwrap_or(0);
        if let Some(b) = blas_threads
            && (s.openblas_threads as u64 != b || s.threads_in_dgemm as u64 != b)
        {
            return failed(format!(
                "rank {rank}: OpenBLAS {} ran a product on {} (openblas_get_num_threads {}), \
                 not {b}",
                layer_name(s.openblas_parallel),
                count(s.threads_in_dgemm as u64, "thread"),
                s.openblas_threads
            ));
        }
        if s.threads_in_dgemm > s.cpus.len() {
            return failed(format!(
                "rank {rank} runs {} on the {} mpirun bound it to (add --bind-to none)",
                count(s.threads_in_dgemm as u64, "BLAS thread"),
                count(s.cpus.len() as u64, "CPU")
            ));
        }
    }
    let threads: std::collections::BTreeSet<usize> =
        seen.iter().map(|s| s.threads_in_dgemm).collect();
    let cpus: std::collections::BTreeSet<usize> = seen.iter().map(|s| s.cpus.len()).collect();
    let each = |set: &std::collections::BTreeSet<usize>, word: &str| match set.len() {
        1 => count(*set.iter().next().unwrap_or(&0) as u64, word),
        _ => format!(
            "{} {word}s",
            set.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" to ")
        ),
    };
    Outcome::Ran {
        seen: format!(
            "{} ({}), each OpenBLAS on {} with {}",
            count(ranks, "rank"),
            got.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            each(&threads, "thread"),
            each(&cpus, "CPU")
        ),
    }
}

/// The first message of a program's error output, on one line: its first paragraph (OpenMPI
/// frames its messages in lines of dashes and breaks sentences across lines).
fn first_error(stderr: &str) -> Option<String> {
    let mut para: Vec<&str> = Vec::new();
    for l in stderr.lines().map(str::trim) {
        let rule = !l.is_empty() && l.chars().all(|c| c == '-' || c == '=');
        if l.is_empty() || rule {
            if !para.is_empty() {
                break;
            }
            continue;
        }
        para.push(l);
    }
    let text = para.join(" ");
    if text.is_empty() {
        return None;
    }
    const MAX: usize = 240;
    Some(match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    })
}

/// A finished (or killed) trial.
#[derive(Debug)]
struct Ran {
    status: ExitStatus,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` in a process group of its own, its output into unnamed files (nothing can block
/// on a full pipe, and a grandchild that keeps them open cannot hold the trial up); past
/// `limit` the group gets SIGTERM, then SIGKILL, and the child is reaped either way.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<Ran, String> {
    let file = || tempfile::tempfile().map_err(|e| format!("no temporary file for a trial: {e}"));
    let (mut out, mut err) = (file()?, file()?);
    let (out_w, err_w) = (
        out.try_clone().map_err(|e| e.to_string())?,
        err.try_clone().map_err(|e| e.to_string())?,
    );
    become_subreaper();
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out_w)
        .stderr(err_w)
        .spawn()
        .map_err(|e| format!("cannot start bash: {e}"))?;
    let group = child.id() as libc::pid_t;
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                timed_out = true;
                // SAFETY: signalling the group this trial created.
                unsafe { libc::kill(-group, libc::SIGTERM) };
                let grace = Instant::now() + Duration::from_secs(2);
                while Instant::now() < grace && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                // SAFETY: as above; whatever of the group is left.
                unsafe { libc::kill(-group, libc::SIGKILL) };
                break child
                    .wait()
                    .map_err(|e| format!("cannot reap a trial: {e}"))?;
            }
            Err(e) => return Err(format!("cannot wait for a trial: {e}")),
        }
    };
    // Whatever of the group is left (a line that left something running in the background,
    // a rank mpirun did not take down) must not outlive the trial.
    // SAFETY: as above.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    reap_group(group);
    let read = |f: &mut std::fs::File| {
        let mut s = String::new();
        let _ = f.rewind();
        let _ = f.read_to_string(&mut s);
        s
    };
    Ok(Ran {
        status,
        timed_out,
        stdout: read(&mut out),
        stderr: read(&mut err),
    })
}

/// Makes this process the reaper of its orphaned descendants (once), so that the trials' killed
/// grandchildren are reaped here ([`reap_group`]) even where PID 1 reaps nothing (containers).
fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with integer arguments; it only sets a flag of this process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    });
}

/// Reaps what is left of a killed process group among this process's children, waiting at most
/// a second for the last of them to die.
fn reap_group(group: libc::pid_t) {
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        let mut status = 0;
        // SAFETY: waits only for children in the trial's group; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(-group, &raw mut status, libc::WNOHANG) };
        if r > 0 {
            continue;
        }
        if r < 0 || Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The workspace root (this crate's manifest sits two levels below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Builds `parcost-probe` with cargo (`--profile PROFILE -p parcost --bin parcost-probe`, the
/// `suites` feature that links OpenBLAS) and returns its path; the error is one line.
pub fn build_probe(profile: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let shown = format!(
        "cargo build --profile {profile} -p parcost --features suites --bin {}",
        probe::BIN
    );
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "--profile",
            profile,
            "--package",
            "parcost",
        ])
        .args(["--features", "suites", "--bin", probe::BIN])
        .args(["--message-format", "json-render-diagnostics"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let first = stderr
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("no error message")
            .trim();
        let hint = if stderr.contains("-lopenblas") || stderr.contains("openblas") {
            " (OpenBLAS not found? `cargo xtask setup` installs it)"
        } else {
            ""
        };
        return Err(format!("{shown} failed: {first}{hint}"));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == probe::BIN)
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("{shown} named no executable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: EnvVar, value: &str, for_what: &str) -> Setting {
        Setting::Env {
            var,
            value: value.into(),
            for_what: for_what.into(),
        }
    }

    fn mpirun(ranks: u64, oversubscribe: bool, blas: Option<u64>) -> Setting {
        Setting::Mpirun {
            ranks,
            bind_none: false,
            oversubscribe,
            blas_threads: blas,
            for_what: "MPI ranks x BLAS threads".into(),
        }
    }

    #[test]
    fn lines_read_as_printed() {
        assert_eq!(
            env(
                EnvVar::OpenblasNumThreads,
                "1",
                "batches of products below n=512"
            )
            .line(),
            "export OPENBLAS_NUM_THREADS=1   # batches of products below n=512"
        );
        assert_eq!(
            env(EnvVar::OpenblasCoretype, "SkylakeX", "").line(),
            "export OPENBLAS_CORETYPE=SkylakeX"
        );
        assert_eq!(
            env(EnvVar::RayonNumThreads, "a b", "x\ny").line(),
            "export RAYON_NUM_THREADS='a b'   # x y"
        );
        assert_eq!(
            Setting::Mpirun {
                ranks: 4,
                bind_none: true,
                oversubscribe: true,
                blas_threads: Some(1),
                for_what: "c".into()
            }
            .line(),
            "mpirun --bind-to none --oversubscribe -np 4 -x OPENBLAS_NUM_THREADS=1 \
             ./your-program   # c"
        );
        assert_eq!(
            mpirun(2, false, None).line(),
            "mpirun -np 2 ./your-program   # MPI ranks x BLAS threads"
        );
        assert_eq!(
            Setting::RayonPool {
                threads: 2,
                for_what: "one product a task".into()
            }
            .line(),
            "let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;   \
             // one product a task"
        );
        assert_eq!(
            Setting::FaerPar {
                tasks: 1,
                par: 2,
                for_what: String::new()
            }
            .line(),
            "let par = faer::Par::rayon(2);   // one call at a time, in a rayon pool of 2 threads"
        );
        assert!(
            Setting::FaerPar {
                tasks: 2,
                par: 1,
                for_what: "w".into()
            }
            .line()
            .starts_with("let par = faer::Par::Seq;   // in each of 2 tasks")
        );
        let layer = Setting::OpenBlasLayer {
            layer: "pthreads".into(),
            for_what: String::new(),
        }
        .line();
        assert!(
            layer.ends_with("/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"),
            "{layer}"
        );
    }

    /// The code lines are the probe's own code (spaces aside): a change to either shows here.
    #[test]
    fn code_lines_are_the_probes_code() {
        let squeeze = |s: &str| s.split_whitespace().collect::<String>();
        let code = |s: Setting| squeeze(s.line().split("   //").next().unwrap_or_default());
        let probe = squeeze(include_str!("../../parcost/src/bin/parcost-probe.rs"));
        let pool = code(Setting::RayonPool {
            threads: 7,
            for_what: "w".into(),
        });
        assert!(probe.contains(&pool.replace("(7)", "(threads)")), "{pool}");
        let native = squeeze(include_str!("../../parcost/src/native.rs"));
        let par = |b| {
            code(Setting::FaerPar {
                tasks: 1,
                par: b,
                for_what: String::new(),
            })
        };
        let (seq, rayon) = (par(1), par(7).replace("(7)", "(b)"));
        let strip = |c: &str| {
            c.trim_start_matches("letpar=faer::")
                .trim_end_matches(';')
                .to_owned()
        };
        let faer_par = format!("ifb<=1{{{}}}else{{{}}}", strip(&seq), strip(&rayon));
        assert!(native.contains(&faer_par), "{faer_par}");
        assert!(probe.contains("parcost::native::faer_par(par)"));
    }

    #[test]
    fn settings_serialize_with_their_line_and_outcome() {
        let t = Tried {
            setting: env(EnvVar::MatmulNumThreads, "2", "w"),
            line: "export MATMUL_NUM_THREADS=2   # w".into(),
            outcome: Outcome::Failed { why: "no".into() },
        };
        let j = serde_json::to_value(&t).expect("json");
        assert_eq!(j["setting"]["kind"], "env");
        assert_eq!(j["setting"]["var"], "MATMUL_NUM_THREADS");
        assert_eq!(j["outcome"], "failed");
        assert_eq!(j["why"], "no");
        let back: Tried = serde_json::from_value(j).expect("back");
        assert_eq!(back, t);
    }

    fn seen_with(parallel: i32, api: usize, in_dgemm: usize) -> Seen {
        Seen {
            pid: 1,
            openblas_threads: api,
            threads_in_dgemm: in_dgemm,
            openblas_core: "Haswell".into(),
            openblas_parallel: parallel,
            openblas_config: String::new(),
            rayon_threads: 2,
            matmul_threads: 2,
            cpus: vec![0, 1],
            env: [("OPENBLAS_NUM_THREADS".to_owned(), "1".to_owned())].into(),
            mpi_rank: None,
            mpi_size: None,
            rayon_pool: None,
            faer: None,
        }
    }

    /// Cases this machine does not produce: the count OpenBLAS answers and the threads a
    /// product ran on disagree; the layer loaded is not the one asked for.
    #[test]
    fn checks_want_what_the_product_ran_on_and_the_layer_asked() {
        let threads = env(EnvVar::OpenblasNumThreads, "1", "");
        let ok = check(&threads, &seen_with(1, 1, 1), None);
        assert!(matches!(ok, Outcome::Ran { .. }), "{ok:?}");
        for (api, ran) in [(1, 2), (2, 1)] {
            let o = check(&threads, &seen_with(1, api, ran), None);
            assert!(matches!(o, Outcome::Failed { .. }), "{api} {ran}: {o:?}");
        }
        let openmp = layer("openmp");
        assert!(matches!(
            check(&openmp, &seen_with(2, 2, 2), None),
            Outcome::Ran { .. }
        ));
        let o = check(&openmp, &seen_with(1, 2, 2), None);
        assert!(
            matches!(&o, Outcome::Failed { why } if why.contains("OpenBLAS pthreads")),
            "{o:?}"
        );
    }

    #[test]
    fn openmpi_messages_become_one_line() {
        let text = "--------------------------------------------------------------------------\n\
                    There are not enough slots available in the system to satisfy the 4\n\
                    slots that were requested by the application:\n\n  ./p\n\n\
                    Either request fewer slots for your application, or make more slots\n";
        assert_eq!(
            first_error(text).as_deref(),
            Some(
                "There are not enough slots available in the system to satisfy the 4 slots \
                 that were requested by the application:"
            )
        );
        assert_eq!(first_error("\n---\n"), None);
    }

    /// The probe, built once for the tests (or `PARCOST_PROBE`).
    fn probe_path() -> PathBuf {
        static PROBE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        PROBE
            .get_or_init(|| match std::env::var_os("PARCOST_PROBE") {
                Some(p) => PathBuf::from(p),
                None => build_probe("dev").unwrap_or_else(|e| panic!("{e}")),
            })
            .clone()
    }

    fn layer(name: &str) -> Setting {
        Setting::OpenBlasLayer {
            layer: name.into(),
            for_what: String::new(),
        }
    }

    fn show(tried: &[Tried]) {
        for t in tried {
            eprintln!("{}\n  -> {:?}", t.line, t.outcome);
        }
    }

    /// `s` tried after the pthreads layer's line, whatever layer the tests run under.
    fn one(s: Setting) -> Tried {
        let mut t = try_all(&[layer("pthreads"), s], &probe_path());
        show(&t);
        assert!(t[0].ran(), "{:?}", t[0]);
        t.remove(1)
    }

    fn seen(t: &Tried) -> &str {
        match &t.outcome {
            Outcome::Ran { seen } => seen,
            Outcome::Failed { why } => panic!("{} failed: {why}", t.line),
        }
    }

    fn why(t: &Tried) -> &str {
        match &t.outcome {
            Outcome::Failed { why } => why,
            Outcome::Ran { seen } => panic!("{} ran: {seen}", t.line),
        }
    }

    #[test]
    fn one_blas_thread_is_seen() {
        let t = one(env(EnvVar::OpenblasNumThreads, "1", "batches"));
        assert_eq!(seen(&t), "OpenBLAS pthreads ran a product on 1 thread");
        // More than the CPUs: OpenBLAS stops at the CPUs, so the line would not do what it says.
        let more = (2 * probe::affinity().len()).to_string();
        let t = one(env(EnvVar::OpenblasNumThreads, &more, ""));
        assert!(why(&t).contains("it stops at the"), "{t:?}");
    }

    #[test]
    fn the_openmp_layer_follows_omp_num_threads_not_openblas_num_threads() {
        if !layer_dir("openmp").is_dir() {
            eprintln!("skipped: no {}", layer_dir("openmp").display());
            return;
        }
        let t = try_all(
            &[
                layer("openmp"),
                env(EnvVar::OpenblasNumThreads, "1", ""),
                env(EnvVar::OmpNumThreads, "1", ""),
            ],
            &probe_path(),
        );
        show(&t);
        assert!(seen(&t[0]).contains("openblas_get_parallel 2"), "{t:?}");
        assert!(why(&t[1]).contains("follows OMP_NUM_THREADS"), "{t:?}");
        assert_eq!(
            seen(&t[2]),
            "OMP_NUM_THREADS=1; OpenBLAS openmp ran a product on 1 thread"
        );
        let t = try_all(&[layer("nosuchlayer")], &probe_path());
        assert!(why(&t[0]).contains("does not exist"), "{t:?}");
    }

    #[test]
    fn a_known_kernel_runs_and_an_unknown_one_fails() {
        let t = one(env(EnvVar::OpenblasCoretype, "Haswell", ""));
        assert_eq!(seen(&t), "OpenBLAS runs the Haswell kernel");
        let t = one(env(EnvVar::OpenblasCoretype, "Nosuchcore", ""));
        assert!(why(&t).contains("not Nosuchcore"), "{t:?}");
    }

    #[test]
    fn the_rayon_pool_and_faer_lines_run() {
        let t = one(Setting::RayonPool {
            threads: 3,
            for_what: String::new(),
        });
        assert!(seen(&t).starts_with("the pool runs 3 threads"), "{t:?}");
        let t = one(Setting::FaerPar {
            tasks: 2,
            par: 2,
            for_what: String::new(),
        });
        assert!(
            seen(&t).starts_with("2 tasks in a pool of 2 threads"),
            "{t:?}"
        );
        let t = one(Setting::FaerPar {
            tasks: 2,
            par: 1,
            for_what: String::new(),
        });
        assert!(seen(&t).contains("Par::Seq"), "{t:?}");
    }

    #[test]
    fn a_line_that_hangs_is_killed_and_reaped() {
        let dir = tempfile::tempdir().expect("tmp");
        let pidfile = dir.path().join("pid");
        let fake = dir.path().join("probe");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nsleep 60 &\necho $! > {}\nwait\n",
                pidfile.display()
            ),
        )
        .expect("write");
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let started = Instant::now();
        let t = try_all_within(
            &[env(EnvVar::OpenblasNumThreads, "1", "")],
            &fake,
            Duration::from_millis(500),
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(why(&t[0]).contains("did not finish within"), "{t:?}");
        let pid = std::fs::read_to_string(&pidfile).expect("pid");
        let pid: libc::pid_t = pid.trim().parse().expect("a pid");
        // Gone, not even a zombie: signal 0 only asks whether the process exists.
        // SAFETY: no signal is sent.
        let exists = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!exists, "the probe's child {pid} outlived its trial");
    }

    fn have_mpirun() -> bool {
        let found = Command::new("mpirun")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!("skipped: no mpirun on this machine");
        }
        found
    }

    #[test]
    fn two_ranks_run_with_one_blas_thread_each() {
        if !have_mpirun() {
            return;
        }
        let t = one(mpirun(2, false, Some(1)));
        assert!(
            seen(&t).starts_with("2 ranks (0, 1), each OpenBLAS on 1 thread"),
            "{t:?}"
        );
    }

    #[test]
    fn more_ranks_than_slots_need_oversubscribe() {
        if !have_mpirun() {
            return;
        }
        let cpus = probe::affinity().len() as u64;
        let ranks = 2 * cpus;
        let t = one(mpirun(ranks, false, Some(1)));
        assert!(why(&t).contains("not enough slots"), "{t:?}");
        let t = one(mpirun(ranks, true, Some(1)));
        assert!(seen(&t).starts_with(&format!("{ranks} ranks")), "{t:?}");
    }
}
