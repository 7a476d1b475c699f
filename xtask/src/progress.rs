//! Where a long `cargo xtask bench` is: one line per benchmark (the run, k of N, elapsed, time
//! left by the previous run's times), Criterion's own output in a log file, and the record that
//! lets `--resume` skip what an interrupted run finished.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The files of a bench run, beside Criterion's folder (`target/parcost-bench/`).
#[derive(Debug, Clone)]
pub struct Files {
    pub dir: PathBuf,
    /// `quick`, `full` or `test`: a quick run's times would make a full run's estimate 4x short.
    pub mode: &'static str,
}

impl Files {
    pub fn new(criterion_dir: &Path, mode: &'static str) -> Self {
        let base = criterion_dir.parent().unwrap_or(criterion_dir);
        Self {
            dir: base.join("parcost-bench"),
            mode,
        }
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("bench.log")
    }

    fn times(&self) -> PathBuf {
        self.dir.join(format!("times-{}.json", self.mode))
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
}

/// How long each run (step) took last time, and how many benchmarks it had.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct StepTime {
    pub seconds: f64,
    pub benchmarks: usize,
}

/// What an interrupted run finished: the options it ran with and the steps done.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub options: String,
    pub done: Vec<String>,
    /// The run's key (ms since the epoch at its start), which every round's sidecar records:
    /// a resumed run keeps it, so its rounds stay one run.
    #[serde(default)]
    pub run: u64,
}

