//! `cargo xtask test`: everything CI checks, in the order a failure is cheapest to find.

use anyhow::bail;

use crate::{cargo, run_checked, setup};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask test` takes no arguments, got {arg:?}");
    }
    let openblas = setup::run(&[])?;
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
    // pthreads, per calling thread under OpenMP, none under serial): test it under all of them.
    for layer in &openblas.layers {
        eprintln!("== cargo test under OpenBLAS layer {}", layer.name);
        let mut cmd = cargo();
        cmd.args(["test", "--workspace"]);
        layer.apply(&mut cmd);
        run_checked(&mut cmd)?;
    }
    eprintln!("== every benchmark once (cargo bench -- --test)");
    run_checked(cargo().args(["bench", "--workspace", "--", "--test"]))?;
    eprintln!("cargo xtask test: all passed");
    Ok(())
}
