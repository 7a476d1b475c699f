//! ipc-channel (servo's crate, what a Rust user reaches for to talk to another process): the
//! parent's end ([`IpcChannel`]) and the worker's ([`IpcEnd`]).
//!
//! The worker makes an `IpcOneShotServer` and tells the parent its name on stdout; the parent
//! connects and sends it the receiving ends of two channels, one for bytes and one for shared
//! regions. Per exchange the parent sends the request line, then the message:
//! - send, `variant=bytes`: `IpcBytesSender::send` of the parent's array; the worker's `recv`
//!   returns a fresh `Vec` holding all of it.
//! - send, `variant=shared-memory`: `IpcSharedMemory::from_bytes` of the parent's array (a new
//!   memfd, the array copied in), sent as an fd; the worker maps it.
//! - read-shared: the array lives in one `IpcSharedMemory` made at setup; the parent writes the
//!   generation into it in place and sends a handle to it (an fd); the worker maps it.
//!
//! ipc-channel's `send` takes no deadline: a [`Watchdog`] kills a worker that stops reading, so
//! the parent's wait stays bounded. The one-shot server's socket lives in a temporary folder the
//! parent makes for the worker (its `TMPDIR`) and removes, even if the worker is killed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ipc_channel::ipc::{
    self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcReceiver, IpcSender,
    IpcSharedMemory,
};
use serde::{Deserialize, Serialize};

use super::{
    Question, Reading, Spec, Transport, TransportError, Variant, Watchdog, checked, stamp,
};
use crate::fdio::{FdError, as_bytes};
use crate::shm::SHM_PREFIX;
use crate::worker::{DEFAULT_TIMEOUT, Request, Spawn, Worker, WorkerError};

/// What the parent sends the worker's one-shot server: the receiving ends of its channels.
#[derive(Serialize, Deserialize)]
struct Bootstrap {
    bytes: IpcBytesReceiver,
    shared: IpcReceiver<IpcSharedMemory>,
}

/// The parent's end.
pub(super) struct IpcChannel {
    spec: Spec,
    /// Declared (so dropped) before the worker it watches.
    watchdog: Watchdog,
    bytes: IpcBytesSender,
    shared: IpcSender<IpcSharedMemory>,
    /// The parent's own array (send; empty for read-shared).
    data: Vec<f64>,
    /// The array in shared memory (read-shared).
    region: Option<IpcSharedMemory>,
    elements: usize,
    worker: Worker,
    /// The worker's `TMPDIR`, where its server's socket was; removed after the worker is reaped.
    _tmp: tempfile::TempDir,
}

impl fmt::Debug for IpcChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not derived: `IpcSharedMemory`'s Debug prints every byte.
        f.debug_struct("IpcChannel")
            .field("spec", &self.spec)
            .field("elements", &self.elements)
            .field("worker", &self.worker.pid())
            .finish_non_exhaustive()
    }
}

/// An ipc-channel failure, as text (its error types differ by call).
fn library(doing: &str) -> impl Fn(&dyn fmt::Display) -> TransportError + '_ {
    move |e| TransportError::Library(format!("ipc-channel, {doing}: {e}"))
}

/// The f64s of a region (page-aligned: a fresh mapping).
fn values(region: &IpcSharedMemory) -> &[f64] {
    // SAFETY: every bit pattern is a valid f64; align_to puts in the middle only whole, aligned
    // values (all of them: `new` checked the region is aligned and whole).
    unsafe { region.align_to::<f64>().1 }
}

impl IpcChannel {
    pub(super) fn new(spec: Spec, exe: PathBuf, data: Vec<f64>) -> Result<Self, TransportError> {
        // Even if the bench ends through `exit` (a failed check), its files go.
        crate::shm::sweep_at_exit();
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{SHM_PREFIX}{}-ipc-", std::process::id()))
            .tempdir()?;
        let mut worker = Spawn::new(exe).env("TMPDIR", tmp.path()).start()?;
        worker.send(&Request::IpcChannelOpen)?;
        let doing = "setting up its ipc-channel end";
        let name = worker
            .answer(doing)?
            .name
            .ok_or_else(|| WorkerError::Garbage {
                pid: worker.pid(),
                doing: doing.into(),
                line: "an answer without the server's name".into(),
            })?;
        let boot: IpcSender<Bootstrap> =
            IpcSender::connect(name).map_err(|e| library("connecting")(&e))?;
        let (bytes, bytes_rx) = ipc::bytes_channel()?;
        let (shared, shared_rx) = ipc::channel()?;
        boot.send(Bootstrap {
            bytes: bytes_rx,
            shared: shared_rx,
        })
        .map_err(|e| library("sending the receivers")(&e))?;
        worker.answer("taking its ipc-channel receivers")?;
        let watchdog = Watchdog::new(worker.pid(), DEFAULT_TIMEOUT)?;
        let elements = data.len();
        let (data, region) = match spec.question {
            Question::Send => (data, None),
            Question::ReadShared => {
                let region = IpcSharedMemory::from_bytes(as_bytes(&data));
                if values(&region).len() != elements {
                    return Err(TransportError::Library(
                        "ipc-channel: a shared region not aligned for f64".into(),
                    ));
                }
                (Vec::new(), Some(region))
            }
        };
        Ok(Self {
            spec,
            watchdog,
            bytes,
            shared,
            data,
            region,
            elements,
            worker,
            _tmp: tmp,
        })
    }

