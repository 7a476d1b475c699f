//! Worker processes: a bench binary re-executes itself as a worker, and the parent talks to it
//! over its stdin and stdout (one JSON line a request or answer, raw array bytes after it).
//!
//! Every wait on a worker is bounded (a dead, hung or garbled worker is an error naming what
//! happened), and a worker is always reaped: dropping its handle closes its stdin, waits for the
//! worker to exit (blocked in the kernel, never in a sleep loop: a process started per
//! benchmark iteration is reaped inside the timing), kills it if it has not exited within
//! [`REAP_GRACE`], and waits for it (no zombies).

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, WaitOptions};
use serde::{Deserialize, Serialize};

use crate::fdio::{FdChannel, FdError, as_bytes, as_bytes_mut};
use crate::shm::SharedArray;
use crate::transport::{Iox2End, IpcEnd, Reading, STAMPS, Variant, stamp_positions};
use crate::workload::{ArrayJob, BLOCK};

/// The first argument that turns a bench binary into a worker.
pub const WORKER_FLAG: &str = "--parcost-worker";

/// How long a worker may stall one read or write before the parent gives up on it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Pipe buffers are enlarged to this: larger ones were 2-3x slower here (the L2 is 1 MiB).
pub const PIPE_SIZE: usize = 1 << 20;

const LINE_LIMIT: usize = 1 << 16;

/// The channel array bytes travel on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// The worker's stdin (to it) and stdout (back).
    Pipe,
    /// The Unix socket it inherited.
    Socket,
    /// The shared array it mapped.
    Shared,
}

/// What the parent asks of a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// `elements` f64s follow on `via` (pipe or socket): take all of them into the worker's own
    /// buffer, then answer their [`Reading`].
    Receive { via: Via, elements: u64 },
    /// `elements` f64s follow on `via` (pipe or socket): keep them as the worker's own copy
    /// (read-shared, `variant=held-copy`) and answer their [`Reading`].
    Hold { via: Via, elements: u64 },
    /// The new stamped values of the held copy of `elements` values follow on `via` (one f64
    /// for each of its [`stamp_positions`], in order): patch them in, then answer the
    /// [`Reading`] of all of the copy.
    HeldSum { via: Via, elements: u64 },
    /// Map the named shared file at `path` (mmap-file).
    OpenShared { path: String, elements: u64 },
    /// Answer the [`Reading`] of the shared array.
    SharedSum,
    /// Set up the ipc-channel end: answer with the name of a one-shot server, then (once the
    /// parent has connected and sent its receivers) answer again.
    IpcChannelOpen,
    /// Receive `elements` f64s on the ipc-channel `variant` and answer their [`Reading`].
    IpcChannelSum { variant: Variant, elements: u64 },
    /// Open the iceoryx2 publish-subscribe `service` (nodes under `root`, shared memory named
    /// with `prefix`) as its subscriber.
    Iceoryx2Open {
        root: String,
        prefix: String,
        service: String,
    },
    /// Take the sample of `elements` f64s the publisher has sent and answer its [`Reading`].
    Iceoryx2Sum { elements: u64 },
    /// Run an array job over some of its blocks.
    Compute(Compute),
    /// Answer a request about the array the worker holds (`remote`: it was sent once by
    /// [`Request::Hold`]); a dot product's vector follows on the pipe, a slice's values follow
    /// the answer.
    Ask(crate::remote::Query),
    /// Answer at once: a round trip with no work (the bare cost of a worker).
    Ping,
    /// Tests: do nothing for `ms` milliseconds before answering.
    Sleep { ms: u64 },
    /// Tests: answer with a line that is not an answer.
    Garble,
}

/// Run `job` over blocks `first_block..first_block + blocks` of an array of `elements` values:
/// input and output on the pipe, or in the shared array laid out as
/// `[input: elements][output: elements]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Compute {
    pub job: ArrayJob,
    pub seed: u64,
    pub first_block: u64,
    pub blocks: u64,
    pub elements: u64,
    pub via: Via,
}

/// A worker's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Answer {
    /// A sum, as its bits (JSON has no NaN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum_bits: Option<u64>,
    /// The lowest and highest value of the array's stamped elements, as bits: the generation
    /// the worker saw ([`Reading::stamped`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamped_bits: Option<[u64; 2]>,
    /// A name the parent needs next (the ipc-channel server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Answer {
    fn reading(r: Reading) -> Self {
        Self {
            sum_bits: Some(r.sum.to_bits()),
            stamped_bits: r.stamped.map(|[a, b]| [a.to_bits(), b.to_bits()]),
            ..Self::default()
        }
    }
}

