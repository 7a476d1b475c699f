//! `cargo xtask bench`: every suite, the BLAS ones once per installed OpenBLAS layer, then the
//! report.

use std::process::Command;
use std::time::Instant;

use parcost::id::{RANKS_X_THREADS, SUITES, SuiteInfo};

use crate::{cargo, flags, kernels, progress, run_checked, setup};

/// The bench of ranks-x-threads reads the hostfile from here (`mpirun --hostfile`).
pub const HOSTFILE_VAR: &str = "PARCOST_MPI_HOSTFILE";

/// The cargo options that build ranks-x-threads with MPI (its `mpi` feature).
pub const MPI_FEATURE: [&str; 2] = ["--features", "ranks-x-threads/mpi"];

/// Criterion flags of a `--quick` run: Criterion's quick mode (a few doubling iterations, no
/// warm-up, until the spread is under 5% or a second has passed) without its plots.
const QUICK_ARGS: [&str; 4] = ["--quick", "--measurement-time", "1", "--noplot"];

impl flags::Bench {
    pub fn run(&self) -> anyhow::Result<()> {
        let opts = self;
        let openblas = setup::run()?;
        let layers = openblas.select(&opts.layers)?;
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

        let mut build = cargo();
        build.args(["bench", "--quiet", "--no-run"]);
        for s in &suites {
            build.args(["--package", s.name]);
        }
        if mpi {
            build.args(MPI_FEATURE);
        }
        run_checked(&mut build)?;

        let mut criterion_args: Vec<String> = Vec::new();
        if opts.quick {
            criterion_args.extend(QUICK_ARGS.map(String::from));
        }
        criterion_args.extend(opts.criterion.iter().cloned());

        // The kernel each layer runs with, chosen from a trial of every kernel (BLAS suites only).
        let chosen = if suites.iter().any(|s| s.uses_blas) {
            kernels::choose(&layers, &opts.kernel)?
        } else {
            Vec::new()
        };

        // The plan: every suite run (one a layer for the BLAS suites, one a kernel for the
        // sweep), each a `cargo bench` of its own.
        let mut steps: Vec<(String, Command)> = Vec::new();
        let bench = |package: &str, bench: &str| {
            let mut cmd = cargo();
            cmd.args(["bench", "--quiet", "--package", package, "--bench", bench]);
            if package == RANKS_X_THREADS.name {
                cmd.args(MPI_FEATURE);
                if let Some(h) = &hostfile {
                    cmd.env(HOSTFILE_VAR, h);
                }
            }
            cmd.arg("--").args(&criterion_args);
            cmd
        };
        for suite in &suites {
            if !suite.uses_blas {
                steps.push((suite.name.to_owned(), bench(suite.name, suite.name)));
                continue;
            }
            for (layer, kernel) in layers.iter().zip(&chosen) {
                let mut cmd = bench(suite.name, suite.name);
                layer.apply(&mut cmd);
                kernel.apply(&mut cmd);
                steps.push((format!("{} under {}", suite.name, layer.name), cmd));
            }
            if suite.name != parcost::id::BLAS_TUNING.name {
                continue;
            }
            // Cost 0: the kernel sweep, one process a kernel, under the first layer (a kernel's
            // speed does not depend on the threading runtime).
            if let (Some(layer), Some(kernel)) = (layers.first(), chosen.first()) {
                let used = kernel
                    .decision
                    .coretype
                    .as_deref()
                    .or(kernel.decision.library_core.as_deref());
                for name in kernel.survey.sweep_kernels(opts.quick, used) {
                    let mut cmd = bench(suite.name, "blas-kernel");
                    layer.apply(&mut cmd);
                    kernel.apply_sweep(&mut cmd, &name);
                    steps.push((
                        format!("blas-tuning kernel {name} under {}", layer.name),
                        cmd,
                    ));
                }
            }
        }
        let fingerprint = format!(
            "{:?}",
            (
                &opts.quick,
                &opts.suites,
                &opts.layers,
                &opts.kernel,
                &opts.hostfile,
                &opts.criterion
            )
        );
        let files = progress::Files::new(&parcost::meta::criterion_dir());
        let mut progress = progress::Progress::start(
            files.clone(),
            steps.iter().map(|(l, _)| l.clone()).collect(),
            fingerprint,
            opts.resume,
            opts.verbose,
        )?;
        let started = Instant::now();
        for (label, cmd) in &mut steps {
            progress.run(label, cmd)?;
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
        if criterion_args
            .iter()
            .any(|a| a == "--test" || a == "--list")
        {
            return Ok(());
        }
        // The report reads what the suites wrote (it never runs a benchmark).
        crate::report::default_report()
    }
}
