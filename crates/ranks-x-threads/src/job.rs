//! Driving one MPI job from the bench: `mpirun -np R ... <rank binary> --parcost-rank`, its
//! start-up timed to rank 0's first answer, requests on mpirun's stdin and answers on its stdout
//! (OpenMPI forwards both to and from rank 0 on whichever host it runs), and a teardown that
//! leaves no process of the job behind.
//!
//! Every wait is bounded: the start-up, each answer, and the teardown. A rank that dies, or does
//! not finish its part by the deadline, is an error of one line naming the rank and the cell,
//! and the job is torn down before the error is returned.
//!
//! Teardown: close mpirun's stdin (rank 0 then tells every rank to finalize and exit), wait for
//! mpirun to exit; after a grace period SIGTERM it (OpenMPI then kills its ranks), then SIGKILL
//! it; reap it; then kill and reap whatever still carries the job's mark in its environment
//! (this process is made their subreaper, so orphaned ranks come to it), and check that nothing
//! is left.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parcost::fdio::FdChannel;
use parcost::meta::Extra;
use parcost::worker::{process_cpu_time, wait_for_exit};

use crate::batch::Shape;
use crate::procs::{self, Proc, Value};
use crate::protocol::{Answer, Hello, JOB_VAR, RANK_FLAG, RankUsage, Request, Workload};
use crate::whereabouts;

/// How long rank 0 may take to answer a request to run an iteration (the ranks' own deadline for
/// their parts; the bench waits [`ANSWER_GRACE`] longer). The worst oversubscribed cells take
/// seconds an iteration on 2 cores.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// How long mpirun may take to bring every rank up and answer.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Beyond the ranks' deadline, for rank 0's refusal to arrive.
pub const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// How long a job whose input is closed gets to finish before mpirun is signalled.
pub const QUIT_GRACE: Duration = Duration::from_secs(5);

/// How long mpirun gets after SIGTERM, and a killed process to be gone.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// Where the job's launcher is: `PARCOST_MPIRUN`, else `mpirun` on the `PATH`.
pub fn mpirun() -> PathBuf {
    std::env::var_os("PARCOST_MPIRUN")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("mpirun"), PathBuf::from)
}

/// Whether `mpirun` can be started here.
pub fn mpirun_available() -> bool {
    Command::new(mpirun())
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The environment variables a rank needs from the bench's: the OpenBLAS layer (through the
/// loader's path) and kernel, and how the kernel was chosen. `mpirun -x` forwards them to ranks
/// on other hosts too.
pub const FORWARDED_VARS: [&str; 4] = [
    "LD_LIBRARY_PATH",
    "OPENBLAS_CORETYPE",
    parcost::kernel::SOURCE_VAR,
    parcost::kernel::LIBRARY_CORE_VAR,
];

/// The variables that set OpenBLAS's (and OpenMP's) thread count: a grid cell sets the first and
/// the last to B, the default cell leaves all of them out of its job, as a user who sets
/// nothing does.
pub const THREAD_VARS: [&str; 3] = [
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OMP_NUM_THREADS",
];

/// What went wrong with a job. Every message is one line and names the cell.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cell {cell}: cannot start {mpirun}: {source}")]
    Spawn {
        cell: String,
        mpirun: String,
        source: std::io::Error,
    },
    #[error("cell {cell}: {who} died while {doing}{detail}")]
    Died {
        cell: String,
        who: String,
        doing: String,
        detail: String,
    },
    /// `whereabouts`: where the ranks were when asked ([`crate::whereabouts::describe`]),
    /// the rank the others waited for first; empty when none said.
    #[error("cell {cell}: rank 0 did not answer within {:.0} s while {doing}{}; the job was killed", after.as_secs_f64(), if whereabouts.is_empty() { String::new() } else { format!(": {whereabouts}") })]
    NoAnswer {
        cell: String,
        doing: String,
        after: Duration,
        whereabouts: String,
    },
    #[error("cell {cell}: {message}; the job was aborted")]
    Refused { cell: String, message: String },
    #[error("cell {cell}: rank 0 answered garbage while {doing}: {line}")]
    Garbage {
        cell: String,
        doing: String,
        line: String,
    },
    #[error("cell {cell}: processes of the job remain after its teardown: {}", procs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Leftover { cell: String, procs: Vec<Proc> },
}