/// What can go wrong with a worker process.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start worker {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("worker {pid} died while {doing} ({status}){stderr}")]
    Died {
        pid: u32,
        doing: String,
        status: String,
        stderr: String,
    },
    #[error("worker {pid} did not answer while {doing}: {source}")]
    Stalled {
        pid: u32,
        doing: String,
        source: FdError,
    },
    #[error("worker {pid} answered garbage while {doing}: {line:?}")]
    Garbage {
        pid: u32,
        doing: String,
        line: String,
    },
    #[error("worker {pid} refused {doing}: {message}")]
    Refused {
        pid: u32,
        doing: String,
        message: String,
    },
    #[error("worker setup: {0}")]
    Setup(#[from] std::io::Error),
}

/// How to start a worker.
#[derive(Debug)]
pub struct Spawn {
    exe: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    inherit: Vec<i32>,
    timeout: Duration,
}

impl Spawn {
    /// A worker running `exe` (a bench binary: `std::env::current_exe()`).
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        Self {
            exe: exe.into(),
            args: Vec::new(),
            env: Vec::new(),
            inherit: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The worker inherits `fd` across exec under its own number, passed as `--<name>-fd N`.
    /// The caller keeps `fd` open until [`Spawn::start`] has returned.
    pub fn inherit(mut self, name: &str, fd: i32) -> Self {
        self.inherit.push(fd);
        self.args.push(format!("--{name}-fd").into());
        self.args.push(fd.to_string().into());
        self
    }

    /// Another `--key value` argument for the worker.
    pub fn arg(mut self, key: &str, value: impl ToString) -> Self {
        self.args.push(format!("--{key}").into());
        self.args.push(value.to_string().into());
        self
    }

    /// An environment variable for the worker (`TMPDIR`, say, to keep its temporary files in a
    /// folder the parent removes).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn start(self) -> Result<Worker, WorkerError> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg(WORKER_FLAG)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let inherit = self.inherit.clone();
        // Only a child that inherits an fd gets a `pre_exec`: with one, std must fork and exec;
        // without, it takes `posix_spawn` (a vfork-like clone that copies none of the parent's
        // page tables), the fastest way to start a process from a large parent, and the way a
        // process per task that inherits nothing should be measured.
        if !inherit.is_empty() {
            // std's `pre_exec` is `unsafe` (its closure runs between fork and exec), and neither
            // std nor a crate passes an fd to a child under its own number.
            // SAFETY: the closure runs in the forked child before exec and makes only fcntl
            // system calls (rustix's, which neither allocate nor lock): async-signal-safe. The
            // fds in `inherit` are open in the parent for the whole spawn (the caller holds
            // them, see `inherit`), so in the child too, where nothing else runs to close them.
            unsafe {
                cmd.pre_exec(move || {
                    for &fd in &inherit {
                        let fd = BorrowedFd::borrow_raw(fd);
                        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|source| WorkerError::Spawn {
            exe: self.exe.clone(),
            source,
        })?;
        let take = |child: &mut Child| {
            let stdin = child.stdin.take().map(OwnedFd::from);
            let stdout = child.stdout.take().map(OwnedFd::from);
            let stderr = child.stderr.take();
            (stdin, stdout, stderr)
        };
        let (Some(stdin), Some(stdout), stderr) = take(&mut child) else {
            reap(&mut child);
            return Err(WorkerError::Setup(std::io::Error::other(
                "worker pipes missing",
            )));
        };
        let built = (|| {
            let to_worker = FdChannel::new(stdin, self.timeout)?;
            let from_worker = FdChannel::new(stdout, self.timeout)?;
            // Best effort: an unprivileged user may be capped below PIPE_SIZE.
            let _ = to_worker.set_pipe_size(PIPE_SIZE);
            let _ = from_worker.set_pipe_size(PIPE_SIZE);
            Ok::<_, std::io::Error>((to_worker, from_worker))
        })();
        let (to_worker, from_worker) = match built {
            Ok(c) => c,
            Err(e) => {
                reap(&mut child);
                return Err(e.into());
            }
        };
        Ok(Worker {
            child,
            to_worker: Some(to_worker),
            from_worker,
            stderr,
        })
    }
}

/// How long a child whose stdin (or command pipe) is closed gets to exit before it is killed.
pub const REAP_GRACE: Duration = Duration::from_secs(2);

/// Waits for a child to exit (killing it after [`REAP_GRACE`]) and reaps it, so it never
/// lingers as a zombie.
fn reap(child: &mut Child) -> Option<ExitStatus> {
    reap_with(child, REAP_GRACE)
}

/// [`reap`] with another grace period (tests).
fn reap_with(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if !wait_for_exit(child.id(), grace) {
        let _ = child.kill();
    }
    // Blocks only until the kernel has finished the exit (or the kill) seen above.
    child.wait().ok()
}

/// [`reap`] for a child known only by its pid (a forked one): waits for it to exit, kills it
/// after `grace`, and reaps it.
pub(crate) fn reap_pid(pid: i32, grace: Duration) {
    let Ok(id) = u32::try_from(pid) else {
        return;
    };
    if !wait_for_exit(id, grace) {
        kill(pid);
    }
    wait_blocking(pid);
}

/// Waits until the child `pid` (ours, not yet reaped) has exited, for at most `timeout`; true
/// if it has (or no longer exists). It does not reap: the caller's `waitpid` does.
///
/// The wait blocks in the kernel, so a reap returns as soon as the child is gone rather than at
/// the next tick of a sleep loop: a benchmark that starts a process per iteration times this.
/// It polls a pidfd; a kernel without pidfds (before Linux 5.3) gets a thread blocked in
/// `waitid` instead.
pub fn wait_for_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    match pidfd_open(pid) {
        Ok(pidfd) => match poll_readable(&pidfd, deadline) {
            Ok(exited) => exited,
            // Not expected from a valid pidfd; the thread needs nothing from it.
            Err(_) => wait_in_thread(pid, deadline),
        },
        Err(Errno::SRCH) => true,
        Err(_) => wait_in_thread(pid, deadline),
    }
}

/// `pid` as rustix's type: `None` for 0 or a number above `i32::MAX` (no process has those).
fn to_pid(pid: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(pid).ok()?)
}

/// A pidfd for `pid` (readable once the process has exited).
fn pidfd_open(pid: u32) -> Result<OwnedFd, Errno> {
    let pid = to_pid(pid).ok_or(Errno::SRCH)?;
    rustix::process::pidfd_open(pid, PidfdFlags::empty())
}

/// Polls `fd` until it is readable (true) or `deadline` passes (false); retries on EINTR.
fn poll_readable(fd: &OwnedFd, deadline: Instant) -> Result<bool, Errno> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = Timespec::try_from(left).map_err(|_| Errno::INVAL)?;
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(n) if n > 0 => return Ok(true),
            Ok(_) if Instant::now() >= deadline => return Ok(false),
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// [`wait_for_exit`] without pidfds: a helper thread blocks in `waitid(WNOWAIT)` (which does not
/// reap) and reports the exit on a channel this thread waits on with the deadline. On timeout the
/// helper stays blocked until the caller kills and reaps the child, then ends by itself.
fn wait_in_thread(pid: u32, deadline: Instant) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let helper = std::thread::Builder::new()
        .name("parcost-reap".into())
        .spawn(move || {
            let _ = tx.send(wait_exited_no_reap(pid));
        });
    let Ok(helper) = helper else {
        // No thread to wait with: the caller kills and reaps, which is bounded too.
        return false;
    };
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(exited) => {
            let _ = helper.join();
            exited
        }
        Err(_) => false,
    }
}

