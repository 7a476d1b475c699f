//! The ways to get an `f64` array to another process (or thread), one type each behind
//! [`Transport`]: the other side reads all of the array and answers its sum.

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::fdio::{FdChannel, FdError, as_bytes, as_bytes_mut};
use crate::shm::SharedArray;
use crate::worker::{
    DEFAULT_TIMEOUT, REAP_GRACE, Request, Spawn, Via, Worker, WorkerError, reap_pid,
};
use crate::workload::sum;

/// Every way of moving an array the array-sharing suite measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// write/read through the worker's stdin, the pipe buffer enlarged with `F_SETPIPE_SZ`.
    Pipe,
    /// The same pipe, the sender handing its pages over with `vmsplice` (no copy on its side).
    PipeVmsplice,
    /// A Unix domain socket the worker inherited.
    Socket,
    /// A file in /dev/shm that both map (memmap2).
    MmapFile,
    /// A memfd the worker inherits across exec and maps.
    MemfdInherited,
    /// A child forked after the array exists reads it copy-on-write.
    ForkCow,
    /// A server process holds the array and answers requests for slices of it.
    Proxy,
    /// In-process: a thread reads the array by reference.
    ThreadRef,
    /// In-process: a crossbeam channel moves the `Vec` to a thread and back (no copy).
    ChannelMove,
    /// In-process: a crossbeam channel sends the thread a clone.
    ChannelClone,
}

impl TransportKind {
    pub const ALL: [Self; 10] = [
        Self::Pipe,
        Self::PipeVmsplice,
        Self::Socket,
        Self::MmapFile,
        Self::MemfdInherited,
        Self::ForkCow,
        Self::Proxy,
        Self::ThreadRef,
        Self::ChannelMove,
        Self::ChannelClone,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Pipe => "pipe",
            Self::PipeVmsplice => "pipe-vmsplice",
            Self::Socket => "socket",
            Self::MmapFile => "mmap-file",
            Self::MemfdInherited => "memfd-inherited",
            Self::ForkCow => "fork-cow",
            Self::Proxy => "proxy",
            Self::ThreadRef => "thread-ref",
            Self::ChannelMove => "channel-move",
            Self::ChannelClone => "channel-clone",
        }
    }

    pub fn from_name(name: &str) -> Result<Self, TransportError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| TransportError::Unknown(name.to_owned()))
    }

    /// Whether the other side can write into the parent's array (read-write mode).
    pub fn is_shared(self) -> bool {
        matches!(self, Self::MmapFile | Self::MemfdInherited)
    }

    /// Whether the transport has a process per task shape as well as a persistent one.
    pub fn can_spawn_per_task(self) -> bool {
        matches!(self, Self::Pipe | Self::MemfdInherited | Self::ForkCow)
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the other side lives across iterations or is started for each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Started once, reused (a process pool).
    Persistent,
    /// Started, used and reaped in every exchange (what starting a process costs).
    SpawnPerTask,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Self::Persistent => "persistent",
            Self::SpawnPerTask => "spawn",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "unknown transport {0:?}; the transports are: pipe, pipe-vmsplice, socket, mmap-file, memfd-inherited, fork-cow, proxy, thread-ref, channel-move, channel-clone"
    )]
    Unknown(String),
    #[error("{0} does not support {1}")]
    Unsupported(TransportKind, &'static str),
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("{what}: {source}")]
    Fd { what: String, source: FdError },
    #[error("the forked child {pid} {what}")]
    Fork { pid: i32, what: String },
    #[error("transport setup: {0}")]
    Io(#[from] std::io::Error),
    #[error("the in-process reader thread is gone")]
    ThreadGone,
}

