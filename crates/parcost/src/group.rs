//! The system calls of running a command in a process group of its own (`cargo xtask try`):
//! waiting for it with its resource usage, ending the whole group, and noting an interrupt.
//! Each `unsafe` block is one libc call with its SAFETY note; [`crate::observe`] holds the logic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How a process ended, from `wait4`'s status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

/// What `wait4` reports of a process that ended, its waited-for descendants included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    pub ended: Ended,
    /// User and system CPU time.
    pub cpu: Duration,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

/// Waits for the child `pid` to end (blocking) and reaps it.
pub fn wait(pid: u32) -> std::io::Result<Reaped> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::other(format!("pid {pid} out of range")))?;
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` and `ru` are valid for writes for the call; `ru` is plain data that
        // an all-zero pattern initialises.
        let (got, ru) = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            let got = libc::wait4(pid, &mut status, 0, &mut ru);
            (got, ru)
        };
        if got == pid {
            let tv = |t: libc::timeval| {
                Duration::from_secs(t.tv_sec.max(0) as u64)
                    + Duration::from_micros(t.tv_usec.max(0) as u64)
            };
            let ended = if libc::WIFSIGNALED(status) {
                Ended::Signal(libc::WTERMSIG(status))
            } else {
                Ended::Code(libc::WEXITSTATUS(status))
            };
            return Ok(Reaped {
                ended,
                cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
                voluntary_switches: ru.ru_nvcsw.max(0) as u64,
                involuntary_switches: ru.ru_nivcsw.max(0) as u64,
            });
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Ends every process of the group `pgid` (SIGKILL); a group already empty is no error.
pub fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        // Never the caller's own group or every process: a group id is the child's pid.
        return;
    }
    // SAFETY: kill with a negative pid signals that process group only; no memory is passed.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn note_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM only set a flag ([`interrupted`]): the caller ends the group
/// it runs (which a terminal's Ctrl-C does not reach: it is not the foreground group) and
/// stops with one line.
pub fn catch_interrupts() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // function pointer lives for the whole program.
        unsafe {
            libc::signal(
                signal,
                note_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
