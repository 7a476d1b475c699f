//! Every task and option of `cargo xtask`, declared once: the help text and the parser
//! (`lexopt`: `--out DIR` and `--out=DIR` alike). Parsing only checks what was typed; the
//! tasks do the rest.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::bail;
use parcost::kernel::KernelPolicy;

pub const HELP: &str = "\
usage: cargo xtask <task> [options]

tasks:
  setup     find OpenBLAS, and MPI for ranks-x-threads; install them with apt-get when missing
            (root or passwordless sudo), else print the command for your system (without MPI
            the ranks-x-threads suite is skipped)
  bench     run the suites (the BLAS ones once per installed OpenBLAS threading layer, and
            under faer and matrixmultiply), then write the report (as `cargo xtask report`).
            Every OpenBLAS kernel is tried first.
              --quick              rough numbers fast (Criterion's --quick), and of OpenBLAS
                                   only its default build (pthreads) unless --layer says
              --rounds N           rounds of every contender, each a fresh process (3; the
                                   advice needs at least 3): the variants within 1.3x of
                                   their workload's best, narrower when their rounds would
                                   not end by 780 s of suites (quick: 290 s); then up to 13
                                   more (quick: 3),
                                   one at a time, of what is still near the 5% margin,
                                   while the suites have run under 800 s (quick: 275 s)
              --suite NAME         only this suite (repeatable)
              --layer NAME         only this layer (repeatable): an OpenBLAS layer (pthreads,
                                   openmp, serial), faer (on rayon) or matrixmultiply (its own
                                   pool, one run per MATMUL_NUM_THREADS)
              --kernel auto|library|NAME
                                   auto (default): the fastest kernel that computed right,
                                   unless OPENBLAS_CORETYPE is set (then that one); library:
                                   what OpenBLAS chooses; NAME: that kernel (e.g. SkylakeX)
              --hostfile FILE      ranks-x-threads: run the MPI ranks on the hosts of FILE
                                   (mpirun --hostfile; the bench binary must exist at the
                                   same path on every host)
              --resume             skip the suite runs an interrupted bench finished (its
                                   kernels kept, their trials not rerun)
              --verbose            show Criterion's own output (else it goes to a log file)
              --criterion-plots    let Criterion draw its own pages and plots per benchmark
                                   (about 0.25 s each; the report links to them)
              -- ARGS              passed to Criterion (a filter, --save-baseline NAME, ...)
  test      setup, fmt --check, clippy -D warnings, the tests under every layer, and every
            benchmark once (cargo bench -- --test); with MPI installed, ranks-x-threads is
            built with its `mpi` feature (without, it is skipped with one line)
  try       run your own program as it is, with the verdict's settings and a small grid
            around them (task threads 1, P x BLAS threads 1, P/2, P: each an environment, never
            a rebuild), interleaved, and show what its threads really did:
            `cargo xtask try [options] -- CMD [ARGS...]`; writes reports/try.json
              --budget SECS        time for the timed runs in all (60)
              --runs N             timed runs of each configuration (instead of the budget)
              --timeout SECS       end a run and its process group after this long (300)
              --check-output       hold each run's stdout against the program's as it is; a
                                   configuration that changes it is never the answer
              --like SUITE/WORKLOAD/KEY=VALUE,...
                                   the suites' cell nearest your program, for the prediction
                                   (e.g. oversubscription/svd/n=256,matrices=16)
              --summary FILE       the verdict's settings from FILE (reports/summary.json)
  report    write reports/index.html, summary.json and summary.csv from Criterion's results,
            and print the verdict, findings and recommendations
              --out DIR            write into DIR instead of reports/
              --criterion DIR      read Criterion's results from DIR
              --compare FILE       put another run's summary.json beside this one
              --baseline NAME      put a Criterion baseline beside this run
              --compare-answers FILE  list where this run's recommendations and settings
                                   differ from another run's summary.json, and how many agree
              --mix-runs           judge every suite's latest run together (else the newest
                                   run of `cargo xtask bench` alone, the others left out)