/// Blocks until the child `pid` has exited, leaving it waitable; false if it cannot be waited
/// for (ECHILD: someone else reaped it).
fn wait_exited_no_reap(pid: u32) -> bool {
    let Some(pid) = to_pid(pid) else {
        return false;
    };
    loop {
        match rustix::process::waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(_) => return true,
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
}

/// Sends SIGKILL to our child `pid` (which must not have been reaped yet, so the number cannot
/// belong to another process yet).
pub(crate) fn kill(pid: i32) {
    // Never 0 or negative: those would signal whole process groups.
    if let Some(pid) = u32::try_from(pid).ok().and_then(to_pid) {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

/// Reaps our child `pid`, blocking until it has exited; retries on EINTR.
fn wait_blocking(pid: i32) {
    let Some(pid) = u32::try_from(pid).ok().and_then(to_pid) else {
        return;
    };
    while let Err(Errno::INTR) = rustix::process::waitpid(Some(pid), WaitOptions::empty()) {}
}

/// The CPU time (user plus system, all its threads, those that ended included) that the
/// process `pid` has used so far, read from its CPU-time clock (`clock_getcpuclockid`: exact to
/// the nanosecond, unlike the clock ticks of `/proc/PID/stat`). For a child that is running or
/// not yet reaped; a reaped child's time is in `getrusage(RUSAGE_CHILDREN)` instead.
pub fn process_cpu_time(pid: u32) -> std::io::Result<Duration> {
    // libc: rustix has no clock_getcpuclockid, and its clock ids cannot name another process's
    // CPU clock.
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: clock_getcpuclockid writes one clockid_t into a live local.
    let r = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
    if r != 0 {
        return Err(std::io::Error::from_raw_os_error(r));
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a live local.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let secs = u64::try_from(ts.tv_sec).map_err(std::io::Error::other)?;
    let nanos = u32::try_from(ts.tv_nsec).map_err(std::io::Error::other)?;
    Ok(Duration::new(secs, nanos))
}

/// A running worker process.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    to_worker: Option<FdChannel>,
    from_worker: FdChannel,
    stderr: Option<std::process::ChildStderr>,
}

impl Worker {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The parent's end of the worker's stdin (requests and array bytes go there).
    pub fn to_worker(&mut self) -> Result<&mut FdChannel, WorkerError> {
        let pid = self.pid();
        self.to_worker.as_mut().ok_or_else(|| WorkerError::Refused {
            pid,
            doing: "a request".into(),
            message: "its stdin is already closed".into(),
        })
    }

    /// Sends a request line.
    pub fn send(&mut self, request: &Request) -> Result<(), WorkerError> {
        let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let result = self.to_worker()?.write_all(&line);
        // Described only on failure: a remote request is a few microseconds.
        result.map_err(|e| self.failure(&describe(request), e))
    }

    /// Sends raw bytes on the worker's stdin.
    pub fn send_bytes(&mut self, bytes: &[u8], doing: &str) -> Result<(), WorkerError> {
        let result = self.to_worker()?.write_all(bytes);
        result.map_err(|e| self.failure(doing, e))
    }

    /// Reads the answer to the last request; a refusal is an error.
    pub fn answer(&mut self, doing: &str) -> Result<Answer, WorkerError> {
        let line = match self.from_worker.read_line(LINE_LIMIT) {
            Ok(line) => line,
            Err(e) => return Err(self.failure(doing, e)),
        };
        let answer: Answer = serde_json::from_slice(&line).map_err(|_| WorkerError::Garbage {
            pid: self.pid(),
            doing: doing.to_owned(),
            line: String::from_utf8_lossy(&line).chars().take(200).collect(),
        })?;
        if let Some(message) = answer.error {
            return Err(WorkerError::Refused {
                pid: self.pid(),
                doing: doing.to_owned(),
                message,
            });
        }
        Ok(answer)
    }

    /// Reads the answer to a request whose answer is one number (carried as a sum).
    pub fn answer_number(&mut self, doing: &str) -> Result<f64, WorkerError> {
        let answer = self.answer(doing)?;
        answer
            .sum_bits
            .map(f64::from_bits)
            .ok_or_else(|| WorkerError::Garbage {
                pid: self.pid(),
                doing: doing.to_owned(),
                line: "an answer without a number".into(),
            })
    }

    /// Reads the answer to a request that read an array: its sum and the stamped values it saw.
    pub fn answer_reading(&mut self, doing: &str) -> Result<Reading, WorkerError> {
        let answer = self.answer(doing)?;
        let garbage = |what: &str| WorkerError::Garbage {
            pid: self.pid(),
            doing: doing.to_owned(),
            line: format!("an answer without {what}"),
        };
        let sum = answer
            .sum_bits
            .map(f64::from_bits)
            .ok_or_else(|| garbage("a sum"))?;
        let stamped = answer.stamped_bits.map(|e| e.map(f64::from_bits));
        Ok(Reading { sum, stamped })
    }

    /// The CPU time (user plus system, every thread) the worker has used so far.
    pub fn cpu_time(&self) -> std::io::Result<Duration> {
        process_cpu_time(self.pid())
    }

    /// Reads raw bytes from the worker's stdout.
    pub fn read_bytes(&mut self, buf: &mut [u8], doing: &str) -> Result<(), WorkerError> {
        let result = self.from_worker.read_exact(buf);
        result.map_err(|e| self.failure(doing, e))
    }

    /// Turns an I/O failure into the most telling error: the worker's death (with its stderr)
    /// if it died, else the stall.
    pub fn failure(&mut self, doing: &str, source: FdError) -> WorkerError {
        let pid = self.pid();
        let exited = match source {
            FdError::Timeout(_) => None,
            // A closed pipe means the worker is exiting: give it a moment to be reaped.
            _ => {
                wait_for_exit(pid, Duration::from_secs(1));
                self.child.try_wait().ok().flatten()
            }
        };
        match exited {
            Some(status) => WorkerError::Died {
                pid,
                doing: doing.to_owned(),
                status: status.to_string(),
                stderr: self.stderr_text(),
            },
            None => {
                // Hung or half-dead: it will not be asked anything again.
                let _ = self.child.kill();
                WorkerError::Stalled {
                    pid,
                    doing: doing.to_owned(),
                    source,
                }
            }
        }
    }

    fn stderr_text(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!(": {}", text.lines().last().unwrap_or(text))
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // EOF on its stdin is the worker's signal to exit.
        self.to_worker = None;
        reap(&mut self.child);
    }
}

fn describe(request: &Request) -> String {
    match request {
        Request::Receive { via, elements } => format!("receiving {elements} values by {via:?}"),
        Request::Hold { via, elements } => format!("taking {elements} values to hold by {via:?}"),
        Request::HeldSum { via, .. } => format!("patching its copy by {via:?} and summing it"),
        Request::OpenShared { path, .. } => format!("opening {path}"),
        Request::SharedSum => "summing the shared array".into(),
        Request::IpcChannelOpen => "setting up its ipc-channel end".into(),
        Request::IpcChannelSum { variant, elements } => {
            format!(
                "receiving {elements} values by ipc-channel ({})",
                variant.name()
            )
        }
        Request::Iceoryx2Open { service, .. } => format!("subscribing to iceoryx2 {service}"),
        Request::Iceoryx2Sum { elements } => format!("taking an iceoryx2 sample of {elements}"),
        Request::Compute(c) => format!("{} over {} blocks", c.job.name(), c.blocks),
        Request::Ask(q) => format!(
            "answering a {} at value {} of the array it holds",
            q.request.name(),
            q.start
        ),
        Request::Ping => "answering a ping".into(),
        Request::Sleep { ms } => format!("sleeping {ms} ms"),
        Request::Garble => "garbling".into(),
    }
}

/// Call first in a bench's `main`, before Criterion reads the arguments: if this process was
/// started as a worker, it serves requests until its stdin closes and exits.
pub fn serve_if_worker() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(WORKER_FLAG.as_ref()) {
        return;
    }
    let code = match Serve::from_args(args).and_then(Serve::run) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("parcost worker: {message}");
            2
        }
    };
    std::process::exit(code);
}

