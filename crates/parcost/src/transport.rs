//! The ways to get an `f64` array to another process (or thread), one type each behind
//! [`Transport`], under the two questions of sharing ([`Question`]):
//!
//! - *send*: the parent holds an array the worker has not seen, in its own memory. One exchange
//!   is everything until the worker has read all of it and answered: the bytes crossing a pipe
//!   or socket into the worker's own buffer, a memcpy into a shared mapping, a fresh shared
//!   region, a fork.
//! - *read-shared*: the array already lives in memory both sides map; one exchange is the
//!   worker reading all of it and answering (plus whatever the transport does per message to
//!   hand it over). A pipe or socket maps nothing: its read-shared row
//!   ([`Variant::HeldCopy`]) is the worker's own copy, sent once, updated by a small message
//!   (the only way a pipe or socket reader avoids receiving the whole array again).
//!
//! Every exchange carries a generation: the parent writes it into [`STAMPS`] elements spread
//! evenly from the first to the last ([`stamp`]; in its own memory for a send, in the shared
//! array for read-shared) and the worker answers the sum of all it read together with the
//! lowest and highest value it saw at those elements ([`Reading`]). An exchange whose worker
//! saw another generation anywhere along that stride is an error ([`TransportError::Stale`]),
//! in every timed iteration; the sum is checked against the parent's array outside the timing.
//!
//! Worker processes are the running binary re-executed ([`crate::worker`]); requests and
//! answers travel on its stdin and stdout for every transport, so the per-exchange control
//! costs the same everywhere. [`Transport::worker_cpu`] reads the CPU time of a live worker.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::pipe::PipeFlags;
use rustix::process::Resource;
use serde::{Deserialize, Serialize};

use crate::fdio::{FdChannel, FdError, as_bytes};
use crate::shm::SharedArray;
use crate::worker::{DEFAULT_TIMEOUT, REAP_GRACE, Request, Spawn, Via, Worker, WorkerError};
use crate::workload::sum;

mod iox2;
mod ipc;

pub(crate) use iox2::Iox2End;
pub(crate) use ipc::IpcEnd;

/// The two things a program sharing an array with a worker pays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Question {
    /// The worker gets an array it has not seen, from the parent's own memory.
    Send,
    /// The worker reads an array that already lives in shared memory.
    ReadShared,
}

impl Question {
    pub const ALL: [Self; 2] = [Self::Send, Self::ReadShared];

    /// The workload level of a benchmark id.
    pub fn name(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::ReadShared => "read-shared",
        }
    }
}

impl fmt::Display for Question {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
    /// A child forked while the parent holds the array reads it copy-on-write.
    ForkCow,
    /// Servo's `ipc-channel`: bytes over its Unix-socket channels, or a memfd region passed as an
    /// fd ([`Variant`]).
    IpcChannel,
    /// `iceoryx2` publish-subscribe: the parent loans a sample in shared memory, writes it and
    /// publishes; the worker subscribes.
    Iceoryx2,
    /// In-process: one reused thread (send: it gets a fresh copy; read-shared: it reads the
    /// parent's array by reference).
    Thread,
}

impl TransportKind {
    pub const ALL: [Self; 9] = [
        Self::Pipe,
        Self::PipeVmsplice,
        Self::Socket,
        Self::MmapFile,
        Self::MemfdInherited,
        Self::ForkCow,
        Self::IpcChannel,
        Self::Iceoryx2,
        Self::Thread,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Pipe => "pipe",
            Self::PipeVmsplice => "pipe-vmsplice",
            Self::Socket => "socket",
            Self::MmapFile => "mmap-file",
            Self::MemfdInherited => "memfd-inherited",
            Self::ForkCow => "fork-cow",
            Self::IpcChannel => "ipc-channel",
            Self::Iceoryx2 => "iceoryx2",
            Self::Thread => "thread",
        }
    }

    pub fn from_name(name: &str) -> Result<Self, TransportError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| TransportError::Unknown(name.to_owned()))
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a transport with more than one way moves the array: ipc-channel's two ways, and the
/// held copy that is read-shared for a pipe or socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// `IpcBytesSender`: the bytes cross a socket into a `Vec` the receiver allocates.
    Bytes,
    /// `IpcSharedMemory`: a memfd region travels as an fd and the receiver maps it.
    SharedMemory,
    /// Read-shared by pipe, pipe-vmsplice or socket, which share no memory: the worker's own
    /// copy of the array, sent whole once (at setup, outside the timing) and updated by a small
    /// message. Each exchange sends only the new generation (the [`STAMPS`] stamped values) over
    /// the transport; the worker patches them into its copy and reads all of it.
    HeldCopy,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bytes => "bytes",
            Self::SharedMemory => "shared-memory",
            Self::HeldCopy => "held-copy",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the other side lives across iterations or is started for each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Started once, reused (a process pool, or one thread).
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

/// One measured way: a question, a transport (and its variant), a worker shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spec {
    pub question: Question,
    pub kind: TransportKind,
    pub variant: Option<Variant>,
    pub shape: Shape,
}

impl Spec {
    pub fn new(question: Question, kind: TransportKind, shape: Shape) -> Self {
        Self {
            question,
            kind,
            variant: None,
            shape,
        }
    }

    pub fn with_variant(mut self, variant: Variant) -> Self {
        self.variant = Some(variant);
        self
    }

