//! `cargo xtask bench`: every suite, the BLAS ones once per installed OpenBLAS layer and once
//! per native layer run (faer once, matrixmultiply once per thread count), then the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use parcost::id::{RANKS_X_THREADS, SUITES, SuiteInfo};
use parcost::layer::{LAYER_VAR, Library, MATMUL_THREADS_VAR, OPENBLAS_WORD};

use crate::{cargo, flags, kernels, layers, progress, setup};

/// The bench of ranks-x-threads reads the hostfile from here (`mpirun --hostfile`).
pub const HOSTFILE_VAR: &str = "PARCOST_MPI_HOSTFILE";

/// The cargo options that build ranks-x-threads with MPI (its `mpi` feature).
pub const MPI_FEATURE: [&str; 2] = ["--features", "ranks-x-threads/mpi"];

/// Criterion flags of a `--quick` run: Criterion's quick mode (a few doubling iterations, no
/// warm-up, until the spread is under 5% or 0.2 s have passed, the time of a full run).
const QUICK_ARGS: [&str; 3] = ["--quick", "--measurement-time", "0.2"];

impl flags::Bench {
    pub fn run(&self) -> anyhow::Result<()> {
        let opts = self;
        let openblas = setup::run()?;
        let (mut layers, native) = layers::select(&openblas, &opts.layers)?;
        // A quick run measures the OpenBLAS build a program gets without choosing (Debian's
        // default, pthreads) beside the native libraries; comparing the builds is a full
        // run's (its other two layers were 141 of a quick run's 492 s).
        if opts.quick && opts.layers.is_empty() && layers.len() > 1 {
            let default = layers
                .iter()
                .position(|l| l.name == parcost::id::layer::PTHREADS)
                .unwrap_or(0);
            layers = vec![layers.swap_remove(default)];
        }
        let mut suites: Vec<SuiteInfo> = SUITES
            .into_iter()
            .filter(|s| opts.suites.is_empty() || opts.suites.iter().any(|n| n == s.name))
            .collect();
        let mpi_suite = suites.iter().any(|s| s.name == RANKS_X_THREADS.name);
        // Without MPI the suite is skipped (setup said so in one line); the others run.
        let mpi = mpi_suite && setup::mpi();
        if mpi_suite && !mpi {
            if opts.hostfile.is_some() {
                anyhow::bail!("--hostfile needs MPI, which is not installed (see the note above)");
            }
            suites.retain(|s| s.name != RANKS_X_THREADS.name);
            if suites.is_empty() {
                eprintln!("nothing left to run");
                return Ok(());
            }
        }
        let hostfile = match &opts.hostfile {
            Some(h) => Some(
                std::path::absolute(h)
                    .ok()
                    .filter(|a| a.is_file())
                    .ok_or_else(|| anyhow::anyhow!("hostfile {} is not a file", h.display()))?,
            ),
            None => None,
        };

        // One build of every suite's benches (both cores busy, each dependency built once for
        // all), and each step runs its bench executable itself: `cargo bench` would check the
        // build again in every step (half a second each, 40 s of a run's 78 steps), and with
        // one package at a time its features would differ from this build's and rebuild.
        let mut build = cargo();
        build.args(["bench", "--quiet", "--no-run"]);
        for s in &suites {
            build.args(["--package", s.name]);
        }
        if mpi {
            build.args(MPI_FEATURE);
        }
        let executables = bench_executables(&mut build)?;
        for s in &suites {
            let mut wanted = vec![s.name];
            if s.name == parcost::id::BLAS_TUNING.name {
                wanted.push(KERNEL_BENCH);
            }
            for name in wanted {
                anyhow::ensure!(
                    executables.iter().any(|b| b.name == name),
                    "cargo built no bench named {name} in package {}",
                    s.name
                );
            }
        }
        let criterion_home = parcost::meta::criterion_dir();

        let mut criterion_args: Vec<String> = Vec::new();
        if opts.quick {
            criterion_args.extend(QUICK_ARGS.map(String::from));
        }
        // Criterion's own plots cost a quarter second a benchmark (a minute and a half of a full
        // run) and the report draws its own.
        if !opts.criterion_plots {
            criterion_args.push("--noplot".to_owned());
        }
        criterion_args.extend(opts.criterion.iter().cloned());

        // The native layers' runs load OpenBLAS too, for the serial references they are checked
        // against: the serial build when installed (it starts no threads beside the ones
        // measured), with the kernel chosen for it like any layer's.
        let uses_blas = suites.iter().any(|s| s.uses_blas);
        let host = (uses_blas && !native.is_empty()).then(|| openblas.reference_layer());
        let mut surveyed = layers.clone();
        if let Some(h) = &host
            && !surveyed.contains(h)
        {
            surveyed.push(h.clone());
        }
        let fingerprint = format!(
            "{:?}",
            (
                &opts.quick,
                &opts.suites,
                &opts.layers,
                &opts.kernel,
                &opts.hostfile,
                &opts.criterion,
                &opts.criterion_plots,
                &opts.rounds
            )
        );
        let test = criterion_args
            .iter()
            .any(|a| a == "--test" || a == "--list");
        let mode = if test {
            "test"
        } else if opts.quick {
            "quick"
        } else {
            "full"
        };
        let files = progress::Files::new(&parcost::meta::criterion_dir(), mode);
        // The kernel each layer runs with, chosen from a trial of every kernel (BLAS suites only);
        // a resumed run keeps the kernels its first part ran (the trials' timings could rank
        // near-equal kernels differently now).
        let resumed = if opts.resume {
            progress::interrupted_run(&files, &fingerprint)
        } else {
            None
        };
        let kernels_file = files.dir.join(kernels::SAVED);
        let kept = resumed.and_then(|run| kernels::saved(&kernels_file, run, &surveyed));
        if resumed.is_some() && kept.is_none() && uses_blas {
            eprintln!(
                "kernel: the interrupted run's kernels were not saved ({}): tried again; the \
                 suites it finished may have run others",
                kernels_file.display()
            );
        }
        let chosen = match kept {
            Some(chosen) => chosen,
            None if uses_blas => kernels::choose(&surveyed, &opts.kernel)?,
            None => Vec::new(),
        };
        let host = host.and_then(|h| {
            let i = surveyed.iter().position(|l| *l == h)?;
            Some((h, chosen.get(i)?.clone()))
        });
        let p = parcost::topology::Topology::detect().logical;

        // The plan of one round: every suite run (one a layer for the BLAS suites, one a kernel
        // for the sweep), each a `cargo bench` of its own, with `extra` Criterion arguments.
        let plan = |extra: &[String]| -> Vec<Step> {
            let mut steps: Vec<Step> = Vec::new();
            let bench = |package: &str, bench: &str| {
                // Every bench the plan names was found after the build, above.
                let built = executables.iter().find(|b| b.name == bench);
                let mut cmd =
                    Command::new(built.map_or_else(|| PathBuf::from(bench), |b| b.exe.clone()));
                // As `cargo bench` runs it: from its package, Criterion's files in the target.
                if let Some(b) = built {
                    cmd.current_dir(&b.package_dir);
                }
                cmd.env("CRITERION_HOME", &criterion_home).arg("--bench");
                if package == RANKS_X_THREADS.name
                    && let Some(h) = &hostfile
                {
                    cmd.env(HOSTFILE_VAR, h);
                }
                cmd.args(&criterion_args).args(extra);
                cmd
            };
            let step =
                |label: String, suite: &str, layer: Option<&str>, kernel: Option<&str>, cmd| Step {
                    label,
                    scope: Scope {
                        suite: suite.to_owned(),
                        layer: layer.map(str::to_owned),
                        kernel: kernel.map(parcost::kernel::token),
                    },
                    cmd,
                };
            for suite in &suites {
                if !suite.uses_blas {
                    steps.push(step(
                        suite.name.to_owned(),
                        suite.name,
                        None,
                        None,
                        bench(suite.name, suite.name),
                    ));
                    continue;
                }
                for (layer, kernel) in layers.iter().zip(&chosen) {
                    let mut cmd = bench(suite.name, suite.name);
                    layer.apply(&mut cmd);
                    kernel.apply(&mut cmd);
                    cmd.env(LAYER_VAR, OPENBLAS_WORD);
                    let label = format!("{} under {}", suite.name, layer.name);
                    // The ids name the layer OpenBLAS reports; an install without Debian's
                    // layer folders runs one, `default`, which no id names.
                    let named =
                        parcost::id::layer::is_openblas(&layer.name).then_some(layer.name.as_str());
                    steps.push(step(label, suite.name, named, None, cmd));
                }
                if let Some((host, kernel)) = &host {
                    for (lib, threads) in native_runs(suite.name, &native, p) {
                        let mut cmd = bench(suite.name, suite.name);
                        host.apply(&mut cmd);
                        kernel.apply(&mut cmd);
                        cmd.env(LAYER_VAR, lib.word());
                        let mut label = format!("{} under {}", suite.name, lib.word());
                        if let Some(b) = threads {
                            cmd.env(MATMUL_THREADS_VAR, b.to_string());
                            label.push_str(&format!(" ({MATMUL_THREADS_VAR}={b})"));
                        }
                        steps.push(step(label, suite.name, Some(lib.word()), None, cmd));
                    }
                }
                if suite.name != parcost::id::BLAS_TUNING.name {
                    continue;
                }
                // Cost 0: the kernel sweep, one process a kernel, under the first layer (a
                // kernel's speed does not depend on the threading runtime).
                if let (Some(layer), Some(kernel)) = (layers.first(), chosen.first()) {
                    let used = kernel
                        .decision
                        .coretype
                        .as_deref()
                        .or(kernel.decision.library_core.as_deref());
                    for name in kernel.survey.sweep_kernels(used) {
                        let mut cmd = bench(suite.name, KERNEL_BENCH);
                        layer.apply(&mut cmd);
                        kernel.apply_sweep(&mut cmd, &name);
                        let label = format!("blas-tuning kernel {name} under {}", layer.name);
                        let named = parcost::id::layer::is_openblas(&layer.name)
                            .then_some(layer.name.as_str());
                        steps.push(step(label, suite.name, named, Some(&name), cmd));
                    }
                }
            }
            steps
        };
        // Rounds: the first measures everything; the later ones, each a fresh process of every
        // step, only the contenders the first found (report::rounds::contenders).
        let rounds = if test {
            1
        } else {
            opts.rounds.unwrap_or(ROUNDS)
        };
        // Then, after the planned rounds, more rounds of only what they left undecided (a
        // comparison near the margin: report::rounds::undecided).
        let extra = if rounds >= report::model::MIN_ROUNDS as u32 {
            let extra = if opts.quick {
                report::rounds::QUICK_EXTRA_ROUNDS
            } else {
                report::rounds::EXTRA_ROUNDS
            };
            extra.min(parcost::id::round::MAX - rounds)
        } else {
            0
        };
        let contenders_file = std::path::absolute(files.dir.join("contenders.txt"))?;
        let undecided_file = std::path::absolute(files.dir.join("undecided.txt"))?;
        let mut steps: Vec<(u32, Step)> = Vec::new();
        for round in 1..=rounds + extra {
            let extra_args = if test {
                Vec::new()
            } else {
                vec![
                    "--save-baseline".to_owned(),
                    parcost::id::round::baseline(round),
                ]
            };
            for mut s in plan(&extra_args) {
                if round > rounds {
                    s.label = format!("{}, round {round} (undecided only)", s.label);
                } else if rounds > 1 {
                    s.label = format!("{}, round {round} of {rounds}", s.label);
                }
                steps.push((round, s));
            }
        }
        let mut progress = progress::Progress::start(
            files.clone(),
            steps.iter().map(|(_, s)| s.label.clone()).collect(),
            fingerprint,
            opts.resume,
            opts.verbose,
        )?;
        let run = progress.run_key().to_string();
        if !chosen.is_empty() {
            kernels::save(&kernels_file, progress.run_key(), &surveyed, &chosen)?;
        }
        let started = Instant::now();
        // The budgets of the rounds count a run's suites, with what they ran before an
        // interruption (`--resume`), not only this process's share.
        let resumed = progress.resumed();
        // Each step of the first round (its label) beside every round's step at its place,
        // for the prediction of what the later planned rounds will take.
        let per_round = steps.iter().filter(|(r, _)| *r == 1).count();
        let first_round: Vec<(String, Scope)> = steps
            .iter()
            .take(per_round)
            .map(|(_, s)| (s.label.clone(), s.scope.clone()))
            .collect();
        let planned_until = if opts.quick {
            report::rounds::QUICK_PLANNED_ROUNDS_UNTIL
        } else {
            report::rounds::PLANNED_ROUNDS_UNTIL
        };
        // The ids each later phase measures, computed once when it starts (rounds 2 to
        // `rounds`: the contenders; each extra round: what the rounds so far left undecided).
        let mut contenders: Option<Vec<String>> = None;
        let mut undecided: Option<Vec<String>> = None;
        let mut undecided_round = 0;
        // Extra rounds start only while the suites have run less than this; none once a round
        // leaves nothing undecided.
        let extra_budget = if opts.quick {
            report::rounds::QUICK_EXTRA_ROUNDS_UNTIL
        } else {
            report::rounds::EXTRA_ROUNDS_UNTIL
        };
        let mut extra_stopped = false;
        for (round, step) in &mut steps {
            step.cmd
                .env(parcost::id::round::RUN_VAR, &run)
                .env(parcost::id::round::ROUND_VAR, round.to_string());
            if *round > 1 {
                let (ids, file) = if *round > rounds {
                    if extra_stopped {
                        continue;
                    }
                    if undecided_round != *round {
                        // A new extra round: what is still undecided after the last one.
                        undecided_round = *round;
                        undecided = None;
                        let ran = resumed + started.elapsed();
                        if ran >= extra_budget {
                            eprintln!(
                                "round {round}: not run, the suites have run {:.0} s \
                                 (extra rounds start only within {:.0} s)",
                                ran.as_secs_f64(),
                                extra_budget.as_secs_f64()
                            );
                            extra_stopped = true;
                            continue;
                        }
                    }
                    let header = format!("# run {}, round {round}", progress.run_key());
                    let ids = phase_ids(&mut undecided, &undecided_file, &header, || {
                        let ids = report::undecided(&parcost::meta::criterion_dir());
                        eprintln!(
                            "round {round}: {} variants of comparisons still near the {:.0}% \
                             margin that more rounds can decide, listed in {}",
                            ids.len(),
                            100.0 * report::model::MARGIN,
                            undecided_file.display()
                        );
                        ids
                    })?;
                    if ids.is_empty() {
                        // Nothing measured, nothing changes: no later round has work either.
                        extra_stopped = true;
                        continue;
                    }
                    (ids, &undecided_file)
                } else {
                    let header = format!("# run {}", progress.run_key());
                    let firsts: Vec<(&Scope, Option<f64>)> = first_round
                        .iter()
                        .map(|(label, scope)| (scope, progress.took(label).map(|t| t.seconds)))
                        .collect();
                    let ran = resumed + started.elapsed();
                    let ids = phase_ids(&mut contenders, &contenders_file, &header, || {
                        let fit = |ids: &[String], weights: &BTreeMap<String, f64>| {
                            let later = planned_seconds(&firsts, ids, weights);
                            ran.as_secs_f64() + f64::from(rounds - 1) * later
                                <= planned_until.as_secs_f64()
                        };
                        let c = report::rounds::contenders_within(
                            &parcost::meta::criterion_dir(),
                            progress.run_key(),
                            p,
                            opts.quick,
                            fit,
                        );
                        eprintln!(
                            "rounds 2 to {rounds}: {} contenders (within {}x of their instance's \
                             best, the defaults and P tasks x 1 BLAS thread{}), listed in {}",
                            c.ids.len(),
                            c.factor,
                            if !c.fit {
                                format!(
                                    "; predicted to end after {:.0} s even so: a slower machine \
                                     than the plan's",
                                    planned_until.as_secs_f64()
                                )
                            } else if c.factor < report::rounds::CONTENDER_FACTOR {
                                format!(
                                    "; {}x would not end within {:.0} s",
                                    report::rounds::CONTENDER_FACTOR,
                                    planned_until.as_secs_f64()
                                )
                            } else {
                                String::new()
                            },
                            contenders_file.display()
                        );
                        c.ids
                    })?;
                    (ids, &contenders_file)
                };
                if !ids.iter().any(|id| step.scope.measures(id)) {
                    continue;
                }
                step.cmd.env(parcost::id::round::ONLY_VAR, file);
            }
            progress.run(&step.label, &mut step.cmd)?;
        }
        let times = progress.finish()?;
        eprintln!("\nbench times:");
        for (label, took) in &times {
            eprintln!(
                "  {:>7.1} s  {label} ({} benchmarks)",
                took.seconds, took.benchmarks
            );
        }
        eprintln!("  {:>7.1} s  in all", started.elapsed().as_secs_f64());
        eprintln!("Criterion's output: {}", files.log().display());
        eprintln!(
            "Criterion's results are in {}",
            parcost::meta::criterion_dir().display()
        );
        if test {
            return Ok(());
        }
        // The report reads what the suites wrote (it never runs a benchmark).
        crate::report::default_report()
    }
}