/// How to start a job.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The rank binary: the bench itself, run with `--parcost-rank`.
    pub exe: PathBuf,
    pub ranks: usize,
    /// `Some(B)`: a grid cell, ranks unbound (`--bind-to none`) and `OPENBLAS_NUM_THREADS=B`
    /// (each rank also sets B through OpenBLAS's API). `None`: the user's default, `mpirun -np
    /// R` and nothing else: OpenMPI's own binding, no thread count in the ranks' environment,
    /// OpenBLAS's own choice.
    pub blas_threads: Option<usize>,
    /// The cell, as error messages name it.
    pub cell: String,
    /// `mpirun --hostfile`: the rank binary must exist at the same path on every host.
    pub hostfile: Option<PathBuf>,
    /// Ranks this machine (or the hostfile) holds before `--oversubscribe` is needed.
    pub slots: usize,
    pub start_timeout: Duration,
    pub answer_timeout: Duration,
}

static JOBS: AtomicU64 = AtomicU64::new(0);

/// The mark of this process's jobs: `PARCOST_MPI_JOB` as this process was given it (a test or
/// the xtask telling its jobs apart), else `parcost-<pid>`. Each job's mark starts with it.
pub fn mark_prefix() -> String {
    std::env::var(JOB_VAR)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("parcost-{}", std::process::id()))
}

/// Slots in a hostfile: the sum of its `slots=N` (a host without one counts 1, which at worst
/// passes `--oversubscribe` where it was not needed).
pub fn hostfile_slots(text: &str) -> usize {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("slots=")?.parse::<usize>().ok())
                .unwrap_or(1)
        })
        .sum()
}

/// Distinct hosts in a hostfile.
pub fn hostfile_hosts(text: &str) -> usize {
    let hosts: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split('#').next()?.split_whitespace().next())
        .collect();
    hosts.len()
}

impl Launch {
    /// A job of `ranks` ranks at `blas_threads` each on this machine (slots: its physical
    /// cores, as OpenMPI counts them).
    pub fn new(exe: impl Into<PathBuf>, ranks: usize, blas_threads: usize, cell: String) -> Self {
        Self {
            blas_threads: Some(blas_threads),
            ..Self::user_default(exe, ranks, cell)
        }
    }

    /// A job as a user runs it who sets nothing: `mpirun -np ranks`, OpenMPI's own binding,
    /// no BLAS thread count anywhere.
    pub fn user_default(exe: impl Into<PathBuf>, ranks: usize, cell: String) -> Self {
        Self {
            exe: exe.into(),
            ranks,
            blas_threads: None,
            cell,
            hostfile: None,
            slots: parcost::topology::Topology::detect().physical,
            start_timeout: DEFAULT_START_TIMEOUT,
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
        }
    }