    /// Every combination [`open`] supports, in a fixed order.
    pub fn all() -> Vec<Self> {
        let mut out = Vec::new();
        for question in Question::ALL {
            for kind in TransportKind::ALL {
                for shape in [Shape::Persistent, Shape::SpawnPerTask] {
                    let variants: &[Option<Variant>] = match kind {
                        TransportKind::IpcChannel => {
                            &[Some(Variant::Bytes), Some(Variant::SharedMemory)]
                        }
                        TransportKind::Pipe
                        | TransportKind::PipeVmsplice
                        | TransportKind::Socket => &[None, Some(Variant::HeldCopy)],
                        _ => &[None],
                    };
                    for &variant in variants {
                        let spec = Self {
                            question,
                            kind,
                            variant,
                            shape,
                        };
                        if spec.check().is_ok() {
                            out.push(spec);
                        }
                    }
                }
            }
        }
        out
    }

    /// Whether [`open`] supports this combination; if not, why.
    ///
    /// Read-shared by pipe, pipe-vmsplice or socket is `variant=held-copy` only: they share no
    /// memory, so "the array the worker already has" is the worker's own copy, sent once,
    /// updated by a small message (the new stamped values) in every exchange.
    pub fn check(&self) -> Result<(), TransportError> {
        use TransportKind as K;
        let no = |why| Err(TransportError::Unsupported(*self, why));
        match (self.kind, self.variant) {
            (K::IpcChannel, None) => {
                return no("ipc-channel without a variant (bytes or shared-memory)");
            }
            (K::IpcChannel, Some(Variant::Bytes | Variant::SharedMemory)) => {}
            (K::Pipe | K::PipeVmsplice | K::Socket, Some(Variant::HeldCopy)) => {
                if self.question != Question::ReadShared {
                    return no("held-copy is read-shared's: a send moves the whole array");
                }
            }
            (_, Some(_)) => {
                return no(
                    "a variant this transport does not have (ipc-channel: bytes, shared-memory; pipe, pipe-vmsplice, socket: held-copy)",
                );
            }
            (_, None) => {}
        }
        if self.question == Question::ReadShared {
            match self.kind {
                // Nothing is already shared: without a held copy every exchange moves the bytes.
                K::Pipe | K::PipeVmsplice | K::Socket if self.variant.is_none() => {
                    return no(
                        "read-shared: a pipe or socket holds nothing already shared (its read-shared row is variant=held-copy: the worker's own copy, sent once, updated by a small message)",
                    );
                }
                K::ForkCow => {
                    return no(
                        "read-shared: a forked child's copy-on-write snapshot never sees a new generation",
                    );
                }
                K::IpcChannel if self.variant == Some(Variant::Bytes) => {
                    return no("read-shared: ipc-channel's bytes are copied through a socket");
                }
                _ => {}
            }
        }
        match (self.shape, self.kind) {
            (Shape::Persistent, K::ForkCow) => {
                no("a persistent worker: a forked child keeps the snapshot it was forked with")
            }
            (Shape::SpawnPerTask, K::Pipe | K::MemfdInherited | K::ForkCow)
                if self.question == Question::Send =>
            {
                Ok(())
            }
            (Shape::SpawnPerTask, _) => no("a process per task"),
            (Shape::Persistent, _) => Ok(()),
        }
    }
}

/// `question/transport=T[,variant=V],pool=P`: how benchmark ids name a spec.
impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/transport={}", self.question, self.kind)?;
        if let Some(v) = self.variant {
            write!(f, ",variant={v}")?;
        }
        write!(f, ",pool={}", self.shape.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "unknown transport {0:?}; the transports are: pipe, pipe-vmsplice, socket, mmap-file, memfd-inherited, fork-cow, ipc-channel, iceoryx2, thread"
    )]
    Unknown(String),
    #[error("{0} is not measured: {1}")]
    Unsupported(Spec, &'static str),
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("{what}: {source}")]
    Fd { what: String, source: FdError },
    #[error("the forked child {pid} {what}")]
    Fork { pid: i32, what: String },
    #[error(
        "{spec}: the worker read stale data: generation {generation} was sent, the stamped elements it saw held {lowest} to {highest}"
    )]
    Stale {
        spec: Spec,
        generation: u64,
        lowest: f64,
        highest: f64,
    },
    #[error("{spec}: the worker did not say which generation it saw")]
    NoGeneration { spec: Spec },
    #[error(
        "{spec}: the copy the worker holds is not the array sent: it read {held:?}, the array is {sent:?}"
    )]
    HeldCopy {
        spec: Spec,
        sent: Reading,
        held: Reading,
    },
    #[error("{0}")]
    Library(String),
    #[error("transport setup: {0}")]
    Io(#[from] std::io::Error),
    #[error("the in-process reader thread is gone")]
    ThreadGone,
}

/// What the other side read: the sum of the whole array and the lowest and highest value at
/// its stamped elements ([`stamp_positions`]; `None` when empty), which carry the generation
/// the parent stamped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub sum: f64,
    pub stamped: Option<[f64; 2]>,
}

impl Reading {
    /// Reads all of `data` (plain loads only, no allocation: a forked child calls it).
    pub fn of(data: &[f64]) -> Self {
        let stamped = stamp_positions(data.len()).map(|i| data[i]).fold(
            None,
            |range: Option<[f64; 2]>, v| match range {
                None => Some([v, v]),
                Some([lo, hi]) => Some([lo.min(v), hi.max(v)]),
            },
        );
        Self {
            sum: sum(data),
            stamped,
        }
    }

    /// [`Reading::of`] an array received as bytes; `scratch` holds a copy if the bytes are not
    /// aligned for f64 (an allocator's large blocks always are).
    pub fn of_bytes(bytes: &[u8], scratch: &mut Vec<f64>) -> Result<Self, String> {
        if !bytes.len().is_multiple_of(8) {
            return Err(format!(
                "{} bytes is not a whole number of f64s",
                bytes.len()
            ));
        }
        // SAFETY: every bit pattern is a valid f64; align_to puts in the middle only whole,
        // aligned values.
        let (head, values, tail) = unsafe { bytes.align_to::<f64>() };
        if head.is_empty() && tail.is_empty() {
            return Ok(Self::of(values));
        }
        scratch.resize(bytes.len() / 8, 0.0);
        crate::fdio::as_bytes_mut(scratch).copy_from_slice(bytes);
        Ok(Self::of(scratch))
    }
}