/// Rounds of a run unless `--rounds` says otherwise: three, the fewest with a between-round
/// interval (a t-interval of two degrees of freedom, so it is wide unless the rounds agree).
pub const ROUNDS: u32 = 3;

/// One suite process of a round.
struct Step {
    label: String,
    scope: Scope,
    cmd: Command,
}

/// What a step measures: its suite, and the layer and kernel its ids name.
#[derive(Debug, Clone)]
struct Scope {
    suite: String,
    /// The layer its ids name (`layer=`), if any.
    layer: Option<String>,
    /// The kernel its ids name (`kernel=`, the sweep's token), if any.
    kernel: Option<String>,
}

/// A suite process's start in a later round (its serial references and its layer's report),
/// beyond its variants' share of its first-round time.
const STEP_START_SECONDS: f64 = 0.5;

/// What one later round of `ids` will take, predicted from the first round: each step that
/// measures any of them, its start and its first-round time in the share of `ids` in its
/// variants' `weights` ([`report::rounds::later_round_weight`]: the fast variants, which the
/// contenders are, cost less than the slow ones). A step whose first-round time is unknown (a
/// resumed run whose times file was lost) counts nothing.
fn planned_seconds(
    firsts: &[(&Scope, Option<f64>)],
    ids: &[String],
    weights: &BTreeMap<String, f64>,
) -> f64 {
    firsts
        .iter()
        .filter_map(|(scope, seconds)| {
            let seconds = (*seconds)?;
            let weight = |id: &String| weights.get(id).copied().unwrap_or(0.0);
            let chosen: f64 = ids.iter().filter(|id| scope.measures(id)).map(weight).sum();
            let all: f64 = weights
                .iter()
                .filter(|(id, _)| scope.measures(id))
                .map(|(_, w)| w)
                .sum();
            let measured = ids.iter().any(|id| scope.measures(id));
            measured.then(|| {
                let share = if all > 0.0 {
                    (chosen / all).min(1.0)
                } else {
                    1.0
                };
                STEP_START_SECONDS + share * seconds
            })
        })
        .sum()
}

