//! OpenBLAS kernels: which ones this CPU can run, what a trial of each found, and which one a
//! run should use.
//!
//! A `DYNAMIC_ARCH` OpenBLAS picks a kernel set ("core") for the CPU when it loads, and
//! `OPENBLAS_CORETYPE` overrides the pick for one process. An old build may not know a new CPU
//! and fall back to generic SSE3 kernels (Prescott) that run at a fraction of the machine's
//! speed; an old build may also miscompute or crash with a kernel it does choose. So every
//! kernel is tried in a child process first (see `kernel_trial`), and only one that computed
//! right is ever used. This module is the data and the decision, and needs no OpenBLAS.

use serde::{Deserialize, Serialize};

use crate::cpu::CpuFeatures;

/// The environment variable OpenBLAS reads to override its choice of kernel.
pub const CORETYPE_VAR: &str = "OPENBLAS_CORETYPE";

/// Set by `cargo xtask bench` for the suites it starts: how the kernel was chosen
/// ([`KernelSource`]'s name).
pub const SOURCE_VAR: &str = "PARCOST_KERNEL_SOURCE";

/// Set by `cargo xtask bench`: the kernel OpenBLAS chooses by itself on this machine, which a
/// process started with `OPENBLAS_CORETYPE` set cannot see.
pub const LIBRARY_CORE_VAR: &str = "PARCOST_LIBRARY_CORE";

/// An OpenBLAS x86-64 kernel set and the CPU flags it executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSpec {
    /// The name OpenBLAS reports (`openblas_get_corename`) and accepts in `OPENBLAS_CORETYPE`.
    pub name: &'static str,
    pub needs: &'static [&'static str],
}

const AVX512: &[&str] = &["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"];

/// The x86-64 kernels of a `DYNAMIC_ARCH` build, oldest first (the older AMD ones, whose DGEMM
/// is one of these, are left out).
pub const X86_64_KERNELS: [KernelSpec; 9] = [
    KernelSpec::new("Prescott", &["sse3"]),
    KernelSpec::new("Core2", &["ssse3"]),
    KernelSpec::new("Penryn", &["sse4_1"]),
    KernelSpec::new("Nehalem", &["sse4_2"]),
    KernelSpec::new("Sandybridge", &["avx"]),
    KernelSpec::new("Haswell", &["avx2", "fma"]),
    KernelSpec::new("Zen", &["avx2", "fma"]),
    KernelSpec::new("SkylakeX", AVX512),
    KernelSpec::new(
        "Cooperlake",
        &[
            "avx512f",
            "avx512cd",
            "avx512bw",
            "avx512dq",
            "avx512vl",
            "avx512_bf16",
        ],
    ),
];

impl KernelSpec {
    const fn new(name: &'static str, needs: &'static [&'static str]) -> Self {
        Self { name, needs }
    }
}

/// The kernels whose instructions this CPU has; none where features are not checked.
pub fn runnable(cpu: &CpuFeatures) -> Vec<&'static str> {
    if !cpu.checked() {
        return Vec::new();
    }
    X86_64_KERNELS
        .iter()
        .filter(|k| k.needs.iter().all(|f| cpu.has(f)))
        .map(|k| k.name)
        .collect()
}

/// A kernel name as an id token (`kernel=skylakex`): lower-case.
pub fn token(core: &str) -> String {
    core.to_ascii_lowercase()
}

/// Whether two kernel names are the same kernel (OpenBLAS ignores case).
pub fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// What a trial of one kernel found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Its products and factorisations matched an independent reference and the library's
    /// own kernel.
    Passed,
    /// It ran but computed a wrong result.
    Wrong {
        detail: String,
    },
    /// The process died (a signal, or an error exit).
    Crashed {
        detail: String,
    },
    /// OpenBLAS loaded another kernel: this build does not have the one asked for.
    NotInBuild {
        loaded: String,
    },
    TimedOut {
        seconds: u64,
    },
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Self::Passed)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Passed => f.write_str("passed"),
            Self::Wrong { detail } => write!(f, "computed wrong results ({detail})"),
            Self::Crashed { detail } => write!(f, "crashed ({detail})"),
            Self::NotInBuild { loaded } => {
                write!(f, "not in this OpenBLAS build (it loaded {loaded})")
            }
            Self::TimedOut { seconds } => write!(f, "did not finish in {seconds} s"),
        }
    }
}

