//! The processes of MPI jobs, found in `/proc`: by the job mark every one of them carries in its
//! environment ([`crate::protocol::JOB_VAR`]), by pid, and by name among this process's
//! children. The teardown kills and reaps what it finds; the tests and the bench check that
//! nothing is left.

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

/// Names of OpenMPI's launcher and daemon processes (Open MPI 4 and 5).
pub const LAUNCHER_NAMES: [&str; 5] = ["mpirun", "mpiexec", "orterun", "orted", "prterun"];

/// One process, from `/proc/PID/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// The kernel's name for it (at most 15 bytes of its executable's name).
    pub comm: String,
    /// `R`, `S`, `Z` (a zombie: exited, not yet reaped), ...
    pub state: char,
}

impl Proc {
    /// The process `pid`, if it exists (a zombie too).
    pub fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses: take the last `)`.
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat.get(open + 1..close)?.to_owned();
        let mut rest = stat.get(close + 1..)?.split_whitespace();
        let state = rest.next()?.chars().next()?;
        let ppid = rest.next()?.parse().ok()?;
        Some(Self {
            pid,
            ppid,
            comm,
            state,
        })
    }
}

impl std::fmt::Display for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {}, parent {}, state {})",
            self.comm, self.pid, self.ppid, self.state
        )
    }
}

/// Every process id in `/proc`.
pub fn pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// How a value in a process's environment is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Exactly this value: one job's mark (`m-1` is not `m-10`).
    Is(&'a str),
    /// Any value starting with this: every job of one bench (`m-`).
    StartsWith(&'a str),
}

impl Value<'_> {
    fn matches(self, value: &[u8]) -> bool {
        match self {
            Self::Is(v) => value == v.as_bytes(),
            Self::StartsWith(p) => value.starts_with(p.as_bytes()),
        }
    }
}

/// Whether the environment of `pid` has `var` set to `value` (false for a process whose
/// environment cannot be read: a zombie, or another user's).
pub fn environ_has(pid: u32, var: &str, value: Value<'_>) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    environ_matches(&env, var, value)
}

/// Whether an environment block (`NAME=value` entries, each ended by a NUL) has `var` set to
/// `value`.
pub fn environ_matches(env: &[u8], var: &str, value: Value<'_>) -> bool {
    env.split(|&b| b == 0).any(|entry| {
        entry
            .strip_prefix(var.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
            .is_some_and(|v| value.matches(v))
    })
}

/// The processes whose environment has `var` set to `value` (this process left out).
pub fn carrying(var: &str, value: Value<'_>) -> Vec<Proc> {
    let me = std::process::id();
    pids()
        .into_iter()
        .filter(|&pid| pid != me && environ_has(pid, var, value))
        .filter_map(Proc::read)
        .collect()
}

/// The CPUs this thread may run on (`sched_getaffinity`), ascending. A process that OpenMPI
/// (or `taskset`) bound starts with this mask in every thread.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes into `set`.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let size = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    // SAFETY: CPU_ISSET reads bit `c` of the set, `c` below its size.
    Ok((0..size)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// `Cpus_allowed_list` of `/proc/PID/status`: the CPUs the process may run on, as the kernel
/// shows them from outside.
pub fn cpus_allowed(pid: u32) -> Option<Vec<usize>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    parse_cpu_list(list)
}

/// Each thread of this process and its time on a CPU so far, in ns (`/proc/self/task/*/
/// schedstat`); empty where the kernel does not keep it.
pub fn thread_cpu_times() -> Vec<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        Some((tid, stat.split_whitespace().next()?.parse().ok()?))
    })
    .collect()
}

/// The threads that were on a CPU for at least a tenth of `wall` between two
/// [`thread_cpu_times`] (threads started in between count from zero).
pub fn busy_tids(before: &[(u32, u64)], after: &[(u32, u64)], wall: Duration) -> Vec<u32> {
    let floor = u64::try_from(wall.as_nanos() / 10).unwrap_or(u64::MAX);
    after
        .iter()
        .filter(|(tid, ns)| {
            let was = before.iter().find(|b| b.0 == *tid).map_or(0, |b| b.1);
            ns.saturating_sub(was) >= floor
        })
        .map(|(tid, _)| *tid)
        .collect()
}

/// How many [`busy_tids`]; `None` where the kernel keeps no per-thread CPU time.
pub fn busy_threads(before: &[(u32, u64)], after: &[(u32, u64)], wall: Duration) -> Option<u32> {
    if after.is_empty() {
        return None;
    }
    u32::try_from(busy_tids(before, after, wall).len()).ok()
}

/// A kernel CPU list (`0-2,5`) expanded: 0, 1, 2, 5.
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// This process's children with one of `names` (zombies included).
pub fn children_named(names: &[&str]) -> Vec<Proc> {
    let me = std::process::id();
    pids()
        .into_iter()
        .filter_map(Proc::read)
        .filter(|p| p.ppid == me && names.iter().any(|n| p.comm == *n))
        .collect()
}

pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Makes this process the reaper of its orphaned descendants (`PR_SET_CHILD_SUBREAPER`): ranks
/// whose mpirun died come to it rather than to PID 1, which in a container may never reap them,
/// so the teardown can reap them itself. Once a process; best effort.
pub fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with integer arguments; it only sets a flag of this process.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    });
}

/// Sends `signal` to `pid` (an error, say for a process gone, is ignored).
pub fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill with two integers.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Reaps `pid` if it is this process's child and has exited; true if it did.
pub fn reap_if_child(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    let mut status = 0;
    // SAFETY: waitpid on one pid without blocking; ECHILD for another's process.
    unsafe { libc::waitpid(p, &mut status, libc::WNOHANG) == p }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_found_by_its_environment_and_reaped() {
        let mark = format!("procs-test-{}", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("PARCOST_PROCS_TEST", &mark)
            .spawn()
            .expect("sleep");
        // A process's environment reads empty until its exec has set it up, a moment after the
        // parent's spawn returns (vfork resumes the parent earlier).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read(format!("/proc/{}/environ", child.id())).is_ok_and(|e| e.is_empty())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let found = carrying("PARCOST_PROCS_TEST", Value::Is(&mark));
        assert_eq!(found.len(), 1, "{found:?}");
        let p = &found[0];
        assert_eq!(
            (p.pid, p.ppid, p.comm.as_str()),
            (child.id(), std::process::id(), "sleep")
        );
        assert!(
            children_named(&["sleep"])
                .iter()
                .any(|c| c.pid == child.id())
        );
        assert!(carrying("PARCOST_PROCS_TEST", Value::Is("other")).is_empty());
        assert_eq!(
            carrying("PARCOST_PROCS_TEST", Value::StartsWith("procs-test-")).len(),
            1
        );
        // A mark that is a prefix of the child's (`m-1` against `m-10`) is another job's.
        assert!(carrying("PARCOST_PROCS_TEST", Value::Is(&mark[..mark.len() - 1])).is_empty());
        signal(child.id(), libc::SIGKILL);
        let _ = child.wait();
        assert!(!exists(child.id()));
        assert!(carrying("PARCOST_PROCS_TEST", Value::Is(&mark)).is_empty());
    }

    #[test]
    fn a_mark_matches_exactly_or_as_a_prefix() {
        let env = b"A=1\0PARCOST_MPI_JOB=m-10\0PARCOST_MPI_JOBS=m-1\0";
        let var = "PARCOST_MPI_JOB";
        assert!(
            !environ_matches(env, var, Value::Is("m-1")),
            "m-1 is not m-10"
        );
        assert!(environ_matches(env, var, Value::Is("m-10")));
        assert!(environ_matches(env, var, Value::StartsWith("m-")));
        assert!(environ_matches(env, var, Value::StartsWith("m-1")));
        assert!(!environ_matches(
            b"PARCOST_MPI_JOB=m-1",
            "PARCOST_MPI_JO",
            Value::StartsWith("")
        ));
    }

    #[test]
    fn cpu_lists_expand_and_match_the_affinity() {
        assert_eq!(parse_cpu_list("0-2,5\n"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("x"), None);
        let inside = allowed_cpus().expect("affinity");
        assert!(!inside.is_empty());
        assert_eq!(cpus_allowed(std::process::id()), Some(inside));
    }

    #[test]
    fn a_spinning_thread_is_busy_and_a_sleeping_one_is_not() {
        let before = thread_cpu_times();
        if before.is_empty() {
            eprintln!("no schedstat here");
            return;
        }
        let start = std::time::Instant::now();
        let (tell, told) = std::sync::mpsc::channel();
        let sleeper = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            let _ = tell.send(unsafe { libc::gettid() } as u32);
            std::thread::sleep(Duration::from_millis(300));
        });
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let after = thread_cpu_times();
        let wall = start.elapsed();
        let sleeper_tid = told.recv().expect("tid");
        sleeper.join().expect("sleeper");
        assert!(x > 0);
        // This thread, not the sleeper (other tests' threads may be busy too).
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() } as u32;
        let busy = busy_tids(&before, &after, wall);
        assert!(busy.contains(&me), "{busy:?}");
        assert!(!busy.contains(&sleeper_tid), "{busy:?}");
        assert!(busy_threads(&before, &after, wall) >= Some(1));
        assert_eq!(busy_threads(&before, &[], wall), None);
    }

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let me = Proc::read(std::process::id()).expect("self");
        assert_eq!(me.pid, std::process::id());
        assert!(me.state == 'R' || me.state == 'S', "{me}");
    }
}
