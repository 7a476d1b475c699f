//! iceoryx2 (zero-copy publish-subscribe over shared memory, no daemon): the parent's end
//! ([`Iceoryx2`], the publisher) and the worker's ([`Iox2End`], the subscriber).
//!
//! The publisher's data segment holds exactly one sample of the array's length (the worker
//! returns each sample before it answers, so one is always free again for the next loan). Per
//! exchange the parent loans the sample, fills it, publishes it, then sends the request line;
//! the worker takes the sample (already delivered), reads all of it, returns it and answers.
//! - send: the parent writes its array into the loaned sample (`write_from_slice`, a memcpy).
//! - read-shared: the sample already holds the array (written the first time that chunk of
//!   shared memory was loaned); the parent writes only the generation into it.
//!
//! Nodes and services live under a temporary folder and every shared-memory file is named
//! `parcost-<pid>-iox2-<n>-...` in /dev/shm; the parent removes both when the transport drops,
//! after its worker is reaped, whatever state a killed worker left behind.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

use super::{Question, Reading, Spec, Transport, TransportError, checked, stamp};
use crate::shm::{SHM_PREFIX, named_with_prefix};
use crate::worker::{Request, Spawn, Worker};

/// The service both ends open (unique per transport: each has its own root folder).
const SERVICE: &str = "parcost/array";

/// The iceoryx2 settings both ends use: files under `root`, shared memory named `prefix...`.
fn config(root: &str, prefix: &str) -> Result<Config, String> {
    let mut config = Config::default();
    let root = Path::new(root.as_bytes()).map_err(|e| format!("iceoryx2 root {root}: {e:?}"))?;
    config.global.set_root_path(&root);
    config.global.prefix =
        FileName::new(prefix.as_bytes()).map_err(|e| format!("iceoryx2 prefix {prefix}: {e:?}"))?;
    Ok(config)
}

fn node(config: &Config) -> Result<Node<ipc::Service>, String> {
    NodeBuilder::new()
        .config(config)
        // Leave SIGINT and SIGTERM to the bench.
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| format!("iceoryx2 node: {e}"))
}

/// What iceoryx2 leaves on disk: removed on drop (panics included).
struct Files {
    prefix: String,
    root: tempfile::TempDir,
}

impl Drop for Files {
    fn drop(&mut self) {
        for path in named_with_prefix(&self.prefix) {
            let _ = std::fs::remove_file(path);
        }
        // `root` (a TempDir) removes itself after this.
    }
}

/// The parent's end.
pub(super) struct Iceoryx2 {
    spec: Spec,
    /// Declared (so dropped) first: the worker leaves its node cleanly before ours goes.
    worker: Worker,
    publisher: Publisher<ipc::Service, [f64], ()>,
    _service: PortFactory<ipc::Service, [f64], ()>,
    _node: Node<ipc::Service>,
    /// The parent's own array (send); for read-shared, what the sample holds, kept in step
    /// (for the check after an exchange, and to fill a chunk the first time it is loaned).
    data: Vec<f64>,
    /// Addresses of the shared-memory chunks that already hold the whole array (read-shared).
    filled: Vec<usize>,
    /// Dropped last.
    _files: Files,
}

impl fmt::Debug for Iceoryx2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iceoryx2")
            .field("spec", &self.spec)
            .field("elements", &self.data.len())
            .field("worker", &self.worker.pid())
            .finish_non_exhaustive()
    }
}

fn library(e: impl fmt::Display) -> TransportError {
    TransportError::Library(format!("iceoryx2: {e}"))
}

