//! `cargo xtask test`: everything CI checks, in the order a failure is cheapest to find.

use anyhow::bail;

use crate::bench::SUITES;
use crate::{cargo, run_checked, setup};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask test` takes no arguments, got {arg:?}");
    }
    let openblas = setup::run(&[])?;
    let browser = setup::ensure_chromium()?;
    run_checked(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run_checked(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The thread-control code behaves differently under each layer (process-wide count under
    // pthreads, per calling thread under OpenMP, none under serial): the crates that call BLAS
    // are tested under all of them, the rest once.
    for (i, layer) in openblas.layers.iter().enumerate() {
        eprintln!("== cargo test under OpenBLAS layer {}", layer.name);
        let mut cmd = cargo();
        cmd.arg("test");
        if i == 0 {
            cmd.arg("--workspace");
        } else {
            for suite in SUITES.iter().filter(|s| s.blas) {
                cmd.args(["--package", suite.name]);
            }
            cmd.args(["--package", "parcost"]);
        }
        if browser {
            cmd.env("PARCOST_REQUIRE_BROWSER", "1");
        }
        layer.apply(&mut cmd);
        run_checked(&mut cmd)?;
    }
    eprintln!("== every benchmark once (cargo bench -- --test)");
    run_checked(cargo().args(["bench", "--workspace", "--", "--test"]))?;
    eprintln!("cargo xtask test: all passed");
    Ok(())
}