";

/// A task and its options.
#[derive(Debug, PartialEq)]
pub enum Task {
    Help,
    Setup,
    Bench(Bench),
    Test,
    Report(Report),
    Try(Try),
}

#[derive(Debug, Default, PartialEq)]
pub struct Bench {
    pub quick: bool,
    pub suites: Vec<String>,
    pub layers: Vec<String>,
    pub kernel: KernelPolicy,
    /// `mpirun --hostfile` for the ranks-x-threads suite.
    pub hostfile: Option<PathBuf>,
    pub resume: bool,
    pub verbose: bool,
    /// Criterion's own per-benchmark pages and plots (off: they cost a quarter second each).
    pub criterion_plots: bool,
    /// Rounds of every contender, each a fresh process (`--rounds N`, at least 1).
    pub rounds: Option<u32>,
    pub criterion: Vec<String>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub out: Option<PathBuf>,
    pub criterion: Option<PathBuf>,
    pub compare: Option<PathBuf>,
    pub baseline: Option<String>,
    /// Another run's `summary.json` whose answers to hold against this run's.
    pub compare_answers: Option<PathBuf>,
    /// Judge every suite's latest run together, not the newest run of `cargo xtask bench`
    /// alone.
    pub mix_runs: bool,
}

#[derive(Debug, Default, PartialEq)]
pub struct Try {
    pub budget: Option<std::time::Duration>,
    pub runs: Option<u32>,
    pub timeout: Option<std::time::Duration>,
    pub check_output: bool,
    pub like: Option<String>,
    pub summary: Option<PathBuf>,
    /// The program and its arguments, as given after `--`.
    pub command: Vec<String>,
}

/// A positive number of seconds, for `--budget` and `--timeout`.
fn seconds(flag: &str, text: &str) -> anyhow::Result<std::time::Duration> {
    text.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| anyhow::anyhow!("{flag} {text:?}: a positive number of seconds"))
}

