//! `cargo xtask bench`: every suite, the BLAS ones once per installed OpenBLAS layer, then the
//! report.

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::layers::Layer;
use crate::{cargo, run_checked, setup};

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
    criterion: Vec<String>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut opts = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--suite" | "--layer" => {
                let Some(value) = it.next() else {
                    bail!("{arg} needs a value");
                };
                if arg == "--suite" {
                    opts.suites.push(value.clone());
                } else {
                    opts.layers.push(value.clone());
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
    build.args(["bench", "--no-run"]);
    for s in &suites {
        build.args(["--package", s.name]);
    }
    run_checked(&mut build)?;

    let mut criterion_args: Vec<String> = Vec::new();
    if opts.quick {
        criterion_args.extend(QUICK_ARGS.map(String::from));
    }
    criterion_args.extend(opts.criterion.iter().cloned());

    let started = Instant::now();
    let mut timings: Vec<(String, Duration)> = Vec::new();
    for suite in &suites {
        let runs: Vec<Option<&Layer>> = if suite.blas {
            layers.iter().map(Some).collect()
        } else {
            vec![None]
        };
        for layer in runs {
            let label = match layer {
                Some(l) => format!("{} under {}", suite.name, l.name),
                None => suite.name.to_owned(),
            };
            eprintln!("== {label}");
            let mut cmd = cargo();
            cmd.args([
                "bench",
                "--quiet",
                "--package",
                suite.name,
                "--bench",
                suite.name,
                "--",
            ])
            .args(&criterion_args);
            if let Some(layer) = layer {
                layer.apply(&mut cmd);
            }
            let t = Instant::now();
            run_checked(&mut cmd)?;
            timings.push((label, t.elapsed()));
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
            "--quick --suite task-level --layer openmp -- --save-baseline a",
        ))
        .expect("ok");
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