    /// Runs the ranks on the hosts of `hostfile`.
    pub fn hostfile(mut self, hostfile: PathBuf) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(&hostfile)?;
        self.slots = hostfile_slots(&text);
        self.hostfile = Some(hostfile);
        Ok(self)
    }

    /// mpirun's arguments for a job marked `mark`.
    pub fn args(&self, mark: &str) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["-np".into(), self.ranks.to_string().into()];
        if self.ranks > self.slots {
            a.push("--oversubscribe".into());
        }
        if let Some(h) = &self.hostfile {
            a.push("--hostfile".into());
            a.push(h.clone().into());
        }
        let mut set = vec![format!("{JOB_VAR}={mark}")];
        if let Some(b) = self.blas_threads {
            // OpenMPI binds each rank to one core when np <= 2, which would put all of a rank's
            // BLAS threads on that core: the grid leaves placement to the kernel. The default
            // cell keeps OpenMPI's binding, and sets no thread count.
            a.extend(["--bind-to", "none"].map(OsString::from));
            set.extend([
                format!("OPENBLAS_NUM_THREADS={b}"),
                format!("OMP_NUM_THREADS={b}"),
            ]);
        }
        for var in FORWARDED_VARS {
            if let Some(v) = std::env::var_os(var).and_then(|v| v.into_string().ok()) {
                set.push(format!("{var}={v}"));
            }
        }
        for s in set {
            a.push("-x".into());
            a.push(s.into());
        }
        a.push(self.exe.clone().into());
        a.push(RANK_FLAG.into());
        a
    }

    /// Starts the job and waits for rank 0's first answer (the start-up, timed).
    pub fn start(self) -> Result<Job, JobError> {
        procs::become_subreaper();
        register_exit_hook();
        let mark = format!("{}-{}", mark_prefix(), JOBS.fetch_add(1, Ordering::Relaxed));
        let mpirun = mpirun();
        let mut cmd = Command::new(&mpirun);
        cmd.args(self.args(&mark)).env(JOB_VAR, &mark);
        // Local ranks inherit mpirun's environment: a grid cell's count, and for the default
        // cell none (not even one the bench was started with).
        for var in THREAD_VARS {
            cmd.env_remove(var);
        }
        if let Some(b) = self.blas_threads {
            cmd.env("OPENBLAS_NUM_THREADS", b.to_string())
                .env("OMP_NUM_THREADS", b.to_string());
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // OpenMPI refuses to run as root without these; set for this job only.
            cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
                .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        }
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|source| JobError::Spawn {
            cell: self.cell.clone(),
            mpirun: mpirun.display().to_string(),
            source,
        })?;
        // Requests are written with a deadline too: a job that stops reading is an error, not a
        // bench blocked forever.
        let stdin = child
            .stdin
            .take()
            .and_then(|s| FdChannel::new(OwnedFd::from(s), self.answer_timeout).ok());
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(err) = stderr {
            let (tail, done) = (Arc::clone(&tail), Arc::clone(&stderr_done));
            let _ = std::thread::Builder::new()
                .name("mpirun-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(err).lines().map_while(Result::ok) {
                        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                        if t.len() == STDERR_LINES {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                    done.store(true, Ordering::Release);
                });
        }
        let mut job = Job {
            pid: child.id(),
            child,
            stdin,
            stdout: stdout.map(LineReader::new),
            stderr: tail,
            stderr_done,
            noise: VecDeque::new(),
            mark,
            launch: self,
            hello: None,
            startup: Duration::ZERO,
            startup_usage: Extra::default(),
            busy: None,
            torn_down: false,
        };
        live_jobs(|l| l.push((job.pid, Vec::new())));
        let answer = job.answer("starting", started + job.launch.start_timeout)?;
        job.startup = started.elapsed();
        let hello = answer.hello.ok_or_else(|| {
            job.fail(|cell| JobError::Garbage {
                cell,
                doing: "starting".into(),
                line: "a first answer without the ranks' hello".into(),
            })
        })?;
        job.startup_usage = job.with_mpirun(hello.usage);
        let pids: Vec<u32> = hello
            .ranks
            .iter()
            .filter(|r| r.host == local_host())
            .map(|r| r.pid)
            .collect();
        let pid = job.pid;
        live_jobs(|l| {
            if let Some(e) = l.iter_mut().find(|e| e.0 == pid) {
                e.1 = pids;
            }
        });
        job.hello = Some(hello);
        Ok(job)
    }
}

/// How long the bench waits for the ranks to say where they are, once asked.
const WHEREABOUTS_WAIT: Duration = Duration::from_secs(3);

/// Lines of mpirun's stderr kept for error messages.
const STDERR_LINES: usize = 200;

/// Reads lines from a pipe until a deadline.
#[derive(Debug)]
struct LineReader {
    fd: OwnedFd,
    pending: Vec<u8>,
}

enum ReadEnd {
    Closed,
    Timeout,
}

impl LineReader {
    fn new(fd: OwnedFd) -> Self {
        Self {
            fd,
            pending: Vec::new(),
        }
    }