/// How many elements an exchange stamps with its generation: the proof that the worker read
/// this exchange's array covers a stride of it (one element in every 1/63 of it, the first and
/// the last included), not only its two ends, while the stamp stays a few dozen cache lines
/// written (and a held copy's update 512 bytes).
pub const STAMPS: usize = 64;

/// The elements of an array of `len` that [`stamp`] writes: the first, the last, and evenly
/// between them, each once (every element of an array shorter than [`STAMPS`]).
pub fn stamp_positions(len: usize) -> impl Iterator<Item = usize> {
    let k = STAMPS.min(len);
    (0..k).map(move |j| if k == 1 { 0 } else { j * (len - 1) / (k - 1) })
}

/// Writes `generation` into the [`stamp_positions`] of `data` (nothing if it is empty).
pub fn stamp(data: &mut [f64], generation: u64) {
    // Exact: generations stay far below 2^53.
    let g = generation as f64;
    for i in stamp_positions(data.len()) {
        data[i] = g;
    }
}

/// The sum a worker answered, once its stamped elements show it read `generation`.
fn checked(
    spec: Spec,
    reading: Reading,
    generation: u64,
    len: usize,
) -> Result<f64, TransportError> {
    if len == 0 {
        return Ok(reading.sum);
    }
    let Some([lowest, highest]) = reading.stamped else {
        return Err(TransportError::NoGeneration { spec });
    };
    let g = generation as f64;
    if lowest != g || highest != g {
        return Err(TransportError::Stale {
            spec,
            generation,
            lowest,
            highest,
        });
    }
    Ok(reading.sum)
}

/// One way of getting the array to the other side.
pub trait Transport: fmt::Debug {
    fn spec(&self) -> Spec;
    /// The array as the parent holds it: its own memory for a send, the shared array for
    /// read-shared. After an exchange its stamped elements hold that exchange's generation.
    fn array(&self) -> &[f64];
    /// Stamps `generation` into the array (see [`Transport::array`]), has the other side read
    /// all of it, and returns the sum it answered; an error if it saw another generation.
    fn exchange(&mut self, generation: u64) -> Result<f64, TransportError>;
    /// The process on the other side while one is running (tests kill it to check what is
    /// cleaned up); `None` in-process and between the exchanges of a process per task.
    fn pid(&self) -> Option<u32> {
        None
    }
    /// The CPU time (user plus system) the live worker process has used so far; `None` when no
    /// worker process is alive (in-process, or between the exchanges of a process per task:
    /// those are reaped inside the exchange, so `getrusage(RUSAGE_CHILDREN)` counts them) or its
    /// clock cannot be read. The difference across a run is the worker's part of that run.
    fn worker_cpu(&self) -> Option<Duration> {
        None
    }
}

/// Opens `spec` for a copy of `data`; workers run `exe` (a binary that calls
/// [`crate::worker::serve_if_worker`] first).
pub fn open(spec: Spec, exe: &Path, data: &[f64]) -> Result<Box<dyn Transport>, TransportError> {
    spec.check()?;
    let exe = exe.to_path_buf();
    Ok(match spec.kind {
        TransportKind::Pipe | TransportKind::PipeVmsplice | TransportKind::Socket => {
            Box::new(Streamed::new(spec, exe, data.to_vec())?)
        }
        TransportKind::MmapFile | TransportKind::MemfdInherited => {
            Box::new(Mapped::new(spec, exe, data)?)
        }
        TransportKind::ForkCow => Box::new(Forked::new(spec, data.to_vec())),
        TransportKind::IpcChannel => Box::new(ipc::IpcChannel::new(spec, exe, data.to_vec())?),
        TransportKind::Iceoryx2 => Box::new(iox2::Iceoryx2::new(spec, exe, data.to_vec())?),
        TransportKind::Thread => Box::new(Threaded::new(spec, data.to_vec())?),
    })
}

/// Pipe, pipe-vmsplice and socket. A send copies all of the parent's array into the worker's
/// own buffer, which it sums once all of it has arrived. Read-shared (`variant=held-copy`): the
/// whole array went to the worker once, when the transport opened, and the worker holds its own
/// copy; an exchange sends only the new stamped values, which the worker patches into its copy
/// before it sums all of it.
#[derive(Debug)]
struct Streamed {
    spec: Spec,
    exe: PathBuf,
    data: Vec<f64>,
    worker: Option<Worker>,
    /// The parent's end of the socket pair (socket only).
    socket: Option<FdChannel>,
    /// The stamped values a held-copy exchange sends ([`stamp_positions`], in order): kept
    /// here, unchanged until the worker has answered, since pipe-vmsplice hands the pipe these
    /// pages rather than a copy. Filled in place: no allocation inside an exchange.
    stamps: Vec<f64>,
}

/// Puts `bytes` on the transport's channel after a request line: the socket, or the worker's
/// stdin (vmsplice'd for pipe-vmsplice: the caller leaves them unchanged until the worker has
/// answered, by which time it has read them all).
fn put(
    spec: Spec,
    worker: &mut Worker,
    socket: Option<&mut FdChannel>,
    bytes: &[u8],
    doing: &str,
) -> Result<(), TransportError> {
    let sent = match spec.kind {
        TransportKind::Socket => match socket {
            Some(s) => s.write_all(bytes),
            None => return Err(TransportError::Unsupported(spec, "a missing socket")),
        },
        TransportKind::PipeVmsplice => worker.to_worker()?.vmsplice_all(bytes),
        _ => worker.to_worker()?.write_all(bytes),
    };
    sent.map_err(|e| worker.failure(doing, e).into())
}

