//! The third way to share an array: leave it where it lives and send the work to it. A server
//! process holds the array (sent to it once) and answers small requests about it; the client
//! sends a request of a few bytes and gets back a number or a few kilobytes
//! (`array-sharing/remote/...`). Measured against a thread that answers the same requests
//! reading the array through a shared reference. Both ends of both are here: [`Holder`].
//!
//! The requests ([`Request`]): the sum of a range of [`RANGE_VALUES`] values, a slice of
//! [`SMALL_VALUES`] values (4 KiB) returned whole, and the dot product of a window of the
//! array with a vector of [`SMALL_VALUES`] values that the client hands over with the request
//! (a process: sent on the pipe; a thread: by reference). A run of requests visits every
//! window of the array once, in an order that jumps across it ([`queries`]), so a large
//! array's requests miss the caches as a program's would, and a small one's stay in them.
//! Requests and answers to a server process are a JSON line each, as every worker exchange
//! here; a slice's values and a dot product's vector travel as raw bytes after them.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use serde::{Deserialize, Serialize};

use crate::fdio::{as_bytes, as_bytes_mut};
use crate::transport::{Reading, same};
use crate::worker::{DEFAULT_TIMEOUT, Request as WorkerRequest, Spawn, Via, Worker, WorkerError};
use crate::workload::{dot, sum};

/// Values a range-sum adds up (64 KiB of the array): work the server does that would otherwise
/// cross to the client.
pub const RANGE_VALUES: usize = 8192;