/// One way of getting the array to the other side.
pub trait Transport: fmt::Debug {
    fn kind(&self) -> TransportKind;
    fn shape(&self) -> Shape;
    /// The array as this side holds it.
    fn array(&self) -> &[f64];
    /// The other side reads all of the array; returns the sum it computed.
    fn exchange(&mut self) -> Result<f64, TransportError>;
    /// Shared transports: the other side adds 1 to every element in place (this side sees the
    /// change) and returns the new sum.
    fn exchange_write(&mut self) -> Result<f64, TransportError> {
        Err(TransportError::Unsupported(self.kind(), "read-write"))
    }
    /// The array as the other side received it (round-trip tests).
    fn round_trip(&mut self) -> Result<Vec<f64>, TransportError>;
    /// The process on the other side while one is running (tests kill it to check what is
    /// cleaned up); `None` in-process and between the exchanges of a process per task.
    fn pid(&self) -> Option<u32> {
        None
    }
}

/// Opens `kind` in `shape` for a copy of `data`; workers run `exe` (a binary that calls
/// [`crate::worker::serve_if_worker`] first).
pub fn open(
    kind: TransportKind,
    shape: Shape,
    exe: &Path,
    data: &[f64],
) -> Result<Box<dyn Transport>, TransportError> {
    if shape == Shape::SpawnPerTask && !kind.can_spawn_per_task() {
        return Err(TransportError::Unsupported(kind, "a process per task"));
    }
    let exe = exe.to_path_buf();
    Ok(match kind {
        TransportKind::Pipe | TransportKind::PipeVmsplice | TransportKind::Socket => {
            Box::new(Streamed::new(kind, shape, exe, data.to_vec())?)
        }
        TransportKind::MmapFile | TransportKind::MemfdInherited => {
            Box::new(Mapped::new(kind, shape, exe, data)?)
        }
        TransportKind::ForkCow => Box::new(Forked::new(shape, data.to_vec())?),
        TransportKind::Proxy => Box::new(Proxied::new(exe, data.to_vec())?),
        TransportKind::ThreadRef | TransportKind::ChannelMove | TransportKind::ChannelClone => {
            Box::new(InProcess::new(kind, data.to_vec()))
        }
    })
}

/// Pipe, pipe-vmsplice and socket: the bytes are copied into the worker.
#[derive(Debug)]
struct Streamed {
    kind: TransportKind,
    shape: Shape,
    exe: PathBuf,
    data: Vec<f64>,
    worker: Option<Worker>,
    /// The parent's end of the socket pair (socket only).
    socket: Option<FdChannel>,
}

impl Streamed {
    fn new(
        kind: TransportKind,
        shape: Shape,
        exe: PathBuf,
        data: Vec<f64>,
    ) -> Result<Self, TransportError> {
        let mut this = Self {
            kind,
            shape,
            exe,
            data,
            worker: None,
            socket: None,
        };
        if shape == Shape::Persistent {
            this.start()?;
        }
        Ok(this)
    }

    fn start(&mut self) -> Result<(), TransportError> {
        let mut spawn = Spawn::new(&self.exe);
        let mut child_end = None;
        if self.kind == TransportKind::Socket {
            let (ours, theirs) = UnixStream::pair()?;
            spawn = spawn.inherit("socket", theirs.as_raw_fd());
            self.socket = Some(FdChannel::new(ours, DEFAULT_TIMEOUT)?);
            child_end = Some(theirs);
        }
        self.worker = Some(spawn.start()?);
        // The worker has its copy; ours must close or the worker never sees EOF.
        drop(child_end);
        Ok(())
    }