/// Whether two readings are the same bit for bit.
pub(crate) fn same(a: Reading, b: Reading) -> bool {
    let bits = |r: Reading| (r.sum.to_bits(), r.stamped.map(|e| e.map(f64::to_bits)));
    bits(a) == bits(b)
}

impl Streamed {
    fn new(spec: Spec, exe: PathBuf, data: Vec<f64>) -> Result<Self, TransportError> {
        let mut this = Self {
            spec,
            exe,
            data,
            worker: None,
            socket: None,
            stamps: Vec::with_capacity(STAMPS),
        };
        if spec.shape == Shape::Persistent {
            this.start()?;
        }
        Ok(this)
    }

    fn via(&self) -> Via {
        if self.spec.kind == TransportKind::Socket {
            Via::Socket
        } else {
            Via::Pipe
        }
    }

    fn start(&mut self) -> Result<(), TransportError> {
        let mut spawn = Spawn::new(&self.exe);
        let mut child_end = None;
        if self.spec.kind == TransportKind::Socket {
            let (ours, theirs) = UnixStream::pair()?;
            spawn = spawn.inherit("socket", theirs.as_raw_fd());
            self.socket = Some(FdChannel::new(ours, DEFAULT_TIMEOUT)?);
            child_end = Some(theirs);
        }
        self.worker = Some(spawn.start()?);
        // The worker has its copy; ours must close or the worker never sees EOF.
        drop(child_end);
        if self.spec.question == Question::ReadShared {
            self.hold()?;
        }
        Ok(())
    }

    /// Sends the whole array once (held-copy's setup): the worker keeps it as its own copy and
    /// answers its reading, which must be the array's, bit for bit.
    fn hold(&mut self) -> Result<(), TransportError> {
        let request = Request::Hold {
            via: self.via(),
            elements: self.data.len() as u64,
        };
        let worker = self.worker.as_mut().ok_or(TransportError::ThreadGone)?;
        worker.send(&request)?;
        let bytes = as_bytes(&self.data);
        put(
            self.spec,
            worker,
            self.socket.as_mut(),
            bytes,
            "taking the array to hold",
        )?;
        let held = worker.answer_reading("holding the array")?;
        let sent = Reading::of(&self.data);
        if !same(held, sent) {
            return Err(TransportError::HeldCopy {
                spec: self.spec,
                sent,
                held,
            });
        }
        Ok(())
    }
}

impl Transport for Streamed {
    fn spec(&self) -> Spec {
        self.spec
    }
    fn array(&self) -> &[f64] {
        &self.data
    }
    fn exchange(&mut self, generation: u64) -> Result<f64, TransportError> {
        stamp(&mut self.data, generation);
        if self.spec.shape == Shape::SpawnPerTask {
            self.start()?;
        }
        let via = self.via();
        let len = self.data.len();
        let Self {
            spec,
            data,
            worker,
            socket,
            stamps,
            ..
        } = self;
        let worker = worker.as_mut().ok_or(TransportError::ThreadGone)?;
        match spec.question {
            Question::Send => {
                worker.send(&Request::Receive {
                    via,
                    elements: len as u64,
                })?;
                // The pages are the pipe's until the worker has read them all, which it has once
                // it answers: the next stamp comes after that.
                put(
                    *spec,
                    worker,
                    socket.as_mut(),
                    as_bytes(data),
                    "taking the array",
                )?;
            }
            Question::ReadShared => {
                // Only the new generation crosses: the stamped values (the same buffer each time).
                stamps.clear();
                stamps.extend(stamp_positions(len).map(|i| data[i]));
                worker.send(&Request::HeldSum {
                    via,
                    elements: len as u64,
                })?;
                put(
                    *spec,
                    worker,
                    socket.as_mut(),
                    as_bytes(stamps),
                    "taking the new stamped values",
                )?;
            }
        }
        let reading = worker.answer_reading("summing the array")?;
        if self.spec.shape == Shape::SpawnPerTask {
            // Reaped here, inside the exchange: the id says spawn.
            self.worker = None;
            self.socket = None;
        }
        checked(self.spec, reading, generation, len)
    }
    fn pid(&self) -> Option<u32> {
        self.worker.as_ref().map(Worker::pid)
    }
    fn worker_cpu(&self) -> Option<Duration> {
        self.worker.as_ref().and_then(|w| w.cpu_time().ok())
    }
}

/// mmap-file and memfd-inherited: memory both processes map. A send copies the parent's array
/// into it (a memcpy); read-shared writes only the generation into the array that lives there.
#[derive(Debug)]
struct Mapped {
    spec: Spec,
    exe: PathBuf,
    /// The parent's own array (send); empty for read-shared, whose array is `shared`.
    data: Vec<f64>,
    shared: SharedArray,
    worker: Option<Worker>,
}

impl Mapped {
    fn new(spec: Spec, exe: PathBuf, data: &[f64]) -> Result<Self, TransportError> {
        let mut shared = match spec.kind {
            TransportKind::MmapFile => SharedArray::named(data.len())?,
            _ => SharedArray::memfd(data.len())?,
        };
        shared.as_mut_slice().copy_from_slice(data);
        let mut this = Self {
            spec,
            exe,
            data: match spec.question {
                Question::Send => data.to_vec(),
                Question::ReadShared => Vec::new(),
            },
            shared,
            worker: None,
        };
        if spec.shape == Shape::Persistent {
            this.start()?;
        }
        Ok(this)
    }