/// The worker's side.
struct Serve {
    socket: Option<File>,
    shared: Option<SharedArray>,
    /// The array a send delivers on the pipe or socket: all of it lands here before it is
    /// summed (kept between requests, so only the first one allocates).
    buffer: Vec<f64>,
    /// The worker's own copy of the array (read-shared by pipe or socket, `held-copy`): sent
    /// whole once, then patched at its stamped elements by each [`Request::HeldSum`].
    held: Vec<f64>,
    /// Scratch for the output of [`Request::Compute`] on the pipe.
    computed: Vec<f64>,
    ipc: Option<IpcEnd>,
    iox2: Option<Iox2End>,
}

/// Takes ownership of an fd the parent passed to this worker by number.
///
/// No crate can check that a number on the command line is an fd nobody else owns.
fn inherited(fd: i32) -> OwnedFd {
    // SAFETY: `parse_fd` accepts only numbers above stdio, and the parent passed this fd to
    // this worker alone, once (see `Spawn::inherit`): it is open and nothing else here owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn parse_fd(value: Option<OsString>, name: &str) -> Result<i32, String> {
    value
        .and_then(|v| v.to_str()?.parse::<i32>().ok())
        .filter(|&fd| fd > 2)
        .ok_or_else(|| format!("--{name} needs an inherited file descriptor number above 2"))
}

