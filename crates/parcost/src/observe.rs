//! What a command's threads really do while it runs: the command in a process group of its
//! own, every thread of every process of the group read from `/proc` every
//! [`SAMPLE_EVERY`] (a program's children count too), and its CPU time and context switches
//! from `wait4`. For `cargo xtask try`, which runs a user's program as it is and with the
//! verdict's settings: "6 busy threads on 2 cores" is the diagnosis of oversubscription.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::group::{self, Ended};
use crate::meta::BUSY_SHARE;

/// How often the group's threads are read. A thread is busy in an interval when it was on a
/// CPU for more than [`BUSY_SHARE`] of it (10 ms of 100: the kernel's clocks advance by ticks
/// of up to 4 ms, so a shorter interval would miscount).
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The threads of a process group over one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadsSeen {
    /// The most threads alive at once, over every process of the group.
    pub peak_threads: u64,
    /// The most threads busy at once (in one sampling interval).
    pub peak_busy: u64,
    /// The mean number of busy threads over the intervals sampled.
    pub mean_busy: f64,
    /// The intervals sampled (none: the run ended within the first).
    pub samples: u32,
}

/// One run of a command, observed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ObservedRun {
    /// From its start to its end, ns.
    pub wall_ns: u64,
    /// User and system CPU time of the command and the descendants it waited for, ns.
    pub cpu_ns: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub threads: ThreadsSeen,
}

/// Why a run gave no figure.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {command}: {source}")]
    Start {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} exited with status {code}")]
    Exit { command: String, code: i32 },
    #[error("{command} was ended by signal {signal}")]
    Signal { command: String, signal: i32 },
    #[error("{command} did not finish within {} s (--timeout); its process group was ended", .timeout.as_secs_f64())]
    Timeout { command: String, timeout: Duration },
    #[error("interrupted; {command}'s process group was ended")]
    Interrupted { command: String },
    #[error("waiting for {command}: {source}")]
    Wait {
        command: String,
        source: std::io::Error,
    },
}

/// Reads the group's threads at intervals and counts the busy ones.
#[derive(Debug)]
pub struct GroupObserver {
    pgid: u32,
    last: BTreeMap<(u32, u32), u64>,
    last_at: Instant,
    seen: ThreadsSeen,
    busy_sum: u64,
}

impl GroupObserver {
    pub fn new(pgid: u32) -> Self {
        Self {
            pgid,
            last: group_threads(pgid),
            last_at: Instant::now(),
            seen: ThreadsSeen::default(),
            busy_sum: 0,
        }
    }

    /// One reading: the threads alive now, and those busy since the last reading.
    pub fn sample(&mut self) {
        let now = Instant::now();
        let threads = group_threads(self.pgid);
        let wall = now.duration_since(self.last_at);
        self.seen.peak_threads = self.seen.peak_threads.max(threads.len() as u64);
        let busy = busy_between(&self.last, &threads, wall);
        self.seen.peak_busy = self.seen.peak_busy.max(busy);
        self.busy_sum += busy;
        self.seen.samples += 1;
        self.last = threads;
        self.last_at = now;
    }

    pub fn finish(self) -> ThreadsSeen {
        ThreadsSeen {
            mean_busy: if self.seen.samples == 0 {
                0.0
            } else {
                self.busy_sum as f64 / f64::from(self.seen.samples)
            },
            ..self.seen
        }
    }
}

/// How many threads ran for more than [`BUSY_SHARE`] of `wall` between two readings (a thread
/// started in between counts from zero).
pub fn busy_between(
    before: &BTreeMap<(u32, u32), u64>,
    after: &BTreeMap<(u32, u32), u64>,
    wall: Duration,
) -> u64 {
    let least = BUSY_SHARE * wall.as_nanos() as f64;
    after
        .iter()
        .filter(|(id, ns)| ns.saturating_sub(before.get(id).copied().unwrap_or(0)) as f64 > least)
        .count() as u64
}

/// Every thread of every process in the group `pgid`, by (pid, tid), with its time on a CPU so
/// far, ns (`schedstat`'s first field). A process or thread that ends during the reading is
/// simply not counted.
pub fn group_threads(pgid: u32) -> BTreeMap<(u32, u32), u64> {
    let mut out = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if process_group(&stat) != Some(pgid) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(entry.path().join("task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            if let Some(ns) = text.split_whitespace().next().and_then(|v| v.parse().ok()) {
                out.insert((pid, tid), ns);
            }
        }
    }
    out
}

/// The process group of a `/proc/PID/stat` line: the third field after the command name,
/// which is in parentheses and may hold spaces and parentheses itself.
pub fn process_group(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}

