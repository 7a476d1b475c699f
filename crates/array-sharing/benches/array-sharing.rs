//! Cost 5: what a worker pays to get an `f64` array of B bytes, by every transport, against a
//! thread and a plain memcpy, under the two questions of sharing.
//!
//! Ids (every case at B = 1 MiB, 64 MiB, and 800 MB outside `--quick`):
//! - `array-sharing/send/transport=T[,variant=V],pool=persistent|spawn/bytes=B`: the parent
//!   holds an array the worker has not seen, in its own memory (each iteration writes a new
//!   generation into 64 of its elements, a stride from the first to the last). Timed: from
//!   that write until the worker has read all of the array and its answer (the sum, and the
//!   lowest and highest value it saw at the stamped elements) is back.
//!   - `pipe`, `pipe-vmsplice`, `socket`: the bytes cross into the worker's own buffer (all of
//!     them, then it sums).
//!   - `mmap-file`, `memfd-inherited`: the parent copies its array into the shared mapping (a
//!     memcpy), the worker sums the mapping.
//!   - `fork-cow` (`pool=spawn` only): the parent forks; the child reads the pages it shares
//!     copy-on-write, answers and exits; the parent reaps it (a blocking wait).
//!   - `ipc-channel,variant=bytes`: `IpcBytesSender::send`, the worker's `recv` returns a `Vec`
//!     holding all of it; `variant=shared-memory`: `IpcSharedMemory::from_bytes` (a new memfd
//!     with the array copied in) sent as an fd, the worker maps and sums it.
//!   - `iceoryx2`: the parent loans a sample in shared memory, writes its array into it and
//!     publishes it; the worker takes it, sums it and returns it.
//!   - `thread`: the parent copies its array into a buffer that a reused thread then sums.
//!
//!   `pool=spawn` (pipe, memfd-inherited, fork-cow) starts and reaps the worker inside every
//!   iteration; `pool=persistent` reuses one started before the timing.
//! - `array-sharing/read-shared/transport=T[,variant=V],pool=persistent/bytes=B`: the array
//!   already lives in memory both sides map; each iteration the parent writes only the new
//!   generation into it there. Timed: from that write until the worker's answer is back, so it
//!   is the worker reading all of it plus what the transport does per message to hand it over:
//!   a request line (`mmap-file`, `memfd-inherited`), an fd to the existing region that the
//!   worker maps anew (`ipc-channel,variant=shared-memory`), a loan and publish of the sample
//!   that already holds the array (`iceoryx2`), the parent's own array handed to a reused
//!   `thread` by reference. A producer that writes its array straight into the mapping pays its
//!   own writes and then this: there is no separate in-place send.
//!   - `pipe`, `pipe-vmsplice`, `socket` (`variant=held-copy`): they share no memory, so for
//!     them read-shared means the worker's own copy, sent once, updated by a small message,
//!     the only way a pipe or socket reader can avoid receiving the whole array again. The
//!     whole array crosses once when the case opens (outside the timing) and the worker keeps
//!     it; each iteration sends only the new generation (the 64 stamped values, 512 bytes)
//!     over the transport after the request line, the worker patches them into its copy and
//!     reads all of it. Timed: the request, the 512 bytes, the worker's pass over its own
//!     (private) copy, the answer.
//!
//!   A forked child's snapshot never sees a new generation: fork-cow has no read-shared row.
//! - `array-sharing/remote/transport=pipe|thread,request=range-sum|slice|dot/bytes=B`: the
//!   array is not moved; the work goes to where it lives (`parcost::remote`). `pipe`: a server
//!   process holds its own copy (sent once, outside the timing) and answers requests on its
//!   stdin and stdout; `thread`: a reused thread of this process reads the parent's array by a
//!   shared reference, requests and replies on channels. Timed: one request and its reply, each
//!   at the next window of the array, every window once in an order that jumps across it (a
//!   large array misses the caches as a program's would): `range-sum` (the sum of 64 KiB of
//!   it, one number back), `slice` (4 KiB of it back), `dot` (a 4 KiB vector handed over with
//!   the request, its dot product with 4 KiB of the array back). Every reply is checked, bit
//!   for bit, in the timing: a number against the one computed from the parent's array before
//!   it, a slice against the parent's array itself (512 comparisons).
//! - `array-sharing/copy/transport=memcpy/bytes=B`: a memcpy of the array into memory that is
//!   already mapped, the physical reference (a shared-memory send costs at least one).
//! - `array-sharing/spawn/transport=exec,pool=spawn/bytes=B`: the bare cost of a worker, given
//!   no array: started (this binary, by the fastest way std has when the child inherits
//!   nothing: `posix_spawn`, which copies none of the parent's page tables), one request
//!   answered, reaped by the blocking wait, while the parent holds what it holds in the
//!   `pool=spawn` rows of size B (the array and a copy of it, touched). The `pool=spawn` rows
//!   of size B pay this on top of their transfer; memfd-inherited's child inherits its memfd,
//!   which std passes only by fork and exec, whose cost grows with the parent's mappings: that
//!   difference is the transport's own.
//!
//! Before any timing each case runs once and must answer the exact sum of the parent's array
//! with the new generation (the generation itself is checked in every iteration). Process
//! workers answer their requests on a pipe, the same for every transport.

