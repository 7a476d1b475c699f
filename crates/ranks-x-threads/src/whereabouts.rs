//! Where each rank of a job is, for the bench to ask when rank 0 stops answering: a rank stuck
//! in a collective blocks rank 0 with it, and "rank 0 did not answer" names the wrong rank.
//!
//! Both ends are here. A rank records its [`Place`] (one relaxed store of an atomic before each
//! step, nothing else: the timed collectives stay the blocking ones users call) and [`watch`]es
//! for `SIGUSR1`, which `mpirun` forwards to every rank of its job on every host; on it, the
//! rank prints one [`Report`] line on stderr, which `mpirun` forwards back. The bench
//! ([`crate::job`]) signals `mpirun` when an answer is late, reads the reports from `mpirun`'s
//! stderr, and [`describe`]s them: the ranks busy with their own work (or a request behind the
//! others) are the ones the others wait for in a collective.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// What starts a report line (not "parcost rank", which names a rank's last words).
pub const REPORT_PREFIX: &str = "parcost whereabouts:";

/// What a rank is doing: its own work, or waiting for the others in a collective. Its
/// discriminant is its index in [`Place::ALL`] (a test holds them together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Place {
    /// Before MPI is up and the rank has said hello.
    Starting,
    /// Waiting for rank 0's next command (the broadcast; rank 0 itself reads the bench's
    /// request).
    Idle,
    /// Making its inputs.
    Preparing,
    /// In a barrier.
    Barrier,
    /// In the scatter of an iteration's inputs.
    Scatter,
    /// Computing its part of an iteration.
    Computing,
    /// Rank 0: waiting for the others to say their part is done.
    WaitingForParts,
    /// In a reduce (checksums, usage).
    Reduce,
    /// In a gather (results, hello, busy threads).
    Gather,
    /// Tests: sleeping as its part.
    Sleeping,
    /// Tests: stalling before a barrier.
    Stalling,
}

impl Place {
    const ALL: [Self; 11] = [
        Self::Starting,
        Self::Idle,
        Self::Preparing,
        Self::Barrier,
        Self::Scatter,
        Self::Computing,
        Self::WaitingForParts,
        Self::Reduce,
        Self::Gather,
        Self::Sleeping,
        Self::Stalling,
    ];

    /// The word in a report line.
    pub fn code(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Idle => "idle",
            Self::Preparing => "preparing",
            Self::Barrier => "barrier",
            Self::Scatter => "scatter",
            Self::Computing => "computing",
            Self::WaitingForParts => "waiting-for-parts",
            Self::Reduce => "reduce",
            Self::Gather => "gather",
            Self::Sleeping => "sleeping",
            Self::Stalling => "stalling",
        }
    }

    fn of_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }

    /// Waiting for the other ranks, not busy with its own work.
    pub fn waits_for_others(self) -> bool {
        matches!(
            self,
            Self::Idle
                | Self::Barrier
                | Self::Scatter
                | Self::WaitingForParts
                | Self::Reduce
                | Self::Gather
        )
    }

    /// As a message says it: "rank 1 was ...".
    fn phrase(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Idle => "waiting for rank 0's next command",
            Self::Preparing => "making its inputs",
            Self::Barrier => "in a barrier",
            Self::Scatter => "in the scatter",
            Self::Computing => "computing its part",
            Self::WaitingForParts => "waiting for the others' parts",
            Self::Reduce => "in a reduce",
            Self::Gather => "in a gather",
            Self::Sleeping => "sleeping (a test)",
            Self::Stalling => "stalling before a barrier (a test)",
        }
    }
}

/// The request number (the commands rank 0 broadcast so far) and the place, in one word.
static WHERE: AtomicU64 = AtomicU64::new(0);
/// This process's rank, once MPI has said it (`u64::MAX` before).
static RANK: AtomicU64 = AtomicU64::new(u64::MAX);

/// The rank records where it is: a relaxed store, nothing more.
pub fn at(place: Place, request: u64) {
    WHERE.store((request << 8) | place as u64, Ordering::Relaxed);
}

/// Where the rank last said it was.
fn now() -> (Place, u64) {
    let w = WHERE.load(Ordering::Relaxed);
    let place = Place::ALL
        .get((w & 0xff) as usize)
        .copied()
        .unwrap_or(Place::Starting);
    (place, w >> 8)
}

