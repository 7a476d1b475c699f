//! Logical and physical core counts, read from the kernel's CPU topology files.
//!
//! Read from `/sys/devices/system/cpu` rather than from a crate that asks the affinity mask:
//! OpenBLAS has been seen to change what the mask reports once it has started its threads. A
//! container's cpuset, which no thread can change, limits it: sysfs's `online` lists every
//! CPU of the host.

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
        let cpuset = cgroup_cpuset(Path::new("/proc/self/cgroup"), Path::new(CGROUP_ROOT));
        Self::from_sysfs_within(Path::new(SYSFS_CPU), cpuset.as_ref()).unwrap_or_else(|_| {
            let n = std::thread::available_parallelism().map_or(1, usize::from);
            Self {
                logical: n,
                physical: n,
            }
        })
    }

    /// Reads a topology tree laid out as `/sys/devices/system/cpu` is.
    pub fn from_sysfs(root: &Path) -> Result<Self, TopologyError> {
        Self::from_sysfs_within(root, None)
    }

    /// The same, counting only the online CPUs in `cpuset` when there is one (and it shares a
    /// CPU with them).
    pub fn from_sysfs_within(
        root: &Path,
        cpuset: Option<&BTreeSet<usize>>,
    ) -> Result<Self, TopologyError> {
        let online_path = root.join("online");
        let mut online =
            parse_cpu_list(&read(&online_path)?).ok_or_else(|| TopologyError::Parse {
                path: online_path.clone(),
                text: read(&online_path).unwrap_or_default(),
            })?;
        if let Some(set) = cpuset.filter(|set| set.iter().any(|c| online.contains(c))) {
            online.retain(|c| set.contains(c));
        }
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

/// Where cgroup v2 is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The CPUs the process's cgroup may run on, from `proc_cgroup` (`/proc/self/cgroup`) and the
/// hierarchy mounted at `root`: cgroup v2's `cpuset.cpus.effective` of its cgroup (at `root` or,
/// in the hybrid layout, at `root/unified`), else cgroup v1's `cpuset.effective_cpus` of its
/// cpuset cgroup (at `root/cpuset`), else those files at the mount's root (a container's own
/// cgroup, mounted there); `None` where none is there.
pub fn cgroup_cpuset(proc_cgroup: &Path, root: &Path) -> Option<BTreeSet<usize>> {
    let text = fs::read_to_string(proc_cgroup).ok()?;
    let under = |base: PathBuf, path: &str, file: &str| {
        base.join(path.trim().trim_start_matches('/')).join(file)
    };
    let mut candidates = Vec::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            for base in [root.to_owned(), root.join("unified")] {
                candidates.push(under(base, path, "cpuset.cpus.effective"));
            }
        } else if controllers.split(',').any(|c| c == "cpuset") {
            candidates.push(under(root.join("cpuset"), path, "cpuset.effective_cpus"));
        }
    }
    // Inside a container without a cgroup namespace of its own the path names the host's
    // view, while its own cgroup is mounted at the root: look there last.
    candidates.push(root.join("cpuset.cpus.effective"));
    candidates.push(root.join("cpuset/cpuset.effective_cpus"));
    candidates.into_iter().find_map(|file| {
        parse_cpu_list(&fs::read_to_string(file).ok()?).filter(|set| !set.is_empty())
    })
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
    fn a_containers_cpuset_limits_the_cores() {
        // A host of two SMT cores; the container may use cpu0 and cpu2, siblings of core 0.
        let tree = fixture("0-3", &[(0, 0, 0), (1, 0, 1), (2, 0, 0), (3, 0, 1)]);
        let cgroup = tempdir::TempTree::new();
        let proc_cgroup = cgroup.path().join("cgroup");
        fs::write(&proc_cgroup, "0::/docker/abc\n").expect("write");
        let dir = cgroup.path().join("docker/abc");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("cpuset.cpus.effective"), "0,2\n").expect("write");
        let cpuset = cgroup_cpuset(&proc_cgroup, cgroup.path());
        assert_eq!(cpuset, Some([0, 2].into_iter().collect()));
        let t = Topology::from_sysfs_within(tree.path(), cpuset.as_ref()).expect("topology");
        assert_eq!(
            t,
            Topology {
                logical: 2,
                physical: 1
            }
        );
        // No cpuset file (no cpuset controller): the online CPUs.
        fs::remove_file(dir.join("cpuset.cpus.effective")).expect("rm");
        assert_eq!(cgroup_cpuset(&proc_cgroup, cgroup.path()), None);
        // cgroup v1 (this machine's layout): the cpuset hierarchy's own file.
        fs::write(&proc_cgroup, "4:memory:/x\n3:cpuset:/docker/abc\n0::/\n").expect("write");
        let v1 = cgroup.path().join("cpuset/docker/abc");
        fs::create_dir_all(&v1).expect("mkdir");
        fs::write(v1.join("cpuset.effective_cpus"), "1\n").expect("write");
        assert_eq!(
            cgroup_cpuset(&proc_cgroup, cgroup.path()),
            Some([1].into_iter().collect())
        );
        // A container without a cgroup namespace: the path is the host's, the container's
        // own cgroup is mounted at the root.
        fs::remove_dir_all(cgroup.path().join("cpuset")).expect("rm");
        fs::remove_dir_all(cgroup.path().join("docker")).expect("rm");
        fs::write(&proc_cgroup, "0::/docker/abc\n").expect("write");
        fs::write(cgroup.path().join("cpuset.cpus.effective"), "0-1\n").expect("write");
        assert_eq!(
            cgroup_cpuset(&proc_cgroup, cgroup.path()),
            Some([0, 1].into_iter().collect())
        );
        // A cpuset naming none of the online CPUs is not believed.
        let elsewhere: BTreeSet<usize> = [8, 9].into_iter().collect();
        let t = Topology::from_sysfs_within(tree.path(), Some(&elsewhere)).expect("topology");
        assert_eq!(t.logical, 4);
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