impl Serve {
    fn from_args(mut args: impl Iterator<Item = OsString>) -> Result<Self, String> {
        let mut serve = Self {
            socket: None,
            shared: None,
            buffer: Vec::new(),
            held: Vec::new(),
            computed: Vec::new(),
            ipc: None,
            iox2: None,
        };
        let mut shared_fd = None;
        let mut shared_elements = None;
        while let Some(arg) = args.next() {
            match arg.to_str() {
                Some("--socket-fd") => {
                    let fd = parse_fd(args.next(), "socket-fd")?;
                    serve.socket = Some(File::from(inherited(fd)));
                }
                Some("--shared-fd") => shared_fd = Some(parse_fd(args.next(), "shared-fd")?),
                Some("--shared-elements") => {
                    let n = args.next().and_then(|v| v.to_str()?.parse::<usize>().ok());
                    shared_elements = Some(n.ok_or("--shared-elements needs a number")?);
                }
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        match (shared_fd, shared_elements) {
            (Some(fd), Some(n)) => {
                let file = File::from(inherited(fd));
                let map = SharedArray::open(file, n).map_err(|e| format!("shared fd {fd}: {e}"))?;
                serve.shared = Some(map);
            }
            (None, None) => {}
            _ => return Err("--shared-fd and --shared-elements go together".into()),
        }
        Ok(serve)
    }

    fn run(mut self) -> Result<(), String> {
        let mut input = std::io::stdin().lock();
        // Answers go straight to the pipe on fd 1 (no buffering), through a duplicate of it.
        let stdout = std::io::stdout().as_fd().try_clone_to_owned();
        let mut output = File::from(stdout.map_err(|e| format!("stdout: {e}"))?);
        let mut line = String::new();
        loop {
            line.clear();
            match input.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("reading a request: {e}")),
            }
            let request: Request = match serde_json::from_str(line.trim_end()) {
                Ok(r) => r,
                Err(e) => {
                    // The stream may be out of step now: say why and stop.
                    let answer = Answer {
                        error: Some(format!("not a request ({e}): {}", line.trim_end())),
                        ..Answer::default()
                    };
                    send_answer(&mut output, &answer)?;
                    return Err(format!("not a request: {}", line.trim_end()));
                }
            };
            self.handle(request, &mut input, &mut output)?;
        }
    }

