//! Files written whole or not at all.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same folder (tempfile) and a
/// rename, so a reader (or a crash) sees the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("nested");
        let path = dir.join("out.json");
        write_atomically(&path, b"old").expect("write");
        write_atomically(&path, b"new").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        let entries: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn an_unwritable_folder_is_an_error_and_keeps_the_old_file() {
        let err = write_atomically(Path::new("/proc/parcost/out.json"), b"x");
        assert!(err.is_err());
    }
}
