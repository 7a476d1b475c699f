//! `cargo xtask setup`: make sure OpenBLAS is there before anything tries to link it, and MPI
//! for the ranks-x-threads suite (which is skipped, with one line saying so, where MPI cannot be
//! had).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::bail;

use crate::layers::{self, OpenBlas};

/// Every Debian package the suites use: the development files and the two extra layers.
const DEBIAN_PACKAGES: [&str; 3] = [
    "libopenblas-dev",
    "libopenblas0-openmp",
    "libopenblas0-serial",
];

pub fn run() -> anyhow::Result<OpenBlas> {
    let dirs = layers::search_dirs();
    if let Some(found) = layers::find(&dirs) {
        let missing = layers::missing_debian_layers(&found);
        if missing.is_empty() {
            report(&found);
            return Ok(found);
        }
        if let Some(sudo) = installer() {
            apt_install(sudo, &missing)?;
            if let Some(found) = layers::find(&dirs) {
                report(&found);
                return Ok(found);
            }
        }
        eprintln!(
            "note: OpenBLAS layers not installed, so not measured: {} (sudo apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        );
        report(&found);
        return Ok(found);
    }
    let Some(sudo) = installer() else {
        bail!("{}", missing_message());
    };
    apt_install(sudo, &DEBIAN_PACKAGES)?;
    match layers::find(&dirs) {
        Some(found) => {
            report(&found);
            Ok(found)
        }
        None => bail!(
            "apt-get installed OpenBLAS but libopenblas.so is still not found; {}",
            missing_message()
        ),
    }
}

/// What the ranks-x-threads suite needs (Debian's packages): OpenMPI's `mpirun`, its headers and
/// `mpicc` (rsmpi's build finds MPI through them), pkg-config, and libclang (rsmpi's bindgen).
const MPI_PACKAGES: [&str; 4] = ["libopenmpi-dev", "openmpi-bin", "libclang-dev", "pkgconf"];

/// Makes sure MPI is there for the ranks-x-threads suite, installing it like OpenBLAS where
/// apt-get can; returns whether it is. Where it cannot be had, one line says so and the suite
/// is skipped: the other suites never depend on it.
pub fn mpi() -> bool {
    let missing = mpi_missing();
    if missing.is_empty() {
        report_mpi();
        return true;
    }
    if let Some(sudo) = installer() {
        match apt_install(sudo, &MPI_PACKAGES) {
            Ok(()) if mpi_missing().is_empty() => {
                report_mpi();
                return true;
            }
            Ok(()) => {}
            Err(e) => eprintln!("installing MPI failed: {e:#}"),
        }
    }
    eprintln!("note: {}", mpi_missing_message(&mpi_missing()));
    false
}

fn report_mpi() {
    let version = Command::new(mpirun())
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    eprintln!("MPI: {version}");
}

/// The launcher the suite runs: `PARCOST_MPIRUN`, else `mpirun` (as the suite finds it).
fn mpirun() -> PathBuf {
    std::env::var_os("PARCOST_MPIRUN")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("mpirun"), PathBuf::from)
}

/// An executable named `name` on the `PATH` (or `name` itself, given as a path).
fn on_path(name: &Path) -> bool {
    if name.components().count() > 1 {
        return name.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Whether libclang is where clang-sys (bindgen) looks: `LIBCLANG_PATH`, LLVM's folders, the
/// system's library folders.
fn libclang_found() -> bool {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LIBCLANG_PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("llvm"))
                })
                .map(|p| p.join("lib")),
        );
    }
    dirs.push(PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu",
        std::env::consts::ARCH
    )));
    dirs.extend(["/usr/lib64", "/usr/lib", "/usr/local/lib"].map(PathBuf::from));
    dirs.iter().any(|d| {
        std::fs::read_dir(d).is_ok_and(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("libclang")
                    && !name.starts_with("libclang-cpp")
                    && name.contains(".so")
            })
        })
    })
}