/// One kernel tried in a child process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The `OPENBLAS_CORETYPE` it ran under; `None` for the library's own choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// The kernel OpenBLAS reported loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded: Option<String>,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// One dgemm of 1024 x 1024 on one BLAS thread, best of three, in GFLOP/s: a quick ranking
    /// for the choice, not a figure of the report (the `kernel` sweep of blas-tuning is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
}

impl Trial {
    /// The kernel this trial ran: the one asked for, else the one loaded.
    pub fn kernel(&self) -> Option<&str> {
        self.requested.as_deref().or(self.loaded.as_deref())
    }
}

/// Every runnable kernel tried under one OpenBLAS layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Survey {
    pub layer: String,
    /// The OpenBLAS build (`openblas_get_config`).
    pub config: String,
    /// `OPENBLAS_CORETYPE` as the user's environment had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_coretype: Option<String>,
    pub cpu: CpuFeatures,
    /// The library's own choice first, then every kernel in [`runnable`].
    pub trials: Vec<Trial>,
    pub created_unix: u64,
}

/// How `cargo xtask bench` picks the kernel every suite runs with (`--kernel`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KernelPolicy {
    /// The fastest kernel that passed its trial, unless the user's environment names one.
    #[default]
    Auto,
    /// Whatever OpenBLAS chooses by itself (`OPENBLAS_CORETYPE` removed).
    Library,
    /// This kernel (it must pass its trial).
    Named(String),
}

impl std::str::FromStr for KernelPolicy {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => Self::Auto,
            "library" => Self::Library,
            other => Self::Named(other.to_owned()),
        })
    }
}

/// Why the loaded kernel is the one running; recorded in every sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KernelSource {
    /// OpenBLAS chose it (no `OPENBLAS_CORETYPE`).
    #[default]
    Library,
    /// `OPENBLAS_CORETYPE` from the user's environment.
    Environment,
    /// `cargo xtask bench --kernel auto` chose it: the fastest that passed its trial.
    Auto,
    /// `cargo xtask bench --kernel NAME`.
    Named,
}

impl KernelSource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Library => "library",
            Self::Environment => "environment",
            Self::Auto => "auto",
            Self::Named => "named",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Library, Self::Environment, Self::Auto, Self::Named]
            .into_iter()
            .find(|k| k.name() == s)
    }

    /// Read in a bench process: what `cargo xtask bench` said, else the environment.
    pub fn from_env() -> Self {
        if let Some(source) = std::env::var(SOURCE_VAR).ok().and_then(|s| Self::parse(&s)) {
            return source;
        }
        if std::env::var_os(CORETYPE_VAR).is_some_and(|v| !v.is_empty()) {
            Self::Environment
        } else {
            Self::Library
        }
    }
}

/// The kernel a run uses, and the line that says so when it is not the library's choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The `OPENBLAS_CORETYPE` for the suites; `None` removes it (the library chooses).
    pub coretype: Option<String>,
    pub source: KernelSource,
    /// The kernel OpenBLAS chooses by itself, when its trial said.
    pub library_core: Option<String>,
    /// One line for the user when the run does not use the library's own choice, or keeps
    /// the user's over a faster one.
    pub note: Option<String>,
}

/// A kernel must beat the library's choice by more than this in the trial's quick timing to
/// replace it: the trial is three runs, and a few percent is noise.
pub const OVERRIDE_MARGIN: f64 = 1.10;

impl Survey {
    /// The trial of the library's own choice.
    pub fn library(&self) -> Option<&Trial> {
        self.trials.iter().find(|t| t.requested.is_none())
    }

    /// The trial under `OPENBLAS_CORETYPE=name`.
    pub fn trial(&self, name: &str) -> Option<&Trial> {
        self.trials
            .iter()
            .find(|t| t.requested.as_deref().is_some_and(|r| same(r, name)))
    }