    fn exchange_with(&mut self, echo: bool) -> Result<(f64, Option<Vec<f64>>), TransportError> {
        if self.shape == Shape::SpawnPerTask {
            self.start()?;
        }
        let via = if self.kind == TransportKind::Socket {
            Via::Socket
        } else {
            Via::Pipe
        };
        let request = Request::Receive {
            via,
            elements: self.data.len() as u64,
            echo,
        };
        let worker = self.worker.as_mut().ok_or(TransportError::ThreadGone)?;
        worker.send(&request)?;
        let bytes = as_bytes(&self.data);
        let sent = match self.kind {
            TransportKind::Socket => match self.socket.as_mut() {
                Some(s) => s.write_all(bytes),
                None => return Err(TransportError::Unsupported(self.kind, "a missing socket")),
            },
            TransportKind::PipeVmsplice => worker.to_worker()?.vmsplice_all(bytes),
            _ => worker.to_worker()?.write_all(bytes),
        };
        if let Err(e) = sent {
            return Err(worker.failure("taking the array", e).into());
        }
        let total = worker.answer_sum("summing the array")?;
        let echoed = if echo {
            let mut back = vec![0.0; self.data.len()];
            match self.socket.as_mut() {
                Some(s) => {
                    s.read_exact(as_bytes_mut(&mut back))
                        .map_err(|source| TransportError::Fd {
                            what: "reading the echo".into(),
                            source,
                        })?
                }
                None => worker.read_bytes(as_bytes_mut(&mut back), "sending the array back")?,
            }
            Some(back)
        } else {
            None
        };
        if self.shape == Shape::SpawnPerTask {
            self.worker = None;
            self.socket = None;
        }
        Ok((total, echoed))
    }
}

impl Transport for Streamed {
    fn kind(&self) -> TransportKind {
        self.kind
    }
    fn shape(&self) -> Shape {
        self.shape
    }
    fn array(&self) -> &[f64] {
        &self.data
    }
    fn exchange(&mut self) -> Result<f64, TransportError> {
        Ok(self.exchange_with(false)?.0)
    }
    fn round_trip(&mut self) -> Result<Vec<f64>, TransportError> {
        let (_, back) = self.exchange_with(true)?;
        back.ok_or(TransportError::ThreadGone)
    }
    fn pid(&self) -> Option<u32> {
        self.worker.as_ref().map(Worker::pid)
    }
}

/// mmap-file and memfd-inherited: the array lives in memory both processes map.
#[derive(Debug)]
struct Mapped {
    kind: TransportKind,
    shape: Shape,
    exe: PathBuf,
    shared: SharedArray,
    worker: Option<Worker>,
}

impl Mapped {
    fn new(
        kind: TransportKind,
        shape: Shape,
        exe: PathBuf,
        data: &[f64],
    ) -> Result<Self, TransportError> {
        let mut shared = match kind {
            TransportKind::MmapFile => SharedArray::named(data.len())?,
            _ => SharedArray::memfd(data.len())?,
        };
        shared.as_mut_slice().copy_from_slice(data);
        let mut this = Self {
            kind,
            shape,
            exe,
            shared,
            worker: None,
        };
        if shape == Shape::Persistent {
            this.start()?;
        }
        Ok(this)
    }

    fn start(&mut self) -> Result<(), TransportError> {
        let spawn = Spawn::new(&self.exe);
        let mut worker = match self.kind {
            TransportKind::MemfdInherited => spawn
                .inherit("shared", self.shared.raw_fd())
                .arg("shared-elements", self.shared.len())
                .start()?,
            _ => {
                let mut worker = spawn.start()?;
                let path = self.shared.path().map(|p| p.to_string_lossy().into_owned());
                let path = path.ok_or(TransportError::Unsupported(self.kind, "a second worker"))?;
                worker.send(&Request::OpenShared {
                    path,
                    elements: self.shared.len() as u64,
                })?;
                worker.answer("mapping the shared file")?;
                // Both sides have it mapped: the name is no longer needed, nothing can leak.
                self.shared.unlink();
                worker
            }
        };
        // A first answer proves the worker mapped it before we go on.
        worker.send(&Request::Sleep { ms: 0 })?;
        worker.answer("starting")?;
        self.worker = Some(worker);
        Ok(())
    }

    fn ask(&mut self, request: Request, doing: &str) -> Result<f64, TransportError> {
        if self.shape == Shape::SpawnPerTask {
            self.start()?;
        }
        let worker = self.worker.as_mut().ok_or(TransportError::ThreadGone)?;
        worker.send(&request)?;
        let total = worker.answer_sum(doing)?;
        if self.shape == Shape::SpawnPerTask {
            self.worker = None;
        }
        Ok(total)
    }
}

