//! Choosing the OpenBLAS kernel every BLAS suite runs with: `parcost-kernels survey` tries each
//! kernel this CPU can run in a child process (under each layer), and `--kernel` decides.

use std::process::Command;

use anyhow::{Context, bail};
use parcost::kernel::{CORETYPE_VAR, Decision, KernelPolicy, LIBRARY_CORE_VAR, SOURCE_VAR, Survey};

use crate::cargo;
use crate::layers::Layer;

/// The kernel one layer runs with, and the survey it was chosen from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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

/// Where a run keeps the kernels it chose, for `--resume` (beside its state).
pub const SAVED: &str = "kernels.json";

/// The kernels of one run, as saved, with the names of the layers they were chosen for (as the
/// xtask names them: `default` where Debian's layer folders are not there, while a survey names
/// the layer OpenBLAS reports).
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    run: u64,
    layers: Vec<String>,
    chosen: Vec<Chosen>,
}

/// The kernels the run `run` chose for `layers`, if `path` holds them (a resumed run keeps
/// them), saying so in one line.
pub fn saved(path: &std::path::Path, run: u64, layers: &[Layer]) -> Option<Vec<Chosen>> {
    let saved: Saved = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let same_layers = saved.chosen.len() == layers.len()
        && saved.layers.iter().eq(layers.iter().map(|l| &l.name));
    (saved.run == run && same_layers).then(|| {
        let kernel = saved
            .chosen
            .first()
            .and_then(|c| c.decision.coretype.clone())
            .unwrap_or_else(|| "OpenBLAS's own choice".to_owned());
        eprintln!("kernel: {kernel}, as the interrupted run decided (its trials are not rerun)");
        saved.chosen
    })
}

