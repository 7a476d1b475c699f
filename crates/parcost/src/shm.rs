//! Shared memory that two processes map: a memfd (anonymous, passed by inheritance) or a named
//! file in `/dev/shm` (opened by path). Both are released on every path: the memfd with its last
//! fd, the named file unlinked on drop (panics included) and as soon as the child has mapped it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{MmapMut, MmapOptions};

/// Where `mmap-file` puts its files.
pub const SHM_DIR: &str = "/dev/shm";

/// The prefix of every file parcost creates in [`SHM_DIR`] (tests look for leftovers by it).
pub const SHM_PREFIX: &str = "parcost-";

/// A mapping of `len` f64s shared with other processes.
#[derive(Debug)]
pub struct SharedArray {
    file: File,
    map: MmapMut,
    elements: usize,
    /// Set while a named file exists in /dev/shm.
    path: Option<PathBuf>,
}

impl SharedArray {
    /// An anonymous memfd of `elements` f64s. Its fd is close-on-exec; a child that should
    /// inherit it gets it through [`crate::worker::Spawn::inherit`].
    pub fn memfd(elements: usize) -> std::io::Result<Self> {
        let fd = rustix::fs::memfd_create(c"parcost", rustix::fs::MemfdFlags::CLOEXEC)?;
        Self::sized(File::from(fd), elements, None)
    }

    /// A named file `/dev/shm/parcost-<pid>-<n>` of `elements` f64s.
    pub fn named(elements: usize) -> std::io::Result<Self> {
        sweep_at_exit();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = Path::new(SHM_DIR).join(format!(
            "{SHM_PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // From here on, drop unlinks the file, whatever fails next.
        Self::sized(file, elements, Some(path))
    }

    fn sized(file: File, elements: usize, path: Option<PathBuf>) -> std::io::Result<Self> {
        let unlink = |e| {
            if let Some(p) = &path {
                let _ = std::fs::remove_file(p);
            }
            e
        };
        let bytes = elements * std::mem::size_of::<f64>();
        file.set_len(bytes as u64).map_err(unlink)?;
        let map = map_shared(&file, bytes).map_err(unlink)?;
        Ok(Self {
            file,
            map,
            elements,
            path,
        })
    }

    /// Maps an existing shared file or memfd (the worker's side).
    pub fn open(file: File, elements: usize) -> std::io::Result<Self> {
        let bytes = elements * std::mem::size_of::<f64>();
        let len = file.metadata()?.len();
        if len < bytes as u64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("shared file holds {len} bytes, {bytes} expected"),
            ));
        }
        let map = map_shared(&file, bytes)?;
        Ok(Self {
            file,
            map,
            elements,
            path: None,
        })
    }

    pub fn as_slice(&self) -> &[f64] {
        // SAFETY: the mapping is page-aligned, at least `elements` f64s long, and any bits are a
        // valid f64.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast(), self.elements) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        // SAFETY: as above, and `&mut self` makes this the only view in this process.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().cast(), self.elements) }
    }

    pub fn len(&self) -> usize {
        self.elements
    }

    pub fn is_empty(&self) -> bool {
        self.elements == 0
    }

    pub fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// The named file's path, while it still exists.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Removes the named file (the mappings stay valid); call once every process has mapped it.
    pub fn unlink(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for SharedArray {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// Maps `bytes` of `file` (at least one byte) shared, for reading and writing.
///
/// memmap2 marks every file mapping `unsafe` (no crate can make it safe): another process may
/// write or truncate the file under the mapping.
fn map_shared(file: &File, bytes: usize) -> std::io::Result<MmapMut> {
    // SAFETY: the file is a memfd or a /dev/shm file of parcost's own, sized to `bytes` before
    // it is mapped and never truncated; other processes change its contents only through the
    // protocol (a worker writes while the parent waits for its answer), and a `SharedArray`
    // hands out only f64 slices, for which any bits are valid.
    unsafe { MmapOptions::new().len(bytes.max(1)).map_mut(file) }
}

/// Files in /dev/shm whose names start with `prefix`.
pub fn named_with_prefix(prefix: &str) -> Vec<PathBuf> {
    entries_with_prefix(Path::new(SHM_DIR), prefix)
}

fn entries_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn own_prefix(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("{SHM_PREFIX}{pid}-"),
        None => SHM_PREFIX.to_owned(),
    }
}

/// Makes sure that whatever files of this process are left in /dev/shm and the temporary folder
/// are removed when it exits through `exit` (as `harness::fail` does, which runs no destructor).
/// Registered once per process; a process killed by a signal runs nothing.
pub fn sweep_at_exit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        extern "C" fn sweep() {
            let me = Some(std::process::id());
            for path in leftovers(me) {
                let _ = std::fs::remove_file(path);
            }
            for path in temp_leftovers(me) {
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
        // libc's atexit: neither std nor rustix registers exit handlers (rustix's `runtime` is
        // for programs without libc).
        // SAFETY: `sweep` takes nothing, returns nothing and cannot unwind (file-system calls
        // whose errors it ignores).
        unsafe {
            libc::atexit(sweep);
        }
    });
}

/// Files of this process (or any, with `None`) left in /dev/shm: parcost's own and those of
/// the libraries it names (iceoryx2's).
pub fn leftovers(pid: Option<u32>) -> Vec<PathBuf> {
    named_with_prefix(&own_prefix(pid))
}

/// Folders and files of this process (or any) left in the temporary folder (`TMPDIR`, else
/// /tmp): ipc-channel's server sockets and iceoryx2's nodes live in folders parcost names so.
pub fn temp_leftovers(pid: Option<u32>) -> Vec<PathBuf> {
    entries_with_prefix(&std::env::temp_dir(), &own_prefix(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_files_are_removed_on_drop_and_on_panic() {
        let a = SharedArray::named(1000).expect("named");
        let path = a.path().expect("path").to_owned();
        assert!(path.exists());
        drop(a);
        assert!(!path.exists());

        let result = std::panic::catch_unwind(|| {
            let a = SharedArray::named(10).expect("named");
            let p = a.path().expect("path").to_owned();
            panic!("{}", p.display());
        });
        let msg = result.expect_err("panicked");
        let p = msg.downcast_ref::<String>().expect("path");
        assert!(!Path::new(p).exists(), "left {p}");
    }

    #[test]
    fn two_mappings_of_a_memfd_see_each_other() {
        let mut a = SharedArray::memfd(4096).expect("memfd");
        let dup = a.file.try_clone().expect("dup");
        let mut b = SharedArray::open(dup, 4096).expect("open");
        a.as_mut_slice()[4095] = 2.5;
        assert_eq!(b.as_slice()[4095], 2.5);
        b.as_mut_slice()[0] = -1.0;
        assert_eq!(a.as_slice()[0], -1.0);
        let short = a.file.try_clone().expect("dup");
        assert!(SharedArray::open(short, 8192).is_err());
    }
}