use array_sharing::{REMOTE_TRANSPORTS, SIZES, case_id, cases, expected, memcpy, remote_id};
use criterion::Throughput;
use parcost::harness::{Selection, Suite, fail};
use parcost::id::{ARRAY_SHARING, key, params};
use parcost::remote::{self, Holder, Query};
use parcost::transport::{self, Question, Spec, Transport, TransportKind};
use parcost::workload::{Mismatch, Tolerance, fill_uniform, sum};

const SUITE: &str = ARRAY_SHARING.name;
const REMOTE: &str = parcost::id::workload::REMOTE;
const SEED: u64 = 0x5eed_0005;

/// Over 64 MiB (the 800 MB size) a case runs only when, at the size before, it was within this
/// factor of the fastest case of its question measured in this process (the rounds' contender
/// factor): one that was slower there is slower here too (pipes, sockets and ipc-channel's
/// copies scale with the bytes), the size carries no advice (it runs in the first round only),
/// and each case costs about 5 s of setup here (a worker holding the array and its copy: at 2x
/// this was 19 cases and 97 s of a full run's first round).
const LARGEST_WITHIN: f64 = 1.3;

/// One case's state: the transport and what its last exchange answered.
struct Moved {
    /// `None` for a case Criterion does not run (filtered out, or `--list`).
    transport: Option<Box<dyn Transport>>,
    generation: u64,
    sum: f64,
}

impl Moved {
    fn exchange(&mut self) {
        let Some(transport) = self.transport.as_mut() else {
            not_opened();
        };
        self.generation += 1;
        self.sum = transport
            .exchange(self.generation)
            .unwrap_or_else(|e| fail(SUITE, e));
    }

    /// The parent's array is the original with the last generation, and the worker's sum is
    /// that array's, bit for bit.
    fn verify(&self, data: &[f64]) -> Result<(), Mismatch> {
        let expected = expected(data, self.generation);
        let array = self.transport.as_ref().map_or(&[][..], |t| t.array());
        Tolerance::Exact.check(array.iter().copied(), expected.iter().copied())?;
        Tolerance::Exact.check([self.sum], [sum(&expected)])
    }
}

/// A case Criterion runs although the selection said it would not: it has no transport.
fn not_opened() -> ! {
    fail(
        SUITE,
        "a case was run that was not opened (a filter Criterion reads otherwise)",
    )
}

/// A remote case's state: who holds the array, the requests asked in turn (every window of the
/// array once, then again), the numbers they must return, and the parent's array that a
/// slice's reply must equal.
struct Asked {
    /// `None` for a case Criterion does not run.
    holder: Option<Box<dyn Holder>>,
    data: std::sync::Arc<[f64]>,
    queries: Vec<Query>,
    numbers: Vec<Option<f64>>,
    asked: usize,
    /// Whether the last reply was right (the checked run's, before the timing).
    last_right: Option<bool>,
}