impl Transport for Mapped {
    fn kind(&self) -> TransportKind {
        self.kind
    }
    fn shape(&self) -> Shape {
        self.shape
    }
    fn array(&self) -> &[f64] {
        self.shared.as_slice()
    }
    fn exchange(&mut self) -> Result<f64, TransportError> {
        self.ask(
            Request::SharedSum { write: false },
            "summing the shared array",
        )
    }
    fn exchange_write(&mut self) -> Result<f64, TransportError> {
        self.ask(
            Request::SharedSum { write: true },
            "writing the shared array",
        )
    }
    fn round_trip(&mut self) -> Result<Vec<f64>, TransportError> {
        if self.shape == Shape::SpawnPerTask {
            self.start()?;
        }
        let mut back = vec![0.0; self.shared.len()];
        let worker = self.worker.as_mut().ok_or(TransportError::ThreadGone)?;
        worker.send(&Request::SharedEcho)?;
        worker.answer("sending the shared array back")?;
        worker.read_bytes(as_bytes_mut(&mut back), "sending the shared array back")?;
        if self.shape == Shape::SpawnPerTask {
            self.worker = None;
        }
        Ok(back)
    }
    fn pid(&self) -> Option<u32> {
        self.worker.as_ref().map(Worker::pid)
    }
}

/// fork-cow: a child forked after the array exists reads the parent's pages copy-on-write.
///
/// The parent has other threads (OpenBLAS's, Criterion's), so between fork and exit the child
/// may only do what is async-signal-safe: it reads the array (plain loads), and uses `dup2`,
/// `read`, `write` (each retried on EINTR), `close_range` (or `getrlimit` and `close`, fd by
/// fd, where the kernel lacks it) and `_exit`. It allocates nothing, takes no lock, never
/// unwinds, and runs no Rust I/O or destructor.
#[derive(Debug)]
struct Forked {
    shape: Shape,
    data: Vec<f64>,
    child: Option<ForkedChild>,
}

#[derive(Debug)]
struct ForkedChild {
    pid: i32,
    commands: Option<OwnedFd>,
    answers: FdChannel,
}

const CMD_SUM: u8 = b's';
const CMD_ECHO: u8 = b'e';

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds that we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fds from pipe2.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The calling thread's errno (reading it allocates nothing and takes no lock).
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Closes every fd from `first` up. Async-signal-safe: runs in the forked child.
///
/// `close_range` (Linux 5.9) does it in one call; before it, each fd below the `RLIMIT_NOFILE`
/// soft limit is closed one by one, a system call each (`getrlimit` is a bare system call in
/// glibc and musl: no lock, no allocation).
fn close_fds_from(first: u32) {
    // SAFETY: close_range takes three integers and only closes this process's fds.
    if unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) } == 0 {
        return;
    }
    close_fds_one_by_one(first);
}

/// [`close_fds_from`] without `close_range`.
fn close_fds_one_by_one(first: u32) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a live rlimit.
    let end = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        // An fd is below the soft limit that was in force when it was opened; a limit lowered
        // since is the one case this misses, and a huge or infinite one is capped (1M fds).
        u32::try_from(limit.rlim_cur)
            .unwrap_or(u32::MAX)
            .min(1 << 20)
    } else {
        // Nothing better is known; Linux's default soft limit.
        1024
    };
    for fd in first..end {
        let Ok(fd) = i32::try_from(fd) else { break };
        // SAFETY: closes an fd of this process (EBADF if none is open there). No retry on
        // EINTR: Linux releases the fd even then.
        unsafe {
            libc::close(fd);
        }
    }
}