/// Values of a slice, and of a dot product's vector (4 KiB).
pub const SMALL_VALUES: usize = 512;

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

    /// Where it ends (for words: saturating).
    fn end(self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// The queries of `request` over an array of `len` values: every window of its span (the span
/// shrinks to the array when that is shorter; a last partial window is left out), each once,
/// in an order that jumps across the array (window `i * stride` modulo their count, the
/// stride coprime with it and near 0.618 of it).
pub fn queries(request: Request, len: usize) -> Vec<Query> {
    let span = request.span().min(len).max(1);
    let count = (len / span).max(1);
    let stride = jump(count);
    (0..count)
        .map(|i| Query {
            request,
            start: (((i as u128 * stride as u128) % count as u128) as usize * span) as u64,
            len: span.min(len) as u64,
        })
        .collect()
}

/// A stride coprime with `count` near 0.618 of it: consecutive visits land far apart.
fn jump(count: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut stride = ((count as f64 * 0.618) as usize).max(1);
    while gcd(stride, count) != 1 {
        stride += 1;
    }
    stride
}

/// The vector a dot product's client sends: `n` values, fixed, none zero.
pub fn dot_vector(n: usize) -> Vec<f64> {
    (0..n).map(|i| 1.0 + (i % 7) as f64 / 8.0).collect()
}

/// What a request returns: a number (range-sum, dot) or the values of a slice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reply<'a> {
    Number(f64),
    Values(&'a [f64]),
}

/// Whether `reply` is what `query` must return from `array`, bit for bit: a slice's values are
/// the array's own, a number is `number` (the answer computed before the timing, [`numbers`]).
pub fn is_right(array: &[f64], query: Query, number: Option<f64>, reply: Reply<'_>) -> bool {
    match (reply, number) {
        (Reply::Number(x), Some(want)) => x.to_bits() == want.to_bits(),
        (Reply::Values(got), None) => query.range(array.len()).is_ok_and(|r| {
            let want = &array[r];
            want.len() == got.len()
                && want
                    .iter()
                    .zip(got)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
        }),
        _ => false,
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

/// The numbers `queries` must return from `array` (range-sum, dot), computed before the
/// timing; `None` for a slice, whose reply is checked against the array itself.
pub fn numbers(array: &[f64], queries: &[Query]) -> Result<Vec<Option<f64>>, RemoteError> {
    let vector = dot_vector(SMALL_VALUES);
    queries
        .iter()
        .map(|q| {
            let n = usize::try_from(q.len)
                .unwrap_or(usize::MAX)
                .min(SMALL_VALUES);
            Ok(match answer(array, *q, &vector[..n])? {
                Reply::Number(x) => Some(x),
                Reply::Values(_) => None,
            })
        })
        .collect()
}

/// What can go wrong asking the array's holder.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("values {} to {} are not in an array of {len}", .query.start, .query.end())]
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
        if !same(held, sent) {
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
        let n = usize::try_from(query.len).unwrap_or(usize::MAX);
        // Checked before anything is sent: the server reads the vector right after the line.
        let vector = match query.request {
            Request::Dot => Some(self.vector.get(..n).ok_or(RemoteError::Vector {
                got: self.vector.len(),
                want: n,
            })?),
            Request::RangeSum | Request::Slice => None,
        };
        self.worker.send(&WorkerRequest::Ask(query))?;
        if let Some(vector) = vector {
            self.worker.send_bytes(as_bytes(vector), doing)?;
        }
        match query.request {
            Request::Slice => {
                self.worker.answer(doing)?;
                self.values.resize(n, 0.0);
                self.worker
                    .read_bytes(as_bytes_mut(&mut self.values), doing)?;
                Ok(Reply::Values(&self.values))
            }
            Request::RangeSum | Request::Dot => {
                Ok(Reply::Number(self.worker.answer_number(doing)?))
            }
        }
    }

    fn worker_cpu(&self) -> Option<Duration> {
        self.worker.cpu_time().ok()
    }
}

/// The server's end inside the worker: answers `query` about the array it holds, reading a
/// dot product's vector from `input` into `scratch` first (the client sends it right after
/// the request line, and only for a dot product of at most [`SMALL_VALUES`]: the worker stops
/// on a longer one, whose vector it cannot keep in step with). The worker writes the reply.
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
    let vector: &[f64] = if query.request == Request::Dot {
        scratch
    } else {
        &[]
    };
    answer(held, query, vector).map_err(|e| e.to_string())
}

/// A request to the thread: the query, the client's dot-product vector (by reference), and
/// the buffer a slice's values come back in.
type ThreadQuery = (Query, Arc<[f64]>, Vec<f64>);
/// The number (`None`: a slice, in the buffer), or why the thread could not answer.
type ThreadReply = Result<(Option<f64>, Vec<f64>), String>;

/// A reused thread holding a shared reference to the array: each request goes to it on a
/// channel (as [`crate::transport`]'s `thread` reader: one slot each way), the reply comes
/// back on another.
#[derive(Debug)]
pub struct Thread {
    to: Option<Sender<ThreadQuery>>,
    from: Receiver<ThreadReply>,
    vector: Arc<[f64]>,
    /// What a range-sum or slice hands over instead (cloned: no allocation a request).
    no_vector: Arc<[f64]>,
    values: Vec<f64>,
    handle: Option<JoinHandle<()>>,
}

impl Thread {
    /// Starts the thread on `data`, shared (not copied).
    pub fn open(data: Arc<[f64]>) -> Result<Self, RemoteError> {
        let (to, requests) = bounded::<ThreadQuery>(1);
        let (replies, from) = bounded(1);
        let handle = std::thread::Builder::new()
            .name("parcost-remote".into())
            .spawn(move || {
                for (query, vector, mut values) in requests {
                    let reply = match answer(&data, query, &vector) {
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
            vector: dot_vector(SMALL_VALUES).into(),
            no_vector: Arc::from(Vec::new()),
            values: Vec::with_capacity(SMALL_VALUES),
            handle: Some(handle),
        })
    }
}

impl Holder for Thread {
    fn ask(&mut self, query: Query) -> Result<Reply<'_>, RemoteError> {
        let n = usize::try_from(query.len).unwrap_or(usize::MAX);
        let vector = match query.request {
            Request::Dot if n > self.vector.len() => {
                return Err(RemoteError::Vector {
                    got: self.vector.len(),
                    want: n,
                });
            }
            // The vector by reference: a thread's dot product sees the client's own.
            Request::Dot if n < self.vector.len() => self.vector[..n].into(),
            Request::Dot => self.vector.clone(),
            Request::RangeSum | Request::Slice => self.no_vector.clone(),
        };
        let values = std::mem::take(&mut self.values);
        self.to
            .as_ref()
            .ok_or(RemoteError::ThreadGone)?
            .send((query, vector, values))
            .map_err(|_| RemoteError::ThreadGone)?;
        let (number, values) = self
            .from
            .recv_timeout(DEFAULT_TIMEOUT)
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
    fn queries_visit_every_window_once_jumping_across_the_array() {
        for request in Request::ALL {
            let len = 100_000;
            let span = request.span();
            let qs = queries(request, len);
            assert_eq!(qs.len(), len / span, "{request:?}");
            assert!(qs.iter().all(|q| q.len as usize == span));
            // Jumping: consecutive requests are far apart.
            assert!(
                qs.windows(2)
                    .all(|w| w[0].start.abs_diff(w[1].start) >= (len / 8) as u64),
                "{request:?}"
            );
            let mut starts: Vec<u64> = qs.iter().map(|q| q.start).collect();
            starts.sort();
            let every: Vec<u64> = (0..len / span).map(|i| (i * span) as u64).collect();
            assert_eq!(starts, every, "{request:?}");
        }
        // Shorter than a range: the whole array, once.
        assert_eq!(
            queries(Request::RangeSum, 100),
            [Query {
                request: Request::RangeSum,
                start: 0,
                len: 100
            }]
        );
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
        // Past the end (even by an overflowing length), or a short vector: errors in words.
        let past = Query { start: 19_001, ..q };
        assert!(matches!(
            answer(&a, past, &[]),
            Err(RemoteError::OutOfRange { .. })
        ));
        let huge = Query {
            start: u64::MAX,
            ..q
        };
        let words = answer(&a, huge, &[]).expect_err("out of range").to_string();
        assert!(words.contains("not in an array of 20000"), "{words}");
        let short = Query {
            request: Request::Dot,
            start: 0,
            len: 8,
        };
        assert!(matches!(
            answer(&a, short, &v[..7]),
            Err(RemoteError::Vector { .. })
        ));
        // The thread says so too, and goes on answering.
        let mut thread = Thread::open(a.clone().into()).expect("a thread");
        let err = thread.ask(past).expect_err("refused").to_string();
        assert!(err.contains("not in an array of 20000"), "{err}");
        assert_eq!(
            thread.ask(short).ok(),
            Some(Reply::Number(dot(&a[..8], &v)))
        );
    }

    #[test]
    fn a_reply_is_right_only_with_its_own_bits() {
        let a = array(1000);
        let q = Query {
            request: Request::Slice,
            start: 10,
            len: 3,
        };
        assert!(is_right(&a, q, None, Reply::Values(&a[10..13])));
        assert!(!is_right(&a, q, None, Reply::Values(&a[11..14])));
        assert!(!is_right(&a, q, None, Reply::Values(&a[10..12])));
        assert!(!is_right(&a, q, Some(1.0), Reply::Values(&a[10..13])));
        let n = Query {
            request: Request::RangeSum,
            ..q
        };
        assert!(is_right(&a, n, Some(1.5), Reply::Number(1.5)));
        assert!(!is_right(&a, n, Some(1.5), Reply::Number(1.5 + 1e-15)));
        assert!(!is_right(&a, n, None, Reply::Number(1.5)));
    }

    #[test]
    fn a_thread_answers_every_request_as_the_array_says() {
        let a = array(50_000);
        let mut thread = Thread::open(a.clone().into()).expect("a thread");
        for request in Request::ALL {
            let qs = queries(request, a.len());
            let want = numbers(&a, &qs).expect("in range");
            for (q, w) in qs.iter().zip(&want) {
                let got = thread.ask(*q).expect("an answer");
                assert!(is_right(&a, *q, *w, got), "{q:?}");
            }
        }
    }
}