/// The key of the interrupted run `--resume` would continue: one recorded with `options`.
pub fn interrupted_run(files: &Files, options: &str) -> Option<u64> {
    let state: State = read_json(&files.state());
    (state.options == options && state.run != 0).then_some(state.run)
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> T {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(serde_json::to_string_pretty(value)?.as_bytes())?;
    tmp.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// The progress of a whole `cargo xtask bench`.
#[derive(Debug)]
pub struct Progress {
    files: Files,
    previous: BTreeMap<String, StepTime>,
    times: BTreeMap<String, StepTime>,
    state: State,
    steps: Vec<String>,
    started: Instant,
    verbose: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// Starts a run of `steps` (their labels) with `options` (what `--resume` must match).
    /// With `resume`, the steps the last run finished under the same options are skipped.
    pub fn start(
        files: Files,
        steps: Vec<String>,
        options: String,
        resume: bool,
        verbose: bool,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&files.dir)
            .with_context(|| format!("cannot create {}", files.dir.display()))?;
        let previous: BTreeMap<String, StepTime> = read_json(&files.times());
        let old: State = read_json(&files.state());
        let mut state = if resume && old.options == options {
            old
        } else {
            if resume {
                eprintln!(
                    "--resume: no interrupted run with these options ({}); running everything",
                    if old.options.is_empty() {
                        "none recorded"
                    } else {
                        "the last one had others"
                    }
                );
            }
            State {
                options,
                done: Vec::new(),
                run: parcost::meta::now_ms(),
            }
        };
        if state.run == 0 {
            state.run = parcost::meta::now_ms();
        }
        write_json(&files.state(), &state)?;
        // A fresh log for a fresh run; a resumed one appends.
        if state.done.is_empty() {
            std::fs::write(files.log(), b"")
                .with_context(|| format!("cannot write {}", files.log().display()))?;
        }
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Ok(Self {
            files,
            times: previous.clone(),
            previous,
            state,
            steps,
            started: Instant::now(),
            verbose,
            bar,
        })
    }

    /// How long `step` took and what it measured, this run (or, before it runs, last time).
    pub fn took(&self, step: &str) -> Option<StepTime> {
        self.times.get(step).copied()
    }

    /// What the steps an interrupted run finished took (none unless resumed): the suites'
    /// time before this process.
    pub fn resumed(&self) -> Duration {
        let seconds: f64 = self
            .state
            .done
            .iter()
            .filter_map(|step| self.previous.get(step))
            .map(|t| t.seconds)
            .sum();
        Duration::try_from_secs_f64(seconds).unwrap_or_default()
    }

    /// The run's key: when it started (kept by `--resume`).
    pub fn run_key(&self) -> u64 {
        self.state.run
    }

    /// Whether `step` finished in the run being resumed.
    pub fn is_done(&self, step: &str) -> bool {
        self.state.done.iter().any(|d| d == step)
    }

    /// Seconds the steps not yet done took last time, when all of them were timed.
    fn left_estimate(&self, current: &str, current_elapsed: f64) -> Option<f64> {
        let mut left = 0.0;
        for s in self.steps.iter().filter(|s| !self.is_done(s)) {
            let prev = self.previous.get(s)?.seconds;
            left += if s == current {
                (prev - current_elapsed).max(0.0)
            } else {
                prev
            };
        }
        Some(left)
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(line.to_owned()),
            None => eprintln!("{line}"),
        }
    }

    fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Runs one step: `cmd`'s output goes to the log (and the terminal with `--verbose`), one
    /// progress line per benchmark it starts. A failure ends with the log's tail and its path.
    pub fn run(&mut self, step: &str, cmd: &mut Command) -> anyhow::Result<()> {
        let index = self.steps.iter().position(|s| s == step).unwrap_or(0) + 1;
        if self.is_done(step) {
            self.note(&format!(
                "[{index}/{}] {step}: skipped, finished in the interrupted run",
                self.steps.len()
            ));
            return Ok(());
        }
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.files.log())
            .with_context(|| format!("cannot open {}", self.files.log().display()))?;
        let _ = writeln!(log, "\n== {step}\n$ {cmd:?}");
        let shown = format!("{cmd:?}");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {shown}"))?;
        let (tx, rx) = mpsc::channel::<String>();
        let mut readers = Vec::new();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        let started = Instant::now();
        let expected = self.previous.get(step).map(|t| t.benchmarks);
        let mut seen: Vec<String> = Vec::new();
        for line in rx {
            let _ = writeln!(log, "{line}");
            if self.verbose {
                self.note(&line);
            }
            let Some(id) = benchmark_started(&line) else {
                continue;
            };
            if seen.iter().any(|s| s == id) {
                continue;
            }
            seen.push(id.to_owned());
            let elapsed = started.elapsed().as_secs_f64();
            let of = expected.map_or_else(String::new, |n| format!(" of {n}"));
            let left = self
                .left_estimate(step, elapsed)
                .map_or_else(String::new, |s| format!(", ~{} left", clock(s)));
            self.say(&format!(
                "[{index}/{}] {step}: benchmark {}{of}, {} elapsed{left}: {id}",
                self.steps.len(),
                seen.len(),
                clock(self.started.elapsed().as_secs_f64()),
            ));
        }
        for r in readers {
            let _ = r.join();
        }
        let status = child
            .wait()
            .with_context(|| format!("waiting for {shown}"))?;
        drop(log);
        if !status.success() {
            if let Some(bar) = &self.bar {
                bar.finish_and_clear();
            }
            eprintln!("{}", tail(&self.files.log(), 20));
            bail!(
                "{step} failed ({status}); Criterion's output is in {}",
                self.files.log().display()
            );
        }
        let took = started.elapsed().as_secs_f64();
        self.note(&format!(
            "[{index}/{}] {step}: {} benchmarks in {}",
            self.steps.len(),
            seen.len(),
            clock(took)
        ));
        self.times.insert(
            step.to_owned(),
            StepTime {
                seconds: took,
                benchmarks: seen.len(),
            },
        );
        self.state.done.push(step.to_owned());
        write_json(&self.files.state(), &self.state)?;
        write_json(&self.files.times(), &self.times)?;
        Ok(())
    }

    /// Ends the run: the record of what finished is cleared (nothing is left to resume).
    pub fn finish(self) -> anyhow::Result<Vec<(String, StepTime)>> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        write_json(&self.files.state(), &State::default())?;
        Ok(self
            .steps
            .iter()
            .filter_map(|s| Some((s.clone(), *self.times.get(s)?)))
            .collect())
    }
}