/// Runs `cmd` (its stdio as the caller set it) in a process group of its own, reading its
/// threads every [`SAMPLE_EVERY`], until it ends, `timeout` passes or an interrupt arrives
/// ([`group::interrupted`]); then ends whatever is left of the group, so nothing it started
/// stays running. A non-zero exit is an error naming `shown`.
pub fn run(cmd: &mut Command, shown: &str, timeout: Duration) -> Result<ObservedRun, RunError> {
    use std::os::unix::process::CommandExt;
    let command = shown.to_owned();
    if group::interrupted() {
        return Err(RunError::Interrupted { command });
    }
    cmd.process_group(0);
    let started = Instant::now();
    let child = cmd.spawn().map_err(|source| RunError::Start {
        command: command.clone(),
        source,
    })?;
    let pid = child.id();
    // The wait blocks in a thread of its own, so the end is timed to the moment it comes.
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::Builder::new()
        .name("parcost-wait".into())
        .spawn(move || {
            let reaped = group::wait(pid);
            let _ = tx.send((reaped, Instant::now()));
        });
    let waiter = match waiter {
        Ok(w) => w,
        Err(source) => {
            group::kill_group(pid);
            let _ = group::wait(pid);
            return Err(RunError::Wait { command, source });
        }
    };
    let mut observer = GroupObserver::new(pid);
    // A timeout too large to add is none.
    let deadline = started.checked_add(timeout);
    let outcome = loop {
        let now = Instant::now();
        let wait_for = deadline.map_or(SAMPLE_EVERY, |d| {
            SAMPLE_EVERY.min(d.saturating_duration_since(now))
        });
        match rx.recv_timeout(wait_for.max(Duration::from_millis(1))) {
            Ok(done) => break Ok(done),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err(RunError::Wait {
                    command: command.clone(),
                    source: std::io::Error::other("the waiting thread ended"),
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if group::interrupted() {
            break Err(RunError::Interrupted {
                command: command.clone(),
            });
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break Err(RunError::Timeout {
                command: command.clone(),
                timeout,
            });
        }
        observer.sample();
    };
    // Whatever the outcome, nothing of the group stays running; the child is reaped by the
    // waiting thread (killed first when it is still running).
    group::kill_group(pid);
    let _ = waiter.join();
    let (reaped, ended_at) = outcome?;
    // An interrupt during a run shorter than one sampling interval.
    if group::interrupted() {
        return Err(RunError::Interrupted { command });
    }
    let reaped = reaped.map_err(|source| RunError::Wait {
        command: command.clone(),
        source,
    })?;
    match reaped.ended {
        Ended::Code(0) => {}
        Ended::Code(code) => return Err(RunError::Exit { command, code }),
        Ended::Signal(signal) => return Err(RunError::Signal { command, signal }),
    }
    Ok(ObservedRun {
        wall_ns: u64::try_from(ended_at.duration_since(started).as_nanos()).unwrap_or(u64::MAX),
        cpu_ns: u64::try_from(reaped.cpu.as_nanos()).unwrap_or(u64::MAX),
        voluntary_switches: reaped.voluntary_switches,
        involuntary_switches: reaped.involuntary_switches,
        threads: observer.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_the_third_field_after_the_name() {
        assert_eq!(process_group("42 (cat) S 1 43 44 0 -1"), Some(43));
        // A name with spaces and parentheses.
        assert_eq!(process_group("7 (a) b (c)) R 3 9 10 0"), Some(9));
        assert_eq!(process_group("garbage"), None);
    }

    #[test]
    fn a_thread_busy_a_tenth_of_an_interval_is_not_counted() {
        let ms = 1_000_000;
        let before = BTreeMap::from([((1, 1), 0), ((1, 2), 0), ((2, 3), 0)]);
        let after = BTreeMap::from([
            ((1, 1), 50 * ms),
            ((1, 2), 10 * ms),
            ((2, 3), 90 * ms),
            ((2, 4), 20 * ms),
        ]);
        assert_eq!(busy_between(&before, &after, Duration::from_millis(100)), 3);
    }

    #[test]
    fn a_program_of_three_busy_threads_is_seen_with_them() {
        // A shell that starts three busy loops (shell arithmetic: no process forked) and waits
        // for them: four processes of one group, three of them on a CPU whenever they can be.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "for k in 1 2 3; do (i=0; while [ $i -lt 2000000 ]; do i=$((i+1)); done) & done; wait",
        ]);
        let run = run(&mut cmd, "three loops", Duration::from_secs(120)).expect("it runs");
        assert!(run.threads.samples >= 2, "too short to sample: {run:?}");
        assert!(run.threads.peak_threads >= 4, "{run:?}");
        // Three loops on any number of CPUs: each gets more than a tenth of an interval.
        assert!(run.threads.peak_busy >= 3, "{run:?}");
        assert!(run.cpu_ns * 10 > run.wall_ns * 9, "{run:?}");
    }

    #[test]
    fn a_failing_a_missing_and_a_hanging_command_are_one_line_each() {
        let mut fails = Command::new("sh");
        fails.args(["-c", "exit 3"]);
        let e = run(&mut fails, "fails", Duration::from_secs(10)).expect_err("exit 3");
        assert!(matches!(e, RunError::Exit { code: 3, .. }), "{e}");
        let e = run(
            &mut Command::new("/no/such/program"),
            "nothing",
            Duration::from_secs(10),
        )
        .expect_err("missing");
        assert!(matches!(e, RunError::Start { .. }), "{e}");
        // A hang, with a child of its own: both are ended at the timeout.
        let marker = std::env::temp_dir().join(format!("parcost-hang-{}", std::process::id()));
        let mut hangs = Command::new("sh");
        hangs.args([
            "-c",
            &format!("sleep 30 & echo $! > {}; wait", marker.display()),
        ]);
        let started = Instant::now();
        let e = run(&mut hangs, "hangs", Duration::from_millis(500)).expect_err("a timeout");
        // Ended at the timeout, not when the shell's child would have ended by itself.
        assert!(started.elapsed() < Duration::from_secs(10), "{e}");
        assert!(matches!(e, RunError::Timeout { .. }), "{e}");
        assert!(!e.to_string().contains('\n'));
        let sleeper: u32 = std::fs::read_to_string(&marker)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .expect("the child's pid");
        let _ = std::fs::remove_file(&marker);
        // Killed and reaped by init in a moment: its /proc entry goes, or shows a zombie.
        let gone = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
                .map_or(true, |s| s.contains(") Z"))
        });
        assert!(gone, "the hanging command's child is still running");
    }
}