    fn handle(
        &mut self,
        request: Request,
        input: &mut impl Read,
        output: &mut File,
    ) -> Result<(), String> {
        let io = |e: std::io::Error| format!("pipe: {e}");
        let done = |output: &mut File| send_answer(output, &Answer::default());
        let refuse = |output: &mut File, message: String| {
            send_answer(
                output,
                &Answer {
                    error: Some(message),
                    ..Answer::default()
                },
            )
        };
        match request {
            Request::Receive { via, elements } => {
                let n = usize::try_from(elements).map_err(|_| "too many elements")?;
                let Some(source) = stream(via, input, &mut self.socket)? else {
                    return refuse(output, "receive by shared memory".into());
                };
                // All of it into our own buffer first, as a worker that holds the array does;
                // then one pass over it.
                self.buffer.resize(n, 0.0);
                source
                    .read_exact(as_bytes_mut(&mut self.buffer))
                    .map_err(io)?;
                send_answer(output, &Answer::reading(Reading::of(&self.buffer)))
            }
            Request::Hold { via, elements } => {
                let n = usize::try_from(elements).map_err(|_| "too many elements")?;
                let Some(source) = stream(via, input, &mut self.socket)? else {
                    return refuse(output, "holding by shared memory".into());
                };
                self.held.resize(n, 0.0);
                source
                    .read_exact(as_bytes_mut(&mut self.held))
                    .map_err(io)?;
                send_answer(output, &Answer::reading(Reading::of(&self.held)))
            }
            Request::HeldSum { via, elements } => {
                let Some(source) = stream(via, input, &mut self.socket)? else {
                    return refuse(output, "patching by shared memory".into());
                };
                let len = usize::try_from(elements).unwrap_or(usize::MAX);
                let mut stamps = [0.0; STAMPS];
                let stamps = &mut stamps[..STAMPS.min(len)];
                source.read_exact(as_bytes_mut(stamps)).map_err(io)?;
                if self.held.len() != len {
                    return refuse(
                        output,
                        format!("it holds {} values, not {elements}", self.held.len()),
                    );
                }
                for (i, v) in stamp_positions(len).zip(stamps.iter()) {
                    self.held[i] = *v;
                }
                send_answer(output, &Answer::reading(Reading::of(&self.held)))
            }
            Request::OpenShared { path, elements } => {
                let opened = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .and_then(|f| SharedArray::open(f, elements as usize));
                match opened {
                    Ok(map) => {
                        self.shared = Some(map);
                        done(output)
                    }
                    Err(e) => refuse(output, format!("cannot map {path}: {e}")),
                }
            }
            Request::SharedSum => match self.shared.as_ref() {
                Some(map) => send_answer(output, &Answer::reading(Reading::of(map.as_slice()))),
                None => refuse(output, "no shared array is mapped".into()),
            },
            Request::IpcChannelOpen => {
                let announce = |name: &str| {
                    send_answer(
                        output,
                        &Answer {
                            name: Some(name.to_owned()),
                            ..Answer::default()
                        },
                    )
                };
                match IpcEnd::open(announce) {
                    Ok(end) => {
                        self.ipc = Some(end);
                        done(output)
                    }
                    Err(e) => refuse(output, e),
                }
            }
            Request::IpcChannelSum { variant, elements } => {
                let Some(end) = self.ipc.as_ref() else {
                    return refuse(output, "no ipc-channel end is set up".into());
                };
                // The message is held until the answer is out, then dropped (a Vec freed, or
                // the region unmapped), as a consumer that is done with it.
                match end.receive(variant, elements, &mut self.buffer) {
                    Ok((reading, held)) => {
                        let sent = send_answer(output, &Answer::reading(reading));
                        drop(held);
                        sent
                    }
                    // The channel is out of step now: say why and stop.
                    Err(e) => {
                        refuse(output, e.clone())?;
                        Err(e)
                    }
                }
            }
            Request::Iceoryx2Open {
                root,
                prefix,
                service,
            } => match Iox2End::open(&root, &prefix, &service) {
                Ok(end) => {
                    self.iox2 = Some(end);
                    done(output)
                }
                Err(e) => refuse(output, e),
            },
            Request::Iceoryx2Sum { elements } => {
                let Some(end) = self.iox2.as_ref() else {
                    return refuse(output, "no iceoryx2 subscriber is set up".into());
                };
                match end.receive(elements) {
                    Ok(reading) => send_answer(output, &Answer::reading(reading)),
                    Err(e) => refuse(output, e),
                }
            }
            Request::Compute(c) => self.compute(&c, input, output),
            Request::Ask(query) => {
                if query.request == crate::remote::Request::Dot
                    && query.len > crate::remote::SMALL_VALUES as u64
                {
                    // Its vector was not read: the stream is out of step now. Say why and stop.
                    let message = format!("a dot product's vector of {} values", query.len);
                    refuse(output, format!("{message} is longer than a request's"))?;
                    return Err(message);
                }
                let mut scratch = std::mem::take(&mut self.buffer);
                let sent = match crate::remote::serve(&self.held, query, input, &mut scratch) {
                    Ok(crate::remote::Reply::Number(x)) => send_answer(
                        output,
                        &Answer {
                            sum_bits: Some(x.to_bits()),
                            ..Answer::default()
                        },
                    ),
                    Ok(crate::remote::Reply::Values(v)) => send_answer(output, &Answer::default())
                        .and_then(|()| output.write_all(as_bytes(v)).map_err(io)),
                    Err(e) => refuse(output, e),
                };
                self.buffer = scratch;
                sent
            }
            Request::Ping => done(output),
            Request::Sleep { ms } => {
                std::thread::sleep(Duration::from_millis(ms));
                done(output)
            }
            Request::Garble => output.write_all(b"<<garbage>>\n").map_err(io),
        }
    }