/// The benchmark a line of Criterion's or parcost's output starts or records: Criterion's
/// `Benchmarking <id>` (and its `: Warming up` ... follow-ups), or the harness's marker for a
/// variant it timed itself ([`parcost::id::event`]), of which Criterion prints nothing.
pub fn benchmark_started(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix("Benchmarking ") {
        let id = rest.split(": ").next().unwrap_or(rest).trim();
        return (!id.is_empty()).then_some(id);
    }
    parcost::id::event::parse_timed_by_harness(line)
}

/// `1:05` or `12:30` or `1:02:03`.
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The last `n` lines of a file, for a failure's message.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_lines_are_recognised() {
        assert_eq!(
            benchmark_started(
                "Benchmarking task-level/matmul/layer=openmp,n=32,pairs=8/variant=serial,tasks=1,blas_threads=1: Warming up for 300.00 ms"
            ),
            Some(
                "task-level/matmul/layer=openmp,n=32,pairs=8/variant=serial,tasks=1,blas_threads=1"
            )
        );
        assert_eq!(benchmark_started("Benchmarking a/b/n=1"), Some("a/b/n=1"));
        let id = "oversubscription/svd/layer=openmp,n=256,matrices=16/tasks=8,blas_threads=4";
        assert_eq!(
            benchmark_started(&parcost::id::event::timed_by_harness(id)),
            Some(id)
        );
        // The sentence for people is not read.
        assert_eq!(
            benchmark_started(&format!(
                "parcost oversubscription: {id}: one run took 24.81 s, over the 1.0 s sampling budget"
            )),
            None
        );
        assert_eq!(
            benchmark_started("parcost oversubscription: OpenBLAS layer openmp"),
            None
        );
        assert_eq!(benchmark_started("time: [1 ms 2 ms 3 ms]"), None);
    }

    #[test]
    fn clocks_read_like_clocks() {
        assert_eq!(clock(65.4), "1:05");
        assert_eq!(clock(3723.0), "1:02:03");
    }

    #[test]
    fn estimates_come_from_a_run_of_the_same_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let quick = Files::new(&dir.path().join("criterion"), "quick");
        let full = Files::new(&dir.path().join("criterion"), "full");
        let steps = vec!["a".to_owned()];
        let mut p =
            Progress::start(quick.clone(), steps.clone(), "q".into(), false, false).expect("start");
        p.run("a", &mut Command::new("true")).expect("a runs");
        p.finish().expect("finish");
        let p = Progress::start(quick, steps.clone(), "q".into(), false, false).expect("start");
        assert!(
            p.left_estimate("a", 0.0).is_some(),
            "a quick run's times serve the next quick run"
        );
        let p = Progress::start(full, steps, "f".into(), false, false).expect("start");
        assert!(
            p.left_estimate("a", 0.0).is_none(),
            "a full run has no quick run's times"
        );
    }

    #[test]
    fn resume_skips_only_what_the_same_options_finished() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = Files {
            dir: dir.path().join("parcost-bench"),
            mode: "quick",
        };
        let steps = vec!["a".to_owned(), "b".to_owned()];
        let mut p =
            Progress::start(files.clone(), steps.clone(), "x".into(), false, false).expect("start");
        p.run("a", Command::new("true").arg("ignored"))
            .expect("a runs");
        // Interrupted here: no finish().
        drop(p);
        let p =
            Progress::start(files.clone(), steps.clone(), "x".into(), true, false).expect("resume");
        assert!(p.is_done("a") && !p.is_done("b"));
        let a = p.took("a").expect("a's time").seconds;
        assert!(
            a > 0.0 && (p.resumed().as_secs_f64() - a).abs() < 1e-6,
            "{:?}",
            p.resumed()
        );
        drop(p);
        let p = Progress::start(files.clone(), steps.clone(), "y".into(), true, false)
            .expect("other options");
        assert!(!p.is_done("a"), "other options run everything");
        assert_eq!(p.resumed(), Duration::ZERO, "nothing of theirs counts");
        let mut p = Progress::start(files, steps, "y".into(), false, false).expect("start");
        let err = p
            .run("b", Command::new("sh").args(["-c", "echo boom; exit 3"]))
            .expect_err("fails");
        assert!(format!("{err:#}").contains("bench.log"), "{err:#}");
    }
}