impl Asked {
    /// One request and its reply, which must be right bit for bit (else the suite stops).
    fn ask(&mut self) {
        let Some(holder) = self.holder.as_mut() else {
            not_opened();
        };
        let i = self.asked % self.queries.len().max(1);
        let query = self.queries[i];
        let reply = holder.ask(query).unwrap_or_else(|e| fail(SUITE, e));
        let right = remote::is_right(&self.data, query, self.numbers[i], reply);
        if !right {
            fail(
                SUITE,
                format!(
                    "the reply to a {} at value {} is not the array's",
                    query.request.name(),
                    query.start
                ),
            );
        }
        self.last_right = Some(right);
        self.asked += 1;
    }

    /// The checked run's reply was right.
    fn verify(&self) -> Result<(), Mismatch> {
        match self.last_right {
            Some(true) => Ok(()),
            _ => Err(Mismatch::Length {
                got: self.asked,
                want: self.asked.max(1),
            }),
        }
    }
}

/// The spawn baseline's state: the last worker's pid, and the copy that keeps the parent as
/// large as in the rows it is read against (only held, never read).
struct Spawned {
    pid: u32,
    _held: Vec<f64>,
}

impl Spawned {
    /// A worker really ran and it is gone: reaped, not a zombie.
    fn verify(&self) -> Result<(), Mismatch> {
        if self.pid == 0 || parcost::worker::process_exists(self.pid) {
            return Err(Mismatch::Value {
                index: 0,
                got: f64::from(self.pid),
                want: 0.0,
                tolerance: Tolerance::Exact,
            });
        }
        Ok(())
    }
}

