//! What the bench and rank 0 say to each other, and what rank 0 broadcasts to the other ranks.
//!
//! The bench writes one JSON [`Request`] a line to `mpirun`'s stdin, which OpenMPI forwards to
//! rank 0 (on whichever host it runs). Rank 0 turns it into a fixed-size [`Command`] that it
//! broadcasts (`MPI_Bcast`), every rank does its part, and rank 0 answers with one line on its
//! stdout, which `mpirun` forwards back: [`ANSWER_PREFIX`] and a JSON [`Answer`]. Lines without
//! the prefix (from other ranks or from OpenMPI) are not answers. End of input (the bench closed
//! `mpirun`'s stdin) is the signal to finish: rank 0 broadcasts [`Command::Quit`], every rank
//! finalizes MPI and exits.

use serde::{Deserialize, Serialize};

use crate::batch::Shape;

/// What starts each of rank 0's answer lines.
pub const ANSWER_PREFIX: &str = "@parcost-rank0 ";

/// The argument that turns a binary into a rank of the suite's jobs.
pub const RANK_FLAG: &str = "--parcost-rank";

/// The environment variable that marks every process of one job (mpirun and its ranks), so the
/// bench can find them all after the job, wherever they were reparented.
pub const JOB_VAR: &str = "PARCOST_MPI_JOB";

/// The two ways the batch reaches the ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Every rank makes its own share of the inputs (once, before timing); an iteration is
    /// compute and reduce.
    Batch,
    /// Rank 0 holds every input; an iteration scatters them, computes, reduces, and gathers
    /// every result back to rank 0: `batch` plus moving the arrays.
    Scatter,
}

impl Workload {
    pub const ALL: [Self; 2] = [Self::Batch, Self::Scatter];

    /// The name in ids.
    pub fn name(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Scatter => "scatter",
        }
    }

    fn code(self) -> u64 {
        match self {
            Self::Batch => 0,
            Self::Scatter => 1,
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Self::Batch),
            1 => Some(Self::Scatter),
            _ => None,
        }
    }
}

/// What the bench asks of the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Make the inputs of both workloads (every rank its share; rank 0 also the whole batch)
    /// and the buffers they move through.
    Prepare { shape: Shape },
    /// One iteration of `workload`. `verify`: rank 0 checksums what the gather delivered
    /// (scatter) instead of only the reduced checksums. `corrupt` (tests): the last rank spoils
    /// one result. Ranks that have not finished their part within `deadline_ms` are named in a
    /// refusal, and the job is aborted.
    Run {
        workload: Workload,
        verify: bool,
        #[serde(default)]
        corrupt: bool,
        deadline_ms: u64,
    },
    /// Every rank's CPU time and context switches so far, summed (`MPI_Reduce`).
    Usage,
    /// Tests: every rank (or only rank `only`) sleeps `ms` as its part of an iteration.
    Sleep {
        ms: u64,
        #[serde(default)]
        only: Option<u32>,
        deadline_ms: u64,
    },
    /// Tests: rank `only` sleeps `ms` before a barrier the others wait in (no deadline: a rank
    /// hung where only the bench's timeout sees it).
    Stall { ms: u64, only: u32 },
}

impl Request {
    /// What the job is doing while it serves this request, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Prepare { .. } => "preparing the inputs".into(),
            Self::Run { workload, .. } => format!("running {}", workload.name()),
            Self::Usage => "reporting its CPU usage".into(),
            Self::Sleep { ms, only, .. } => match only {
                Some(r) => format!("sleeping {ms} ms on rank {r}"),
                None => format!("sleeping {ms} ms"),
            },
            Self::Stall { ms, only } => format!("stalling rank {only} {ms} ms before a barrier"),
        }
    }
}

/// CPU use of one or more rank processes (`getrusage(RUSAGE_SELF)`: every thread, those that
/// ended included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankUsage {
    pub cpu_ns: u64,
    pub voluntary: u64,
    pub involuntary: u64,
}

