//! The third way to share an array: leave it where it lives and send the work to it. A server
//! process holds the array (sent to it once) and answers small requests about it; the client
//! sends a request of a few bytes and gets back a number or a few kilobytes
//! (`array-sharing/remote/...`). Measured against a thread that answers the same requests
//! reading the array through a shared reference. Both ends of both are here: [`Holder`].
//!
//! The requests ([`Request`]): the sum of a range of [`RANGE_VALUES`] values, a slice of
//! [`SMALL_VALUES`] values (4 KiB) returned whole, and the dot product of a window of the
//! array with a vector of [`SMALL_VALUES`] values that the client sends with the request.
//! Each asks at one of [`CYCLE`] places spread over the whole array ([`queries`]), in an order
//! that jumps across it, so a large array's requests miss the caches as a program's would.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fdio::{as_bytes, as_bytes_mut};
use crate::transport::Reading;
use crate::worker::{Request as WorkerRequest, Spawn, Via, Worker, WorkerError};
use crate::workload::sum;

/// Values a range-sum adds up (64 KiB of the array): work the server does that would otherwise
/// cross to the client.
pub const RANGE_VALUES: usize = 8192;

/// Values of a slice, and of a dot product's vector (4 KiB).
pub const SMALL_VALUES: usize = 512;

/// Places in the array a run of requests asks at, in turn.
pub const CYCLE: usize = 64;

/// What a client asks of the array's holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    /// The sum of [`RANGE_VALUES`] values from a place: one number back.
    RangeSum,
    /// [`SMALL_VALUES`] values from a place, returned whole.
    Slice,
    /// The dot product of [`SMALL_VALUES`] values from a place with the client's vector of as
    /// many, sent with each request: one number back.
    Dot,
}

impl Request {
    pub const ALL: [Self; 3] = [Self::RangeSum, Self::Slice, Self::Dot];

    /// The request as ids name it (`parcost::id::request`).
    pub fn name(self) -> &'static str {
        match self {
            Self::RangeSum => crate::id::request::RANGE_SUM,
            Self::Slice => crate::id::request::SLICE,
            Self::Dot => crate::id::request::DOT,
        }
    }

    /// How many values of the array one request reads.
    pub fn span(self) -> usize {
        match self {
            Self::RangeSum => RANGE_VALUES,
            Self::Slice | Self::Dot => SMALL_VALUES,
        }
    }
}

/// One request at one place: values `start..start + len` of the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    pub request: Request,
    pub start: u64,
    pub len: u64,
}

impl Query {
    /// The values it reads, if they lie inside an array of `len` values.
    fn range(self, len: usize) -> Result<std::ops::Range<usize>, RemoteError> {
        let start = usize::try_from(self.start).unwrap_or(usize::MAX);
        let n = usize::try_from(self.len).unwrap_or(usize::MAX);
        start
            .checked_add(n)
            .filter(|&end| end <= len)
            .map(|end| start..end)
            .ok_or(RemoteError::OutOfRange {
                query: self,
                len: len as u64,
            })
    }
}

/// The [`CYCLE`] queries of `request` over an array of `len` values: places spread evenly from
/// the first value to the last window, visited in a jumping order (stride 37 of 64); the span
/// shrinks to the array when it is shorter.
pub fn queries(request: Request, len: usize) -> Vec<Query> {
    let span = request.span().min(len);
    let last = len - span;
    (0..CYCLE)
        .map(|j| {
            let place = (j * 37) % CYCLE;
            let start = if CYCLE > 1 {
                place * last / (CYCLE - 1)
            } else {
                0
            };
            Query {
                request,
                start: start as u64,
                len: span as u64,
            }
        })
        .collect()
}

/// The vector a dot product's client sends: `n` values, fixed, none zero.
pub fn dot_vector(n: usize) -> Vec<f64> {
    (0..n).map(|i| 1.0 + (i % 7) as f64 / 8.0).collect()
}

/// The dot product of `a` and `b` (as long as the shorter), in eight lanes: the same bits on
/// either end for the same values.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f64>() + tail
}

/// What a request returns: a number (range-sum, dot) or the values of a slice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reply<'a> {
    Number(f64),
    Values(&'a [f64]),
}