impl Iceoryx2 {
    pub(super) fn new(spec: Spec, exe: PathBuf, data: Vec<f64>) -> Result<Self, TransportError> {
        // Even if the bench ends through `exit` (a failed check), its files go.
        crate::shm::sweep_at_exit();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let pid = std::process::id();
        let prefix = format!(
            "{SHM_PREFIX}{pid}-iox2-{}-",
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let root = tempfile::Builder::new().prefix(&prefix).tempdir()?;
        let files = Files { prefix, root };
        let root = format!("{}/", files.root.path().display());
        // Its warnings go to stderr; its information lines would drown the bench's.
        set_log_level(LogLevel::Warn);
        let config = config(&root, &files.prefix).map_err(TransportError::Library)?;
        let node = node(&config).map_err(TransportError::Library)?;
        let name: ServiceName = SERVICE.try_into().map_err(|e| library(format!("{e:?}")))?;
        let service = node
            .service_builder(&name)
            .publish_subscribe::<[f64]>()
            .max_publishers(1)
            .max_subscribers(1)
            .max_nodes(2)
            .history_size(0)
            .subscriber_max_buffer_size(1)
            .subscriber_max_borrowed_samples(1)
            .enable_safe_overflow(false)
            .create()
            .map_err(library)?;
        let publisher = service
            .publisher_builder()
            .initial_max_slice_len(data.len().max(1))
            .max_loaned_samples(1)
            // Never block in `send`: a full buffer would be the worker's fault, and shows as a
            // missing sample.
            .backpressure_strategy(BackpressureStrategy::DiscardData)
            // One sample of the array's size, not the worst case of 3.
            .override_sample_preallocation(|_| 1)
            .create()
            .map_err(library)?;
        let mut worker = Spawn::new(exe).start()?;
        worker.send(&Request::Iceoryx2Open {
            root,
            prefix: files.prefix.clone(),
            service: SERVICE.into(),
        })?;
        worker.answer("subscribing")?;
        Ok(Self {
            spec,
            worker,
            publisher,
            _service: service,
            _node: node,
            data,
            filled: Vec::new(),
            _files: files,
        })
    }
}

impl Transport for Iceoryx2 {
    fn spec(&self) -> Spec {
        self.spec
    }
    fn array(&self) -> &[f64] {
        &self.data
    }
    fn exchange(&mut self, generation: u64) -> Result<f64, TransportError> {
        let n = self.data.len();
        stamp(&mut self.data, generation);
        let sample = self.publisher.loan_slice_uninit(n).map_err(library)?;
        let at = sample.payload().as_ptr() as usize;
        let sample = match self.spec.question {
            Question::ReadShared if self.filled.contains(&at) => {
                // SAFETY: this chunk was written whole (`n` values, the same `n` every time)
                // the first time it was loaned, and since then only this parent has written it
                // (the generation, below); the worker only reads. Shared memory keeps what was
                // written, so all `n` values are initialized.
                let mut sample = unsafe { sample.assume_init() };
                stamp(sample.payload_mut(), generation);
                sample
            }
            Question::ReadShared => {
                self.filled.push(at);
                sample.write_from_slice(&self.data)
            }
            Question::Send => sample.write_from_slice(&self.data),
        };
        let delivered = sample.send().map_err(library)?;
        if delivered != 1 {
            return Err(library(format!(
                "the sample reached {delivered} subscribers, not the worker's one"
            )));
        }
        self.worker
            .send(&Request::Iceoryx2Sum { elements: n as u64 })?;
        let reading = self.worker.answer_reading("taking the sample")?;
        checked(self.spec, reading, generation, n)
    }
    fn pid(&self) -> Option<u32> {
        Some(self.worker.pid())
    }
    fn worker_cpu(&self) -> Option<Duration> {
        self.worker.cpu_time().ok()
    }
}

/// The worker's end: a subscriber to the parent's service.
pub(crate) struct Iox2End {
    subscriber: Subscriber<ipc::Service, [f64], ()>,
    _service: PortFactory<ipc::Service, [f64], ()>,
    _node: Node<ipc::Service>,
}

impl fmt::Debug for Iox2End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iox2End").finish_non_exhaustive()
    }
}

impl Iox2End {
    pub(crate) fn open(root: &str, prefix: &str, service: &str) -> Result<Self, String> {
        // Its stderr is a pipe the parent reads only when something failed: keep it quiet.
        set_log_level(LogLevel::Error);
        let config = config(root, prefix)?;
        let node = node(&config)?;
        let name: ServiceName = service
            .try_into()
            .map_err(|e| format!("iceoryx2 service name {service}: {e:?}"))?;
        let service = node
            .service_builder(&name)
            .publish_subscribe::<[f64]>()
            .open()
            .map_err(|e| format!("iceoryx2 service {service}: {e}", service = name.as_str()))?;
        let subscriber = service
            .subscriber_builder()
            .buffer_size(1)
            .create()
            .map_err(|e| format!("iceoryx2 subscriber: {e}"))?;
        Ok(Self {
            subscriber,
            _service: service,
            _node: node,
        })
    }

    /// Takes the sample the parent published, reads all of it and returns it to the publisher
    /// (before the answer: the parent loans it again next).
    pub(crate) fn receive(&self, elements: u64) -> Result<Reading, String> {
        let sample = self
            .subscriber
            .receive()
            .map_err(|e| format!("iceoryx2 receive: {e}"))?
            .ok_or("iceoryx2: no sample was delivered")?;
        let values = sample.payload();
        if values.len() as u64 != elements {
            return Err(format!(
                "iceoryx2: a sample of {} values, {elements} expected",
                values.len()
            ));
        }
        let reading = Reading::of(values);
        drop(sample);
        Ok(reading)
    }
}
