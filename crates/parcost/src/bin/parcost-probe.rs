//! Prints one JSON line of what this process sees through the libraries' own APIs: OpenBLAS's
//! thread count, kernel and layer, rayon's global pool, matrixmultiply's thread count, the CPUs
//! it may run on, `OMP_NUM_THREADS`, its MPI rank and size (fields: `parcost::probe::Seen`).
//!
//! The report runs every setting it prints against this program before it shows it.
//! `parcost-probe --rayon-pool T`: also builds a rayon pool exactly as the printed line does and
//! reports its size seen from inside. `parcost-probe --faer-par B --tasks T`: also runs a
//! 64 x 64 faer product at `Par` B (`Par::Seq` for 1) in each of T tasks of a pool of max(T, B)
//! threads and checks each against a serial triple loop.

use std::io::Write;
use std::process::ExitCode;

use parcost::probe::{
    self, FAER_N, FAER_PAR_FLAG, FaerSeen, PoolSeen, RAYON_POOL_FLAG, TASKS_FLAG,
};

#[derive(Debug, Default)]
struct Args {
    rayon_pool: Option<usize>,
    faer_par: Option<usize>,
    tasks: Option<usize>,
}

fn parse() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long(f) if f == &RAYON_POOL_FLAG[2..] => {
                args.rayon_pool = Some(parser.value()?.parse()?);
            }
            Long(f) if f == &FAER_PAR_FLAG[2..] => args.faer_par = Some(parser.value()?.parse()?),
            Long(f) if f == &TASKS_FLAG[2..] => args.tasks = Some(parser.value()?.parse()?),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(args)
}

/// The pool exactly as `report::settings` prints it:
/// `let pool = rayon::ThreadPoolBuilder::new().num_threads(T).build()?;`
fn rayon_pool(threads: usize) -> Result<PoolSeen, rayon::ThreadPoolBuildError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    Ok(PoolSeen {
        asked: threads,
        current_num_threads: pool.install(rayon::current_num_threads),
    })
}

/// Small integers: every product and sum below is exact, in any order.
fn input(seed: usize) -> Vec<f64> {
    (0..FAER_N * FAER_N)
        .map(|i| ((i * 7 + seed * 3) % 11) as f64 - 5.0)
        .collect()
}

fn serial_product(a: &[f64], b: &[f64]) -> Vec<f64> {
    let n = FAER_N;
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            for j in 0..n {
                c[i * n + j] += a[i * n + k] * b[k * n + j];
            }
        }
    }
    c
}

fn faer_tasks(par: usize, tasks: usize) -> Result<FaerSeen, rayon::ThreadPoolBuildError> {
    use rayon::prelude::*;
    let pool_threads = tasks.max(par).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(pool_threads)
        .build()?;
    let (a, b) = (input(1), input(2));
    let reference = serial_product(&a, &b);
    let results: Vec<bool> = pool.install(|| {
        (0..tasks)
            .into_par_iter()
            .map(|_| {
                let n = FAER_N;
                let mut c = vec![f64::NAN; n * n];
                faer::linalg::matmul::matmul(
                    faer::MatMut::from_row_major_slice_mut(&mut c, n, n),
                    faer::Accum::Replace,
                    faer::MatRef::from_row_major_slice(&a, n, n),
                    faer::MatRef::from_row_major_slice(&b, n, n),
                    1.0,
                    parcost::native::faer_par(par),
                );
                c == reference
            })
            .collect()
    });
    Ok(FaerSeen {
        tasks,
        par,
        pool_threads,
        ran: results.len(),
        matches: results.iter().all(|&m| m),
    })
}

fn run(args: &Args) -> Result<String, Box<dyn std::error::Error>> {
    let mut seen = probe::look()?;
    if let Some(t) = args.rayon_pool {
        seen.rayon_pool = Some(rayon_pool(t)?);
    }
    match (args.faer_par, args.tasks) {
        (Some(b), t) => seen.faer = Some(faer_tasks(b, t.unwrap_or(1))?),
        (None, Some(_)) => return Err(format!("{TASKS_FLAG} goes with {FAER_PAR_FLAG}").into()),
        (None, None) => {}
    }
    Ok(serde_json::to_string(&seen)?)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: parcost-probe: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(mut line) => {
            // One write, so the lines of several MPI ranks do not interleave.
            line.push('\n');
            let mut out = std::io::stdout().lock();
            if out
                .write_all(line.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: parcost-probe: {e}");
            ExitCode::FAILURE
        }
    }
}