/// A reply as it must be, kept to check every timed reply against (computed outside the
/// timing, by [`answer`] on the client's own array).
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    Number(f64),
    Values(Vec<f64>),
}

impl Expected {
    /// Whether `reply` is this, bit for bit.
    pub fn matches(&self, reply: Reply<'_>) -> bool {
        match (self, reply) {
            (Self::Number(a), Reply::Number(b)) => a.to_bits() == b.to_bits(),
            (Self::Values(a), Reply::Values(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            _ => false,
        }
    }
}

/// The server's work for `query` on `array` (with the client's `vector` for a dot product):
/// the answer every end computes the same way.
pub fn answer<'a>(
    array: &'a [f64],
    query: Query,
    vector: &[f64],
) -> Result<Reply<'a>, RemoteError> {
    let values = &array[query.range(array.len())?];
    Ok(match query.request {
        Request::RangeSum => Reply::Number(sum(values)),
        Request::Slice => Reply::Values(values),
        Request::Dot => {
            if vector.len() != values.len() {
                return Err(RemoteError::Vector {
                    got: vector.len(),
                    want: values.len(),
                });
            }
            Reply::Number(dot(values, vector))
        }
    })
}

/// The expected replies of `queries` on `array`.
pub fn expected(array: &[f64], queries: &[Query]) -> Result<Vec<Expected>, RemoteError> {
    let vector = dot_vector(SMALL_VALUES);
    queries
        .iter()
        .map(|q| {
            Ok(
                match answer(array, *q, &vector[..(q.len as usize).min(SMALL_VALUES)])? {
                    Reply::Number(x) => Expected::Number(x),
                    Reply::Values(v) => Expected::Values(v.to_vec()),
                },
            )
        })
        .collect()
}

/// What can go wrong asking the array's holder.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("values {} to {} are not in an array of {len}", .query.start, .query.start + .query.len)]
    OutOfRange { query: Query, len: u64 },
    #[error("a dot product needs a vector of {want} values, {got} came")]
    Vector { got: usize, want: usize },
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("the server holds another array: it read {held:?}, the array sent is {sent:?}")]
    HeldCopy { sent: Reading, held: Reading },
    #[error("the answering thread is gone")]
    ThreadGone,
    #[error("the answering thread refused: {0}")]
    Refused(String),
}

/// Who holds the array and answers: a server process or a thread.
pub trait Holder: Send {
    /// Sends `query` and waits for its reply.
    fn ask(&mut self, query: Query) -> Result<Reply<'_>, RemoteError>;

    /// The CPU time a server process has used so far (a thread's is this process's own).
    fn worker_cpu(&self) -> Option<Duration> {
        None
    }
}

/// A server process that holds its own copy of the array, sent once through its stdin when
/// it opens; each request is a line on its stdin (and a dot product's vector after it), each
/// reply a line on its stdout (and a slice's values after it).
#[derive(Debug)]
pub struct Server {
    worker: Worker,
    vector: Vec<f64>,
    /// A slice's values land here.
    values: Vec<f64>,
}

impl Server {
    /// Starts the server (`exe` re-executed as a worker) and hands it `data`, which it must then
    /// hold bit for bit.
    pub fn open(exe: &std::path::Path, data: &[f64]) -> Result<Self, RemoteError> {
        let mut worker = Spawn::new(exe).start()?;
        worker.send(&WorkerRequest::Hold {
            via: Via::Pipe,
            elements: data.len() as u64,
        })?;
        worker.send_bytes(as_bytes(data), "taking the array to hold")?;
        let held = worker.answer_reading("holding the array")?;
        let sent = Reading::of(data);
        if held.sum.to_bits() != sent.sum.to_bits() || held.stamped != sent.stamped {
            return Err(RemoteError::HeldCopy { sent, held });
        }
        Ok(Self {
            worker,
            vector: dot_vector(SMALL_VALUES),
            values: vec![0.0; SMALL_VALUES],
        })
    }
}

