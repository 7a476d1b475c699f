//! `cargo xtask bench`: every suite, the BLAS ones once per installed OpenBLAS layer, then the
//! report.

use std::time::{Duration, Instant};

use anyhow::bail;

use std::process::Command;

use parcost::kernel::KernelPolicy;

use crate::{cargo, kernels, run_checked, setup};

/// A suite crate (its bench has the same name) and whether it calls BLAS.
#[derive(Debug, Clone, Copy)]
pub struct Suite {
    pub name: &'static str,
    pub blas: bool,
}

/// Every suite, in the order they run.
pub const SUITES: [Suite; 5] = [
    Suite::new("oversubscription", true),
    Suite::new("blas-tuning", true),
    Suite::new("task-level", true),
    Suite::new("threads-vs-processes", false),
    Suite::new("array-sharing", false),
];

impl Suite {
    const fn new(name: &'static str, blas: bool) -> Self {
        Self { name, blas }
    }
}

/// Criterion flags of a `--quick` run: Criterion's quick mode (a few doubling iterations, no
/// warm-up, until the spread is under 5% or a second has passed) without its plots.
const QUICK_ARGS: [&str; 4] = ["--quick", "--measurement-time", "1", "--noplot"];

#[derive(Debug, Default, PartialEq)]
struct Options {
    quick: bool,
    suites: Vec<String>,
    layers: Vec<String>,
    kernel: KernelPolicy,
    criterion: Vec<String>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut opts = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--suite" | "--layer" | "--kernel" => {
                let Some(value) = it.next() else {
                    bail!("{arg} needs a value");
                };
                match arg.as_str() {
                    "--suite" => opts.suites.push(value.clone()),
                    "--layer" => opts.layers.push(value.clone()),
                    _ => {
                        opts.kernel = match value.parse() {
                            Ok(k) => k,
                            Err(never) => match never {},
                        }
                    }
                }
            }
            "--" => {
                opts.criterion.extend(it.by_ref().cloned());
            }
            other => {
                bail!("unknown option {other:?} for `cargo xtask bench`; `cargo xtask` lists them")
            }
        }
    }
    for name in &opts.suites {
        if !SUITES.iter().any(|s| s.name == name) {
            bail!(
                "unknown suite {name:?}; the suites are: {}",
                SUITES.map(|s| s.name).join(", ")
            );
        }
    }
    Ok(opts)
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = parse(args)?;
    let openblas = setup::run(&[])?;
    let layers = openblas.select(&opts.layers)?;
    let suites: Vec<Suite> = SUITES
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
    let chosen = if suites.iter().any(|s| s.blas) {
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
        if !suite.blas {
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
    crate::report::run(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_parse() {
        let o = parse(&args(
            "--quick --suite task-level --layer openmp --kernel skylakex -- --save-baseline a",
        ))
        .expect("ok");
        assert_eq!(o.kernel, KernelPolicy::Named("skylakex".into()));
        assert_eq!(
            parse(&args("--kernel library")).expect("ok").kernel,
            KernelPolicy::Library
        );
        assert_eq!(parse(&[]).expect("ok").kernel, KernelPolicy::Auto);
        assert!(o.quick);
        assert_eq!(o.suites, ["task-level"]);
        assert_eq!(o.layers, ["openmp"]);
        assert_eq!(o.criterion, ["--save-baseline", "a"]);
    }

    #[test]
    fn bad_options_are_one_line_errors() {
        let e = parse(&args("--suite nope"))
            .expect_err("unknown suite")
            .to_string();
        assert!(
            e.contains("unknown suite \"nope\"") && e.contains("oversubscription"),
            "{e}"
        );
        assert!(parse(&args("--suite")).is_err());
        assert!(parse(&args("--fast")).is_err());
    }
}