/// Call first in a rank, before MPI starts: from then on `SIGUSR1` makes it print one
/// [`Report`] line on stderr (the default action, ending the process, would lose the rank the
/// bench asks about). `rank` is set once MPI has said it ([`set_rank`]). Only a rank still
/// loading when the bench's start-up timeout asks dies of the signal: that job is being killed.
/// The bench signals `mpirun` itself, which forwards it: a wrapper script in its place must
/// `exec` it.
pub fn watch() -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])
        .map_err(|e| format!("cannot catch SIGUSR1: {e}"))?;
    std::thread::Builder::new()
        .name("whereabouts".into())
        .spawn(move || {
            for _ in signals.forever() {
                let (place, request) = now();
                let rank = RANK.load(Ordering::Relaxed);
                let report = Report {
                    rank: (rank != u64::MAX).then_some(rank as u32),
                    pid: std::process::id(),
                    host: crate::job::local_host(),
                    place,
                    request,
                };
                // One write of the whole line (under PIPE_BUF: atomic on a pipe), so that the
                // ranks' reports, all asked at once, never interleave; and no panic on EPIPE.
                let line = format!("{}\n", report.line());
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the whereabouts thread: {e}"))
}

/// The rank this process is, once MPI has said it.
pub fn set_rank(rank: usize) {
    RANK.store(rank as u64, Ordering::Relaxed);
}

/// One rank's answer to "where are you".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `None` before MPI said it.
    pub rank: Option<u32>,
    pub pid: u32,
    pub host: String,
    pub place: Place,
    /// The commands this rank has received (rank 0: broadcast) so far.
    pub request: u64,
}

impl Report {
    /// The line a rank prints.
    pub fn line(&self) -> String {
        let rank = self.rank.map_or("?".to_owned(), |r| r.to_string());
        format!(
            "{REPORT_PREFIX} rank={rank} pid={} host={} place={} request={}",
            self.pid,
            self.host,
            self.place.code(),
            self.request
        )
    }

    /// A report line (`None` for any other line).
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix(REPORT_PREFIX)?;
        // A line of two reports run together has a second prefix: neither is trusted.
        if rest.contains(REPORT_PREFIX) {
            return None;
        }
        let mut rank = None;
        let (mut pid, mut host, mut place, mut request) = (None, None, None, None);
        for word in rest.split_whitespace() {
            let (key, value) = word.split_once('=')?;
            match key {
                "rank" => rank = value.parse().ok(),
                "pid" => pid = value.parse().ok(),
                "host" => host = Some(value.to_owned()),
                "place" => place = Place::of_code(value),
                "request" => request = value.parse().ok(),
                _ => {}
            }
        }
        Some(Self {
            rank,
            pid: pid?,
            host: host?,
            place: place?,
            request: request?,
        })
    }

    /// Where it was, as a message says it ("rank 1 was ..."): rank 0 waiting for the next
    /// request waits for the bench (its stdin), the others for rank 0's broadcast.
    fn phrase(&self) -> &'static str {
        match (self.rank, self.place) {
            (Some(0), Place::Idle) => "waiting for the bench's next request",
            _ => self.place.phrase(),
        }
    }

    fn who(&self) -> String {
        match self.rank {
            Some(r) => format!("rank {r} (pid {} on {})", self.pid, self.host),
            None => format!(
                "a rank (pid {} on {}) before MPI said which",
                self.pid, self.host
            ),
        }
    }
}