/// Parses `cargo xtask`'s arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<Task> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let task = match parser.next()? {
        None => return Ok(Task::Help),
        Some(Value(v)) => v.string()?,
        Some(Short('h') | Long("help")) => return Ok(Task::Help),
        Some(other) => bail!("{}; `cargo xtask` lists the tasks", other.unexpected()),
    };
    let unexpected = |arg: lexopt::Arg, task: &str| {
        anyhow::anyhow!(
            "{} for `cargo xtask {task}`; `cargo xtask` lists the options",
            arg.unexpected()
        )
    };
    let parsed = match task.as_str() {
        "help" => Task::Help,
        "setup" | "test" => {
            if let Some(arg) = parser.next()? {
                return Err(unexpected(arg, &task));
            }
            if task == "setup" {
                Task::Setup
            } else {
                Task::Test
            }
        }
        "bench" => {
            let mut b = Bench::default();
            while let Some(arg) = parser.next()? {
                match arg {
                    Long("quick") => b.quick = true,
                    Long("resume") => b.resume = true,
                    Long("verbose") => b.verbose = true,
                    Long("criterion-plots") => b.criterion_plots = true,
                    Long("rounds") => {
                        let text = parser.value()?.string()?;
                        b.rounds = Some(
                            text.parse::<u32>()
                                .ok()
                                .filter(|r| (1..=parcost::id::round::MAX).contains(r))
                                .ok_or_else(|| {
                                    anyhow::anyhow!(
                                        "--rounds {text:?}: a number of rounds from 1 to {}",
                                        parcost::id::round::MAX
                                    )
                                })?,
                        );
                    }
                    Long("suite") => b.suites.push(parser.value()?.string()?),
                    Long("layer") => b.layers.push(parser.value()?.string()?),
                    Long("hostfile") if b.hostfile.is_some() => {
                        bail!("one --hostfile at a time, please")
                    }
                    Long("hostfile") => b.hostfile = Some(parser.value()?.into()),
                    Long("kernel") => {
                        b.kernel = match parser.value()?.string()?.parse() {
                            Ok(k) => k,
                            Err(never) => match never {},
                        }
                    }
                    // After `--` (and any bare word): Criterion's own arguments.
                    Value(v) => b.criterion.push(v.string()?),
                    other => return Err(unexpected(other, "bench")),
                }
            }
            for name in &b.suites {
                if parcost::id::suite(name).is_none() {
                    bail!(
                        "unknown suite {name:?}; the suites are: {}",
                        parcost::id::SUITES.map(|s| s.name).join(", ")
                    );
                }
            }
            let mpi_suite = parcost::id::RANKS_X_THREADS.name;
            if b.hostfile.is_some()
                && !b.suites.is_empty()
                && !b.suites.iter().any(|s| s == mpi_suite)
            {
                bail!("--hostfile is for the {mpi_suite} suite, which this run leaves out");
            }
            Task::Bench(b)
        }
        "report" => {
            let mut r = Report::default();
            while let Some(arg) = parser.next()? {
                match arg {
                    Long("out") => r.out = Some(parser.value()?.into()),
                    Long("criterion") => r.criterion = Some(parser.value()?.into()),
                    Long("compare") if r.compare.is_some() => {
                        bail!("one --compare file at a time, please")
                    }
                    Long("compare") => r.compare = Some(parser.value()?.into()),
                    Long("baseline") => r.baseline = Some(parser.value()?.string()?),
                    Long("compare-answers") => r.compare_answers = Some(parser.value()?.into()),
                    Long("mix-runs") => r.mix_runs = true,
                    other => return Err(unexpected(other, "report")),
                }
            }
            if r.compare.is_some() && r.baseline.is_some() {
                bail!("use --compare or --baseline, not both");
            }
            Task::Report(r)
        }
        "try" => {
            let mut t = Try::default();
            while let Some(arg) = parser.next()? {
                match arg {
                    Long("budget") => {
                        t.budget = Some(seconds("--budget", &parser.value()?.string()?)?)
                    }
                    Long("timeout") => {
                        t.timeout = Some(seconds("--timeout", &parser.value()?.string()?)?)
                    }
                    Long("runs") => {
                        let text = parser.value()?.string()?;
                        t.runs = Some(text.parse::<u32>().ok().filter(|r| *r >= 3).ok_or_else(
                            || {
                                anyhow::anyhow!(
                                    "--runs {text:?}: at least 3 (an interval between runs)"
                                )
                            },
                        )?);
                    }
                    Long("check-output") => t.check_output = true,
                    Long("like") => t.like = Some(parser.value()?.string()?),
                    Long("summary") => t.summary = Some(parser.value()?.into()),
                    // The command: the first word (after `--`) and every word after it, as
                    // typed, its own options included.
                    Value(v) => {
                        t.command.push(v.string()?);
                        for raw in parser.raw_args()? {
                            t.command.push(
                                raw.into_string()
                                    .map_err(|a| anyhow::anyhow!("{a:?} is not valid UTF-8"))?,
                            );
                        }
                    }
                    other => return Err(unexpected(other, "try")),
                }
            }
            if t.command.is_empty() {
                bail!(
                    "`cargo xtask try` needs the command to run after `--`, e.g. \
                     `cargo xtask try -- ./my-program`"
                );
            }
            Task::Try(t)
        }
        other => bail!("unknown task {other:?}; `cargo xtask` lists the tasks"),
    };
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> anyhow::Result<Task> {
        parse(s.split_whitespace().map(OsString::from))
    }

    #[test]
    fn the_help_states_the_extra_rounds_and_their_budgets_as_the_bench_runs_them() {
        use report::rounds::{
            CONTENDER_FACTOR, EXTRA_ROUNDS, EXTRA_ROUNDS_UNTIL, PLANNED_ROUNDS_UNTIL,
            QUICK_EXTRA_ROUNDS, QUICK_EXTRA_ROUNDS_UNTIL, QUICK_PLANNED_ROUNDS_UNTIL,
        };
        let help = HELP.split_whitespace().collect::<Vec<_>>().join(" ");
        let planned = format!(
            "the variants within {CONTENDER_FACTOR}x of their workload's best, narrower when \
             their rounds would not end by {} s of suites (quick: {} s)",
            PLANNED_ROUNDS_UNTIL.as_secs(),
            QUICK_PLANNED_ROUNDS_UNTIL.as_secs()
        );
        assert!(help.contains(&planned), "{planned}");
        let said = format!(
            "then up to {EXTRA_ROUNDS} more (quick: {QUICK_EXTRA_ROUNDS}), one at a time, of what \
             is still near the 5% margin, while the suites have run under {} s (quick: {} s)",
            EXTRA_ROUNDS_UNTIL.as_secs(),
            QUICK_EXTRA_ROUNDS_UNTIL.as_secs()
        );
        assert!(help.contains(&said), "{said}");
    }

    #[test]
    fn bench_options_parse() {
        let Task::Bench(b) = parse_str(
            "bench --quick --suite task-level --suite ranks-x-threads --layer openmp --kernel skylakex --hostfile h --resume --criterion-plots -- --save-baseline a",
        )
        .expect("ok") else {
            panic!("a bench task");
        };
        assert!(b.quick && b.resume && b.criterion_plots && !b.verbose);
        assert_eq!(b.suites, ["task-level", "ranks-x-threads"]);
        assert_eq!(b.layers, ["openmp"]);
        assert_eq!(b.kernel, KernelPolicy::Named("skylakex".into()));
        assert_eq!(b.hostfile, Some(PathBuf::from("h")));
        assert_eq!(b.criterion, ["--save-baseline", "a"]);
        let Task::Bench(b) = parse_str("bench --kernel=library").expect("ok") else {
            panic!("a bench task");
        };
        assert_eq!(b.kernel, KernelPolicy::Library);
    }

    #[test]
    fn report_takes_equals_and_spaces() {
        let expected = Task::Report(Report {
            out: Some("x".into()),
            ..Report::default()
        });
        assert_eq!(parse_str("report --out=x").expect("ok"), expected);
        assert_eq!(parse_str("report --out x").expect("ok"), expected);
    }

    #[test]
    fn try_takes_its_command_whole_after_the_double_dash() {
        let Task::Try(t) = parse_str(
            "try --runs 5 --timeout 2.5 --check-output --like oversubscription/svd/n=256 -- cargo run --release --example naive-batch",
        )
        .expect("ok") else {
            panic!("a try task");
        };
        assert_eq!(t.runs, Some(5));
        assert_eq!(t.timeout, Some(std::time::Duration::from_millis(2500)));
        assert!(t.check_output);
        assert_eq!(t.like.as_deref(), Some("oversubscription/svd/n=256"));
        assert_eq!(
            t.command,
            ["cargo", "run", "--release", "--example", "naive-batch"]
        );
    }

    #[test]
    fn bad_input_is_one_line_naming_it() {
        for (args, needle) in [
            ("bench --suite nope", "unknown suite \"nope\""),
            ("bench --suite", "--suite"),
            ("bench --fast", "--fast"),
            ("report --compare a --baseline b", "not both"),
            ("report --compare a --compare b", "one --compare"),
            ("bench --hostfile a --hostfile b", "one --hostfile"),
            (
                "bench --suite task-level --hostfile h",
                "--hostfile is for the ranks-x-threads suite",
            ),
            ("setup extra", "extra"),
            ("try", "needs the command to run after `--`"),
            ("try --runs 2 -- x", "at least 3"),
            ("try --budget -1 -- x", "a positive number of seconds"),
            ("try --timeout 1e30 -- x", "a positive number of seconds"),
            ("frobnicate", "unknown task"),
        ] {
            let e = format!("{:#}", parse_str(args).expect_err(args));
            assert!(e.contains(needle), "{args}: {e}");
            assert!(!e.contains('\n'), "{args}: {e}");
        }
        assert_eq!(parse_str("").expect("help"), Task::Help);
        assert_eq!(parse_str("--help").expect("help"), Task::Help);
    }
}