    fn start(&mut self) -> Result<(), TransportError> {
        let spawn = Spawn::new(&self.exe);
        let mut worker = match self.spec.kind {
            TransportKind::MemfdInherited => spawn
                .inherit("shared", self.shared.raw_fd())
                .arg("shared-elements", self.shared.len())
                .start()?,
            _ => {
                let mut worker = spawn.start()?;
                let path = self.shared.path().map(|p| p.to_string_lossy().into_owned());
                let path = path.ok_or(TransportError::Unsupported(self.spec, "a second worker"))?;
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
        if self.spec.shape == Shape::Persistent {
            // A first answer proves the worker mapped it before we go on.
            worker.send(&Request::Sleep { ms: 0 })?;
            worker.answer("starting")?;
        }
        self.worker = Some(worker);
        Ok(())
    }
}

impl Transport for Mapped {
    fn spec(&self) -> Spec {
        self.spec
    }
    fn array(&self) -> &[f64] {
        match self.spec.question {
            Question::Send => &self.data,
            Question::ReadShared => self.shared.as_slice(),
        }
    }
    fn exchange(&mut self, generation: u64) -> Result<f64, TransportError> {
        match self.spec.question {
            Question::Send => {
                stamp(&mut self.data, generation);
                self.shared.as_mut_slice().copy_from_slice(&self.data);
            }
            Question::ReadShared => stamp(self.shared.as_mut_slice(), generation),
        }
        if self.spec.shape == Shape::SpawnPerTask {
            self.start()?;
        }
        let worker = self.worker.as_mut().ok_or(TransportError::ThreadGone)?;
        worker.send(&Request::SharedSum)?;
        let reading = worker.answer_reading("summing the shared array")?;
        if self.spec.shape == Shape::SpawnPerTask {
            self.worker = None;
        }
        checked(self.spec, reading, generation, self.shared.len())
    }
    fn pid(&self) -> Option<u32> {
        self.worker.as_ref().map(Worker::pid)
    }
    fn worker_cpu(&self) -> Option<Duration> {
        self.worker.as_ref().and_then(|w| w.cpu_time().ok())
    }
}

/// fork-cow (send, a process per exchange): the parent stamps its array and forks; the child
/// reads the parent's pages copy-on-write, writes its reading and exits; the parent reaps it.
///
/// The parent has other threads (OpenBLAS's, Criterion's), so between fork and exit the child
/// may only do what is async-signal-safe: it reads the array (plain loads), and uses `dup2`,
/// `write` (retried on EINTR), `close_range` (or `getrlimit` and `close`, fd by fd, where the
/// kernel lacks it) and `_exit`. It allocates nothing, takes no lock, never unwinds, and runs
/// no Rust I/O or destructor. The system calls are rustix's (bare system calls, no errno, no
/// allocation) but for `fork`, `_exit` and `close_range`, which stay libc's (see each).
#[derive(Debug)]
struct Forked {
    spec: Spec,
    data: Vec<f64>,
}

/// A forked child, reaped on drop (waited for in the kernel, killed after [`REAP_GRACE`]).
#[derive(Debug)]
struct ForkedChild {
    pid: i32,
    answers: FdChannel,
}

/// What a forked child writes: the bits of its sum and of the lowest and highest stamped value.
const FORK_ANSWER: usize = 3 * 8;

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?)
}

/// `fork()`: `Some(child's pid)` in the parent, `None` in the child.
///
/// libc's: no crate forks safely (rustix's `runtime::kernel_fork` is for programs without libc
/// and skips its fork handlers; nix's `fork` is `unsafe` too).
///
/// # Safety
/// The parent has other threads: the child may make only async-signal-safe calls (no
/// allocation, no lock, no Rust I/O) and must leave through [`exit_child`], never by returning.
unsafe fn fork() -> std::io::Result<Option<i32>> {
    // SAFETY: the caller keeps the child's rules.
    match unsafe { libc::fork() } {
        pid if pid < 0 => Err(std::io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// `_exit(code)`: leaves a forked child at once, running none of the parent's exit handlers,
/// destructors or buffered output.
///
/// libc's: std's `exit` runs those handlers, and rustix's `runtime::exit_group` is for programs
/// without libc.
fn exit_child(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it ends the process (async-signal-safe).
    unsafe { libc::_exit(code) }
}

/// Closes every fd from `first` up. Async-signal-safe: runs in the forked child.
///
/// `close_range` (Linux 5.9) does it in one call; before it, each fd below the `RLIMIT_NOFILE`
/// soft limit is closed one by one, a system call each (rustix's `getrlimit` is a bare system
/// call: no lock, no allocation).
///
/// # Safety
/// It closes fds that other code owns: call it only in a forked child that then uses no fd from
/// `first` up and leaves through [`exit_child`].
unsafe fn close_fds_from(first: u32) {
    // libc's raw system call: rustix has no close_range (and glibc wraps it only from 2.34).
    // SAFETY: close_range takes three integers and only closes this process's fds, which the
    // caller has given up.
    if unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) } == 0 {
        return;
    }
    // SAFETY: as for this function.
    unsafe { close_fds_one_by_one(first) };
}

/// [`close_fds_from`] without `close_range`.
///
/// # Safety
/// As for [`close_fds_from`].
unsafe fn close_fds_one_by_one(first: u32) {
    // An fd is below the soft limit that was in force when it was opened; a limit lowered since
    // is the one case this misses, and a huge or infinite one is capped (1M fds).
    let end = rustix::process::getrlimit(Resource::Nofile)
        .current
        .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX))
        .min(1 << 20);
    for fd in first..end {
        let Ok(fd) = i32::try_from(fd) else { break };
        // libc's: rustix's `close` debug-asserts success, a panic (abort) here, where most
        // numbers are not open.
        // SAFETY: closes an fd of this process (EBADF if none is open there), which the caller
        // has given up. No retry on EINTR: Linux releases the fd even then.
        unsafe { libc::close(fd) };
    }
}

