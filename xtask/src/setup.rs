//! `cargo xtask setup`: make sure OpenBLAS is there before anything tries to link it.

use std::path::Path;
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
}