    fn compute(
        &mut self,
        c: &Compute,
        input: &mut impl Read,
        output: &mut File,
    ) -> Result<(), String> {
        let io = |e: std::io::Error| format!("pipe: {e}");
        let (job, seed, via) = (c.job, c.seed, c.via);
        let elements = c.elements as usize;
        let (first, blocks) = (c.first_block as usize, c.blocks as usize);
        let lo = (first * BLOCK).min(elements);
        let hi = ((first + blocks) * BLOCK).min(elements);
        let out_len = job.output_len(hi - lo, blocks);
        match via {
            Via::Pipe => {
                let mut data = std::mem::take(&mut self.buffer);
                data.resize(if job.reads_input() { hi - lo } else { 0 }, 0.0);
                input.read_exact(as_bytes_mut(&mut data)).map_err(io)?;
                let mut out = std::mem::take(&mut self.computed);
                out.resize(out_len, 0.0);
                job.run_blocks(seed, first, &data, &mut out);
                self.buffer = data;
                self.computed = out;
                send_answer(output, &Answer::default())?;
                output.write_all(as_bytes(&self.computed)).map_err(io)
            }
            Via::Shared => {
                let Some(map) = self.shared.as_mut() else {
                    return send_answer(
                        output,
                        &Answer {
                            error: Some("no shared array is mapped".into()),
                            ..Answer::default()
                        },
                    );
                };
                if map.len() < 2 * elements {
                    return Err(format!("shared array of {} values is too small", map.len()));
                }
                let (inputs, outputs) = map.as_mut_slice().split_at_mut(elements);
                let out = match job {
                    ArrayJob::SumSquares => &mut outputs[first..first + blocks],
                    _ => &mut outputs[lo..hi],
                };
                job.run_blocks(seed, first, &inputs[lo..hi], out);
                send_answer(output, &Answer::default())
            }
            Via::Socket => send_answer(
                output,
                &Answer {
                    error: Some("compute by socket".into()),
                    ..Answer::default()
                },
            ),
        }
    }
}

