//! Cost 5, sharing: what a worker process pays to get an array, against a thread, under the two
//! questions of sharing: *send* (the worker gets an array it has not seen, from the parent's
//! own memory) and *read-shared* (the worker reads an array it already has: one that lives in
//! shared memory, or, for a pipe or socket, which share none, its own copy, sent once and
//! updated by a small message: `variant=held-copy`); and a third way that moves no array at
//! all, *remote*: the array stays with a server process and the client sends it small requests
//! (`parcost::remote`). The transports are `parcost::transport`; this crate picks the cases,
//! sizes and ids.

use std::fmt::Display;

use parcost::id::{key, params};
use parcost::remote::Request;
use parcost::transport::{Question, Spec, TransportKind, stamp};

pub const MIB: usize = 1 << 20;

/// Bytes moved: 1 MiB, 64 MiB, and the tutorial's 100 million f64 (800 MB, left out under
/// `--quick`).
pub const SIZES: [usize; 3] = [MIB, 64 * MIB, 800_000_000];

/// Every case measured under `question`: every combination parcost's transports support (see
/// [`Spec::check`] for those left out and why: a forked child's snapshot never sees a new
/// generation, a process per task is measured for one streamed, one mapped and the forked
/// transport). A pipe or socket has nothing already shared: its read-shared case is
/// `variant=held-copy`, the worker's own copy, sent once, updated by a small message (the new
/// stamped values) in every exchange.
pub fn cases(question: Question) -> Vec<Spec> {
    Spec::all()
        .into_iter()
        .filter(|s| s.question == question)
        .collect()
}

/// The level of a benchmark id below `<suite>/<question>/` that names the case:
/// `transport=T[,variant=V],pool=P`.
pub fn case_id(spec: &Spec) -> String {
    let mut pairs: Vec<(&str, &dyn Display)> = vec![(key::TRANSPORT, &spec.kind)];
    if let Some(v) = &spec.variant {
        pairs.push((key::VARIANT, v));
    }
    let pool = spec.shape.name();
    pairs.push((key::POOL, &pool));
    params(&pairs)
}

/// Who holds the array in `remote`: a server process (requests and replies on its pipes), or
/// a thread of this process reading it by reference.
pub const REMOTE_TRANSPORTS: [TransportKind; 2] = [TransportKind::Pipe, TransportKind::Thread];

/// The level of a `remote` id that names the case: `transport=pipe|thread,request=R`.
pub fn remote_id(transport: TransportKind, request: Request) -> String {
    params(&[
        (key::TRANSPORT, &transport),
        (key::REQUEST, &request.name()),
    ])
}

/// The array a case must hold after the exchange of `generation`: `data` with the generation at
/// its stamped elements (`parcost::transport::stamp_positions`: a stride from the first to the
/// last).
pub fn expected(data: &[f64], generation: u64) -> Vec<f64> {
    let mut v = data.to_vec();
    stamp(&mut v, generation);
    v
}

/// The physical reference: a plain copy of the array into memory that is already mapped.
pub fn memcpy(dst: &mut [f64], src: &[f64]) {
    dst.copy_from_slice(src);
}

/// The bare cost of a worker process, to read the `pool=spawn` rows against: start one (fork and
/// exec of the bench binary, as those rows do), one request answered, reaped by the blocking
/// wait when it drops. Returns the worker's pid, for the check.
pub fn spawn_and_reap(exe: &std::path::Path) -> Result<u32, parcost::worker::WorkerError> {
    let mut worker = parcost::worker::Spawn::new(exe).start()?;
    worker.send(&parcost::worker::Request::Ping)?;
    worker.answer("answering a ping")?;
    Ok(worker.pid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parcost::transport::Shape;

    #[test]
    fn both_questions_are_asked_of_the_transports_that_can_answer_them() {
        let send: Vec<String> = cases(Question::Send).iter().map(case_id).collect();
        for kind in TransportKind::ALL {
            let token = format!("transport={kind},");
            assert!(send.iter().any(|id| id.starts_with(&token)), "{kind} sends");
        }
        for variant in ["bytes", "shared-memory"] {
            let id = format!("transport=ipc-channel,variant={variant},pool=persistent");
            assert!(send.contains(&id), "{id}");
        }
        let shared: Vec<String> = cases(Question::ReadShared).iter().map(case_id).collect();
        for kind in ["mmap-file", "memfd-inherited", "iceoryx2", "thread"] {
            let id = format!("transport={kind},pool=persistent");
            assert!(shared.contains(&id), "{id}");
        }
        assert!(
            shared.contains(&"transport=ipc-channel,variant=shared-memory,pool=persistent".into())
        );
        for kind in ["pipe", "pipe-vmsplice", "socket"] {
            let id = format!("transport={kind},variant=held-copy,pool=persistent");
            assert!(shared.contains(&id), "{id}");
            let bare = format!("transport={kind},pool=");
            assert!(!shared.iter().any(|id| id.starts_with(&bare)), "{kind}");
            assert!(!send.iter().any(|id| id.contains("held-copy")), "{kind}");
        }
        assert!(
            !shared
                .iter()
                .any(|id| id.starts_with("transport=fork-cow,")),
            "fork-cow"
        );
        assert!(
            cases(Question::ReadShared)
                .iter()
                .all(|s| s.shape == Shape::Persistent),
            "read-shared is a reused worker's question"
        );
    }

    #[test]
    fn ids_are_key_value_tokens_in_lower_case() {
        for question in Question::ALL {
            for spec in cases(question) {
                let id = case_id(&spec);
                for token in id.split(',') {
                    let (k, v) = token.split_once('=').expect("key=value");
                    assert!(!k.is_empty() && !v.is_empty(), "{id}");
                    assert!(
                        token.chars().all(|c| c.is_ascii_lowercase()
                            || c.is_ascii_digit()
                            || "=-_".contains(c)),
                        "{id}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_expected_array_carries_the_generation_along_a_stride() {
        // Shorter than the stamps: every element.
        assert_eq!(expected(&[0.5, 0.25, 0.125], 9), [9.0, 9.0, 9.0]);
        assert_eq!(expected(&[0.5], 2), [2.0]);
        assert!(expected(&[], 2).is_empty());
        let long = expected(&vec![0.5; 1000], 9);
        let stamped: Vec<usize> = (0..1000).filter(|&i| long[i] == 9.0).collect();
        assert_eq!(stamped.len(), parcost::transport::STAMPS);
        assert_eq!((stamped[0], stamped[stamped.len() - 1]), (0, 999));
        assert!(stamped.windows(2).all(|w| w[1] - w[0] <= 16), "{stamped:?}");
    }

    #[test]
    fn remote_ids_name_the_transport_and_the_request() {
        let ids: Vec<String> = Request::ALL
            .iter()
            .flat_map(|r| REMOTE_TRANSPORTS.map(|t| remote_id(t, *r)))
            .collect();
        assert_eq!(ids.len(), 6);
        assert!(ids.contains(&"transport=pipe,request=range-sum".to_owned()));
        assert!(ids.contains(&"transport=thread,request=dot".to_owned()));
        assert!(ids.contains(&"transport=pipe,request=slice".to_owned()));
    }

    #[test]
    fn memcpy_copies() {
        let src = [1.0, -2.5, f64::MAX];
        let mut dst = [0.0; 3];
        memcpy(&mut dst, &src);
        assert_eq!(dst, src);
    }
}