impl Holder for Server {
    fn ask(&mut self, query: Query) -> Result<Reply<'_>, RemoteError> {
        let doing = "answering a request about the array it holds";
        self.worker.send(&WorkerRequest::Ask(query))?;
        let n = usize::try_from(query.len).unwrap_or(usize::MAX);
        if query.request == Request::Dot {
            let vector = self.vector.get(..n).ok_or(RemoteError::Vector {
                got: self.vector.len(),
                want: n,
            })?;
            self.worker.send_bytes(as_bytes(vector), doing)?;
        }
        let answer = self.worker.answer(doing)?;
        match query.request {
            Request::Slice => {
                self.values.resize(n, 0.0);
                self.worker
                    .read_bytes(as_bytes_mut(&mut self.values), doing)?;
                Ok(Reply::Values(&self.values))
            }
            Request::RangeSum | Request::Dot => {
                let pid = self.worker.pid();
                let bits = answer.sum_bits.ok_or_else(|| WorkerError::Garbage {
                    pid,
                    doing: doing.into(),
                    line: "an answer without a number".into(),
                })?;
                Ok(Reply::Number(f64::from_bits(bits)))
            }
        }
    }

    fn worker_cpu(&self) -> Option<Duration> {
        self.worker.cpu_time().ok()
    }
}

/// The server's end inside the worker: answers `query` about the array it holds, reading a
/// dot product's vector from `input` into `scratch` first. The worker writes the reply.
pub(crate) fn serve<'a>(
    held: &'a [f64],
    query: Query,
    input: &mut dyn std::io::Read,
    scratch: &'a mut Vec<f64>,
) -> Result<Reply<'a>, String> {
    if query.request == Request::Dot {
        let n = usize::try_from(query.len).map_err(|_| "too many values")?;
        if n > SMALL_VALUES {
            return Err(format!("a dot product's vector of {n} values is too long"));
        }
        scratch.resize(n, 0.0);
        input
            .read_exact(as_bytes_mut(scratch))
            .map_err(|e| format!("pipe: {e}"))?;
    }
    answer(held, query, scratch).map_err(|e| e.to_string())
}

type ThreadQuery = (Query, Vec<f64>);
/// The number (`None`: a slice, in the buffer), or why the thread could not answer.
type ThreadReply = Result<(Option<f64>, Vec<f64>), String>;

/// A reused thread holding a shared reference to the array: each request goes to it on a
/// channel, with the buffer a slice's values come back in; the reply returns on another.
#[derive(Debug)]
pub struct Thread {
    to: Option<Sender<ThreadQuery>>,
    from: Receiver<ThreadReply>,
    values: Vec<f64>,
    handle: Option<JoinHandle<()>>,
}

