//! `cargo xtask`: the project's tasks in plain Rust, one module a task.

mod bench;
mod flags;
mod kernels;
mod layers;
mod progress;
mod report;
mod setup;
mod test;
mod try_program;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let result = flags::parse(std::env::args_os().skip(1)).and_then(|task| match task {
        flags::Task::Help => {
            print!("{}", flags::HELP);
            Ok(())
        }
        flags::Task::Setup => setup::run().map(|_| {
            setup::mpi();
        }),
        flags::Task::Bench(b) => b.run(),
        flags::Task::Test => test::run(),
        flags::Task::Report(r) => r.run(),
        flags::Task::Try(t) => t.run(),
    });
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