/// The forked child's whole life; see [`Forked`] for the rules it keeps.
///
/// # Safety
/// Call only in a freshly forked child, with `cmd` and `ans` its pipe ends.
unsafe fn forked_child(data: &[f64], cmd: i32, ans: i32, persistent: bool) -> ! {
    // SAFETY (whole body): only async-signal-safe calls on fds this child owns.
    unsafe {
        // Keep stdio and our two pipes; every other inherited fd would hold other workers'
        // pipes open. Without its pipes on 0 and 1 the child cannot serve: it leaves.
        for (from, to) in [(cmd, 0), (ans, 1)] {
            while libc::dup2(from, to) < 0 {
                if errno() != libc::EINTR {
                    libc::_exit(4);
                }
            }
        }
        close_fds_from(3);
        let write_all = |bytes: &[u8]| {
            let mut done = 0;
            while done < bytes.len() {
                let n = libc::write(1, bytes[done..].as_ptr().cast(), bytes.len() - done);
                if n < 0 && errno() == libc::EINTR {
                    continue;
                }
                if n <= 0 {
                    libc::_exit(3);
                }
                done += n as usize;
            }
        };
        loop {
            let command = if persistent {
                let mut c = 0u8;
                let n = loop {
                    let n = libc::read(0, (&mut c as *mut u8).cast(), 1);
                    if n >= 0 || errno() != libc::EINTR {
                        break n;
                    }
                };
                // EOF (or a broken pipe): the parent is done with us.
                if n != 1 {
                    libc::_exit(0);
                }
                c
            } else {
                CMD_SUM
            };
            if command == CMD_ECHO {
                write_all(as_bytes(data));
            } else {
                write_all(&sum(data).to_bits().to_le_bytes());
            }
            if !persistent {
                libc::_exit(0);
            }
        }
    }
}

impl Forked {
    fn new(shape: Shape, data: Vec<f64>) -> Result<Self, TransportError> {
        let mut this = Self {
            shape,
            data,
            child: None,
        };
        if shape == Shape::Persistent {
            this.child = Some(this.fork()?);
        }
        Ok(this)
    }

    fn fork(&self) -> Result<ForkedChild, TransportError> {
        self.fork_child(self.shape == Shape::Persistent)
    }

    /// Forks a child over the array: `persistent` ones serve commands until their command
    /// pipe closes, the others sum once and exit.
    fn fork_child(&self, persistent: bool) -> Result<ForkedChild, TransportError> {
        let (cmd_read, cmd_write) = pipe()?;
        let (ans_read, ans_write) = pipe()?;
        // SAFETY: the child runs only `forked_child`, which keeps the rules above.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        if pid == 0 {
            // SAFETY: this is the freshly forked child.
            unsafe {
                forked_child(
                    &self.data,
                    cmd_read.as_raw_fd(),
                    ans_write.as_raw_fd(),
                    persistent,
                )
            }
        }
        drop((cmd_read, ans_write));
        Ok(ForkedChild {
            pid,
            commands: Some(cmd_write),
            answers: FdChannel::new(ans_read, DEFAULT_TIMEOUT)?,
        })
    }

    fn ask(&mut self, command: u8, out: &mut [u8]) -> Result<(), TransportError> {
        let mut once = None;
        let child = match self.shape {
            Shape::Persistent => self.child.as_mut().ok_or(TransportError::ThreadGone)?,
            Shape::SpawnPerTask => once.insert(self.fork()?),
        };
        if self.shape == Shape::Persistent {
            let fd = child.commands.as_ref().map_or(-1, AsRawFd::as_raw_fd);
            // SAFETY: writes one byte from a live local.
            if unsafe { libc::write(fd, (&command as *const u8).cast(), 1) } != 1 {
                return Err(TransportError::Fork {
                    pid: child.pid,
                    what: "is gone (its command pipe is closed)".into(),
                });
            }
        }
        child
            .answers
            .read_exact(out)
            .map_err(|source| TransportError::Fork {
                pid: child.pid,
                what: format!("did not answer: {source}"),
            })
    }
}