/// Where the `ranks` ranks of a job were, in one clause: the ranks busy with their own work
/// or behind the others (the ones the others wait for), each by pid and host, then the others
/// grouped by where they waited, then the ranks that did not say. Empty when no rank said.
pub fn describe(reports: &[Report], ranks: usize) -> String {
    if reports.is_empty() {
        return String::new();
    }
    let mut reports: Vec<&Report> = reports.iter().collect();
    reports.sort_by_key(|r| (r.rank.unwrap_or(u32::MAX), r.pid));
    reports.dedup_by_key(|r| (r.rank, r.pid));
    let newest = reports.iter().map(|r| r.request).max().unwrap_or(0);
    let (behind, waiting): (Vec<&Report>, Vec<&Report>) = reports
        .iter()
        .partition(|r| !r.place.waits_for_others() || r.request < newest);
    let parts: Vec<String> = behind
        .iter()
        .map(|r| format!("{} was {} at request {}", r.who(), r.phrase(), r.request))
        .collect();
    // The waiting ranks, by where they waited, in the order first seen.
    let mut places: Vec<(&'static str, Vec<String>)> = Vec::new();
    for r in &waiting {
        let name = r.rank.map_or(format!("pid {}", r.pid), |n| n.to_string());
        match places.iter_mut().find(|(p, _)| *p == r.phrase()) {
            Some((_, names)) => names.push(name),
            None => places.push((r.phrase(), vec![name])),
        }
    }
    let waited: Vec<String> = places
        .iter()
        .map(|(phrase, names)| match names.as_slice() {
            [one] => format!("rank {one} was {phrase}"),
            many => format!("ranks {} were {phrase}", many.join(", ")),
        })
        .collect();
    let mut out = match (parts.is_empty(), waited.is_empty()) {
        (true, _) => format!("every rank that said was waiting: {}", waited.join(", ")),
        (false, true) => parts.join(", "),
        (false, false) => format!("{}, while {}", parts.join(", "), waited.join(", ")),
    };
    // A rank that answered before MPI named it is one of those not named: none is called
    // silent then.
    let said: Vec<u32> = reports.iter().filter_map(|r| r.rank).collect();
    let all_named = said.len() == reports.len();
    let silent: Vec<String> = (0..ranks as u32)
        .filter(|r| all_named && !said.contains(r))
        .map(|r| r.to_string())
        .collect();
    match silent.as_slice() {
        [] => {}
        [one] => {
            let _ = write!(out, "; rank {one} did not say where it was");
        }
        many => {
            let _ = write!(
                out,
                "; ranks {} did not say where they were",
                many.join(", ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rank: u32, place: Place, request: u64) -> Report {
        Report {
            rank: Some(rank),
            pid: 100 + rank,
            host: "h".into(),
            place,
            request,
        }
    }

    #[test]
    fn report_lines_round_trip_and_other_lines_are_not_reports() {
        for place in Place::ALL {
            let r = report(3, place, 12);
            assert_eq!(Report::parse(&r.line()), Some(r));
        }
        let before = Report {
            rank: None,
            ..report(0, Place::Starting, 0)
        };
        assert_eq!(Report::parse(&before.line()), Some(before));
        assert_eq!(Report::parse("parcost rank 1: gone"), None);
        assert_eq!(
            Report::parse(&format!(
                "{REPORT_PREFIX} rank=1 pid=2 host=h place=dancing request=1"
            )),
            None
        );
    }

    #[test]
    fn the_rank_the_others_wait_for_is_named_first() {
        // Rank 2 computes while 0 and 1 wait in the gather.
        let text = describe(
            &[
                report(0, Place::Gather, 5),
                report(2, Place::Computing, 5),
                report(1, Place::Gather, 5),
            ],
            4,
        );
        assert_eq!(
            text,
            "rank 2 (pid 102 on h) was computing its part at request 5, while ranks 0, 1 were \
             in a gather; rank 3 did not say where it was"
        );
        // A rank still waiting for an older request's broadcast is behind the others.
        let text = describe(
            &[report(0, Place::Barrier, 7), report(1, Place::Idle, 6)],
            2,
        );
        assert_eq!(
            text,
            "rank 1 (pid 101 on h) was waiting for rank 0's next command at request 6, while \
             rank 0 was in a barrier"
        );
        // Every rank idle: rank 0 never got the bench's request.
        let text = describe(&[report(0, Place::Idle, 3), report(1, Place::Idle, 3)], 2);
        assert_eq!(
            text,
            "every rank that said was waiting: rank 0 was waiting for the bench's next request, \
             rank 1 was waiting for rank 0's next command"
        );
        // Rank 0 itself stuck in its own work.
        let text = describe(
            &[report(0, Place::Computing, 4), report(1, Place::Gather, 4)],
            2,
        );
        assert!(
            text.starts_with("rank 0 (pid 100 on h) was computing"),
            "{text}"
        );
        // A rank not yet named by MPI: nobody is called silent.
        let unnamed = Report {
            rank: None,
            ..report(9, Place::Starting, 0)
        };
        let text = describe(&[report(0, Place::Gather, 0), unnamed], 2);
        assert!(!text.contains("did not say"), "{text}");
        let text = describe(
            &[report(0, Place::Reduce, 7), report(1, Place::Reduce, 7)],
            2,
        );
        assert_eq!(
            text,
            "every rank that said was waiting: ranks 0, 1 were in a reduce"
        );
        assert_eq!(describe(&[], 2), "");
    }

    #[test]
    fn every_place_is_listed_at_its_discriminant() {
        for (i, place) in Place::ALL.into_iter().enumerate() {
            assert_eq!(place as usize, i, "{place:?}");
        }
    }

    #[test]
    fn where_a_rank_is_reads_back() {
        at(Place::Scatter, 41);
        assert_eq!(now(), (Place::Scatter, 41));
        at(Place::Idle, 42);
        assert_eq!(now(), (Place::Idle, 42));
    }
}