impl Scope {
    /// Whether the benchmark `full_id` is one this process measures.
    fn measures(&self, full_id: &str) -> bool {
        let Ok(parsed) = parcost::id::parse(full_id) else {
            return false;
        };
        let named = |k: &str, want: &Option<String>| match want {
            Some(w) => parsed.params.get(k).is_some_and(|v| v.to_string() == *w),
            None => true,
        };
        parsed.suite == self.suite
            && named(parcost::id::key::LAYER, &self.layer)
            && match &self.kernel {
                Some(_) => named(parcost::id::key::KERNEL, &self.kernel),
                None => !parsed.params.contains_key(parcost::id::key::KERNEL),
            }
    }
}

/// The ids of a phase of rounds: `kept` once known; else the list `file` holds under `header`
/// (a resumed run keeps the list its phase made: recomputed, it would read rounds already
/// run); else `compute`d now and written to `file` under `header`, which names the run and
/// the phase.
fn phase_ids<'a>(
    kept: &'a mut Option<Vec<String>>,
    file: &Path,
    header: &str,
    compute: impl FnOnce() -> Vec<String>,
) -> anyhow::Result<&'a Vec<String>> {
    let ids = match kept.take() {
        Some(ids) => ids,
        None => {
            let saved = std::fs::read_to_string(file)
                .ok()
                .filter(|t| t.lines().next() == Some(header))
                .map(|t| t.lines().skip(1).map(String::from).collect::<Vec<_>>());
            match saved {
                Some(ids) => ids,
                None => {
                    let ids = compute();
                    let mut lines = vec![header.to_owned()];
                    lines.extend(ids.iter().cloned());
                    write_lines(file, &lines)?;
                    ids
                }
            }
        }
    };
    Ok(kept.insert(ids))
}

