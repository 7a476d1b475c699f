//! `cargo xtask bench`: every suite, the BLAS ones once per installed OpenBLAS layer, then the
//! report.

use std::time::{Duration, Instant};

use std::process::Command;

use parcost::id::{SUITES, SuiteInfo};

use crate::{cargo, flags, kernels, run_checked, setup};

/// Criterion flags of a `--quick` run: Criterion's quick mode (a few doubling iterations, no
/// warm-up, until the spread is under 5% or a second has passed) without its plots.
const QUICK_ARGS: [&str; 4] = ["--quick", "--measurement-time", "1", "--noplot"];

impl flags::Bench {
    pub fn run(&self) -> anyhow::Result<()> {
        let opts = self;
        let openblas = setup::run()?;
        let layers = openblas.select(&opts.layers)?;
        let suites: Vec<SuiteInfo> = SUITES
            .into_iter()
            .filter(|s| opts.suites.is_empty() || opts.suites.iter().any(|n| n == s.name))
            .collect();

        let mut build = cargo();
        build.args(["bench", "--quiet", "--no-run"]);
        for s in &suites {
            build.args(["--package", s.name]);
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

        let started = Instant::now();
        let mut timings: Vec<(String, Duration)> = Vec::new();
        let mut run = |label: String, bench: &str, package: &str, env: &dyn Fn(&mut Command)| {
            eprintln!("== {label}");
            let mut cmd = cargo();
            cmd.args([
                "bench",
                "--quiet",
                "--package",
                package,
                "--bench",
                bench,
                "--",
            ])
            .args(&criterion_args);
            env(&mut cmd);
            let t = Instant::now();
            run_checked(&mut cmd)?;
            timings.push((label, t.elapsed()));
            anyhow::Ok(())
        };
        for suite in &suites {
            if !suite.uses_blas {
                run(suite.name.to_owned(), suite.name, suite.name, &|_| {})?;
                continue;
            }
            for (layer, kernel) in layers.iter().zip(&chosen) {
                run(
                    format!("{} under {}", suite.name, layer.name),
                    suite.name,
                    suite.name,
                    &|cmd| {
                        layer.apply(cmd);
                        kernel.apply(cmd);
                    },
                )?;
            }
            if suite.name != "blas-tuning" {
                continue;
            }
            // Cost 0: the kernel sweep, one process a kernel, under the first layer (the kernel's
            // speed does not depend on the threading runtime).
            if let (Some(layer), Some(kernel)) = (layers.first(), chosen.first()) {
                let used = kernel
                    .decision
                    .coretype
                    .as_deref()
                    .or(kernel.decision.library_core.as_deref());
                for name in kernel.survey.sweep_kernels(opts.quick, used) {
                    run(
                        format!("blas-tuning kernel sweep: {name} under {}", layer.name),
                        "blas-kernel",
                        suite.name,
                        &|cmd| {
                            layer.apply(cmd);
                            kernel.apply_sweep(cmd, &name);
                        },
                    )?;
                }
            }
        }
        eprintln!("\nbench times:");
        for (label, took) in &timings {
            eprintln!("  {:>7.1} s  {label}", took.as_secs_f64());
        }
        eprintln!("  {:>7.1} s  in all", started.elapsed().as_secs_f64());
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
