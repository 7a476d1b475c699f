//! `cargo xtask try [options] -- CMD [ARGS...]`: the user's own program, run as it is, with
//! the verdict's settings and a small grid around them (each an environment, never a
//! rebuild), a warm-up run each and then timed runs interleaved across the configurations
//! until the budget; what its threads really did (`parcost::observe`); the answer first
//! (`report::tried` judges), in the terminal and as `try.json` beside `summary.json`, which
//! the report's page shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use parcost::observe::{self, ObservedRun};
use report::tried::{self, Measured, Planned};

use crate::flags;

/// Time for the timed runs in all, unless `--budget` or `--runs` says otherwise.
pub const BUDGET: Duration = Duration::from_secs(60);

/// A run is ended (with its process group) after this long, unless `--timeout` says otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// Timed runs of each configuration: at least three (an interval between runs), at most this
/// many whatever the budget.
const MIN_RUNS: usize = 3;
const MAX_RUNS: usize = 30;

impl flags::Try {
    pub fn run(&self) -> anyhow::Result<()> {
        let Some((program, args)) = self.command.split_first() else {
            bail!(
                "`cargo xtask try` needs the command to run after `--`, e.g. `cargo xtask try -- ./my-program`"
            );
        };
        let shown = self.command.join(" ");
        let summary_path = self
            .summary
            .clone()
            .unwrap_or_else(|| crate::workspace_root().join("reports").join("summary.json"));
        let summary = read_summary(&summary_path)?;
        let machine = parcost::meta::Machine::detect();
        let p = machine.logical_cores as u64;
        let user_env: BTreeMap<String, String> = std::env::vars().collect();
        let (planned, notes) = tried::configurations(&summary, p, &user_env);
        let timeout = self.timeout.unwrap_or(TIMEOUT);
        parcost::group::catch_interrupts();

        let scratch = tempfile::tempdir().context("cannot make a scratch folder")?;
        let started = Instant::now();
        let run = |plan: &Planned, index: usize| -> anyhow::Result<(ObservedRun, Vec<u8>)> {
            let out = scratch.path().join(format!("stdout-{index}"));
            let err = scratch.path().join(format!("stderr-{index}"));
            let mut cmd = Command::new(program);
            cmd.args(args)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out)?)
                .stderr(std::fs::File::create(&err)?);
            for c in &plan.env {
                match &c.value {
                    Some(v) => cmd.env(&c.var, v),
                    None => cmd.env_remove(&c.var),
                };
            }
            let observed = observe::run(&mut cmd, &shown, timeout).map_err(|e| {
                let last = last_line(&err);
                let tail = last
                    .map(|l| format!(" (its last line on stderr: {l})"))
                    .unwrap_or_default();
                anyhow::anyhow!("{e}{tail}, under {}", plan.name)
            })?;
            Ok((observed, std::fs::read(&out).unwrap_or_default()))
        };

        // A warm-up run of each: never timed (it absorbs a first build, caches, page-ins), and
        // the output the others are held against.
        eprintln!(
            "try: {} configurations of `{shown}` on {p} CPUs; a warm-up run each",
            planned.len()
        );
        let mut warm: Vec<(ObservedRun, Vec<u8>)> = Vec::new();
        for (i, plan) in planned.iter().enumerate() {
            warm.push(run(plan, i)?);
        }
        let reference = warm[0].1.clone();
        let mut changed: Vec<bool> = warm
            .iter()
            .map(|(_, out)| self.check_output && *out != reference)
            .collect();
        let per_round: f64 = warm.iter().map(|(r, _)| r.wall_ns as f64 / 1e9).sum();
        let runs = match self.runs {
            Some(n) => n as usize,
            None => {
                let budget = self.budget.unwrap_or(BUDGET).as_secs_f64();
                ((budget / per_round.max(1e-3)).floor() as usize).clamp(MIN_RUNS, MAX_RUNS)
            }
        };
        eprintln!(
            "try: {runs} timed runs of each, interleaved (a round of all takes about {per_round:.1} s)"
        );
        let mut measured: Vec<Vec<ObservedRun>> = vec![Vec::new(); planned.len()];
        for round in 0..runs {
            // Each round in another order, so drift and order hit every configuration alike.
            for k in 0..planned.len() {
                let i = (k + round) % planned.len();
                let (observed, out) = run(&planned[i], i)?;
                if self.check_output && out != reference {
                    changed[i] = true;
                }
                measured[i].push(observed);
            }
            eprintln!(
                "try: round {} of {runs} ({:.0} s)",
                round + 1,
                started.elapsed().as_secs_f64()
            );
        }

        let from = planned[0].cell;
        let to = planned.iter().find(|c| c.verdict).map(|c| c.cell);
        let prediction = match (&self.like, to) {
            (Some(like), Some(to)) => tried::predict(&summary, like, from, to),
            (Some(_), None) => Err("the verdict has no setting to try, so nothing to predict".into()),
            (None, _) => Err(
                "pass --like SUITE/WORKLOAD/KEY=VALUE,... (e.g. oversubscription/svd/n=256,matrices=16) \
                 to hold your program against the suites' nearest cell"
                    .into(),
            ),
        };
        let all: Vec<Measured> = planned
            .into_iter()
            .zip(measured)
            .zip(changed)
            .map(|((plan, runs), output_changed)| Measured {
                name: plan.name,
                env: plan.env,
                verdict: plan.verdict,
                cell: plan.cell,
                runs,
                output_changed,
            })
            .collect();
        let facts = tried::analyze(
            &all,
            tried::Context {
                command: shown.clone(),
                date: report::facts::iso8601(parcost::meta::now_ms() / 1000),
                cpu: machine.cpu.clone(),
                logical_cores: machine.logical_cores,
                summary: summary_path.display().to_string(),
                took_s: started.elapsed().as_secs_f64(),
                prediction,
                notes,
            },
        );
        print!("{}", report::terminal::tried(&facts));
        let out_dir = summary_path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        anyhow::ensure!(
            !parcost::group::interrupted(),
            "interrupted; nothing written"
        );
        let json = serde_json::to_string_pretty(&facts)?;
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        parcost::fsutil::write_atomically(&out_dir.join(tried::FILE), json.as_bytes())
            .with_context(|| format!("cannot write {}", out_dir.join(tried::FILE).display()))?;
        eprintln!("try: {}", out_dir.join(tried::FILE).display());
        // The page shows it too, when the suites' results it is drawn from are here and the
        // summary is the report's own (a summary kept elsewhere is never rewritten).
        let criterion_dir = parcost::meta::criterion_dir();
        if self.summary.is_some() {
            eprintln!(
                "try: `cargo xtask report --out {}` puts it on that report's page",
                out_dir.display()
            );
        } else if criterion_dir.is_dir() {
            let page = report::write(&report::Options {
                criterion_dir,
                out_dir: out_dir.clone(),
                compare: None,
                baseline: None,
                probe: report::settings::build_probe("bench").ok(),
                runs: report::results::Runs::Newest,
            });
            match page {
                Ok(w) => eprintln!(
                    "try: the report's page has a section on it: {}",
                    w.index.display()
                ),
                Err(e) => eprintln!(
                    "warning: the report's page was not rewritten ({e}); `cargo xtask report` \
                     shows the section"
                ),
            }
        }
        Ok(())
    }
}

/// The summary whose verdict the settings come from; one line when it is missing or bad.
fn read_summary(path: &Path) -> anyhow::Result<report::Summary> {
    if !path.exists() {
        bail!(
            "no {}: run `cargo xtask bench --quick` first (its verdict's settings are what try \
             tries), or pass --summary FILE",
            path.display()
        );
    }
    report::summary::read_other(path)
}

/// The last non-empty line of a file, if any.
fn last_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}