/// Writes `lines` to `path`, one a line, whole or not at all.
fn write_lines(path: &std::path::Path, lines: &[String]) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, lines.join("\n").as_bytes())?;
    tmp.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// The native layers' processes for `suite` on `p` logical cores, of the libraries asked for:
/// faer once (its parallelism is per call), matrixmultiply once per thread count (it reads
/// `MATMUL_NUM_THREADS` once per process), each with the count it runs at.
fn native_runs(suite: &str, native: &[Library], p: usize) -> Vec<(Library, Option<usize>)> {
    let mut out = Vec::new();
    for lib in parcost::layer::native_layers(suite) {
        if !native.contains(&lib) {
            continue;
        }
        match lib {
            Library::Matrixmultiply => out.extend(
                parcost::layer::matmul_thread_runs(suite, p)
                    .into_iter()
                    .map(|b| (lib, Some(b))),
            ),
            _ => out.push((lib, None)),
        }
    }
    out
}

/// blas-tuning's second bench: the kernel sweep.
const KERNEL_BENCH: &str = "blas-kernel";

/// A bench target cargo built.
struct BenchExecutable {
    name: String,
    exe: PathBuf,
    /// Its package's folder, where `cargo bench` would run it.
    package_dir: PathBuf,
}

/// Runs `build` (a `cargo bench --no-run`) with JSON messages and returns the bench targets it
/// built.
fn bench_executables(build: &mut Command) -> anyhow::Result<Vec<BenchExecutable>> {
    let shown = format!("{build:?}");
    let out = build
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot start {shown}: {e}"))?;
    anyhow::ensure!(out.status.success(), "{shown} failed ({})", out.status);
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bench"))
        })
        .filter_map(|m| {
            Some(BenchExecutable {
                name: m["target"]["name"].as_str()?.to_owned(),
                exe: PathBuf::from(m["executable"].as_str()?),
                package_dir: Path::new(m["manifest_path"].as_str()?).parent()?.to_owned(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_round_is_predicted_by_its_variants_share_of_the_first() {
        let scope = |layer: &str| Scope {
            suite: "oversubscription".into(),
            layer: Some(layer.into()),
            kernel: None,
        };
        let id = |layer: &str, cell: &str| {
            format!("oversubscription/matmul/layer={layer},n=256,pairs=64/{cell}")
        };
        let (pthreads, openmp) = (scope("pthreads"), scope("openmp"));
        // pthreads took 10 s, its fast variant a quarter of its weight; openmp 20 s, none of
        // it measured again.
        let weights: BTreeMap<String, f64> = [
            (id("pthreads", "tasks=2,blas_threads=1"), 1.0),
            (id("pthreads", "tasks=4,blas_threads=4"), 3.0),
            (id("openmp", "tasks=2,blas_threads=1"), 2.0),
        ]
        .into();
        let firsts = [(&pthreads, Some(10.0)), (&openmp, Some(20.0))];
        let ids = [id("pthreads", "tasks=2,blas_threads=1")];
        let later = planned_seconds(&firsts, &ids, &weights);
        assert!((later - (STEP_START_SECONDS + 2.5)).abs() < 1e-9, "{later}");
        // A step whose first round is unknown (resumed) counts nothing.
        let unknown = [(&pthreads, None), (&openmp, Some(20.0))];
        assert_eq!(planned_seconds(&unknown, &ids, &weights), 0.0);
    }

    #[test]
    fn a_step_measures_the_ids_of_its_suite_layer_and_kernel() {
        let step = |suite: &str, layer: Option<&str>, kernel: Option<&str>| Scope {
            suite: suite.into(),
            layer: layer.map(String::from),
            kernel: kernel.map(String::from),
        };
        let id =
            "task-level/matmul/layer=openmp,n=64,pairs=8/variant=op-level,tasks=1,blas_threads=2";
        assert!(step("task-level", Some("openmp"), None).measures(id));
        assert!(!step("task-level", Some("pthreads"), None).measures(id));
        assert!(!step("oversubscription", Some("openmp"), None).measures(id));
        // An install without Debian's layer folders: one step, no layer name in it.
        assert!(step("task-level", None, None).measures(id));
        let sweep = "blas-tuning/matmul/layer=pthreads,kernel=haswell,n=1024/blas_threads=2";
        assert!(step("blas-tuning", Some("pthreads"), Some("haswell")).measures(sweep));
        assert!(!step("blas-tuning", Some("pthreads"), Some("zen")).measures(sweep));
        assert!(!step("blas-tuning", Some("pthreads"), None).measures(sweep));
    }

    #[test]
    fn native_layers_run_once_faer_and_once_a_count_matrixmultiply() {
        let both = [Library::Faer, Library::Matrixmultiply];
        let mm = Library::Matrixmultiply;
        assert_eq!(
            native_runs("oversubscription", &both, 2),
            [
                (Library::Faer, None),
                (mm, Some(1)),
                (mm, Some(2)),
                (mm, Some(4))
            ]
        );
        assert_eq!(
            native_runs("task-level", &[mm], 2),
            [(mm, Some(1)), (mm, Some(2))]
        );
        assert_eq!(
            native_runs("blas-tuning", &both, 2),
            [(Library::Faer, None)],
            "no matrixmultiply workload there"
        );
        assert!(native_runs("array-sharing", &both, 2).is_empty());
        assert!(
            native_runs("ranks-x-threads", &both, 2).is_empty(),
            "MPI ranks run OpenBLAS only"
        );
    }
}
