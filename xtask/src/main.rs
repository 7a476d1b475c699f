//! `cargo xtask`: the project's tasks in plain Rust, one module a task.

mod bench;
mod kernels;
mod layers;
mod report;
mod setup;
mod test;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const HELP: &str = "\
usage: cargo xtask <task> [options]

tasks:
  setup                         find OpenBLAS; install it with apt-get when missing (root or
                                passwordless sudo), else print the command for your system
  bench [--quick] [--suite NAME]... [--layer NAME]... [--kernel auto|library|NAME]
        [-- CRITERION_ARGS]     run the suites once per installed OpenBLAS threading layer,
                                then write the report (as `cargo xtask report`). Every
                                OpenBLAS kernel is tried first; --kernel auto (the default)
                                runs the fastest that computed right, unless OPENBLAS_CORETYPE
                                is set (then that one), library what OpenBLAS chooses, NAME
                                that kernel (e.g. SkylakeX)
  test                          setup, fmt --check, clippy -D warnings, the tests under every
                                layer, and every benchmark once (cargo bench -- --test)
  report [--out DIR] [--compare SUMMARY.json | --baseline NAME] [--criterion DIR]
                                write reports/index.html, summary.json and summary.csv from
                                Criterion's results, and print the findings
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    };
    let result = match task.as_str() {
        "setup" => setup::run(rest).map(|_| ()),
        "bench" => bench::run(rest),
        "test" => test::run(rest),
        "report" => report::run(rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(anyhow::anyhow!(
            "unknown task {other:?}; `cargo xtask` lists the tasks"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the xtask's manifest sits one level below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A `cargo` command run from the workspace root, with the cargo that runs the xtask.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs a command to its end; a failure names the command.
fn run_checked(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| anyhow::anyhow!("cannot start {shown}: {e}"))?;
    anyhow::ensure!(status.success(), "{shown} failed ({status})");
    Ok(())
}
