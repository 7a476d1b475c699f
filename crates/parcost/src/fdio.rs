//! Reads and writes on pipes and sockets that give up at a deadline, so a worker that dies or
//! hangs turns into an error instead of a parent blocked forever.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::pipe::{IoSliceRaw, SpliceFlags};

/// Why an I/O on a worker's pipe or socket did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FdError {
    #[error("no progress for {0:?} (the other side hangs)")]
    Timeout(Duration),
    #[error("the other side closed the connection")]
    Closed,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One end of a pipe or socket in non-blocking mode, with a read-ahead buffer for lines.
#[derive(Debug)]
pub struct FdChannel {
    fd: OwnedFd,
    pending: Vec<u8>,
    timeout: Duration,
    /// Opened write-only (a pipe's write end): the one kind of fd [`FdChannel::vmsplice_all`]
    /// may hand pages to, since vmsplice on a read end would write into them.
    write_only: bool,
}

/// Makes `fd` non-blocking; returns whether it is open for writing only.
fn set_nonblocking(fd: &OwnedFd) -> io::Result<bool> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | OFlags::NONBLOCK)?;
    Ok(flags & OFlags::ACCMODE == OFlags::WRONLY)
}

/// Waits until `fd` is ready for `events` or the timeout passes.
fn wait(fd: BorrowedFd<'_>, events: PollFlags, timeout: Duration) -> Result<(), FdError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FdError::Timeout(timeout));
        }
        let left = Timespec::try_from(left).map_err(io::Error::other)?;
        let mut fds = [PollFd::new(&fd, events)];
        match rustix::event::poll(&mut fds, Some(&left)) {
            // POLLHUP/POLLERR: let the read or write report what happened.
            Ok(n) if n > 0 => return Ok(()),
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(io::Error::from(e).into()),
        }
    }
}

impl FdChannel {
    /// Takes an fd (a pipe end or a socket) and makes it non-blocking.
    pub fn new(fd: impl Into<OwnedFd>, timeout: Duration) -> io::Result<Self> {
        let fd = fd.into();
        let write_only = set_nonblocking(&fd)?;
        Ok(Self {
            fd,
            pending: Vec::new(),
            timeout,
            write_only,
        })
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Enlarges a pipe's buffer (`F_SETPIPE_SZ`); returns the size the kernel granted.
    pub fn set_pipe_size(&self, bytes: usize) -> io::Result<usize> {
        Ok(rustix::pipe::fcntl_setpipe_size(&self.fd, bytes)?)
    }

    /// Writes all of `bytes`; each stall may last up to the timeout.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), FdError> {
        while !bytes.is_empty() {
            match rustix::io::write(&self.fd, bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) => self.on_error(e, PollFlags::OUT)?,
            }
        }
        Ok(())
    }

    /// Hands the pages of `bytes` to a pipe with `vmsplice` (no copy on this side); the fd must
    /// be a pipe's write end. The caller must not change `bytes` until the reader has consumed
    /// them (or the reader sees the change).
    pub fn vmsplice_all(&mut self, mut bytes: &[u8]) -> Result<(), FdError> {
        if !self.write_only {
            return Err(FdError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "vmsplice to an fd that is not a pipe's write end",
            )));
        }
        while !bytes.is_empty() {
            match vmsplice_to_write_end(self.fd.as_fd(), bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) => self.on_error(e, PollFlags::OUT)?,
            }
        }
        Ok(())
    }

    /// Fills `buf` exactly.
    pub fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), FdError> {
        let from_pending = self.pending.len().min(buf.len());
        buf[..from_pending].copy_from_slice(&self.pending[..from_pending]);
        self.pending.drain(..from_pending);
        let mut filled = from_pending;
        while filled < buf.len() {
            match rustix::io::read(&self.fd, &mut buf[filled..]) {
                Ok(0) => return Err(FdError::Closed),
                Ok(n) => filled += n,
                Err(e) => self.on_error(e, PollFlags::IN)?,
            }
        }
        Ok(())
    }

    /// Reads one `\n`-terminated line (without the newline), at most `limit` bytes.
    pub fn read_line(&mut self, limit: usize) -> Result<Vec<u8>, FdError> {
        loop {
            if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=pos).collect();
                line.pop();
                return Ok(line);
            }
            if self.pending.len() > limit {
                return Err(FdError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("no end of line in the first {limit} bytes"),
                )));
            }
            let mut chunk = [0u8; 4096];
            match rustix::io::read(&self.fd, &mut chunk) {
                Ok(0) => return Err(FdError::Closed),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) => self.on_error(e, PollFlags::IN)?,
            }
        }
    }

    /// After a failed read or write: waits on EAGAIN, retries on EINTR, maps EPIPE to Closed.
    fn on_error(&self, err: Errno, events: PollFlags) -> Result<(), FdError> {
        match err {
            Errno::AGAIN => wait(self.fd.as_fd(), events, self.timeout),
            Errno::INTR => Ok(()),
            Errno::PIPE | Errno::CONNRESET => Err(FdError::Closed),
            _ => Err(io::Error::from(err).into()),
        }
    }
}

