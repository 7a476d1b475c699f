//! Cost 1 across MPI: R ranks x B BLAS threads per rank, one MPI job a cell, driven from here.
//!
//! Ids (see `ranks_x_threads::grid`):
//! `ranks-x-threads/<batch|scatter>/layer=L,n=256,pairs=64,matrices=16/ranks=R,blas_threads=B`
//! and `ranks-x-threads/startup/layer=L/ranks=R,blas_threads=B`; the default cell (`mpirun -np
//! P`, nothing set) ends in `variant=default,ranks=P` instead. Every variant's sidecar record
//! keeps what each rank saw from inside: its CPUs and BLAS threads (`ranks_seen`).
//!
//! This binary is also the ranks: `mpirun ... <this binary> --parcost-rank`.

fn main() {
    #[cfg(feature = "mpi")]
    {
        ranks_x_threads::rank::serve_if_rank();
        suite::run();
    }
    #[cfg(not(feature = "mpi"))]
    eprintln!(
        "parcost ranks-x-threads: skipped: built without MPI (its `mpi` feature); `cargo xtask \
         bench` turns it on once `cargo xtask setup` has found or installed OpenMPI, by hand: \
         cargo bench -p ranks-x-threads --features mpi"
    );
}

#[cfg(feature = "mpi")]
mod suite {
    use std::path::PathBuf;
    use std::time::Duration;

    use parcost::blas::BlasLayer;
    use parcost::harness::{Suite, fail};
    use parcost::layer::Library;
    use parcost::meta::Usage;
    use ranks_x_threads::SUITE;
    use ranks_x_threads::batch::{self, Shape};
    use ranks_x_threads::grid::{self, Setting};
    use ranks_x_threads::job::{self, Job, Launch};
    use ranks_x_threads::procs;
    use ranks_x_threads::protocol::{JOB_VAR, Workload};

    /// `cargo xtask bench --hostfile FILE` passes the hostfile here.
    const HOSTFILE_VAR: &str = "PARCOST_MPI_HOSTFILE";

    /// Criterion's `--quick` samples (1, 2, 4, ... iterations) until the spread is under 5% or
    /// this much time has passed (its `--measurement-time`, 1 s in `cargo xtask bench --quick`):
    /// with the quick batch at 0.05-0.1 s an iteration, a few iterations, so every cell under
    /// every layer stays within a minute.
    const QUICK_MEASUREMENT: Duration = Duration::from_millis(500);

