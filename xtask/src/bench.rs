//! `cargo xtask bench`: every suite, the BLAS ones once per installed OpenBLAS layer and once
//! per native layer run (faer once, matrixmultiply once per thread count), then the report.

use std::process::Command;
use std::time::Instant;

use parcost::id::{RANKS_X_THREADS, SUITES, SuiteInfo};
use parcost::layer::{LAYER_VAR, Library, MATMUL_THREADS_VAR, OPENBLAS_WORD};

use crate::{cargo, flags, kernels, layers, progress, run_checked, setup};

/// The bench of ranks-x-threads reads the hostfile from here (`mpirun --hostfile`).
pub const HOSTFILE_VAR: &str = "PARCOST_MPI_HOSTFILE";

/// The cargo options that build ranks-x-threads with MPI (its `mpi` feature).
pub const MPI_FEATURE: [&str; 2] = ["--features", "ranks-x-threads/mpi"];

/// Criterion flags of a `--quick` run: Criterion's quick mode (a few doubling iterations, no
/// warm-up, until the spread is under 5% or a second has passed).
const QUICK_ARGS: [&str; 3] = ["--quick", "--measurement-time", "1"];

impl flags::Bench {
    pub fn run(&self) -> anyhow::Result<()> {
        let opts = self;
        let openblas = setup::run()?;
        let (layers, native) = layers::select(&openblas, &opts.layers)?;
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

        // Built one package at a time, as each run builds it: one build of all of them
        // resolves features across packages and the runs would rebuild in their timed steps.
        for s in &suites {
            let mut build = cargo();
            build.args(["bench", "--quiet", "--no-run", "--package", s.name]);
            if mpi && s.name == RANKS_X_THREADS.name {
                build.args(MPI_FEATURE);
            }
            run_checked(&mut build)?;
        }

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
        // The kernel each layer runs with, chosen from a trial of every kernel (BLAS suites only).
        let chosen = if uses_blas {
            kernels::choose(&surveyed, &opts.kernel)?
        } else {
            Vec::new()
        };
        let host = host.and_then(|h| {
            let i = surveyed.iter().position(|l| *l == h)?;
            Some((h, chosen.get(i)?.clone()))
        });
        let p = parcost::topology::Topology::detect().logical;

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
                cmd.env(LAYER_VAR, OPENBLAS_WORD);
                steps.push((format!("{} under {}", suite.name, layer.name), cmd));
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
                    steps.push((label, cmd));
                }
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
                for name in kernel.survey.sweep_kernels(used) {
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
                &opts.criterion,
                &opts.criterion_plots
            )
        );
        let mode = if criterion_args
            .iter()
            .any(|a| a == "--test" || a == "--list")
        {
            "test"
        } else if opts.quick {
            "quick"
        } else {
            "full"
        };
        let files = progress::Files::new(&parcost::meta::criterion_dir(), mode);
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

#[cfg(test)]
mod tests {
    use super::*;

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