/// One non-blocking `vmsplice` of `bytes` into the pipe write end `fd`: the bytes taken.
///
/// rustix's `vmsplice` is `unsafe` (so is every other binding): on a pipe's read end it writes
/// into the buffers, which no signature can rule out. No `SPLICE_F_GIFT`: its promise (the
/// pages are page-aligned and never written again) does not hold for an array stamped in every
/// exchange, and it matters only to a reader that splices pages out with `SPLICE_F_MOVE`; the
/// worker `read`s (copies) them.
fn vmsplice_to_write_end(fd: BorrowedFd<'_>, bytes: &[u8]) -> Result<usize, Errno> {
    let iov = [IoSliceRaw::from_slice(bytes)];
    // SAFETY: `fd` is a write end (the caller checked its access mode, which an open file
    // cannot change), so the kernel only reads the pages of `bytes`, a live slice for the call.
    unsafe { rustix::pipe::vmsplice(fd, &iov, SpliceFlags::NONBLOCK) }
}

/// Views an `f64` slice as its bytes (every bit pattern of either is valid).
pub fn as_bytes(values: &[f64]) -> &[u8] {
    // SAFETY: same memory, u8 has alignment 1 and the length is exact.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

/// Views an `f64` slice as its bytes, mutably.
pub fn as_bytes_mut(values: &mut [f64]) -> &mut [u8] {
    // SAFETY: as above; any bytes written form valid f64s.
    unsafe {
        std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), std::mem::size_of_val(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn lines_and_bytes_cross_a_socket() {
        let (a, b) = UnixStream::pair().expect("pair");
        let mut a = FdChannel::new(a, Duration::from_secs(5)).expect("a");
        let mut b = FdChannel::new(b, Duration::from_secs(5)).expect("b");
        a.write_all(b"hello\nworld").expect("write");
        assert_eq!(b.read_line(64).expect("line"), b"hello");
        let mut rest = [0u8; 5];
        b.read_exact(&mut rest).expect("rest");
        assert_eq!(&rest, b"world");
    }

    #[test]
    fn a_silent_peer_times_out_and_a_closed_one_is_closed() {
        let (a, b) = UnixStream::pair().expect("pair");
        let mut b = FdChannel::new(b, Duration::from_millis(50)).expect("b");
        let start = Instant::now();
        assert!(matches!(b.read_line(64), Err(FdError::Timeout(_))));
        assert!(start.elapsed() < Duration::from_secs(2));
        drop(a);
        assert!(matches!(b.read_exact(&mut [0u8; 1]), Err(FdError::Closed)));
        assert!(matches!(b.write_all(&[1u8; 1 << 20]), Err(FdError::Closed)));
    }
}