/// The Debian packages of [`MPI_PACKAGES`] whose part is missing here.
fn mpi_missing() -> Vec<&'static str> {
    let mut missing = Vec::new();
    let runs = Command::new(mpirun())
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        missing.push("openmpi-bin");
    }
    if !on_path(Path::new("mpicc")) {
        missing.push("libopenmpi-dev");
    }
    if !on_path(Path::new("pkg-config")) {
        missing.push("pkgconf");
    }
    if !libclang_found() {
        missing.push("libclang-dev");
    }
    missing
}

/// The one line a user without MPI sees: the suite is skipped, and how to install MPI anywhere.
fn mpi_missing_message(missing: &[&str]) -> String {
    format!(
        "MPI not found (missing: {}), so the ranks-x-threads suite is skipped. To measure it, \
         install OpenMPI and libclang, then run this again: Debian/Ubuntu: sudo apt-get install {} \
         | Fedora: sudo dnf install openmpi-devel clang-devel | Arch: sudo pacman -S openmpi clang \
         | macOS: brew install open-mpi llvm",
        missing.join(", "),
        MPI_PACKAGES.join(" ")
    )
}

/// Makes sure headless Chromium is there for the report's browser test; returns whether it is.
pub fn ensure_chromium() -> anyhow::Result<bool> {
    if Path::new("/usr/bin/chromium").exists() {
        return Ok(true);
    }
    match installer() {
        Some(sudo) => {
            apt_install(sudo, &["chromium"])?;
            Ok(Path::new("/usr/bin/chromium").exists())
        }
        None => {
            eprintln!(
                "note: Chromium is not installed, so the report's browser test is skipped (sudo apt-get install chromium)"
            );
            Ok(false)
        }
    }
}

fn report(found: &OpenBlas) {
    eprintln!(
        "OpenBLAS: {} (layers: {})",
        found.library.display(),
        found.layer_names().join(", ")
    );
}

/// The one line a user without OpenBLAS sees: what is missing and how to install it anywhere.
fn missing_message() -> String {
    format!(
        "OpenBLAS not found (no libopenblas.so in {}). Install it, then run this again: \
         Debian/Ubuntu: sudo apt-get install {} | Fedora: sudo dnf install openblas-devel | \
         Arch: sudo pacman -S openblas | macOS: brew install openblas",
        layers::search_dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        DEBIAN_PACKAGES.join(" ")
    )
}

/// `Some(prefix)` when apt-get can be run here: as root (no prefix) or with passwordless sudo.
/// `PARCOST_NO_INSTALL=1` turns installing off (tests use it to see the message).
fn installer() -> Option<&'static [&'static str]> {
    if std::env::var_os("PARCOST_NO_INSTALL").is_some_and(|v| v == "1") {
        return None;
    }
    if !Path::new("/usr/bin/apt-get").exists() {
        return None;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some(&[]);
    }
    let sudo_ok = Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    sudo_ok.then_some(&["sudo", "-n"][..])
}

fn apt_install(prefix: &[&str], packages: &[&str]) -> anyhow::Result<()> {
    eprintln!("installing {} with apt-get", packages.join(" "));
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.push("apt-get");
        argv.extend_from_slice(args);
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .env("DEBIAN_FRONTEND", "noninteractive");
        crate::run_checked(&mut cmd)
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend_from_slice(packages);
    apt(&install)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_every_package_manager() {
        let m = missing_message();
        for needle in [
            "apt-get install libopenblas-dev",
            "dnf",
            "pacman",
            "brew",
            "OpenBLAS not found",
        ] {
            assert!(m.contains(needle), "{needle}: {m}");
        }
        assert!(!m.contains('\n'));
    }

    #[test]
    fn the_mpi_message_names_the_suite_and_every_package_manager() {
        let m = mpi_missing_message(&["openmpi-bin"]);
        for needle in [
            "missing: openmpi-bin",
            "ranks-x-threads suite is skipped",
            "apt-get install libopenmpi-dev openmpi-bin libclang-dev pkgconf",
            "dnf",
            "pacman",
            "brew",
        ] {
            assert!(m.contains(needle), "{needle}: {m}");
        }
        assert!(!m.contains('\n'));
    }
}