fn main() {
    parcost::worker::serve_if_worker();
    let mut suite = Suite::without_blas(SUITE);
    let exe = parcost::worker::current_exe().unwrap_or_else(|e| fail(SUITE, e));
    // What Criterion will run: a case it filters out is not opened (no worker, no copies).
    let selection = Selection::from_args(std::env::args().skip(1));
    for bytes in SIZES {
        if bytes > 64 << 20 && suite.is_quick() {
            suite.skip(
                &format!("bytes={bytes}"),
                "the largest size runs in full mode only",
            );
            continue;
        }
        let size = params(&[(key::BYTES, &bytes)]);
        let copy_id = format!("{}/{size}", params(&[(key::TRANSPORT, &"memcpy")]));
        let spawn_id = format!(
            "{}/{size}",
            params(&[(key::TRANSPORT, &"exec"), (key::POOL, &"spawn")])
        );
        let runs = |workload: &dyn std::fmt::Display, id: &str| {
            selection.runs(&format!("{SUITE}/{workload}/{id}"))
        };
        let mut cases: Vec<(Spec, String)> = Question::ALL
            .into_iter()
            .flat_map(cases)
            .map(|spec| (spec, format!("{}/{size}", case_id(&spec))))
            .collect();
        if let Some(before) = SIZES.iter().copied().filter(|b| *b < bytes).max()
            && bytes > 64 << 20
        {
            let decided = slower_before(&suite, &cases, before);
            let is_decided =
                |c: &(Spec, String)| decided.iter().any(|d| d == &(c.0.question, c.1.clone()));
            for (spec, _) in cases.iter().filter(|c| is_decided(c)) {
                suite.skip(
                    &format!("{}/{}/{size}", spec.question.name(), case_id(spec)),
                    &format!(
                        "more than {LARGEST_WITHIN}x the fastest {} at {before} bytes",
                        spec.question.name()
                    ),
                );
            }
            cases.retain(|c| !is_decided(c));
        }
        let any_runs = runs(&"copy", &copy_id)
            || runs(&"spawn", &spawn_id)
            || cases.iter().any(|(s, id)| runs(&s.question, id))
            || remote::Request::ALL.iter().any(|r| {
                REMOTE_TRANSPORTS
                    .iter()
                    .any(|t| runs(&REMOTE, &format!("{}/{size}", remote_id(*t, *r))))
            });
        // Every case is registered (so `--list` names them all), but only those Criterion will
        // run get an array and a transport.
        // Shared, so that the remote thread reads this very array by reference.
        let data: std::sync::Arc<[f64]> = if any_runs {
            let mut v = vec![0.0; bytes / 8];
            fill_uniform(&mut v, SEED);
            v.into()
        } else {
            std::sync::Arc::from(Vec::new())
        };

        let mut group = suite.group("copy");
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench(
            &copy_id,
            vec![0.0; data.len()],
            |dst| memcpy(dst, &data[..]),
            |dst| Tolerance::Exact.check(dst.iter().copied(), data.iter().copied()),
        );
        group.finish();

        // The parent as large as in the `pool=spawn` rows: the array and a copy, both touched.
        let mut group = suite.group("spawn");
        let held = if runs(&"spawn", &spawn_id) {
            data.to_vec()
        } else {
            Vec::new()
        };
        group.bench(
            &spawn_id,
            Spawned {
                pid: 0,
                _held: held,
            },
            |s| s.pid = array_sharing::spawn_and_reap(&exe).unwrap_or_else(|e| fail(SUITE, e)),
            Spawned::verify,
        );
        group.finish();

        for question in Question::ALL {
            let mut group = suite.group(question.name());
            group.throughput(Throughput::Bytes(bytes as u64));
            for (spec, id) in cases.iter().filter(|(s, _)| s.question == question) {
                let transport = runs(&question, id).then(|| {
                    transport::open(*spec, &exe, &data)
                        .unwrap_or_else(|e| fail(SUITE, format!("{spec}: {e}")))
                });
                let moved = Moved {
                    transport,
                    generation: 0,
                    sum: f64::NAN,
                };
                group.bench_with_workers(
                    id,
                    moved,
                    Moved::exchange,
                    |m| m.verify(&data),
                    |m| m.transport.as_ref().and_then(|t| t.worker_cpu()),
                );
            }
            group.finish();
        }

        let mut group = suite.group(REMOTE);
        for request in remote::Request::ALL {
            for transport in REMOTE_TRANSPORTS {
                let id = format!("{}/{size}", remote_id(transport, request));
                let queries = remote::queries(request, data.len().max(1));
                let (holder, numbers) = if runs(&REMOTE, &id) {
                    let holder: Box<dyn Holder> = if transport == TransportKind::Thread {
                        Box::new(
                            remote::Thread::open(data.clone()).unwrap_or_else(|e| fail(SUITE, e)),
                        )
                    } else {
                        Box::new(
                            remote::Server::open(&exe, &data)
                                .unwrap_or_else(|e| fail(SUITE, format!("{id}: {e}"))),
                        )
                    };
                    let numbers = remote::numbers(&data, &queries)
                        .unwrap_or_else(|e| fail(SUITE, format!("{id}: {e}")));
                    (Some(holder), numbers)
                } else {
                    (None, Vec::new())
                };
                group.bench_with_workers(
                    &id,
                    Asked {
                        holder,
                        data: data.clone(),
                        queries,
                        numbers,
                        asked: 0,
                        last_right: None,
                    },
                    Asked::ask,
                    Asked::verify,
                    |a| a.holder.as_ref().and_then(|h| h.worker_cpu()),
                );
            }
        }
        group.finish();
    }
    suite.finish();
}

/// The cases (question and id) of `cases` whose case at `before` bytes ran in this process
/// more than [`LARGEST_WITHIN`] times slower than the fastest case of its question there (by a
/// warm run). A case that did not run there (a later round's contenders) is not judged: the
/// round's selection decides.
fn slower_before(
    suite: &Suite,
    cases: &[(Spec, String)],
    before: usize,
) -> Vec<(Question, String)> {
    let before_size = params(&[(key::BYTES, &before)]);
    let time = |spec: &Spec| {
        suite.wall_of(&format!(
            "{SUITE}/{}/{}/{before_size}",
            spec.question.name(),
            case_id(spec)
        ))
    };
    let mut out = Vec::new();
    for question in Question::ALL {
        let times: Vec<(&String, Option<std::time::Duration>)> = cases
            .iter()
            .filter(|(spec, _)| spec.question == question)
            .map(|(spec, id)| (id, time(spec)))
            .collect();
        let Some(best) = times.iter().filter_map(|(_, t)| *t).min() else {
            continue;
        };
        out.extend(
            times
                .iter()
                .filter(|(_, t)| {
                    t.is_some_and(|t| t.as_secs_f64() > LARGEST_WITHIN * best.as_secs_f64())
                })
                .map(|(id, _)| (question, (*id).clone())),
        );
    }
    out
}