impl Drop for ForkedChild {
    fn drop(&mut self) {
        // A closed command pipe tells a persistent child to exit; a one-shot one exits anyway.
        self.commands = None;
        reap_pid(self.pid, REAP_GRACE);
    }
}

impl Transport for Forked {
    fn kind(&self) -> TransportKind {
        TransportKind::ForkCow
    }
    fn shape(&self) -> Shape {
        self.shape
    }
    fn array(&self) -> &[f64] {
        &self.data
    }
    fn exchange(&mut self) -> Result<f64, TransportError> {
        let mut bits = [0u8; 8];
        self.ask(CMD_SUM, &mut bits)?;
        Ok(f64::from_bits(u64::from_le_bytes(bits)))
    }
    fn round_trip(&mut self) -> Result<Vec<f64>, TransportError> {
        let mut back = vec![0.0; self.data.len()];
        if self.shape == Shape::SpawnPerTask {
            // A one-shot child only sums: echo through a serving child, asked once.
            let mut once = Self {
                shape: Shape::Persistent,
                data: Vec::new(),
                child: Some(self.fork_child(true)?),
            };
            once.ask(CMD_ECHO, as_bytes_mut(&mut back))?;
            return Ok(back);
        }
        self.ask(CMD_ECHO, as_bytes_mut(&mut back))?;
        Ok(back)
    }
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| u32::try_from(c.pid).ok())
    }
}

/// Proxy: a server process holds the array; the reader asks for it slice by slice, one round
/// trip each, as a manager's proxy object is read.
#[derive(Debug)]
struct Proxied {
    server: Worker,
    data: Vec<f64>,
    received: Vec<f64>,
}

/// Values a proxy request returns (4 KiB).
pub const PROXY_SLICE: usize = 512;

impl Proxied {
    fn new(exe: PathBuf, data: Vec<f64>) -> Result<Self, TransportError> {
        let mut server = Spawn::new(exe).start()?;
        server.send(&Request::Hold {
            elements: data.len() as u64,
        })?;
        server.send_bytes(as_bytes(&data), "taking the array to hold")?;
        server.answer_sum("taking the array to hold")?;
        let received = vec![0.0; data.len()];
        Ok(Self {
            server,
            data,
            received,
        })
    }

    fn fetch_all(&mut self) -> Result<(), TransportError> {
        let total = self.received.len();
        for (i, chunk) in self.received.chunks_mut(PROXY_SLICE).enumerate() {
            let offset = (i * PROXY_SLICE) as u64;
            let len = chunk.len() as u64;
            debug_assert!(offset as usize + chunk.len() <= total);
            self.server.send(&Request::Slice { offset, len })?;
            self.server.answer("serving a slice")?;
            self.server
                .read_bytes(as_bytes_mut(chunk), "serving a slice")?;
        }
        Ok(())
    }
}

impl Transport for Proxied {
    fn kind(&self) -> TransportKind {
        TransportKind::Proxy
    }
    fn shape(&self) -> Shape {
        Shape::Persistent
    }
    fn array(&self) -> &[f64] {
        &self.data
    }
    fn exchange(&mut self) -> Result<f64, TransportError> {
        self.fetch_all()?;
        Ok(sum(&self.received))
    }
    fn round_trip(&mut self) -> Result<Vec<f64>, TransportError> {
        self.fetch_all()?;
        Ok(self.received.clone())
    }
    fn pid(&self) -> Option<u32> {
        Some(self.server.pid())
    }
}

/// The in-process baselines: threads share memory, nothing crosses a process boundary.
#[derive(Debug)]
struct InProcess {
    kind: TransportKind,
    /// `None` only while the Vec is with the reader thread (channel-move).
    data: Option<Vec<f64>>,
    to_reader: Option<crossbeam_channel::Sender<Vec<f64>>>,
    from_reader: crossbeam_channel::Receiver<(Vec<f64>, f64)>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    fn new(kind: TransportKind, data: Vec<f64>) -> Self {
        let (to_reader, requests) = crossbeam_channel::bounded::<Vec<f64>>(1);
        let (answers, from_reader) = crossbeam_channel::bounded(1);
        let reader = (kind != TransportKind::ThreadRef).then(|| {
            std::thread::spawn(move || {
                for v in requests {
                    let s = sum(&v);
                    if answers.send((v, s)).is_err() {
                        break;
                    }
                }
            })
        });
        Self {
            kind,
            data: Some(data),
            to_reader: Some(to_reader),
            from_reader,
            reader,
        }
    }