    fn read_line(&mut self, deadline: Instant) -> Result<String, ReadEnd> {
        loop {
            if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=pos).collect();
                return Ok(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ReadEnd::Timeout);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n <= 0 {
                continue;
            }
            let mut chunk = [0u8; 8192];
            // SAFETY: reads into a live stack buffer of the stated length.
            let got =
                unsafe { libc::read(self.fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            match got {
                0 => return Err(ReadEnd::Closed),
                n if n > 0 => self.pending.extend_from_slice(&chunk[..n as usize]),
                _ => {
                    let e = std::io::Error::last_os_error();
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                    ) {
                        return Err(ReadEnd::Closed);
                    }
                }
            }
        }
    }
}

/// A running job.
#[derive(Debug)]
pub struct Job {
    child: Child,
    pid: u32,
    stdin: Option<FdChannel>,
    stdout: Option<LineReader>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_done: Arc<std::sync::atomic::AtomicBool>,
    /// Lines on mpirun's stdout that were not answers.
    noise: VecDeque<String>,
    mark: String,
    launch: Launch,
    hello: Option<Hello>,
    startup: Duration,
    startup_usage: Extra,
    /// Each rank's busy threads in the last checked run.
    busy: Option<Vec<u32>>,
    torn_down: bool,
}

/// This host's name, as the ranks report theirs ("unknown" where it cannot be read).
pub fn local_host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the live buffer.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Job {
    /// Every rank's description, from its first answer.
    pub fn hello(&self) -> &Hello {
        // Set by `start` before the job is handed out.
        self.hello
            .as_ref()
            .unwrap_or_else(|| unreachable!("a started job has said hello"))
    }

    /// From spawning mpirun to rank 0's first answer (every rank up, MPI initialised).
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// CPU time (mpirun and every rank) and the ranks' context switches over the start-up.
    pub fn startup_usage(&self) -> Extra {
        self.startup_usage
    }

    /// The mark every process of this job carries in its environment.
    pub fn mark(&self) -> &str {
        &self.mark
    }

    pub fn mpirun_pid(&self) -> u32 {
        self.pid
    }

    pub fn cell(&self) -> &str {
        &self.launch.cell
    }

    /// Names the cell anew for error messages (once the hosts the ranks ran on are known).
    pub fn rename_cell(&mut self, cell: String) {
        self.launch.cell = cell;
    }

    /// Pids of the ranks on this host, by rank.
    pub fn local_ranks(&self) -> Vec<(u32, u32)> {
        let host = local_host();
        self.hello()
            .ranks
            .iter()
            .filter(|r| r.host == host)
            .map(|r| (r.rank, r.pid))
            .collect()
    }

    /// Makes every rank's inputs and buffers.
    pub fn prepare(&mut self, shape: Shape) -> Result<(), JobError> {
        self.request(&Request::Prepare { shape }, self.launch.answer_timeout)
            .map(drop)
    }

    /// One iteration of `workload`: every item's checksums, as rank 0 reduced (or, with
    /// `verify`, as it recomputed them from what the gather delivered).
    pub fn run(&mut self, workload: Workload, verify: bool) -> Result<Vec<f64>, JobError> {
        self.run_with(workload, verify, false)
    }

    /// [`Job::run`], with `corrupt`: the last rank spoils one result (tests).
    pub fn run_with(
        &mut self,
        workload: Workload,
        verify: bool,
        corrupt: bool,
    ) -> Result<Vec<f64>, JobError> {
        let request = Request::Run {
            workload,
            verify,
            corrupt,
            deadline_ms: self.deadline_ms(),
        };
        let answer = self.request(&request, self.launch.answer_timeout + ANSWER_GRACE)?;
        if answer.busy_threads.is_some() {
            self.busy = answer.busy_threads.clone();
        }
        answer.checksums().ok_or_else(|| {
            self.fail(|cell| JobError::Garbage {
                cell,
                doing: request.describe(),
                line: "an answer without checksums".into(),
            })
        })
    }

    /// Each rank's threads busy during its part of the last checked run (`verify`), by rank
    /// (`u32::MAX`: unknown), and forgets them.
    pub fn take_busy_threads(&mut self) -> Option<Vec<u32>> {
        self.busy.take()
    }

    /// Tests: every rank (or rank `only`) sleeps `ms` as its part of an iteration.
    pub fn sleep(&mut self, ms: u64, only: Option<u32>) -> Result<(), JobError> {
        let request = Request::Sleep {
            ms,
            only,
            deadline_ms: self.deadline_ms(),
        };
        self.request(&request, self.launch.answer_timeout + ANSWER_GRACE)
            .map(drop)
    }

    /// Tests: rank `only` sleeps `ms` before a barrier the others wait in, where no deadline
    /// of the ranks' reaches: only the bench's own timeout sees it.
    pub fn stall(&mut self, ms: u64, only: u32) -> Result<(), JobError> {
        self.request(
            &Request::Stall { ms, only },
            self.launch.answer_timeout + ANSWER_GRACE,
        )
        .map(drop)
    }

    /// Tests: sends a request and does not wait for its answer.
    pub fn send_only(&mut self, request: &Request) -> Result<(), JobError> {
        self.send(request)
    }

    fn deadline_ms(&self) -> u64 {
        u64::try_from(self.launch.answer_timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// CPU time of mpirun and every rank so far, and the ranks' context switches.
    pub fn usage(&mut self) -> Result<Extra, JobError> {
        let answer = self.request(&Request::Usage, self.launch.answer_timeout)?;
        let usage = answer.usage.ok_or_else(|| {
            self.fail(|cell| JobError::Garbage {
                cell,
                doing: "reporting its CPU usage".into(),
                line: "an answer without usage".into(),
            })
        })?;
        Ok(self.with_mpirun(usage))
    }

    fn with_mpirun(&self, ranks: RankUsage) -> Extra {
        let mpirun = process_cpu_time(self.pid).unwrap_or_default();
        Extra {
            cpu: Duration::from_nanos(ranks.cpu_ns) + mpirun,
            voluntary_switches: ranks.voluntary,
            involuntary_switches: ranks.involuntary,
        }
    }

    fn send(&mut self, request: &Request) -> Result<(), JobError> {
        let doing = request.describe();
        let mut line = serde_json::to_vec(request).unwrap_or_default();
        line.push(b'\n');
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(&line),
            None => Err(parcost::fdio::FdError::Closed),
        };
        match written {
            Ok(()) => Ok(()),
            Err(parcost::fdio::FdError::Timeout(after)) => {
                let whereabouts = self.whereabouts();
                Err(self.fail(|cell| JobError::NoAnswer {
                    cell,
                    doing: format!("taking the request for {doing}"),
                    after,
                    whereabouts,
                }))
            }
            Err(_) => Err(self.died(&doing)),
        }
    }

    fn request(&mut self, request: &Request, timeout: Duration) -> Result<Answer, JobError> {
        self.send(request)?;
        self.answer(&request.describe(), Instant::now() + timeout)
    }

    /// Reads rank 0's next answer, skipping lines that are not answers.
    fn answer(&mut self, doing: &str, deadline: Instant) -> Result<Answer, JobError> {
        let started = Instant::now();
        loop {
            let line = match self.stdout.as_mut() {
                Some(out) => out.read_line(deadline),
                None => Err(ReadEnd::Closed),
            };
            let line = match line {
                Ok(line) => line,
                Err(ReadEnd::Closed) => return Err(self.died(doing)),
                Err(ReadEnd::Timeout) => {
                    let after = started.elapsed();
                    let whereabouts = self.whereabouts();
                    return Err(self.fail(|cell| JobError::NoAnswer {
                        cell,
                        doing: doing.to_owned(),
                        after,
                        whereabouts,
                    }));
                }
            };
            match Answer::parse(&line) {
                None => {
                    if self.noise.len() == 20 {
                        self.noise.pop_front();
                    }
                    self.noise.push_back(line);
                }
                Some(Err(e)) => {
                    return Err(self.fail(|cell| JobError::Garbage {
                        cell,
                        doing: doing.to_owned(),
                        line: e.chars().take(200).collect(),
                    }));
                }
                Some(Ok(a)) => {
                    if let Some(message) = a.error {
                        return Err(self.fail(|cell| JobError::Refused {
                            cell,
                            message: one_line(&message),
                        }));
                    }
                    return Ok(a);
                }
            }
        }
    }

    /// Asks every rank where it is (`SIGUSR1` to mpirun, which forwards it to every rank of
    /// the job) and reads their reports from mpirun's stderr for up to [`WHEREABOUTS_WAIT`]:
    /// where they were, the rank the others waited for first ([`whereabouts::describe`]).
    fn whereabouts(&self) -> String {
        let reports = || -> Vec<whereabouts::Report> {
            self.stderr
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter_map(|l| whereabouts::Report::parse(l))
                .collect()
        };
        // Asked once: the job is torn down after it.
        procs::signal(self.pid, libc::SIGUSR1);
        let until = Instant::now() + WHEREABOUTS_WAIT;
        loop {
            let got = reports();
            if got.len() >= self.launch.ranks
                || Instant::now() >= until
                || self.stderr_done.load(Ordering::Acquire)
            {
                return whereabouts::describe(&got, self.launch.ranks);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Tears the job down and returns `error(cell)`: an error is never returned with the job
    /// still running.
    fn fail(&mut self, error: impl FnOnce(String) -> JobError) -> JobError {
        let _ = self.teardown();
        error(self.launch.cell.clone())
    }

    /// The job ended under us (mpirun's stdout closed or its stdin broke): wait for mpirun to
    /// exit, then name the rank from what it printed.
    fn died(&mut self, doing: &str) -> JobError {
        let exited = wait_for_exit(self.pid, Duration::from_secs(10));
        // What mpirun printed last reaches the reader thread just before it exits.
        let until = Instant::now() + Duration::from_secs(2);
        while exited && !self.stderr_done.load(Ordering::Acquire) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = self.child.try_wait().ok().flatten();
        let lines: Vec<String> = self
            .stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .chain(self.noise.iter())
            .cloned()
            .collect();
        let culprit = culprit(&lines);
        let ranks = self
            .hello
            .as_ref()
            .map(|h| h.ranks.clone())
            .unwrap_or_default();
        let who = match &culprit {
            Some(c) => {
                let info = ranks.iter().find(|r| r.rank == c.rank);
                let pid = c.pid.filter(|&p| p != 0).or(info.map(|i| i.pid));
                let host = c.host.clone().or(info.map(|i| i.host.clone()));
                match (pid, host) {
                    (Some(pid), Some(host)) => format!("rank {} (pid {pid} on {host})", c.rank),
                    (Some(pid), None) => format!("rank {} (pid {pid})", c.rank),
                    _ => format!("rank {}", c.rank),
                }
            }
            None => "the job".to_owned(),
        };
        let mut detail = match (&culprit, status) {
            (Some(c), _) if !c.how.is_empty() => format!(": {}", c.how),
            (_, Some(s)) => format!(": mpirun ended ({s})"),
            (_, None) => String::new(),
        };
        // A rank's own last word, when it said why.
        if let Some(said) = lines.iter().rev().find(|l| l.starts_with("parcost rank")) {
            detail.push_str(&format!("; it said: {}", said.trim()));
        }
        let _ = self.teardown();
        JobError::Died {
            cell: self.launch.cell.clone(),
            who,
            doing: doing.to_owned(),
            detail: one_line(&detail),
        }
    }

    /// Ends the job and checks that none of its processes remain.
    pub fn shutdown(mut self) -> Result<(), JobError> {
        let left = self.teardown();
        if left.is_empty() {
            Ok(())
        } else {
            Err(JobError::Leftover {
                cell: self.launch.cell.clone(),
                procs: left,
            })
        }
    }

    /// See the module's doc. Returns what is left of the job (nothing, normally).
    fn teardown(&mut self) -> Vec<Proc> {
        if self.torn_down {
            return self.remaining();
        }
        self.torn_down = true;
        // End of input: rank 0 broadcasts the end, every rank finalizes and exits.
        self.stdin = None;
        if !wait_for_exit(self.pid, QUIT_GRACE) {
            procs::signal(self.pid, libc::SIGTERM);
            if !wait_for_exit(self.pid, KILL_GRACE) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        self.stdout = None;
        let pid = self.pid;
        live_jobs(|l| l.retain(|e| e.0 != pid));
        let strays = self.remaining();
        for p in &strays {
            procs::signal(p.pid, libc::SIGKILL);
        }
        for p in &strays {
            wait_for_exit(p.pid, KILL_GRACE);
            procs::reap_if_child(p.pid);
        }
        self.remaining()
    }

    /// Processes of this job still there: those carrying its mark, its local ranks by pid (a
    /// zombie's environment cannot be read), and mpirun.
    fn remaining(&self) -> Vec<Proc> {
        let mut left = procs::carrying(JOB_VAR, Value::Is(&self.mark));
        let known: Vec<u32> = if self.hello.is_some() {
            self.local_ranks().into_iter().map(|(_, p)| p).collect()
        } else {
            Vec::new()
        };
        for pid in known.into_iter().chain([self.pid]) {
            if left.iter().all(|p| p.pid != pid)
                && let Some(p) = Proc::read(pid)
                && (p.ppid == std::process::id()
                    || procs::environ_has(pid, JOB_VAR, Value::Is(&self.mark)))
            {
                left.push(p);
            }
        }
        left
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The rank mpirun blamed, from its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Culprit {
    pub rank: u32,
    pub pid: Option<u32>,
    pub host: Option<String>,
    /// What happened to it, in mpirun's words ("exited on signal 9 (Killed)").
    pub how: String,
}

fn number_after(text: &str, key: &str) -> Option<u32> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn word_after(text: &str, key: &str) -> Option<String> {
    let rest = &text[text.find(key)? + key.len()..];
    rest.split_whitespace().next().map(ToOwned::to_owned)
}

/// Reads OpenMPI's account of a failed job: `mpirun noticed that process rank 1 with PID 123 on
/// node vm exited on signal 9 (Killed).`, `MPI_ABORT was invoked on rank 0 ...`, or the
/// `Process name: [[x,y],1]` / `Exit code: 2` block of a rank that exited with an error.
pub fn culprit(lines: &[String]) -> Option<Culprit> {
    for line in lines {
        if line.contains("process rank ") {
            let rank = number_after(line, "process rank ")?;
            let how = line
                .find(" exited ")
                .map(|i| line[i + 1..].trim_end_matches('.').to_owned())
                .unwrap_or_default();
            return Some(Culprit {
                rank,
                pid: number_after(line, "with PID "),
                host: word_after(line, "on node "),
                how,
            });
        }
    }
    for (i, line) in lines.iter().enumerate() {
        if let Some(pos) = line.find("Process name: [[") {
            let name = &line[pos..];
            let rank = name
                .rsplit(',')
                .next()
                .map(|r| r.trim_end_matches(']').trim())
                .and_then(|r| r.parse().ok())?;
            let code = lines[i..]
                .iter()
                .take(4)
                .find_map(|l| l.split("Exit code:").nth(1).map(|c| c.trim().to_owned()));
            return Some(Culprit {
                rank,
                pid: None,
                host: None,
                how: code
                    .map(|c| format!("exited with code {c}"))
                    .unwrap_or_default(),
            });
        }
    }
    for line in lines {
        if line.contains("MPI_ABORT was invoked on rank ") {
            return Some(Culprit {
                rank: number_after(line, "MPI_ABORT was invoked on rank ")?,
                pid: None,
                host: None,
                how: "called MPI_Abort".into(),
            });
        }
    }
    None
}

/// Jobs alive in this process: mpirun's pid and its local ranks', for the exit hook.
fn live_jobs<R>(f: impl FnOnce(&mut Vec<(u32, Vec<u32>)>) -> R) -> R {
    static LIVE: Mutex<Vec<(u32, Vec<u32>)>> = Mutex::new(Vec::new());
    f(&mut LIVE.lock().unwrap_or_else(|p| p.into_inner()))
}

extern "C" fn kill_live_jobs() {
    // At exit (`std::process::exit`, as `harness::fail` does, runs no destructor): no job may
    // outlive the bench. SIGKILL, no waiting: the ranks go with their mpirun.
    let jobs = live_jobs(std::mem::take);
    for (mpirun, ranks) in jobs {
        for pid in ranks {
            procs::signal(pid, libc::SIGKILL);
        }
        procs::signal(mpirun, libc::SIGKILL);
    }
}

fn register_exit_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a plain extern "C" function; failure only loses the safety net.
        unsafe {
            libc::atexit(kill_live_jobs);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn mpiruns_words_name_the_rank() {
        let c = culprit(&lines(
            "--------\nmpirun noticed that process rank 1 with PID 4242 on node vm exited on signal 9 (Killed).\n-----",
        ))
        .expect("named");
        assert_eq!(c.rank, 1);
        assert_eq!(c.pid, Some(4242));
        assert_eq!(c.host.as_deref(), Some("vm"));
        assert_eq!(c.how, "exited on signal 9 (Killed)");
        let c = culprit(&lines(
            "The first process to do so was:\n\n  Process name: [[6123,1],3]\n  Exit code:    2",
        ))
        .expect("named");
        assert_eq!((c.rank, c.how.as_str()), (3, "exited with code 2"));
        let c = culprit(&lines(
            "MPI_ABORT was invoked on rank 0 in communicator MPI_COMM_WORLD\nwith errorcode 2.",
        ))
        .expect("named");
        assert_eq!(c.rank, 0);
        assert!(culprit(&lines("nothing to see")).is_none());
    }

    #[test]
    fn hostfiles_count_slots_and_hosts() {
        let text = "# cluster\nnode1 slots=4\nnode2 slots=2 max_slots=4\nnode3\n\nnode1 slots=1\n";
        assert_eq!(hostfile_slots(text), 8);
        assert_eq!(hostfile_hosts(text), 3);
    }

    #[test]
    fn mpirun_gets_the_threads_the_mark_and_oversubscribe_only_past_the_slots() {
        let mut l = Launch::new("/x/rank", 2, 3, "c".into());
        l.slots = 2;
        let args: Vec<String> = l
            .args("m-1")
            .into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect();
        let text = args.join(" ");
        assert!(text.starts_with("-np 2 --bind-to none"), "{text}");
        assert!(!text.contains("--oversubscribe"), "{text}");
        for want in [
            "-x OPENBLAS_NUM_THREADS=3",
            "-x OMP_NUM_THREADS=3",
            "-x PARCOST_MPI_JOB=m-1",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
        assert!(text.ends_with("/x/rank --parcost-rank"), "{text}");
        l.ranks = 4;
        l.hostfile = Some("/h".into());
        let text = l
            .args("m")
            .into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(text.contains("--oversubscribe --hostfile /h"), "{text}");
    }

    #[test]
    fn the_default_job_sets_no_binding_and_no_thread_count() {
        let mut l = Launch::user_default("/x/rank", 2, "c".into());
        l.slots = 2;
        let text = l
            .args("m-1")
            .into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(text.starts_with("-np 2 -x PARCOST_MPI_JOB=m-1"), "{text}");
        for absent in ["--bind-to", "--map-by", "NUM_THREADS", "--oversubscribe"] {
            assert!(!text.contains(absent), "{absent}: {text}");
        }
        assert!(text.ends_with("/x/rank --parcost-rank"), "{text}");
    }

    #[test]
    fn errors_are_one_line_naming_the_cell() {
        let e = JobError::Died {
            cell: "layer=openmp/ranks=2,blas_threads=1".into(),
            who: "rank 1 (pid 7 on vm)".into(),
            doing: "running batch".into(),
            detail: one_line(": exited on signal 9\n(Killed)"),
        };
        let text = e.to_string();
        assert_eq!(
            text,
            "cell layer=openmp/ranks=2,blas_threads=1: rank 1 (pid 7 on vm) died while running batch: exited on signal 9 (Killed)"
        );
    }
}
