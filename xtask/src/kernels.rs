//! Choosing the OpenBLAS kernel every BLAS suite runs with: `parcost-kernels survey` tries each
//! kernel this CPU can run in a child process (under each layer), and `--kernel` decides.

use std::process::Command;

use anyhow::{Context, bail};
use parcost::kernel::{CORETYPE_VAR, Decision, KernelPolicy, LIBRARY_CORE_VAR, SOURCE_VAR, Survey};

use crate::cargo;
use crate::layers::Layer;

/// The kernel one layer runs with, and the survey it was chosen from.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub decision: Decision,
    pub survey: Survey,
}

impl Chosen {
    /// Puts the kernel (or its absence) into a suite's environment, with what the suite records
    /// of how it was chosen.
    pub fn apply(&self, cmd: &mut Command) {
        apply_kernel(cmd, &self.decision, self.decision.coretype.as_deref());
    }

    /// The environment of the kernel sweep's run of `kernel`.
    pub fn apply_sweep(&self, cmd: &mut Command, kernel: &str) {
        apply_kernel(cmd, &self.decision, Some(kernel));
        cmd.env(SOURCE_VAR, "named");
    }
}

fn apply_kernel(cmd: &mut Command, decision: &Decision, coretype: Option<&str>) {
    match coretype {
        Some(k) => cmd.env(CORETYPE_VAR, k),
        None => cmd.env_remove(CORETYPE_VAR),
    };
    cmd.env(SOURCE_VAR, decision.source.name());
    match &decision.library_core {
        Some(core) => cmd.env(LIBRARY_CORE_VAR, core),
        None => cmd.env_remove(LIBRARY_CORE_VAR),
    };
}

/// Builds `parcost-kernels` (the bench profile, as the suites) and returns its path.
fn build_probe() -> anyhow::Result<std::path::PathBuf> {
    let out = cargo()
        .args([
            "build",
            "--quiet",
            "--profile",
            "bench",
            "--package",
            "parcost",
            "--bin",
            "parcost-kernels",
            "--message-format",
            "json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run cargo build for parcost-kernels")?;
    anyhow::ensure!(out.status.success(), "building parcost-kernels failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "parcost-kernels")
        .find_map(|v| v["executable"].as_str().map(std::path::PathBuf::from))
        .context("cargo built parcost-kernels but named no executable")
}

/// Tries every kernel under each layer and applies `policy` to each layer's survey.
pub fn choose(layers: &[Layer], policy: &KernelPolicy) -> anyhow::Result<Vec<Chosen>> {
    let probe = build_probe()?;
    let mut chosen = Vec::new();
    for layer in layers {
        let mut cmd = Command::new(&probe);
        cmd.args(["survey", "--timing"]);
        layer.apply(&mut cmd);
        let out = cmd
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {}", probe.display()))?;
        if !out.status.success() {
            bail!(
                "the kernel trials under OpenBLAS layer {} failed ({}); run {} survey to see why",
                layer.name,
                out.status,
                probe.display()
            );
        }
        let survey: Survey = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{} printed no survey", probe.display()))?;
        let decision = survey
            .decide(policy)
            .map_err(|e| anyhow::anyhow!("OpenBLAS layer {}: {e}", layer.name))?;
        let failed: Vec<String> = survey
            .trials
            .iter()
            .filter(|t| {
                !t.verdict.passed()
                    && !matches!(t.verdict, parcost::kernel::Verdict::NotInBuild { .. })
            })
            .map(|t| format!("{} {}", t.kernel().unwrap_or("?"), t.verdict))
            .collect();
        if !failed.is_empty() {
            eprintln!(
                "kernel trials under {}: never used: {}",
                layer.name,
                failed.join("; ")
            );
        }
        chosen.push(Chosen { decision, survey });
    }
    // One line for the whole run when every layer decided the same.
    let notes: Vec<&str> = chosen
        .iter()
        .filter_map(|c| c.decision.note.as_deref())
        .collect();
    if let Some(first) = notes.first() {
        if notes.iter().all(|n| n == first) {
            eprintln!("{first}");
        } else {
            for (c, note) in chosen.iter().zip(&notes) {
                eprintln!("under {}: {note}", c.survey.layer);
            }
        }
    }
    Ok(chosen)
}
