//! Tries every OpenBLAS kernel this CPU can run, each in a child process of this binary.
//!
//! `parcost-kernels survey [--timing]`: the library's own kernel and every runnable one, judged;
//! the survey is written next to Criterion's files (`parcost/kernels.<layer>.json`, for the
//! report) and printed as JSON (for `cargo xtask bench`, which chooses the kernel from it).
//! `parcost-kernels trial [--timing] [--dump FILE] [--compare FILE]`: one trial of the kernel
//! this process loaded (what `survey` starts).

use std::path::PathBuf;
use std::process::ExitCode;

use parcost::kernel_trial;
use parcost::meta::{SIDECAR_DIR, criterion_dir};

#[derive(Debug, Default)]
struct Args {
    task: String,
    timing: bool,
    dump: Option<PathBuf>,
    compare: Option<PathBuf>,
}

fn parse() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("timing") => args.timing = true,
            Long("dump") => args.dump = Some(parser.value()?.into()),
            Long("compare") => args.compare = Some(parser.value()?.into()),
            Value(v) if args.task.is_empty() => args.task = v.string()?,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: parcost-kernels: {e}");
            return ExitCode::from(2);
        }
    };
    match args.task.as_str() {
        "trial" => {
            let report =
                kernel_trial::run_trial(args.timing, args.dump.as_deref(), args.compare.as_deref());
            match serde_json::to_string(&report) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: parcost-kernels: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        "survey" => match survey(args.timing) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: parcost-kernels: {e}");
                ExitCode::FAILURE
            }
        },
        other => {
            eprintln!("error: parcost-kernels: unknown task {other:?} (survey or trial)");
            ExitCode::from(2)
        }
    }
}

fn survey(timing: bool) -> Result<(), Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let survey = kernel_trial::survey(&exe, timing)?;
    let text = serde_json::to_string_pretty(&survey)?;
    let path = criterion_dir()
        .join(SIDECAR_DIR)
        .join(format!("kernels.{}.json", survey.layer));
    parcost::fsutil::write_atomically(&path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{}", serde_json::to_string(&survey)?);
    Ok(())
}