    /// A failed ipc-channel send: the worker's death (with its stderr) if it died.
    fn lost(&mut self, doing: &str, e: &dyn fmt::Display) -> TransportError {
        let source = FdError::Io(std::io::Error::other(e.to_string()));
        self.worker.failure(doing, source).into()
    }
}

impl Transport for IpcChannel {
    fn spec(&self) -> Spec {
        self.spec
    }
    fn array(&self) -> &[f64] {
        match &self.region {
            Some(region) => values(region),
            None => &self.data,
        }
    }
    fn exchange(&mut self, generation: u64) -> Result<f64, TransportError> {
        let variant = self.spec.variant.unwrap_or(Variant::SharedMemory);
        if variant == Variant::HeldCopy {
            return Err(TransportError::Unsupported(
                self.spec,
                "held-copy by ipc-channel",
            ));
        }
        let request = Request::IpcChannelSum {
            variant,
            elements: self.elements as u64,
        };
        match &mut self.region {
            Some(region) => {
                // SAFETY: the worker maps this region only between our send below and its
                // answer, and drops its mapping before answering: nothing reads it while we
                // write. The region is page-aligned and whole f64s (checked in `new`).
                let bytes = unsafe { region.deref_mut() };
                // SAFETY: as in `values`.
                stamp(unsafe { bytes.align_to_mut::<f64>().1 }, generation);
            }
            None => stamp(&mut self.data, generation),
        }
        self.worker.send(&request)?;
        let sent = match (&self.region, variant) {
            // A handle to the region that already holds the array.
            (Some(region), _) => self.shared.send(region.clone()).map_err(|e| e.to_string()),
            // A new region, the array copied in.
            (None, Variant::SharedMemory) => self
                .shared
                .send(IpcSharedMemory::from_bytes(as_bytes(&self.data)))
                .map_err(|e| e.to_string()),
            // Refused above, before the request went out.
            (None, Variant::HeldCopy) => Err("ipc-channel has no held-copy variant".into()),
            (None, Variant::Bytes) => {
                // Blocks until the worker has taken the last piece; the watchdog bounds that.
                let _armed = self.watchdog.arm();
                self.bytes
                    .send(as_bytes(&self.data))
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(e) = sent {
            return Err(self.lost("taking the array", &e));
        }
        let reading = self.worker.answer_reading("summing the array")?;
        checked(self.spec, reading, generation, self.elements)
    }
    fn pid(&self) -> Option<u32> {
        Some(self.worker.pid())
    }
    fn worker_cpu(&self) -> Option<Duration> {
        self.worker.cpu_time().ok()
    }
}

/// The worker's end: the two receivers the parent sent.
pub(crate) struct IpcEnd {
    bytes: IpcBytesReceiver,
    shared: IpcReceiver<IpcSharedMemory>,
}

impl fmt::Debug for IpcEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpcEnd").finish_non_exhaustive()
    }
}

/// A message the worker holds until it has answered.
pub(crate) enum Held {
    Bytes(Vec<u8>),
    Region(IpcSharedMemory),
}

impl IpcEnd {
    /// Makes the one-shot server, `announce`s its name (the parent connects to it) and waits for
    /// the parent's receivers. The wait is bounded by the parent, which kills a worker it gives
    /// up on.
    pub(crate) fn open(announce: impl FnOnce(&str) -> Result<(), String>) -> Result<Self, String> {
        let (server, name) = IpcOneShotServer::<Bootstrap>::new()
            .map_err(|e| format!("ipc-channel: cannot make a server: {e}"))?;
        announce(&name)?;
        let (_more, boot) = server
            .accept()
            .map_err(|e| format!("ipc-channel: no parent connected: {e}"))?;
        Ok(Self {
            bytes: boot.bytes,
            shared: boot.shared,
        })
    }

    /// Receives one array of `elements` f64s and reads it (`scratch`: see
    /// [`Reading::of_bytes`]).
    pub(crate) fn receive(
        &self,
        variant: Variant,
        elements: u64,
        scratch: &mut Vec<f64>,
    ) -> Result<(Reading, Held), String> {
        let held = match variant {
            Variant::Bytes => Held::Bytes(
                self.bytes
                    .recv()
                    .map_err(|e| format!("ipc-channel bytes: {e}"))?,
            ),
            Variant::SharedMemory => Held::Region(
                self.shared
                    .recv()
                    .map_err(|e| format!("ipc-channel shared memory: {e}"))?,
            ),
            Variant::HeldCopy => return Err("ipc-channel has no held-copy variant".into()),
        };
        let bytes: &[u8] = match &held {
            Held::Bytes(v) => v,
            Held::Region(r) => r,
        };
        if bytes.len() as u64 != elements * 8 {
            return Err(format!(
                "ipc-channel: {} bytes arrived, {} values expected",
                bytes.len(),
                elements
            ));
        }
        let reading = Reading::of_bytes(bytes, scratch)?;
        Ok((reading, held))
    }
}
