//! Logical and physical core counts, read from the kernel's CPU topology files.
//!
//! Read from `/sys/devices/system/cpu` rather than from a crate that asks the affinity mask:
//! OpenBLAS has been seen to change what the mask reports once it has started its threads.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The root of the kernel's CPU topology tree.
pub const SYSFS_CPU: &str = "/sys/devices/system/cpu";

/// How many hardware threads and cores the machine has online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Online hardware threads: the `P` of the suites.
    pub logical: usize,
    /// Online physical cores (distinct package and core ids).
    pub physical: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {text:?} is not a CPU list")]
    Parse { path: PathBuf, text: String },
    #[error("{0} lists no online CPU")]
    Empty(PathBuf),
}

impl Topology {
    /// This machine's topology; if the kernel's files are missing (a container without sysfs),
    /// every hardware thread the process may use is counted as a core of its own.
    pub fn detect() -> Self {
        Self::from_sysfs(Path::new(SYSFS_CPU)).unwrap_or_else(|_| {
            let n = std::thread::available_parallelism().map_or(1, usize::from);
            Self {
                logical: n,
                physical: n,
            }
        })
    }

    /// Reads a topology tree laid out as `/sys/devices/system/cpu` is.
    pub fn from_sysfs(root: &Path) -> Result<Self, TopologyError> {
        let online_path = root.join("online");
        let online = parse_cpu_list(&read(&online_path)?).ok_or_else(|| TopologyError::Parse {
            path: online_path.clone(),
            text: read(&online_path).unwrap_or_default(),
        })?;
        if online.is_empty() {
            return Err(TopologyError::Empty(online_path));
        }
        let mut cores = BTreeSet::new();
        for cpu in &online {
            let topo = root.join(format!("cpu{cpu}/topology"));
            let package = read_number(&topo.join("physical_package_id"))?;
            let core = read_number(&topo.join("core_id"))?;
            cores.insert((package, core));
        }
        Ok(Self {
            logical: online.len(),
            physical: cores.len(),
        })
    }
}

fn read(path: &Path) -> Result<String, TopologyError> {
    fs::read_to_string(path).map_err(|source| TopologyError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_number(path: &Path) -> Result<i64, TopologyError> {
    let text = read(path)?;
    text.trim().parse().map_err(|_| TopologyError::Parse {
        path: path.to_owned(),
        text,
    })
}

/// Parses the kernel's CPU list format: `0-3,5,7-8`.
pub fn parse_cpu_list(text: &str) -> Option<BTreeSet<usize>> {
    let mut cpus = BTreeSet::new();
    let text = text.trim();
    if text.is_empty() {
        return Some(cpus);
    }
    for part in text.split(',') {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (usize, usize) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
                if lo > hi {
                    return None;
                }
                cpus.extend(lo..=hi);
            }
            None => {
                cpus.insert(part.trim().parse().ok()?);
            }
        }
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a fake sysfs tree: `cpus` holds (cpu, package, core) of every CPU present.
    fn fixture(online: &str, cpus: &[(usize, i64, i64)]) -> tempdir::TempTree {
        let tree = tempdir::TempTree::new();
        fs::write(tree.path().join("online"), format!("{online}\n")).expect("write");
        for &(cpu, package, core) in cpus {
            let topo = tree.path().join(format!("cpu{cpu}/topology"));
            fs::create_dir_all(&topo).expect("mkdir");
            fs::write(topo.join("physical_package_id"), format!("{package}\n")).expect("write");
            fs::write(topo.join("core_id"), format!("{core}\n")).expect("write");
        }
        tree
    }

    mod tempdir {
        /// A folder removed when the test ends (tempfile).
        pub struct TempTree(tempfile::TempDir);
        impl TempTree {
            pub fn new() -> Self {
                Self(tempfile::tempdir().expect("tempdir"))
            }
            pub fn path(&self) -> &std::path::Path {
                self.0.path()
            }
        }
    }

    #[test]
    fn smt_siblings_count_as_one_core() {
        let tree = fixture("0-3", &[(0, 0, 0), (1, 0, 1), (2, 0, 0), (3, 0, 1)]);
        let t = Topology::from_sysfs(tree.path()).expect("topology");
        assert_eq!(
            t,
            Topology {
                logical: 4,
                physical: 2
            }
        );
    }

    #[test]
    fn without_smt_every_thread_is_a_core() {
        let tree = fixture("0-1", &[(0, 0, 0), (1, 0, 1)]);
        let t = Topology::from_sysfs(tree.path()).expect("topology");
        assert_eq!(
            t,
            Topology {
                logical: 2,
                physical: 2
            }
        );
    }

    #[test]
    fn same_core_id_on_two_packages_is_two_cores() {
        let tree = fixture("0,1", &[(0, 0, 0), (1, 1, 0)]);
        let t = Topology::from_sysfs(tree.path()).expect("topology");
        assert_eq!(t.physical, 2);
    }

    #[test]
    fn offline_cpus_are_not_counted() {
        // cpu2 and cpu3 exist but are offline: no topology files, not in `online`.
        let tree = fixture("0-1", &[(0, 0, 0), (1, 0, 1)]);
        fs::create_dir_all(tree.path().join("cpu2")).expect("mkdir");
        fs::create_dir_all(tree.path().join("cpu3")).expect("mkdir");
        let t = Topology::from_sysfs(tree.path()).expect("topology");
        assert_eq!(
            t,
            Topology {
                logical: 2,
                physical: 2
            }
        );
    }

    #[test]
    fn missing_files_are_an_error_naming_the_file() {
        let tree = fixture("0-1", &[(0, 0, 0)]);
        let err = Topology::from_sysfs(tree.path()).expect_err("cpu1 has no topology");
        assert!(err.to_string().contains("cpu1"), "{err}");
        let empty = tempdir::TempTree::new();
        let err = Topology::from_sysfs(empty.path()).expect_err("no online file");
        assert!(err.to_string().contains("online"), "{err}");
    }

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(
            parse_cpu_list("0-2,5,7-8\n"),
            Some([0, 1, 2, 5, 7, 8].into_iter().collect())
        );
        assert_eq!(parse_cpu_list(""), Some(BTreeSet::new()));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
    }

    #[test]
    fn this_machine_has_at_least_one_core() {
        let t = Topology::detect();
        assert!(t.logical >= 1 && t.physical >= 1 && t.physical <= t.logical);
    }
}
