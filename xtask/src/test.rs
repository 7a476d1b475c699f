//! `cargo xtask test`: everything CI checks, in the order a failure is cheapest to find.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::bench::MPI_FEATURE;
use crate::{cargo, run_checked, setup};
use parcost::id::{RANKS_X_THREADS, SUITES};
use parcost::layer::{LAYER_VAR, Library, MATMUL_THREADS_VAR};

/// Tests counted from what the runners print: libtest's `test result:` lines and Criterion's
/// `Success` of each benchmark run once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    fn read(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("test result: ") {
            let number = |word: &str| {
                rest.split(';')
                    .find_map(|part| {
                        part.trim()
                            .strip_suffix(word)?
                            .split_whitespace()
                            .last()?
                            .parse::<u64>()
                            .ok()
                    })
                    .unwrap_or(0)
            };
            self.passed += number(" passed");
            self.failed += number(" failed");
        } else if line.trim() == "Success" {
            self.passed += 1;
        }
    }
}

/// Runs a test command, passing its output through while counting its tests.
fn run_counting(cmd: &mut Command, tally: &mut Tally) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.unwrap_or_default();
            println!("{line}");
            tally.read(&line);
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {shown}"))?;
    anyhow::ensure!(status.success(), "{shown} failed ({status})");
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    let openblas = setup::run()?;
    // With MPI, ranks-x-threads is built, linted, tested and run with it (its `mpi` feature);
    // without, setup said in one line that the suite is skipped.
    let mpi = setup::mpi();
    let features: &[&str] = if mpi { &MPI_FEATURE } else { &[] };
    let browser = setup::ensure_chromium()?;
    run_checked(cargo().args(["fmt", "--all", "--", "--check"]))?;
    let clippy = ["clippy", "--all-targets", "--", "-D", "warnings"];
    run_checked(
        cargo()
            .args(&clippy[..2])
            .arg("--workspace")
            .args(features)
            .args(&clippy[2..]),
    )?;
    if mpi {
        // The suite as a machine without MPI builds it.
        run_checked(
            cargo()
                .args(&clippy[..2])
                .args(["--package", RANKS_X_THREADS.name])
                .args(&clippy[2..]),
        )?;
    }
    // The thread-control code behaves differently under each layer (process-wide count under
    // pthreads, per calling thread under OpenMP, none under serial): the crates that call BLAS
    // are tested under all of them, the rest once.
    let mut tally = Tally::default();
    for (i, layer) in openblas.layers.iter().enumerate() {
        eprintln!("== cargo test under OpenBLAS layer {}", layer.name);
        let mut cmd = cargo();
        cmd.arg("test").args(features);
        if i == 0 {
            cmd.arg("--workspace");
        } else {
            for suite in SUITES.iter().filter(|s| s.uses_blas) {
                cmd.args(["--package", suite.name]);
            }
            cmd.args(["--package", "parcost"]);
        }
        if browser {
            cmd.env("PARCOST_REQUIRE_BROWSER", "1");
        }
        layer.apply(&mut cmd);
        run_counting(&mut cmd, &mut tally)?;
    }
    eprintln!("== every benchmark once (cargo bench -- --test), OpenBLAS and faer");
    run_counting(
        cargo()
            .args(["bench", "--workspace"])
            .args(features)
            .args(["--", "--test"]),
        &mut tally,
    )?;
    // matrixmultiply reads its thread count once a process: one run of its suites at P.
    let p = parcost::topology::Topology::detect().logical;
    eprintln!("== the matrixmultiply layer's benchmarks once ({MATMUL_THREADS_VAR}={p})");
    let mut cmd = cargo();
    cmd.args(["bench"]);
    for suite in SUITES
        .iter()
        .filter(|s| parcost::layer::native_layers(s.name).contains(&Library::Matrixmultiply))
    {
        cmd.args(["--package", suite.name]);
    }
    cmd.args(["--", "--test"])
        .env(LAYER_VAR, Library::Matrixmultiply.word())
        .env(MATMUL_THREADS_VAR, p.to_string());
    run_counting(&mut cmd, &mut tally)?;
    println!("xtask: {} passed, {} failed", tally.passed, tally.failed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_libtest_and_criterion_lines() {
        let mut t = Tally::default();
        t.read("test result: ok. 32 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.18s");
        t.read("test result: FAILED. 10 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out");
        t.read("Success");
        t.read("Testing task-level/matmul/n=32");
        assert_eq!(
            t,
            Tally {
                passed: 43,
                failed: 1
            }
        );
    }
}