impl Thread {
    /// Starts the thread on `data`, shared (not copied).
    pub fn open(data: Arc<[f64]>) -> Result<Self, RemoteError> {
        let (to, requests) = channel::<ThreadQuery>();
        let (replies, from) = channel();
        let handle = std::thread::Builder::new()
            .name("parcost-remote".into())
            .spawn(move || {
                let vector = dot_vector(SMALL_VALUES);
                for (query, mut values) in requests {
                    let n = (query.len as usize).min(SMALL_VALUES);
                    let reply = match answer(&data, query, &vector[..n]) {
                        Ok(Reply::Number(x)) => Ok((Some(x), values)),
                        Ok(Reply::Values(v)) => {
                            values.clear();
                            values.extend_from_slice(v);
                            Ok((None, values))
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    if replies.send(reply).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| RemoteError::Worker(WorkerError::Setup(e)))?;
        Ok(Self {
            to: Some(to),
            from,
            values: Vec::with_capacity(SMALL_VALUES),
            handle: Some(handle),
        })
    }
}

impl Holder for Thread {
    fn ask(&mut self, query: Query) -> Result<Reply<'_>, RemoteError> {
        let values = std::mem::take(&mut self.values);
        self.to
            .as_ref()
            .ok_or(RemoteError::ThreadGone)?
            .send((query, values))
            .map_err(|_| RemoteError::ThreadGone)?;
        let (number, values) = self
            .from
            .recv()
            .map_err(|_| RemoteError::ThreadGone)?
            .map_err(RemoteError::Refused)?;
        self.values = values;
        Ok(match number {
            Some(x) => Reply::Number(x),
            None => Reply::Values(&self.values),
        })
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        drop(self.to.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f64 / 64.0 - 3.0)
            .collect()
    }

    #[test]
    fn queries_spread_over_the_whole_array_each_place_once() {
        for request in Request::ALL {
            let len = 100_000;
            let qs = queries(request, len);
            assert_eq!(qs.len(), CYCLE);
            let mut starts: Vec<u64> = qs.iter().map(|q| q.start).collect();
            assert!(qs.iter().all(|q| q.len as usize == request.span()));
            // Jumping: consecutive requests are far apart.
            assert!(
                starts
                    .windows(2)
                    .all(|w| w[0].abs_diff(w[1]) > len as u64 / 8)
            );
            starts.sort();
            starts.dedup();
            assert_eq!(starts.len(), CYCLE, "{request:?}");
            assert_eq!(starts[0], 0);
            assert_eq!(*starts.last().unwrap_or(&0) as usize, len - request.span());
        }
        // Shorter than a range: the whole array.
        let q = queries(Request::RangeSum, 100);
        assert!(q.iter().all(|q| q.start == 0 && q.len == 100));
    }

    #[test]
    fn answers_are_the_plain_sums_and_slices() {
        let a = array(20_000);
        let v = dot_vector(SMALL_VALUES);
        let q = Query {
            request: Request::RangeSum,
            start: 1000,
            len: RANGE_VALUES as u64,
        };
        let Ok(Reply::Number(s)) = answer(&a, q, &[]) else {
            panic!("a number")
        };
        let plain: f64 = a[1000..1000 + RANGE_VALUES].iter().sum();
        assert!(
            (s - plain).abs() <= 1e-9 * plain.abs().max(1.0),
            "{s} {plain}"
        );
        let q = Query {
            request: Request::Dot,
            start: 333,
            len: SMALL_VALUES as u64,
        };
        let Ok(Reply::Number(d)) = answer(&a, q, &v) else {
            panic!("a number")
        };
        let plain: f64 = a[333..333 + SMALL_VALUES]
            .iter()
            .zip(&v)
            .map(|(x, y)| x * y)
            .sum();
        assert!(
            (d - plain).abs() <= 1e-9 * plain.abs().max(1.0),
            "{d} {plain}"
        );
        let q = Query {
            request: Request::Slice,
            start: 19_000,
            len: 1000,
        };
        assert_eq!(answer(&a, q, &[]).ok(), Some(Reply::Values(&a[19_000..])));
        // Past the end, or a short vector: errors, not a panic.
        let past = Query { start: 19_001, ..q };
        assert!(matches!(
            answer(&a, past, &[]),
            Err(RemoteError::OutOfRange { .. })
        ));
        let short = Query {
            request: Request::Dot,
            start: 0,
            len: 8,
        };
        assert!(matches!(
            answer(&a, short, &v[..7]),
            Err(RemoteError::Vector { .. })
        ));
    }

    #[test]
    fn a_reply_matches_only_its_own_bits() {
        assert!(Expected::Number(1.5).matches(Reply::Number(1.5)));
        assert!(!Expected::Number(1.5).matches(Reply::Number(1.5 + 1e-15)));
        assert!(!Expected::Number(1.5).matches(Reply::Values(&[1.5])));
        let e = Expected::Values(vec![1.0, 2.0]);
        assert!(e.matches(Reply::Values(&[1.0, 2.0])));
        assert!(!e.matches(Reply::Values(&[2.0, 1.0])));
        assert!(!e.matches(Reply::Values(&[1.0])));
    }

    #[test]
    fn a_thread_answers_every_request_as_expected() {
        let a = array(50_000);
        let shared: Arc<[f64]> = a.clone().into();
        let mut thread = Thread::open(shared).expect("a thread");
        for request in Request::ALL {
            let qs = queries(request, a.len());
            let want = expected(&a, &qs).expect("in range");
            for (q, w) in qs.iter().zip(&want) {
                let got = thread.ask(*q).expect("an answer");
                assert!(w.matches(got), "{q:?}");
            }
        }
    }
}