    /// The passing kernel (by name, not the library's anonymous trial) with the best timing.
    pub fn fastest_passing(&self) -> Option<&Trial> {
        self.trials
            .iter()
            .filter(|t| t.requested.is_some() && t.verdict.passed())
            .filter(|t| t.gflops.is_some())
            .max_by(|a, b| {
                a.gflops
                    .partial_cmp(&b.gflops)
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    }

    /// The kernels that passed, by name.
    pub fn passing(&self) -> Vec<&str> {
        self.trials
            .iter()
            .filter(|t| t.verdict.passed())
            .filter_map(|t| t.requested.as_deref())
            .collect()
    }

    /// The kernels the `kernel` sweep of blas-tuning measures, each in a process of its own: the
    /// library's own, `used`, the trial's fastest, and the first that passed of each vector
    /// width (SSE, AVX, AVX2, AVX-512), which is what separates them; kernels of one width run
    /// within a few percent of each other, and the older SSE ones cost 20 s each to sweep.
    pub fn sweep_kernels(&self, used: Option<&str>) -> Vec<String> {
        let passing = self.passing();
        let mut out: Vec<String> = Vec::new();
        fn push(out: &mut Vec<String>, name: &str) {
            if !out.iter().any(|o| same(o, name)) {
                out.push(name.to_owned());
            }
        }
        let library = self.library().filter(|t| t.verdict.passed());
        let fastest = self.fastest_passing().and_then(|t| t.requested.as_deref());
        for name in [library.and_then(|t| t.loaded.as_deref()), used, fastest]
            .into_iter()
            .flatten()
        {
            if passing.iter().any(|p| same(p, name)) {
                push(&mut out, name);
            }
        }
        let width = |name: &str| {
            X86_64_KERNELS.iter().find(|k| same(k.name, name)).map(|k| {
                if k.needs.contains(&"avx512f") {
                    3
                } else if k.needs.contains(&"avx2") {
                    2
                } else if k.needs.contains(&"avx") {
                    1
                } else {
                    0
                }
            })
        };
        for class in 0..4 {
            if out.iter().any(|o| width(o) == Some(class)) {
                continue;
            }
            if let Some(first) = passing.iter().find(|p| width(p) == Some(class)) {
                push(&mut out, first);
            }
        }
        out
    }

    /// Applies a policy; an error is one line saying what cannot be run and what can.
    pub fn decide(&self, policy: &KernelPolicy) -> Result<Decision, String> {
        let library = self.library();
        let library_core = library.and_then(|t| t.loaded.clone());
        let lib_name = library_core.as_deref().unwrap_or("its own choice");
        let passing = || {
            let p = self.passing();
            if p.is_empty() {
                "none passed".to_owned()
            } else {
                format!("these passed: {}", p.join(", "))
            }
        };
        let decision = |coretype: Option<String>, source, note| Decision {
            coretype,
            source,
            library_core: library_core.clone(),
            note,
        };
        match policy {
            KernelPolicy::Library => match library {
                Some(t) if t.verdict.passed() => Ok(decision(None, KernelSource::Library, None)),
                Some(t) => Err(format!(
                    "OpenBLAS's own kernel {lib_name} {} in its trial; choose one with --kernel \
                     NAME ({})",
                    t.verdict,
                    passing()
                )),
                None => Err("no trial of OpenBLAS's own kernel".to_owned()),
            },
            KernelPolicy::Named(name) => match self.trial(name) {
                Some(t) if t.verdict.passed() => {
                    let name = t.requested.clone().unwrap_or_else(|| name.clone());
                    Ok(decision(Some(name), KernelSource::Named, None))
                }
                Some(t) => Err(format!(
                    "kernel {name} {} in its trial ({})",
                    t.verdict,
                    passing()
                )),
                None => Err(format!(
                    "kernel {name:?} is not one this CPU can run; tried: {}",
                    self.trials
                        .iter()
                        .filter_map(|t| t.requested.as_deref())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
            KernelPolicy::Auto => self.decide_auto(library, &library_core, decision),
        }
    }

    fn decide_auto(
        &self,
        library: Option<&Trial>,
        library_core: &Option<String>,
        decision: impl Fn(Option<String>, KernelSource, Option<String>) -> Decision,
    ) -> Result<Decision, String> {
        let lib_name = library_core.as_deref().unwrap_or("its own choice");
        let fastest = self.fastest_passing();
        if let Some(user) = &self.user_coretype {
            let trial = self.trial(user);
            let failed = match trial {
                Some(t) if t.verdict.passed() => None,
                Some(t) => Some(format!("{} in its trial", t.verdict)),
                // A survey of an older parcost tried only the kernels it knew.
                None => Some("was not tried".to_owned()),
            };
            if let Some(why) = failed {
                return Err(format!(
                    "OPENBLAS_CORETYPE={user} from your environment {why}; unset it, or pass \
                     --kernel library or --kernel NAME"
                ));
            }
            let faster = fastest.filter(|f| {
                !f.requested.as_deref().is_some_and(|r| same(r, user))
                    && ratio(f, trial) > OVERRIDE_MARGIN
            });
            let note = faster.map(|f| {
                format!(
                    "kernel: keeping OPENBLAS_CORETYPE={user} from your environment; {} passed \
                     its check and ran {:.1}x faster in the trial (measured in the blas-tuning \
                     kernel sweep; --kernel {} runs every suite with it)",
                    f.kernel().unwrap_or("?"),
                    ratio(f, trial),
                    token(f.kernel().unwrap_or("?")),
                )
            });
            return Ok(decision(
                Some(user.clone()),
                KernelSource::Environment,
                note,
            ));
        }
        let library_ok = library.is_some_and(|t| t.verdict.passed());
        match (fastest, library) {
            (Some(f), Some(l)) if library_ok => {
                let is_library = library_core
                    .as_deref()
                    .zip(f.requested.as_deref())
                    .is_some_and(|(a, b)| same(a, b));
                if is_library || ratio(f, Some(l)) <= OVERRIDE_MARGIN {
                    return Ok(decision(None, KernelSource::Library, None));
                }
                let name = f.requested.clone().unwrap_or_default();
                let note = format!(
                    "kernel: OpenBLAS chose {lib_name}; running {name} instead: {:.1}x faster \
                     in a 1024 dgemm on one thread ({:.1} against {:.1} GFLOP/s), and its \
                     results match an independent reference and {lib_name}'s",
                    ratio(f, Some(l)),
                    f.gflops.unwrap_or(0.0),
                    l.gflops.unwrap_or(0.0),
                );
                Ok(decision(Some(name), KernelSource::Auto, Some(note)))
            }
            (Some(f), _) => {
                let name = f.requested.clone().unwrap_or_default();
                let why =
                    library.map_or_else(|| "was not tried".to_owned(), |l| l.verdict.to_string());
                let note = format!(
                    "kernel: OpenBLAS's own choice {lib_name} {why}; running {name} instead, \
                     the fastest kernel that passed its check"
                );
                Ok(decision(Some(name), KernelSource::Auto, Some(note)))
            }
            (None, Some(_)) if library_ok => Ok(decision(None, KernelSource::Library, None)),
            _ => Err(format!(
                "no OpenBLAS kernel passed its trial on this CPU: {}",
                self.trials
                    .iter()
                    .map(|t| format!("{} {}", t.kernel().unwrap_or("?"), t.verdict))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
}

/// How much faster `a` ran than `b` in the trial's timing (1 when either has none).
fn ratio(a: &Trial, b: Option<&Trial>) -> f64 {
    match (a.gflops, b.and_then(|b| b.gflops)) {
        (Some(x), Some(y)) if y > 0.0 => x / y,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAPPHIRE: &str = "vendor_id : GenuineIntel\ncpu family : 6\nmodel : 207\nflags : \
        sse2 pni ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl \
        avx512_bf16 amx_tile\n";

    fn trial(requested: Option<&str>, loaded: &str, verdict: Verdict, gflops: f64) -> Trial {
        Trial {
            requested: requested.map(str::to_owned),
            loaded: Some(loaded.to_owned()),
            verdict,
            gflops: Some(gflops),
        }
    }

    /// The machine of the issue: OpenBLAS 0.3.21 falls back to Prescott on an AVX-512 Xeon.
    fn fallback(user: Option<&str>) -> Survey {
        let cpu = CpuFeatures::from_cpuinfo("x86_64", SAPPHIRE);
        let mut trials = vec![trial(None, "Prescott", Verdict::Passed, 11.4)];
        for name in runnable(&cpu) {
            let (verdict, gflops) = match name {
                "Prescott" => (Verdict::Passed, 11.5),
                "Haswell" => (Verdict::Passed, 39.3),
                "SkylakeX" => (Verdict::Passed, 76.7),
                "Cooperlake" => (
                    Verdict::Crashed {
                        detail: "signal 4 (SIGILL)".into(),
                    },
                    0.0,
                ),
                _ => (Verdict::Passed, 20.0),
            };
            trials.push(trial(Some(name), name, verdict, gflops));
        }
        Survey {
            layer: "pthreads".into(),
            config: "OpenBLAS 0.3.21 DYNAMIC_ARCH".into(),
            user_coretype: user.map(str::to_owned),
            cpu,
            trials,
            created_unix: 0,
        }
    }

    #[test]
    fn features_decide_the_runnable_kernels() {
        let avx512 = CpuFeatures::from_cpuinfo("x86_64", SAPPHIRE);
        assert_eq!(runnable(&avx512).len(), 9);
        let haswell = CpuFeatures::from_cpuinfo(
            "x86_64",
            "flags : sse2 pni ssse3 sse4_1 sse4_2 avx avx2 fma\n",
        );
        assert_eq!(
            runnable(&haswell),
            [
                "Prescott",
                "Core2",
                "Penryn",
                "Nehalem",
                "Sandybridge",
                "Haswell",
                "Zen"
            ]
        );
        // AVX-512F alone (Knights Landing) is not enough for SkylakeX's kernels.
        let partial = CpuFeatures::from_cpuinfo("x86_64", "flags : pni avx avx2 fma avx512f\n");
        assert!(!runnable(&partial).contains(&"SkylakeX"));
        assert!(runnable(&CpuFeatures::from_cpuinfo("aarch64", "")).is_empty());
    }

    #[test]
    fn auto_overrides_a_fallback_with_the_fastest_correct_kernel() {
        let d = fallback(None)
            .decide(&KernelPolicy::Auto)
            .expect("a kernel");
        assert_eq!(
            d.coretype.as_deref(),
            Some("SkylakeX"),
            "Cooperlake crashed"
        );
        assert_eq!(d.source, KernelSource::Auto);
        assert_eq!(d.library_core.as_deref(), Some("Prescott"));
        let note = d.note.expect("says so");
        assert!(
            note.contains("OpenBLAS chose Prescott") && note.contains("6.7x"),
            "{note}"
        );
    }

    #[test]
    fn auto_keeps_the_library_when_it_is_as_fast() {
        let mut s = fallback(None);
        s.trials[0] = trial(None, "SkylakeX", Verdict::Passed, 74.0);
        let d = s.decide(&KernelPolicy::Auto).expect("a kernel");
        assert_eq!(
            (d.coretype, d.source, d.note),
            (None, KernelSource::Library, None)
        );
    }

    #[test]
    fn auto_keeps_the_users_kernel_and_says_what_it_costs() {
        let d = fallback(Some("Haswell"))
            .decide(&KernelPolicy::Auto)
            .expect("a kernel");
        assert_eq!(d.coretype.as_deref(), Some("Haswell"));
        assert_eq!(d.source, KernelSource::Environment);
        let note = d.note.expect("a faster one passed");
        assert!(note.contains("SkylakeX") && note.contains("2.0x"), "{note}");
        let err = fallback(Some("Cooperlake"))
            .decide(&KernelPolicy::Auto)
            .expect_err("the user's kernel crashed");
        assert!(err.contains("SIGILL") && err.contains("--kernel"), "{err}");
    }

    #[test]
    fn named_and_library_policies_need_a_passing_trial() {
        let s = fallback(None);
        let d = s
            .decide(&"skylakex".parse().expect("policy"))
            .expect("passed");
        assert_eq!(
            (d.coretype.as_deref(), d.source),
            (Some("SkylakeX"), KernelSource::Named)
        );
        let err = s
            .decide(&"cooperlake".parse().expect("policy"))
            .expect_err("crashed");
        assert!(err.contains("crashed") && err.contains("SkylakeX"), "{err}");
        assert!(s.decide(&"power10".parse().expect("policy")).is_err());
        let d = s.decide(&KernelPolicy::Library).expect("passed");
        assert_eq!((d.coretype, d.source), (None, KernelSource::Library));
        let mut broken = fallback(None);
        broken.trials[0].verdict = Verdict::Wrong {
            detail: "value 3".into(),
        };
        assert!(broken.decide(&KernelPolicy::Library).is_err());
        let d = broken.decide(&KernelPolicy::Auto).expect("another passed");
        assert!(d.note.expect("why").contains("wrong results"));
    }

    #[test]
    fn the_sweep_keeps_the_fastest_and_one_kernel_per_vector_width() {
        let mut s = fallback(None);
        // Zen the fastest: an AVX2 kernel that is in the sweep only for being fastest.
        for t in &mut s.trials {
            if t.requested.as_deref() == Some("Zen") {
                t.gflops = Some(90.0);
            }
        }
        let sweep = s.sweep_kernels(Some("Haswell"));
        assert_eq!(
            sweep,
            ["Prescott", "Haswell", "Zen", "Sandybridge", "SkylakeX"],
            "library's, used, fastest, then one per vector width (Cooperlake crashed)"
        );
    }

    #[test]
    fn a_kernel_the_build_lacks_is_not_passed() {
        let t = Verdict::NotInBuild {
            loaded: "Cooperlake".into(),
        };
        assert!(!t.passed());
        assert!(t.to_string().contains("not in this OpenBLAS build"));
    }
}