    fn via_channel(&mut self, clone: bool) -> Result<(f64, Vec<f64>), TransportError> {
        let tx = self.to_reader.as_ref().ok_or(TransportError::ThreadGone)?;
        let data = self.data.as_ref().ok_or(TransportError::ThreadGone)?;
        let outgoing = if clone {
            data.clone()
        } else {
            self.data.take().ok_or(TransportError::ThreadGone)?
        };
        tx.send(outgoing).map_err(|_| TransportError::ThreadGone)?;
        let (v, s) = self
            .from_reader
            .recv()
            .map_err(|_| TransportError::ThreadGone)?;
        if !clone {
            self.data = Some(v);
            return Ok((s, Vec::new()));
        }
        Ok((s, v))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.to_reader = None;
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

impl Transport for InProcess {
    fn kind(&self) -> TransportKind {
        self.kind
    }
    fn shape(&self) -> Shape {
        Shape::Persistent
    }
    fn array(&self) -> &[f64] {
        self.data.as_deref().unwrap_or(&[])
    }
    fn exchange(&mut self) -> Result<f64, TransportError> {
        match self.kind {
            TransportKind::ThreadRef => {
                let data = self.data.as_deref().ok_or(TransportError::ThreadGone)?;
                std::thread::scope(|s| s.spawn(|| sum(data)).join())
                    .map_err(|_| TransportError::ThreadGone)
            }
            TransportKind::ChannelMove => Ok(self.via_channel(false)?.0),
            _ => Ok(self.via_channel(true)?.0),
        }
    }
    fn round_trip(&mut self) -> Result<Vec<f64>, TransportError> {
        match self.kind {
            TransportKind::ChannelClone => Ok(self.via_channel(true)?.1),
            _ => {
                self.exchange()?;
                Ok(self.array().to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback for kernels without `close_range`, run where it runs: in a forked child.
    #[test]
    fn the_fd_by_fd_fallback_closes_every_fd_above_stdio() {
        let (low, _other_end) = pipe().expect("pipe");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills a live rlimit.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        // The highest fd the fallback closes, so both ends of its range are checked.
        let top = libc::c_int::try_from(limit.rlim_cur.min(1 << 20) - 1).expect("fd");
        // SAFETY: duplicates an fd we own onto the lowest free number from `top`.
        let high = unsafe { libc::fcntl(low.as_raw_fd(), libc::F_DUPFD_CLOEXEC, top) };
        assert!(high >= top, "{}", std::io::Error::last_os_error());
        // SAFETY: a fresh fd from fcntl.
        let high = unsafe { OwnedFd::from_raw_fd(high) };
        let fds = [low.as_raw_fd(), high.as_raw_fd()];
        // SAFETY: fcntl with integer arguments only.
        let stdio = [0, 1, 2].map(|fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
        // SAFETY: the child makes only async-signal-safe calls (fcntl, getrlimit, close, _exit).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "{}", std::io::Error::last_os_error());
        if pid == 0 {
            close_fds_one_by_one(3);
            // SAFETY: as above.
            let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
            let code = if fds.iter().any(|&fd| open(fd)) {
                1
            } else if [0, 1, 2].map(open) != stdio {
                2
            } else {
                0
            };
            // SAFETY: leaves the forked child without running anything of the parent's.
            unsafe { libc::_exit(code) }
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "status {status}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "1: an fd above 2 stayed open; 2: stdio changed"
        );
    }
}