/// The forked child's whole life; see [`Forked`] for the rules it keeps.
///
/// # Safety
/// Call only in a freshly forked child, with `ans` its answer pipe's write end.
unsafe fn forked_child(data: &[f64], ans: BorrowedFd<'_>) -> ! {
    // Keep stdio (the answer pipe on 1); every other inherited fd would hold other workers'
    // pipes open. Without its pipe on 1 the child cannot answer: it leaves.
    loop {
        match rustix::stdio::dup2_stdout(ans) {
            Ok(()) => break,
            Err(Errno::INTR) => {}
            Err(_) => exit_child(4),
        }
    }
    // SAFETY: this is a forked child that from here on uses only fds 0-2 and leaves through
    // `exit_child` (the caller's promise).
    unsafe { close_fds_from(3) };
    let reading = Reading::of(data);
    let [lowest, highest] = reading.stamped.unwrap_or([f64::NAN; 2]);
    let mut answer = [0u8; FORK_ANSWER];
    for (slot, value) in answer
        .chunks_exact_mut(8)
        .zip([reading.sum, lowest, highest])
    {
        slot.copy_from_slice(&value.to_bits().to_le_bytes());
    }
    let mut done = 0;
    while done < answer.len() {
        match rustix::io::write(rustix::stdio::stdout(), &answer[done..]) {
            Ok(0) => exit_child(3),
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(_) => exit_child(3),
        }
    }
    exit_child(0)
}

impl Forked {
    fn new(spec: Spec, data: Vec<f64>) -> Self {
        Self { spec, data }
    }

    /// Forks a child over the array as it is now; it answers once and exits.
    fn fork_child(&self) -> Result<ForkedChild, TransportError> {
        let (ans_read, ans_write) = pipe()?;
        // SAFETY: the child runs only `forked_child`, which keeps the rules above.
        let Some(pid) = (unsafe { fork() })? else {
            // SAFETY: this is the freshly forked child, and `ans_write` its answer pipe.
            unsafe { forked_child(&self.data, ans_write.as_fd()) }
        };
        drop(ans_write);
        Ok(ForkedChild {
            pid,
            answers: FdChannel::new(ans_read, DEFAULT_TIMEOUT)?,
        })
    }
}

impl Drop for ForkedChild {
    fn drop(&mut self) {
        crate::worker::reap_pid(self.pid, REAP_GRACE);
    }
}

impl Transport for Forked {
    fn spec(&self) -> Spec {
        self.spec
    }
    fn array(&self) -> &[f64] {
        &self.data
    }
    fn exchange(&mut self, generation: u64) -> Result<f64, TransportError> {
        stamp(&mut self.data, generation);
        let mut child = self.fork_child()?;
        let mut answer = [0u8; FORK_ANSWER];
        child
            .answers
            .read_exact(&mut answer)
            .map_err(|source| TransportError::Fork {
                pid: child.pid,
                what: format!("did not answer: {source}"),
            })?;
        // Reaped (a blocking wait) inside the exchange: forking is this transport's send.
        drop(child);
        let mut values = answer
            .chunks_exact(8)
            .map(|b| f64::from_bits(u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))));
        let mut next = || values.next().unwrap_or(f64::NAN);
        let (sum, lowest, highest) = (next(), next(), next());
        let reading = Reading {
            sum,
            stamped: (!self.data.is_empty()).then_some([lowest, highest]),
        };
        checked(self.spec, reading, generation, self.data.len())
    }
}