/// What a rank says about itself when the job starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankInfo {
    pub rank: u32,
    pub host: String,
    pub pid: u32,
    /// The OpenBLAS layer it loaded (`openblas_get_parallel`).
    pub layer: String,
    /// The OpenBLAS kernel running in it.
    pub core: String,
    /// The BLAS thread count its calls run at (`openblas_get_num_threads`, after it set it).
    pub blas_threads: u32,
    /// `OPENBLAS_NUM_THREADS` as it saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_threads: Option<String>,
    /// The CPUs it may run on (`sched_getaffinity`), ascending: one core where OpenMPI bound
    /// it, every CPU of its host under `--bind-to none`.
    #[serde(default)]
    pub cpus: Vec<usize>,
}

impl RankInfo {
    /// What the sidecar keeps of it.
    pub fn seen(&self) -> parcost::meta::RankSeen {
        parcost::meta::RankSeen {
            rank: self.rank,
            host: self.host.clone(),
            cpus: self.cpus.clone(),
            blas_threads: self.blas_threads as usize,
            openblas_num_threads: self.env_threads.clone(),
            busy_threads: None,
        }
    }
}

impl Hello {
    /// The hosts the ranks ran on (not the hostfile's lines: OpenMPI fills a host's slots
    /// before it uses the next, so 2 ranks on a hostfile of 3 hosts of 2 slots run on one).
    pub fn hosts(&self) -> usize {
        let hosts: std::collections::BTreeSet<&str> =
            self.ranks.iter().map(|r| r.host.as_str()).collect();
        hosts.len()
    }

    /// What every rank saw from inside, for the sidecar.
    pub fn seen(&self) -> Vec<parcost::meta::RankSeen> {
        self.ranks.iter().map(RankInfo::seen).collect()
    }

    /// The same with each rank's busy threads of a checked run (by rank; `u32::MAX`: unknown).
    pub fn seen_running(&self, busy: Option<&[u32]>) -> Vec<parcost::meta::RankSeen> {
        let mut seen = self.seen();
        for s in &mut seen {
            s.busy_threads = busy
                .and_then(|b| b.get(s.rank as usize).copied())
                .filter(|&b| b != u32::MAX);
        }
        seen
    }
}

/// Rank 0's first answer: the job is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub ranks: Vec<RankInfo>,
    /// Every rank's CPU use up to this answer.
    pub usage: RankUsage,
}

/// One answer line of rank 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello: Option<Hello>,
    /// Every item's checksums, as bits (JSON has no NaN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_bits: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<RankUsage>,
    /// A checked run: each rank's threads busy during its part's products, by rank
    /// (`u32::MAX`: its kernel keeps no per-thread CPU time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_threads: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Answer {
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            error: Some(message.into()),
            ..Self::default()
        }
    }

    /// The line rank 0 writes (prefix, JSON, newline).
    pub fn line(&self) -> String {
        let json = serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot encode an answer: {e}\"}}"));
        format!("{ANSWER_PREFIX}{json}\n")
    }

    /// Reads an answer line; `None` for a line that is not one (no prefix).
    pub fn parse(line: &str) -> Option<Result<Self, String>> {
        let json = line.strip_prefix(ANSWER_PREFIX)?;
        Some(serde_json::from_str(json).map_err(|e| format!("{e}: {json:?}")))
    }

    pub fn checksums(&self) -> Option<Vec<f64>> {
        self.checksum_bits
            .as_ref()
            .map(|b| b.iter().copied().map(f64::from_bits).collect())
    }
}

/// Words of a broadcast command.
pub const COMMAND_WORDS: usize = 8;

/// What rank 0 broadcasts to every rank: a request in a fixed number of words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Quit,
    Prepare(Shape),
    Run {
        workload: Workload,
        verify: bool,
        corrupt: bool,
    },
    Usage,
    Sleep {
        ms: u64,
        only: Option<u32>,
    },
    Stall {
        ms: u64,
        only: u32,
    },
}

impl Command {
    /// The command for a request.
    pub fn of(request: &Request) -> Self {
        match *request {
            Request::Prepare { shape } => Self::Prepare(shape),
            Request::Run {
                workload,
                verify,
                corrupt,
                ..
            } => Self::Run {
                workload,
                verify,
                corrupt,
            },
            Request::Usage => Self::Usage,
            Request::Sleep { ms, only, .. } => Self::Sleep { ms, only },
            Request::Stall { ms, only } => Self::Stall { ms, only },
        }
    }