/// The stream array bytes arrive on by `via`: stdin or the inherited socket; `None` for shared
/// memory, which is not a stream.
fn stream<'a>(
    via: Via,
    input: &'a mut dyn Read,
    socket: &'a mut Option<File>,
) -> Result<Option<&'a mut dyn Read>, String> {
    Ok(match via {
        Via::Pipe => Some(input),
        Via::Socket => Some(socket.as_mut().ok_or("no socket was inherited")?),
        Via::Shared => None,
    })
}

fn send_answer(output: &mut File, answer: &Answer) -> Result<(), String> {
    let mut line = serde_json::to_vec(answer).map_err(|e| e.to_string())?;
    line.push(b'\n');
    output
        .write_all(&line)
        .map_err(|e| format!("answering: {e}"))
}

/// The path of the running executable, for workers of a bench binary.
pub fn current_exe() -> Result<PathBuf, WorkerError> {
    std::env::current_exe().map_err(WorkerError::Setup)
}

/// Whether a process still exists (as a zombie too): tests check workers are reaped.
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(seconds: &str) -> Child {
        Command::new("sleep").arg(seconds).spawn().expect("sleep")
    }

    #[test]
    fn this_kernel_has_pidfds() {
        // Otherwise every reap here would take the helper-thread path, and the tests below
        // would check only that one.
        assert!(pidfd_open(std::process::id()).is_ok());
    }

    /// Both ways of waiting (pidfd, helper thread) see a prompt exit well before the deadline,
    /// give up at the deadline on a child that stays, and leave the reaping to the caller.
    #[test]
    fn waits_see_an_exit_and_give_up_at_the_deadline() {
        /// Waits for a pid with a timeout.
        type Wait = fn(u32, Duration) -> bool;
        let ways: [(&str, Wait); 2] = [
            ("pidfd", wait_for_exit),
            ("thread", |pid, timeout| {
                wait_in_thread(pid, Instant::now() + timeout)
            }),
        ];
        for (name, wait) in ways {
            let mut quick = sleeper("0.1");
            let start = Instant::now();
            assert!(wait(quick.id(), Duration::from_secs(30)), "{name}");
            assert!(start.elapsed() < Duration::from_secs(20), "{name}");
            assert!(process_exists(quick.id()), "{name}: not reaped by the wait");
            assert!(quick.try_wait().expect("try_wait").is_some(), "{name}");
            assert!(!process_exists(quick.id()), "{name}: reaped by the caller");

            let mut stays = sleeper("30");
            let start = Instant::now();
            assert!(!wait(stays.id(), Duration::from_millis(100)), "{name}");
            assert!(start.elapsed() >= Duration::from_millis(100), "{name}");
            let _ = stays.kill();
            let _ = stays.wait();
        }
    }

    #[test]
    fn reaping_kills_a_child_that_stays_and_leaves_no_zombie() {
        #[expect(clippy::zombie_processes, reason = "reap_pid reaps it by its pid")]
        let stays = sleeper("30");
        let pid = i32::try_from(stays.id()).expect("pid");
        let start = Instant::now();
        reap_pid(pid, Duration::from_millis(100));
        assert!(start.elapsed() < Duration::from_secs(20));
        assert!(!process_exists(stays.id()));

        let mut stays = sleeper("30");
        let start = Instant::now();
        let status = reap_with(&mut stays, Duration::from_millis(100));
        assert!(start.elapsed() < Duration::from_secs(20));
        assert_eq!(status.and_then(|s| s.code()), None, "killed: {status:?}");
        assert!(!process_exists(stays.id()));
    }
}