    /// What a benchmark of one workload keeps between iterations.
    struct State<'a> {
        job: &'a mut Job,
        workload: Workload,
        runs: u64,
        sums: Vec<f64>,
    }

    /// Every rank loaded the bench's OpenBLAS layer and runs BLAS at the cell's count; in the
    /// default cell no rank saw a count, and each runs at OpenBLAS's own (said in a line).
    fn check_ranks(job: &Job, layer: BlasLayer, setting: Setting) {
        let want = match setting.blas_threads() {
            Some(b) if layer.is_threaded() => Some(b),
            Some(_) => Some(1),
            None => None,
        };
        if want.is_none() {
            let seen: Vec<String> = job
                .hello()
                .ranks
                .iter()
                .map(|r| {
                    format!(
                        "rank {} may run on CPUs {:?} at {} BLAS thread(s)",
                        r.rank, r.cpus, r.blas_threads
                    )
                })
                .collect();
            eprintln!(
                "parcost {SUITE}: cell {} (mpirun -np {}, nothing set): {}",
                job.cell(),
                setting.ranks(),
                seen.join("; ")
            );
        }
        for r in &job.hello().ranks {
            if want.is_none()
                && let Some(v) = &r.env_threads
            {
                fail(
                    SUITE,
                    format!(
                        "cell {}: rank {} saw OPENBLAS_NUM_THREADS={v}, which the default cell \
                         does not set",
                        job.cell(),
                        r.rank
                    ),
                );
            }
            if r.layer != layer.name() {
                fail(
                    SUITE,
                    format!(
                        "cell {}: rank {} on {} loaded the OpenBLAS layer {}, the bench {layer} \
                         (every host needs the same LD_LIBRARY_PATH)",
                        job.cell(),
                        r.rank,
                        r.host,
                        r.layer
                    ),
                );
            }
            if let Some(want) = want
                && r.blas_threads as usize != want
            {
                fail(
                    SUITE,
                    format!(
                        "cell {}: rank {} runs BLAS at {} threads, not {want}",
                        job.cell(),
                        r.rank,
                        r.blas_threads
                    ),
                );
            }
        }
    }

    pub fn run() {
        let mut suite = Suite::with_blas(SUITE);
        let layer = suite
            .layer()
            .unwrap_or_else(|| fail(SUITE, "no BLAS layer"));
        // Its ranks call OpenBLAS: a native layer asked for (plain `cargo bench` asks for
        // OpenBLAS and faer) is skipped with a line, and without OpenBLAS nothing runs, rather
        // than the host's OpenBLAS under the native layer's name.
        let layers = suite.layers();
        for native in layers.iter().filter(|l| l.library() != Library::OpenBlas) {
            suite.skip(
                &format!("layer={}", native.name()),
                "MPI ranks here run OpenBLAS only",
            );
        }
        if !layers.iter().any(|l| l.library() == Library::OpenBlas) {
            suite.finish();
            return;
        }
        let p = suite.logical_cores();
        if !job::mpirun_available() {
            suite.skip(
                "every cell",
                &format!(
                    "{} cannot be started (OpenMPI: cargo xtask setup installs it)",
                    job::mpirun().display()
                ),
            );
            suite.finish();
            return;
        }
        if !layer.is_threaded() {
            suite.skip(
                "BLAS threads > 1",
                "the serial OpenBLAS layer runs every call on one thread",
            );
        }
        let exe = std::env::current_exe().unwrap_or_else(|e| fail(SUITE, e));
        let hostfile = std::env::var_os(HOSTFILE_VAR)
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        // With a hostfile, `hosts=H` is the hosts the ranks ran on, known once a job is up: at
        // most the hostfile's hosts (and the job's ranks).
        let hostfile_hosts = hostfile.as_ref().map(|h| {
            let text = std::fs::read_to_string(h)
                .unwrap_or_else(|e| fail(SUITE, format!("hostfile {}: {e}", h.display())));
            job::hostfile_hosts(&text)
        });
        let layer_name = layer.name();
        // The id carries the batch: a quick run measures a quarter of it.
        let shape = if suite.is_quick() {
            Shape::QUICK
        } else {
            Shape::SUITE
        };
        let mut reference: Option<Vec<f64>> = None;

        // The grid, then what a user who sets nothing runs.
        let settings = grid::cells(p, layer.is_threaded())
            .into_iter()
            .map(Setting::from)
            .chain([Setting::default_for(p)]);
        for cell in settings {
            let ids_at = |hosts: Option<usize>| -> Vec<(Workload, String)> {
                Workload::ALL
                    .iter()
                    .map(|&w| (w, grid::id(w.name(), layer_name, &shape, cell, hosts)))
                    .collect()
            };
            let may_run = |hosts: Option<usize>| {
                suite.runs(&grid::startup_id(layer_name, cell, hosts))
                    || ids_at(hosts).iter().any(|(_, id)| suite.runs(id))
            };
            let runs = match hostfile_hosts {
                Some(h) => (1..=h.min(cell.ranks()).max(1)).any(|h| may_run(Some(h))),
                None => may_run(None),
            };
            if !runs {
                continue;
            }
            // Until the ranks say where they run, the cell is named by the hostfile's hosts.
            let name = grid::cell_name(layer_name, cell, hostfile_hosts);
            let mut launch = match cell {
                Setting::Grid(c) => Launch::new(&exe, c.ranks, c.blas_threads, name),
                Setting::Default { ranks } => Launch::user_default(&exe, ranks, name),
            };
            if let Some(h) = &hostfile {
                launch = launch
                    .hostfile(h.clone())
                    .unwrap_or_else(|e| fail(SUITE, format!("hostfile {}: {e}", h.display())));
            }
            let mut job = launch.start().unwrap_or_else(|e| fail(SUITE, e));
            let hosts = hostfile.as_ref().map(|_| job.hello().hosts());
            job.rename_cell(grid::cell_name(layer_name, cell, hosts));
            let ids = ids_at(hosts);
            let startup_id = grid::startup_id(layer_name, cell, hosts);
            check_ranks(&job, layer, cell);
            let seen = job.hello().seen();
            // The start-up: one run a cell (a job is started once), not sampled.
            let mut group = suite.group("startup");
            let startup = Usage::of_wall(job.startup(), job.startup_usage());
            let below = startup_id.split_once('/').map_or("", |(_, rest)| rest);
            group.record_once(
                below,
                startup,
                "MPI job start-up: mpirun to the first answer",
            );
            group.ranks_seen(below, &seen);
            group.finish();

            job.prepare(shape).unwrap_or_else(|e| fail(SUITE, e));
            let reference = reference.get_or_insert_with(|| batch::reference(&shape));
            for (workload, id) in &ids {
                let below = id.split_once('/').map_or("", |(_, rest)| rest);
                let quick = suite.is_quick();
                let mut group = suite.group(workload.name());
                if quick {
                    group.criterion().measurement_time(QUICK_MEASUREMENT);
                }
                group.bench_with_processes(
                    below,
                    State {
                        job: &mut job,
                        workload: *workload,
                        runs: 0,
                        sums: Vec::new(),
                    },
                    |s| {
                        // The first run, the one checked, also checks what the gather delivered.
                        let verify = s.runs == 0;
                        s.runs += 1;
                        s.sums = s
                            .job
                            .run(s.workload, verify)
                            .unwrap_or_else(|e| fail(SUITE, e));
                    },
                    |s| batch::check(&s.sums, reference),
                    |s| Some(s.job.usage().unwrap_or_else(|e| fail(SUITE, e))),
                );
                let busy = job.take_busy_threads();
                let running = job.hello().seen_running(busy.as_deref());
                group.ranks_seen(below, &running);
                group.finish();
            }
            job.shutdown().unwrap_or_else(|e| fail(SUITE, e));
        }

        // After the suite: no launcher, daemon or rank of any of its jobs is left.
        let every_job = format!("{}-", job::mark_prefix());
        let mut left = procs::carrying(JOB_VAR, procs::Value::StartsWith(&every_job));
        left.extend(procs::children_named(&procs::LAUNCHER_NAMES));
        if !left.is_empty() {
            fail(
                SUITE,
                format!(
                    "processes of its MPI jobs remain after the suite: {}",
                    left.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        suite.finish();
    }
}