/// Saves the kernels of run `run`, chosen for `layers`, for a `--resume` of it.
pub fn save(
    path: &std::path::Path,
    run: u64,
    layers: &[Layer],
    chosen: &[Chosen],
) -> anyhow::Result<()> {
    let text = serde_json::to_string(&Saved {
        run,
        layers: layers.iter().map(|l| l.name.clone()).collect(),
        chosen: chosen.to_vec(),
    })?;
    parcost::fsutil::write_atomically(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
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
    share_decision(&mut chosen)?;
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

/// One kernel for the whole run: the first layer's decision for every layer, so that the
/// layers, whose timings of one trial each could rank near-equal kernels differently, are
/// compared on one kernel. The kernel must have passed its trial under each layer (the named
/// one, or the library's own, which must be the same kernel there): else one line naming both
/// layers. Each layer keeps its own record of what its library chose.
fn share_decision(chosen: &mut [Chosen]) -> anyhow::Result<()> {
    let Some((first, rest)) = chosen.split_first_mut() else {
        return Ok(());
    };
    for other in rest {
        let (kernel, trial) = match first.decision.coretype.as_deref() {
            Some(k) => (k.to_owned(), other.survey.trial(k)),
            None => (
                first
                    .decision
                    .library_core
                    .clone()
                    .unwrap_or_else(|| "OpenBLAS's own".to_owned()),
                other.survey.library(),
            ),
        };
        let fails = match trial {
            Some(t) if !t.verdict.passed() => Some(t.verdict.to_string()),
            Some(t) if first.decision.coretype.is_none() => t
                .loaded
                .as_deref()
                .filter(|l| !parcost::kernel::same(l, &kernel))
                .map(|l| format!("is not its library's own choice there ({l})")),
            Some(_) => None,
            None => Some("was not tried".to_owned()),
        };
        if let Some(why) = fails {
            bail!(
                "kernel {kernel}, chosen under OpenBLAS layer {}, {why} under layer {}: pass \
                 --kernel NAME, or --layer {} alone",
                first.survey.layer,
                other.survey.layer,
                first.survey.layer
            );
        }
        other.decision = Decision {
            library_core: other.decision.library_core.clone(),
            ..first.decision.clone()
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parcost::kernel::KernelSource;

    /// A trial under `requested` (`None`: the library's own) that loaded `loaded`.
    fn trial(requested: Option<&str>, loaded: &str, passed: bool) -> parcost::kernel::Trial {
        parcost::kernel::Trial {
            requested: requested.map(String::from),
            loaded: Some(loaded.into()),
            verdict: if passed {
                parcost::kernel::Verdict::Passed
            } else {
                parcost::kernel::Verdict::Wrong {
                    detail: "off by one".into(),
                }
            },
            gflops: None,
        }
    }

    fn chosen(layer: &str, coretype: Option<&str>, verdicts: &[(&str, bool)]) -> Chosen {
        Chosen {
            decision: Decision {
                coretype: coretype.map(String::from),
                source: KernelSource::Auto,
                library_core: Some("SkylakeX".into()),
                note: None,
            },
            survey: Survey {
                layer: layer.into(),
                config: "OpenBLAS 0.3.21 DYNAMIC_ARCH".into(),
                user_coretype: None,
                cpu: parcost::cpu::CpuFeatures::from_cpuinfo("x86_64", ""),
                trials: verdicts
                    .iter()
                    .map(|&(n, p)| trial(Some(n), n, p))
                    .collect(),
                created_unix: 0,
            },
        }
    }

    #[test]
    fn every_layer_runs_the_kernel_the_first_chose() {
        // The OpenMP layer's own timing ranked Haswell first; the run keeps pthreads' SkylakeX.
        let mut layers = [
            chosen(
                "pthreads",
                Some("SkylakeX"),
                &[("SkylakeX", true), ("Haswell", true)],
            ),
            chosen(
                "openmp",
                Some("Haswell"),
                &[("SkylakeX", true), ("Haswell", true)],
            ),
        ];
        share_decision(&mut layers).expect("shared");
        assert!(
            layers
                .iter()
                .all(|c| c.decision.coretype.as_deref() == Some("SkylakeX"))
        );
        // SkylakeX wrong under OpenMP: one line naming both layers, no run.
        let mut layers = [
            chosen("pthreads", Some("SkylakeX"), &[("SkylakeX", true)]),
            chosen("openmp", None, &[("SkylakeX", false)]),
        ];
        let err = share_decision(&mut layers)
            .expect_err("not passed there")
            .to_string();
        assert!(err.contains("pthreads") && err.contains("openmp"), "{err}");
        // The library's own kernel under pthreads; under OpenMP the library's own was wrong.
        let mut layers = [
            chosen("pthreads", None, &[("SkylakeX", true)]),
            chosen("openmp", Some("Haswell"), &[("Haswell", true)]),
        ];
        layers[0]
            .survey
            .trials
            .insert(0, library_trial("SkylakeX", true));
        layers[1]
            .survey
            .trials
            .insert(0, library_trial("SkylakeX", false));
        let err = share_decision(&mut layers)
            .expect_err("wrong there")
            .to_string();
        assert!(err.contains("SkylakeX") && err.contains("openmp"), "{err}");
        layers[1].survey.trials[0] = library_trial("SkylakeX", true);
        share_decision(&mut layers).expect("the same kernel, passed");
        assert_eq!(layers[1].decision.coretype, None);
    }

    #[test]
    fn a_resumed_run_keeps_the_kernels_it_chose() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(SAVED);
        let layer = |name: &str| Layer {
            name: name.into(),
            lib_dir: None,
        };
        let run = 1_796_000_000_000;
        // Named `default` by the xtask (no Debian layer folders), pthreads by OpenBLAS.
        save(
            &path,
            run,
            &[layer("default")],
            &[chosen("pthreads", Some("Haswell"), &[("Haswell", true)])],
        )
        .expect("saved");
        let kept = saved(&path, run, &[layer("default")]).expect("the run's own kernels");
        assert_eq!(kept[0].decision.coretype.as_deref(), Some("Haswell"));
        // Another run's, or other layers': chosen afresh.
        assert!(saved(&path, run + 1, &[layer("default")]).is_none());
        assert!(saved(&path, run, &[layer("openmp")]).is_none());
        assert!(saved(&dir.path().join("none.json"), run, &[layer("default")]).is_none());
    }

    fn library_trial(loaded: &str, passed: bool) -> parcost::kernel::Trial {
        trial(None, loaded, passed)
    }

    /// What a suite's process finds in its environment: the kernel the run decided, or no
    /// `OPENBLAS_CORETYPE` at all when the library chooses (not the one the xtask was started
    /// with), and how it was chosen.
    #[test]
    fn the_kernel_reaches_the_suites_process() {
        let seen = |coretype: Option<&str>| {
            let decision = Decision {
                coretype: coretype.map(String::from),
                source: KernelSource::Auto,
                library_core: Some("SkylakeX".into()),
                note: None,
            };
            let mut cmd = Command::new("sh");
            cmd.args([
                "-c",
                &format!("echo \"${{{CORETYPE_VAR}-unset}} ${SOURCE_VAR} ${LIBRARY_CORE_VAR}\""),
            ])
            .env(CORETYPE_VAR, "Typo");
            apply_kernel(&mut cmd, &decision, decision.coretype.as_deref());
            let out = cmd.output().expect("sh runs");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        assert_eq!(seen(Some("Haswell")), "Haswell auto SkylakeX");
        assert_eq!(seen(None), "unset auto SkylakeX");
    }
}