/// The in-process baselines, on one thread started with the transport and reused: a send
/// copies the parent's array into a buffer that goes to the thread (memcpy + sum); read-shared
/// hands the thread the parent's array itself (sum by reference). Either way the `Vec` moves
/// through a channel and back, which moves a pointer, not the data.
#[derive(Debug)]
struct Threaded {
    spec: Spec,
    /// The parent's array; `None` only while it is with the thread (read-shared).
    data: Option<Vec<f64>>,
    /// The thread's copy (send); `None` only while it is with the thread.
    copy: Option<Vec<f64>>,
    to_reader: Option<crossbeam_channel::Sender<Vec<f64>>>,
    from_reader: crossbeam_channel::Receiver<(Vec<f64>, Reading)>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Threaded {
    fn new(spec: Spec, data: Vec<f64>) -> Result<Self, TransportError> {
        let (to_reader, requests) = crossbeam_channel::bounded::<Vec<f64>>(1);
        let (answers, from_reader) = crossbeam_channel::bounded(1);
        let reader = std::thread::Builder::new()
            .name("parcost-reader".into())
            .spawn(move || {
                for v in requests {
                    let reading = Reading::of(&v);
                    if answers.send((v, reading)).is_err() {
                        break;
                    }
                }
            })?;
        let copy = (spec.question == Question::Send).then(|| vec![0.0; data.len()]);
        Ok(Self {
            spec,
            data: Some(data),
            copy,
            to_reader: Some(to_reader),
            from_reader,
            reader: Some(reader),
        })
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        self.to_reader = None;
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

impl Transport for Threaded {
    fn spec(&self) -> Spec {
        self.spec
    }
    fn array(&self) -> &[f64] {
        self.data.as_deref().unwrap_or(&[])
    }
    fn exchange(&mut self, generation: u64) -> Result<f64, TransportError> {
        let data = self.data.as_mut().ok_or(TransportError::ThreadGone)?;
        stamp(data, generation);
        let len = data.len();
        let outgoing = match self.spec.question {
            Question::Send => {
                let mut copy = self.copy.take().ok_or(TransportError::ThreadGone)?;
                copy.copy_from_slice(data);
                copy
            }
            Question::ReadShared => self.data.take().ok_or(TransportError::ThreadGone)?,
        };
        let tx = self.to_reader.as_ref().ok_or(TransportError::ThreadGone)?;
        tx.send(outgoing).map_err(|_| TransportError::ThreadGone)?;
        let (back, reading) = self
            .from_reader
            .recv_timeout(DEFAULT_TIMEOUT)
            .map_err(|_| TransportError::ThreadGone)?;
        match self.spec.question {
            Question::Send => self.copy = Some(back),
            Question::ReadShared => self.data = Some(back),
        }
        checked(self.spec, reading, generation, len)
    }
}

/// Kills a worker whose exchange has run longer than a timeout, for the blocking calls of a
/// library that take no deadline (ipc-channel's `send`), so that every wait stays bounded: the
/// kill makes the blocked call fail, and the exchange reports the worker's death.
///
/// Arming and disarming are one atomic store each; the watching thread wakes a few times per
/// timeout, never in the timed path. It must be dropped before its worker is reaped (it kills
/// by pid).
#[derive(Debug)]
struct Watchdog {
    shared: Arc<Watch>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Watch {
    origin: Instant,
    /// Nanoseconds after `origin` at which the running exchange started; 0: none is running.
    armed_at: AtomicU64,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// Disarms its watchdog on drop (error paths included).
struct Armed<'a>(&'a Watch);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.armed_at.store(0, Ordering::Release);
    }
}

impl Watchdog {
    fn new(pid: u32, timeout: Duration) -> Result<Self, TransportError> {
        let pid = i32::try_from(pid).map_err(std::io::Error::other)?;
        let shared = Arc::new(Watch {
            origin: Instant::now(),
            armed_at: AtomicU64::new(0),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let watch = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("parcost-watchdog".into())
            .spawn(move || {
                let mut stop = watch.stop.lock().unwrap_or_else(|e| e.into_inner());
                while !*stop {
                    let at = watch.armed_at.load(Ordering::Acquire);
                    let now = watch.origin.elapsed().as_nanos() as u64;
                    if at != 0 && now.saturating_sub(at) > timeout.as_nanos() as u64 {
                        crate::worker::kill(pid);
                    }
                    stop = match watch.wake.wait_timeout(stop, timeout / 4) {
                        Ok((guard, _)) => guard,
                        Err(e) => e.into_inner().0,
                    };
                }
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    fn arm(&self) -> Armed<'_> {
        let at = (self.shared.origin.elapsed().as_nanos() as u64).max(1);
        self.shared.armed_at.store(at, Ordering::Release);
        Armed(&self.shared)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the number `fd` is an open fd of this process.
    ///
    /// libc's fcntl: rustix's takes a `BorrowedFd`, which promises the fd is open, the very
    /// thing asked here.
    fn is_open(fd: i32) -> bool {
        // SAFETY: fcntl(F_GETFD) takes integers only and changes nothing (async-signal-safe).
        unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
    }

    /// The fallback for kernels without `close_range`, run where it runs: in a forked child.
    #[test]
    fn the_fd_by_fd_fallback_closes_every_fd_above_stdio() {
        let (low, _other_end) = pipe().expect("pipe");
        let limit = rustix::process::getrlimit(Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        // The highest fd the fallback closes, so both ends of its range are checked.
        let top = i32::try_from(limit.min(1 << 20) - 1).expect("fd");
        let high = rustix::io::fcntl_dupfd_cloexec(&low, top).expect("dup");
        assert!(high.as_raw_fd() >= top, "{}", high.as_raw_fd());
        let fds = [low.as_raw_fd(), high.as_raw_fd()];
        let stdio = [0, 1, 2].map(is_open);
        // SAFETY: the child makes only async-signal-safe calls (fcntl, getrlimit, close, _exit).
        let Some(pid) = (unsafe { fork() }).expect("fork") else {
            // SAFETY: this forked child uses no fd above 2 from here on and leaves by _exit.
            unsafe { close_fds_one_by_one(3) };
            let code = if fds.iter().any(|&fd| is_open(fd)) {
                1
            } else if [0, 1, 2].map(is_open) != stdio {
                2
            } else {
                0
            };
            exit_child(code)
        };
        let pid = rustix::process::Pid::from_raw(pid).expect("a child's pid");
        let (_, status) =
            rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                .expect("waitpid")
                .expect("a status");
        assert_eq!(
            status.exit_status(),
            Some(0),
            "1: an fd above 2 stayed open; 2: stdio changed ({status:?})"
        );
    }

    #[test]
    fn specs_answer_the_questions_their_transports_can() {
        let all = Spec::all();
        for kind in TransportKind::ALL {
            assert!(
                all.iter()
                    .any(|s| s.kind == kind && s.question == Question::Send),
                "{kind} sends"
            );
        }
        let shared: Vec<_> = all
            .iter()
            .filter(|s| s.question == Question::ReadShared)
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            shared,
            [
                "read-shared/transport=pipe,variant=held-copy,pool=persistent",
                "read-shared/transport=pipe-vmsplice,variant=held-copy,pool=persistent",
                "read-shared/transport=socket,variant=held-copy,pool=persistent",
                "read-shared/transport=mmap-file,pool=persistent",
                "read-shared/transport=memfd-inherited,pool=persistent",
                "read-shared/transport=ipc-channel,variant=shared-memory,pool=persistent",
                "read-shared/transport=iceoryx2,pool=persistent",
                "read-shared/transport=thread,pool=persistent",
            ]
        );
        let spawned: Vec<_> = all
            .iter()
            .filter(|s| s.shape == Shape::SpawnPerTask)
            .map(|s| s.kind)
            .collect();
        assert_eq!(
            spawned,
            [
                TransportKind::Pipe,
                TransportKind::MemfdInherited,
                TransportKind::ForkCow
            ]
        );
        let err = Spec::new(Question::ReadShared, TransportKind::Pipe, Shape::Persistent)
            .check()
            .expect_err("a pipe shares nothing");
        assert!(
            err.to_string().contains("holds nothing already shared"),
            "{err}"
        );
        assert!(err.to_string().contains("variant=held-copy"), "{err}");
        let held_send = Spec::new(Question::Send, TransportKind::Socket, Shape::Persistent)
            .with_variant(Variant::HeldCopy);
        assert!(held_send.check().is_err(), "held-copy is read-shared's");
        let held_ipc = Spec::new(
            Question::ReadShared,
            TransportKind::IpcChannel,
            Shape::Persistent,
        )
        .with_variant(Variant::HeldCopy);
        assert!(held_ipc.check().is_err(), "ipc-channel has no held copy");
        let held_file = Spec::new(
            Question::ReadShared,
            TransportKind::MmapFile,
            Shape::Persistent,
        )
        .with_variant(Variant::HeldCopy);
        assert!(held_file.check().is_err(), "a mapping needs no held copy");
    }

    #[test]
    fn a_stale_reading_is_an_error_and_a_fresh_one_is_its_sum() {
        let spec = Spec::new(Question::Send, TransportKind::Pipe, Shape::Persistent);
        let mut data = vec![0.5; 9];
        stamp(&mut data, 7);
        let fresh = Reading::of(&data);
        assert_eq!(checked(spec, fresh, 7, 9).expect("fresh"), sum(&data));
        let err = checked(spec, fresh, 8, 9).expect_err("stale");
        assert!(
            matches!(err, TransportError::Stale { generation: 8, .. }),
            "{err}"
        );
        assert!(
            checked(
                spec,
                Reading {
                    sum: 0.0,
                    stamped: None
                },
                1,
                9
            )
            .is_err()
        );
        assert_eq!(checked(spec, Reading::of(&[]), 3, 0).expect("empty"), 0.0);
    }

    /// The proof of a fresh read covers a stride of the array, not only its ends: a worker
    /// that saw the new generation at both ends but an old one in between is stale.
    #[test]
    fn a_stale_middle_is_stale_even_with_fresh_ends() {
        let spec = Spec::new(Question::ReadShared, TransportKind::Pipe, Shape::Persistent)
            .with_variant(Variant::HeldCopy);
        let mut data = vec![0.5; 1000];
        stamp(&mut data, 7);
        // Only the two ends of the next generation arrived.
        data[0] = 8.0;
        data[999] = 8.0;
        let err = checked(spec, Reading::of(&data), 8, 1000).expect_err("stale in between");
        assert!(
            matches!(err, TransportError::Stale { generation: 8, lowest, highest, .. }
                if lowest == 7.0 && highest == 8.0),
            "{err}"
        );
        stamp(&mut data, 8);
        assert_eq!(
            checked(spec, Reading::of(&data), 8, 1000).expect("fresh"),
            sum(&data)
        );
    }

    #[test]
    fn the_stamps_stride_the_whole_array_once_each() {
        for len in [1, 2, 3, 63, 64, 65, 1000, 100_003] {
            let positions: Vec<usize> = stamp_positions(len).collect();
            assert_eq!(positions.len(), STAMPS.min(len), "{len}");
            assert_eq!(positions.first(), Some(&0), "{len}");
            assert_eq!(positions.last(), Some(&(len - 1)), "{len}");
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "{len}");
            // Evenly: no gap wider than one stride (rounded up).
            let stride = (len - 1).div_ceil(STAMPS - 1).max(1);
            assert!(positions.windows(2).all(|w| w[1] - w[0] <= stride), "{len}");
        }
        assert_eq!(stamp_positions(0).count(), 0);
    }

    /// The watchdog leaves alone a worker whose exchanges end in time, and kills one stuck in an
    /// exchange past the timeout.
    #[test]
    fn a_watchdog_kills_only_a_worker_stuck_past_its_timeout() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let timeout = Duration::from_millis(100);
        let dog = Watchdog::new(child.id(), timeout).expect("watchdog");
        for _ in 0..10 {
            drop(dog.arm());
        }
        assert!(
            !crate::worker::wait_for_exit(child.id(), 4 * timeout),
            "killed while idle"
        );
        let armed = dog.arm();
        let start = Instant::now();
        // Not reaped by this wait: the watchdog's pid stays ours until it is dropped.
        assert!(crate::worker::wait_for_exit(
            child.id(),
            Duration::from_secs(10)
        ));
        assert!(start.elapsed() >= timeout, "{:?}", start.elapsed());
        drop(armed);
        drop(dog);
        let status = child.wait().expect("reaped");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }

    #[test]
    fn readings_of_bytes_equal_readings_of_values_aligned_or_not() {
        let values: Vec<f64> = (0..1001).map(|i| i as f64 * 0.25).collect();
        let bytes = as_bytes(&values);
        let mut scratch = Vec::new();
        assert_eq!(
            Reading::of_bytes(bytes, &mut scratch),
            Ok(Reading::of(&values))
        );
        let mut shifted = vec![0u8; bytes.len() + 1];
        shifted[1..].copy_from_slice(bytes);
        assert_eq!(
            Reading::of_bytes(&shifted[1..], &mut scratch),
            Ok(Reading::of(&values))
        );
        assert!(Reading::of_bytes(&bytes[..7], &mut scratch).is_err());
    }
}
