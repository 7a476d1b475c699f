//! Reads and writes on pipes and sockets that give up at a deadline, so a worker that dies or
//! hangs turns into an error instead of a parent blocked forever.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

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
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on an fd we own, with integer arguments only.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Waits until `fd` is ready for `events` or the timeout passes.
fn wait(fd: i32, events: libc::c_short, timeout: Duration) -> Result<(), FdError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FdError::Timeout(timeout));
        }
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err.into());
        }
        if n > 0 {
            // POLLHUP/POLLERR: let the read or write report what happened.
            return Ok(());
        }
    }
}

impl FdChannel {
    /// Takes an fd (a pipe end or a socket) and makes it non-blocking.
    pub fn new(fd: impl Into<OwnedFd>, timeout: Duration) -> io::Result<Self> {
        let fd = fd.into();
        set_nonblocking(&fd)?;
        Ok(Self {
            fd,
            pending: Vec::new(),
            timeout,
        })
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Enlarges a pipe's buffer (`F_SETPIPE_SZ`); returns the size the kernel granted.
    pub fn set_pipe_size(&self, bytes: usize) -> io::Result<usize> {
        let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: fcntl with an integer argument on an fd we own.
        let got = unsafe { libc::fcntl(self.raw_fd(), libc::F_SETPIPE_SZ, want) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(got).unwrap_or(0))
    }

    /// Writes all of `bytes`; each stall may last up to the timeout.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), FdError> {
        while !bytes.is_empty() {
            // SAFETY: writes from a live slice of the stated length.
            let n = unsafe { libc::write(self.raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
            if n >= 0 {
                bytes = &bytes[n as usize..];
                continue;
            }
            self.on_error(libc::POLLOUT)?;
        }
        Ok(())
    }

    /// Hands the pages of `bytes` to a pipe with `vmsplice` (no copy on this side). The caller
    /// must not change `bytes` until the reader has consumed them.
    pub fn vmsplice_all(&mut self, mut bytes: &[u8]) -> Result<(), FdError> {
        while !bytes.is_empty() {
            let iov = libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
            let flags = libc::SPLICE_F_GIFT | libc::SPLICE_F_NONBLOCK;
            // SAFETY: one iovec over a live slice; the pipe only reads the pages.
            let n = unsafe { libc::vmsplice(self.raw_fd(), &iov, 1, flags) };
            if n >= 0 {
                bytes = &bytes[n as usize..];
                continue;
            }
            self.on_error(libc::POLLOUT)?;
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
            let rest = &mut buf[filled..];
            // SAFETY: reads into a live slice of the stated length.
            let n = unsafe { libc::read(self.raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
            match n {
                0 => return Err(FdError::Closed),
                n if n > 0 => filled += n as usize,
                _ => self.on_error(libc::POLLIN)?,
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
            // SAFETY: reads into a live stack buffer.
            let n = unsafe { libc::read(self.raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            match n {
                0 => return Err(FdError::Closed),
                n if n > 0 => self.pending.extend_from_slice(&chunk[..n as usize]),
                _ => self.on_error(libc::POLLIN)?,
            }
        }
    }

    /// After a failed read or write: waits on EAGAIN, retries on EINTR, maps EPIPE to Closed.
    fn on_error(&self, events: libc::c_short) -> Result<(), FdError> {
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => wait(self.raw_fd(), events, self.timeout),
            Some(libc::EINTR) => Ok(()),
            Some(libc::EPIPE) | Some(libc::ECONNRESET) => Err(FdError::Closed),
            _ => Err(err.into()),
        }
    }
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