    pub fn encode(self) -> [u64; COMMAND_WORDS] {
        let mut w = [0u64; COMMAND_WORDS];
        match self {
            Self::Quit => w[0] = 0,
            Self::Prepare(s) => {
                w[..5].copy_from_slice(&[1, s.n as u64, s.pairs as u64, s.matrices as u64, s.seed]);
            }
            Self::Run {
                workload,
                verify,
                corrupt,
            } => {
                w[..4].copy_from_slice(&[
                    2,
                    workload.code(),
                    u64::from(verify),
                    u64::from(corrupt),
                ]);
            }
            Self::Usage => w[0] = 3,
            Self::Sleep { ms, only } => {
                w[..3].copy_from_slice(&[4, ms, only.map_or(u64::MAX, u64::from)]);
            }
            Self::Stall { ms, only } => w[..3].copy_from_slice(&[5, ms, u64::from(only)]),
        }
        w
    }

    pub fn decode(w: &[u64; COMMAND_WORDS]) -> Option<Self> {
        let size = |v: u64| usize::try_from(v).ok();
        Some(match w[0] {
            0 => Self::Quit,
            1 => Self::Prepare(Shape {
                n: size(w[1])?,
                pairs: size(w[2])?,
                matrices: size(w[3])?,
                seed: w[4],
            }),
            2 => Self::Run {
                workload: Workload::from_code(w[1])?,
                verify: w[2] != 0,
                corrupt: w[3] != 0,
            },
            3 => Self::Usage,
            4 => Self::Sleep {
                ms: w[1],
                only: u32::try_from(w[2]).ok(),
            },
            5 => Self::Stall {
                ms: w[1],
                only: u32::try_from(w[2]).ok()?,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        for c in [
            Command::Quit,
            Command::Prepare(Shape::SUITE),
            Command::Run {
                workload: Workload::Scatter,
                verify: true,
                corrupt: false,
            },
            Command::Usage,
            Command::Sleep {
                ms: 5,
                only: Some(1),
            },
            Command::Sleep { ms: 5, only: None },
            Command::Stall { ms: 5, only: 1 },
        ] {
            assert_eq!(Command::decode(&c.encode()), Some(c));
        }
        assert_eq!(Command::decode(&[9; COMMAND_WORDS]), None);
    }

    #[test]
    fn answers_are_prefixed_lines() {
        let a = Answer {
            checksum_bits: Some(vec![1.5f64.to_bits(), f64::NAN.to_bits()]),
            ..Answer::default()
        };
        let line = a.line();
        assert!(line.starts_with(ANSWER_PREFIX) && line.ends_with('\n'));
        let back = Answer::parse(line.trim_end())
            .expect("an answer")
            .expect("valid");
        let sums = back.checksums().expect("sums");
        assert_eq!(sums[0], 1.5);
        assert!(sums[1].is_nan());
        assert!(Answer::parse("[vm:123] some OpenMPI warning").is_none());
        assert!(
            Answer::parse(&format!("{ANSWER_PREFIX}{{nope"))
                .expect("prefixed")
                .is_err()
        );
    }

    #[test]
    fn hosts_are_those_the_ranks_ran_on() {
        let rank = |rank: u32, host: &str| RankInfo {
            rank,
            host: host.into(),
            pid: 10 + rank,
            layer: "pthreads".into(),
            core: "Haswell".into(),
            blas_threads: 1,
            env_threads: None,
            cpus: vec![0, 1],
        };
        let hello = |ranks| Hello {
            ranks,
            usage: RankUsage::default(),
        };
        // Two ranks on the first host of a three-host hostfile: one host.
        assert_eq!(hello(vec![rank(0, "a"), rank(1, "a")]).hosts(), 1);
        assert_eq!(
            hello(vec![rank(0, "a"), rank(1, "b"), rank(2, "a"), rank(3, "c")]).hosts(),
            3
        );
    }

    #[test]
    fn requests_are_json_lines() {
        let r = Request::Run {
            workload: Workload::Batch,
            verify: false,
            corrupt: false,
            deadline_ms: 10,
        };
        let text = serde_json::to_string(&r).expect("json");
        assert!(!text.contains('\n'));
        assert_eq!(serde_json::from_str::<Request>(&text).expect("back"), r);
    }
}
