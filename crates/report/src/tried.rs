//! Your own program (`cargo xtask try`): its runs under each configuration, judged by the
//! report's one rule against the program as it is, beside the suites' prediction for the
//! nearest canonical cell. The xtask runs the program; this computes the facts once
//! ([`Tried`], written as `try.json` beside `summary.json`), which the terminal and the page
//! only phrase.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use parcost::id::key;
use parcost::observe::ObservedRun;

use crate::model::{Comparison, Ratio, Rule, Separation, Stands};
use crate::results::Value;
use crate::summary::Summary;

/// The file beside `summary.json`.
pub const FILE: &str = "try.json";

/// The version of [`Tried`]'s JSON.
pub const SCHEMA: u32 = 1;

/// The prediction holds when the program's speedup is within this share of it.
pub const PREDICTION_HOLDS_WITHIN: f64 = 0.25;

/// Bootstrap resamples of each interval.
const RESAMPLES: usize = 2000;

/// The name of the program as it is, the configuration every other one is judged against.
pub const AS_IS: &str = "as is";

/// A change a configuration makes to the environment: `value` set, or unset (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvChange {
    pub var: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl EnvChange {
    /// `NAME=VALUE`, or `-u NAME` (as `env` spells an unset).
    pub fn words(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={v}", self.var),
            None => format!("-u {}", self.var),
        }
    }
}

/// A configuration's runs, as the xtask measured them.
#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    pub env: Vec<EnvChange>,
    /// It carries the verdict's settings (those an environment can).
    pub verdict: bool,
    /// Its (tasks, BLAS threads) as the suites name a cell.
    pub cell: (u64, u64),
    pub runs: Vec<ObservedRun>,
    /// Its output differed from the program's as it is (`--check-output`).
    pub output_changed: bool,
}

/// A configuration's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigOut {
    pub name: String,
    pub env: Vec<EnvChange>,
    pub verdict: bool,
    pub tasks: u64,
    pub blas_threads: u64,
    pub runs: usize,
    /// Wall time: the median run and its 95% bootstrap interval, ns.
    pub median_ns: f64,
    pub lower_ns: f64,
    pub upper_ns: f64,
    /// The program as it is over this one (above 1: this one was faster): the geometric mean
    /// of the runs paired by round and its t-interval ([`Ratio::of_paired_runs`]); absent for
    /// the program as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_as_is: Option<Ratio>,
    /// How it stands against the program as it is, by the report's rule for advice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separation: Option<Separation>,
    pub output_changed: bool,
    /// Medians over its runs: the most threads alive and busy at once (every process of the
    /// program), CPU time over wall time, context switches.
    pub peak_threads: u64,
    pub peak_busy: u64,
    pub mean_busy: f64,
    pub cpu_per_wall: f64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

/// The answer: the best configuration, or why the program as it is stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum Answer {
    /// `name` was faster than the program as it is beyond the interval and the margin, and the
    /// fastest of those that were (its output unchanged).
    Faster {
        name: String,
        ratio: Ratio,
        /// The verdict's settings were it, or did not separate from it.
        verdict_was_it: bool,
    },
    /// Nothing tried beat the program as it is; `why` for the fastest other configuration.
    AsIsStands {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fastest: Option<String>,
        why: Stands,
    },
}

/// The suites' prediction for the nearest canonical cell, beside what the program got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The canonical cell: "16 SVDs of 256^2 (oversubscription, layer pthreads)".
    pub cell: String,
    /// The program as it is, and with the verdict's settings, as cells: "2 tasks x 2 BLAS threads".
    pub from: String,
    pub to: String,
    /// The suites' time of `from` over `to`.
    pub predicted: Ratio,
    /// What the threads of the suite's `from` cell did: busy at once, CPU time over wall time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_busy_threads: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_cpu_per_wall: Option<f64>,
    /// The program's time as it is over its time with the verdict's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub got: Option<Ratio>,
    /// `got` within [`PREDICTION_HOLDS_WITHIN`] of `predicted` (by the estimates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<bool>,
}

/// Everything `cargo xtask try` found, as `try.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    pub schema: u32,
    pub command: String,
    /// When it ran (ISO 8601, UTC) and on what.
    pub date: String,
    pub cpu: String,
    pub logical_cores: usize,
    /// The summary the verdict's settings came from.
    pub summary: String,
    pub took_s: f64,
    pub configurations: Vec<ConfigOut>,
    pub answer: Answer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Prediction>,
    /// One line each: why there is no prediction, settings an environment cannot carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A configuration to run: its name, the environment changes it makes to the user's, whether
/// it carries the verdict's settings, and its cell (tasks, BLAS threads).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub name: String,
    pub env: Vec<EnvChange>,
    pub verdict: bool,
    pub cell: (u64, u64),
}

/// The cell an environment gives a program that runs rayon's global pool and OpenBLAS at
/// their defaults: (`RAYON_NUM_THREADS`, `OPENBLAS_NUM_THREADS` or else `OMP_NUM_THREADS`),
/// each `p` where unset (or not a positive number: both libraries then use every CPU).
pub fn cell_of(env: &BTreeMap<String, String>, p: u64) -> (u64, u64) {
    let count = |var: &str| {
        env.get(var)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&n| n > 0)
    };
    let tasks = count("RAYON_NUM_THREADS").unwrap_or(p);
    let blas = count("OPENBLAS_NUM_THREADS")
        .or_else(|| count("OMP_NUM_THREADS"))
        .unwrap_or(p);
    (tasks, blas)
}

/// `env` with `changes` made.
pub fn apply(env: &BTreeMap<String, String>, changes: &[EnvChange]) -> BTreeMap<String, String> {
    let mut out = env.clone();
    for c in changes {
        match &c.value {
            Some(v) => out.insert(c.var.clone(), v.clone()),
            None => out.remove(&c.var),
        };
    }
    out
}

/// The configurations to run on `p` CPUs, for a user whose environment is `env`: the program
/// as it is; with the verdict's settings of `summary` that an environment carries (only those
/// that ran as printed here); and a small grid of task threads {1, P} x BLAS threads
/// {1, P/2, P} (`RAYON_NUM_THREADS`, `OPENBLAS_NUM_THREADS`), one merged into the verdict's
/// when they set the same; and the verdict's settings with the kernel the suites ran when it
/// is not OpenBLAS's own choice. Each an environment, never a rebuild. Beside them, one note a
/// setting an environment cannot carry.
pub fn configurations(
    summary: &Summary,
    p: u64,
    env: &BTreeMap<String, String>,
) -> (Vec<Planned>, Vec<String>) {
    use crate::settings::Setting;
    let p = p.max(1);
    let mut notes = Vec::new();
    let mut verdict: Vec<EnvChange> = Vec::new();
    let mut set = |var: &str, value: Option<String>, line: &str, notes: &mut Vec<String>| {
        if verdict.iter().any(|c| c.var == var) {
            notes.push(format!(
                "not applied: `{line}` (the verdict sets {var} for another workload too; try \
                 applies the first)"
            ));
        } else {
            verdict.push(EnvChange {
                var: var.to_owned(),
                value,
            });
        }
    };
    for a in summary.verdict.settings.iter().filter(|a| a.shown()) {
        match &a.setting {
            Setting::Env { var, value, .. } => {
                set(var.name(), Some(value.clone()), &a.line, &mut notes)
            }
            Setting::Unset { var, .. } => set(var.name(), None, &a.line, &mut notes),
            Setting::RayonPool { threads, .. } => set(
                "RAYON_NUM_THREADS",
                Some(threads.to_string()),
                &a.line,
                &mut notes,
            ),
            Setting::OpenBlasLayer { layer, .. } => {
                let dir = crate::settings::layer_dir(layer).display().to_string();
                let value = match env.get("LD_LIBRARY_PATH") {
                    Some(old) if !old.is_empty() => format!("{dir}:{old}"),
                    _ => dir,
                };
                set("LD_LIBRARY_PATH", Some(value), &a.line, &mut notes);
            }
            Setting::FaerPar { .. } => notes.push(format!(
                "not applied: `{}` is a change to your code, not to its environment",
                a.line
            )),
            Setting::Mpirun { .. } => notes.push(format!(
                "not applied: `{}` runs an MPI program under mpirun",
                a.line
            )),
        }
    }
    let cell = |changes: &[EnvChange]| cell_of(&apply(env, changes), p);
    let mut out = vec![Planned {
        name: AS_IS.to_owned(),
        env: Vec::new(),
        verdict: false,
        cell: cell(&[]),
    }];
    if verdict.is_empty() {
        notes.push(
            "the summary's verdict has no setting an environment carries: only the grid is tried"
                .to_owned(),
        );
    }
    let same = |a: &[EnvChange], b: &[EnvChange]| apply(env, a) == apply(env, b);
    let mut blas = vec![1, p / 2, p];
    blas.retain(|&b| b > 0);
    blas.dedup();
    let mut grid = Vec::new();
    for t in [1, p] {
        for &b in &blas {
            let changes = vec![
                EnvChange {
                    var: "RAYON_NUM_THREADS".into(),
                    value: Some(t.to_string()),
                },
                EnvChange {
                    var: "OPENBLAS_NUM_THREADS".into(),
                    value: Some(b.to_string()),
                },
            ];
            if !grid
                .iter()
                .any(|(_, g): &(String, Vec<EnvChange>)| same(g, &changes))
            {
                grid.push((format!("{t} x {b}"), changes));
            }
        }
    }
    if !verdict.is_empty() {
        // The grid point that sets what the verdict sets is the verdict's configuration.
        let merged = grid.iter().position(|(_, g)| same(g, &verdict));
        let name = match merged {
            Some(i) => format!("verdict ({})", grid.remove(i).0),
            None => "verdict".to_owned(),
        };
        out.push(Planned {
            name,
            env: verdict.clone(),
            verdict: true,
            cell: cell(&verdict),
        });
    }
    for (name, changes) in grid {
        out.push(Planned {
            name,
            cell: cell(&changes),
            env: changes,
            verdict: false,
        });
    }
    if let Some(o) = &summary.machine.openblas
        && !parcost::kernel::same(&o.kernel, &o.core)
        && !verdict.iter().any(|c| c.var == "OPENBLAS_CORETYPE")
        && !o.kernel.is_empty()
    {
        let mut changes = verdict.clone();
        changes.push(EnvChange {
            var: "OPENBLAS_CORETYPE".into(),
            value: Some(o.kernel.clone()),
        });
        out.push(Planned {
            name: format!("verdict, kernel {}", o.kernel),
            cell: cell(&changes),
            env: changes,
            verdict: false,
        });
    }
    (out, notes)
}

/// What the analysis needs besides the runs.
#[derive(Debug, Clone)]
pub struct Context {
    pub command: String,
    pub date: String,
    pub cpu: String,
    pub logical_cores: usize,
    pub summary: String,
    pub took_s: f64,
    /// The suites' prediction (without `got`), or why there is none.
    pub prediction: Result<Prediction, String>,
    pub notes: Vec<String>,
}

/// The facts of a try: each configuration's figures, the answer, the prediction beside what
/// the program got. `measured[0]` is the program as it is.
pub fn analyze(measured: &[Measured], context: Context) -> Tried {
    let mut rng = Rng::new(0x5eed_cafe);
    let walls = |m: &Measured| -> Vec<f64> { m.runs.iter().map(|r| r.wall_ns as f64).collect() };
    let as_is = measured.first();
    let base = as_is.map(walls).unwrap_or_default();
    let configurations: Vec<ConfigOut> = measured
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let w = walls(m);
            let (lower_ns, upper_ns) = bootstrap_median(&w, &mut rng);
            // Run k of every configuration ran in round k: the comparison pairs them.
            let vs_as_is = (i > 0).then(|| Ratio::of_paired_runs(&base, &w));
            let med =
                |f: &dyn Fn(&ObservedRun) -> f64| median(&m.runs.iter().map(f).collect::<Vec<_>>());
            ConfigOut {
                name: m.name.clone(),
                env: m.env.clone(),
                verdict: m.verdict,
                tasks: m.cell.0,
                blas_threads: m.cell.1,
                runs: m.runs.len(),
                median_ns: median(&w),
                lower_ns,
                upper_ns,
                vs_as_is,
                separation: vs_as_is.map(|r| r.separation(Rule::ADVICE)),
                output_changed: m.output_changed,
                peak_threads: med(&|r| r.threads.peak_threads as f64) as u64,
                peak_busy: med(&|r| r.threads.peak_busy as f64) as u64,
                mean_busy: med(&|r| r.threads.mean_busy),
                cpu_per_wall: med(&|r| r.cpu_ns as f64 / r.wall_ns.max(1) as f64),
                voluntary_switches: med(&|r| r.voluntary_switches as f64) as u64,
                involuntary_switches: med(&|r| r.involuntary_switches as f64) as u64,
            }
        })
        .collect();
    let answer = answer(&configurations, measured);
    let got = configurations
        .iter()
        .skip(1)
        .find(|c| c.verdict)
        .and_then(|c| c.vs_as_is);
    let mut notes = context.notes;
    let prediction = match context.prediction {
        Ok(p) => Some(Prediction {
            holds: got.map(|g| {
                (g.estimate / p.predicted.estimate - 1.0).abs() <= PREDICTION_HOLDS_WITHIN
            }),
            got,
            ..p
        }),
        Err(why) => {
            notes.push(format!("no prediction: {why}"));
            None
        }
    };
    Tried {
        schema: SCHEMA,
        command: context.command,
        date: context.date,
        cpu: context.cpu,
        logical_cores: context.logical_cores,
        summary: context.summary,
        took_s: context.took_s,
        configurations,
        answer,
        prediction,
        notes,
    }
}

/// The best configuration whose output is unchanged and which beat the program as it is by
/// the report's rule for advice; else why the program as it is stands.
fn answer(configs: &[ConfigOut], measured: &[Measured]) -> Answer {
    let judged: Vec<(&ConfigOut, Result<Ratio, Stands>)> = configs
        .iter()
        .skip(1)
        .filter(|c| !c.output_changed)
        .filter_map(|c| {
            let ratio = c.vs_as_is?;
            let verdict = Comparison {
                subject: c.name.clone(),
                against: AS_IS.to_owned(),
                ratio,
            }
            .faster(Rule::ADVICE)
            .map(|s| s.ratio());
            Some((c, verdict))
        })
        .collect();
    let best = judged
        .iter()
        .filter_map(|(c, r)| Some((*c, *r.as_ref().ok()?)))
        .min_by(|a, b| a.0.median_ns.total_cmp(&b.0.median_ns));
    match best {
        Some((c, ratio)) => {
            let walls = |name: &str| -> Vec<f64> {
                measured
                    .iter()
                    .find(|m| m.name == name)
                    .map(|m| m.runs.iter().map(|r| r.wall_ns as f64).collect())
                    .unwrap_or_default()
            };
            // The verdict's settings were it, or beat the program as it is too and were
            // equivalent to it (within the margin, beyond doubt).
            let verdict_was_it = c.verdict
                || configs.iter().skip(1).find(|v| v.verdict).is_some_and(|v| {
                    !v.output_changed
                        && judged.iter().any(|(j, r)| j.name == v.name && r.is_ok())
                        && Ratio::of_paired_runs(&walls(&v.name), &walls(&c.name))
                            .separation(Rule::ADVICE)
                            == Separation::Equivalent
                });
            Answer::Faster {
                name: c.name.clone(),
                ratio,
                verdict_was_it,
            }
        }
        None => {
            let fastest = judged
                .iter()
                .min_by(|a, b| a.0.median_ns.total_cmp(&b.0.median_ns));
            Answer::AsIsStands {
                fastest: fastest.map(|(c, _)| c.name.clone()),
                why: fastest
                    .and_then(|(_, r)| r.as_ref().err().copied())
                    .unwrap_or(Stands::SingleConfiguration),
            }
        }
    }
}

/// The suites' prediction for the change from the cell `from` to the cell `to` (tasks, BLAS
/// threads) of the instance `like` (`SUITE/WORKLOAD/KEY=VALUE,...`, the layer the default
/// build's unless named), from the results of `summary`.
pub fn predict(
    summary: &Summary,
    like: &str,
    from: (u64, u64),
    to: (u64, u64),
) -> Result<Prediction, String> {
    let mut parts = like.splitn(3, '/');
    let (Some(suite), Some(workload)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "--like {like:?} is not SUITE/WORKLOAD/KEY=VALUE,..."
        ));
    };
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for pair in parts
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("--like {like:?}: {pair:?} is not KEY=VALUE"))?;
        want.insert(k.to_owned(), v.to_owned());
    }
    let of_instance: Vec<&crate::summary::Row> = summary
        .results
        .iter()
        .filter(|r| r.suite == suite && r.workload == workload)
        .filter(|r| !r.params.contains_key(key::KERNEL))
        .filter(|r| {
            want.iter()
                .all(|(k, v)| r.params.get(k).is_some_and(|x| x.to_string() == *v))
        })
        .collect();
    if of_instance.is_empty() {
        return Err(format!(
            "the summary has no results of {like} (`cargo xtask bench` measures them)"
        ));
    }
    let layer = match want.get(key::LAYER) {
        Some(l) => l.clone(),
        None => {
            let layers: Vec<&str> = of_instance
                .iter()
                .filter_map(|r| r.name(key::LAYER))
                .collect();
            if layers.contains(&"pthreads") {
                "pthreads".to_owned()
            } else {
                layers.first().map_or_else(String::new, |l| (*l).to_owned())
            }
        }
    };
    let cell = |(t, b): (u64, u64)| {
        of_instance.iter().copied().find(|r| {
            r.name(key::LAYER).unwrap_or("") == layer
                && r.int(key::TASKS) == Some(t)
                && r.int(key::BLAS_THREADS) == Some(b)
        })
    };
    let words = |(t, b): (u64, u64)| crate::facts::tasks_x_threads(t, b);
    let (a, b) = match (cell(from), cell(to)) {
        (Some(a), Some(b)) => (a, b),
        (None, _) => {
            return Err(format!(
                "{like} has no cell of {} under {layer}",
                words(from)
            ));
        }
        (_, None) => return Err(format!("{like} has no cell of {} under {layer}", words(to))),
    };
    let (Some(ta), Some(tb)) = (a.time_or_once(), b.time_or_once()) else {
        return Err(format!(
            "a cell of {like} was stopped as hopeless: only a bound is known"
        ));
    };
    let params: BTreeMap<String, Value> = a
        .params
        .iter()
        .filter(|(k, _)| ![key::TASKS, key::BLAS_THREADS].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Prediction {
        cell: format!("{} ({suite})", crate::findings::human(workload, &params)),
        from: words(from),
        to: words(to),
        predicted: Ratio::of(&ta, &tb),
        from_busy_threads: a.busy_threads,
        from_cpu_per_wall: a.cpu_per_wall,
        got: None,
        holds: None,
    })
}

/// Reads a `try.json`; `None` when there is none. A file that cannot be read is an error
/// naming it.
pub fn read(path: &Path) -> Result<Option<Tried>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let tried: Tried = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a try.json of this parcost ({e}); rerun `cargo xtask try`",
            path.display()
        )
    })?;
    if tried.schema != SCHEMA {
        return Err(format!(
            "{} has schema {}, this report reads {SCHEMA}; rerun `cargo xtask try`",
            path.display(),
            tried.schema
        ));
    }
    Ok(Some(tried))
}

/// The answer in one line: what to set, its speedup, and whether the verdict's settings were
/// it.
pub fn answer_words(t: &Tried) -> String {
    match &t.answer {
        Answer::Faster {
            name,
            ratio,
            verdict_was_it,
        } => {
            let env = t
                .configurations
                .iter()
                .find(|c| &c.name == name)
                .map(|c| {
                    c.env
                        .iter()
                        .map(EnvChange::words)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let verdict = if *verdict_was_it {
                "the verdict's settings were it"
            } else {
                "the verdict's settings were not it"
            };
            format!(
                "{name} ({env}) ran your program {} faster than as it is; {verdict}.",
                runs_words(ratio)
            )
        }
        Answer::AsIsStands { fastest, why } => match fastest {
            Some(f) => format!(
                "keep your program as it is: the fastest configuration tried, {f}, {}.",
                why.words()
            ),
            None if t.configurations.iter().any(|c| c.output_changed) => {
                "keep your program as it is: every other configuration changed its output \
                 (--check-output)."
                    .to_owned()
            }
            None => "keep your program as it is: nothing else was tried.".to_owned(),
        },
    }
}

/// The prediction beside what the program got, in one line.
pub fn prediction_words(t: &Tried) -> Option<String> {
    let p = t.prediction.as_ref()?;
    let got = match (p.got, p.holds) {
        (Some(g), Some(true)) => format!(
            "your program got {}: within {:.0}%",
            runs_words(&g),
            100.0 * PREDICTION_HOLDS_WITHIN
        ),
        (Some(g), _) => {
            // Why, as far as the threads tell: the program's as it is beside the suite's cell.
            let program = t.configurations.first().map(|c| {
                format!(
                    "{} busy threads at once, {:.2} CPU/wall, {} involuntary switches a run",
                    c.peak_busy, c.cpu_per_wall, c.involuntary_switches
                )
            });
            let cell = match (p.from_busy_threads, p.from_cpu_per_wall) {
                (Some(b), Some(c)) => format!("{b} busy threads, {c:.2} CPU/wall"),
                _ => "not recorded".to_owned(),
            };
            format!(
                "your program got {}: not within {:.0}%, so the suite's cell is not your \
                 program's whole cost (as it is, your program: {}; the suite's {} cell: {cell})",
                runs_words(&g),
                100.0 * PREDICTION_HOLDS_WITHIN,
                program.unwrap_or_default(),
                p.from
            )
        }
        (None, _) => "the verdict's settings were not tried".to_owned(),
    };
    Some(format!(
        "parcost predicted {} for {} from {} to {}; {got}.",
        p.predicted.words(),
        p.cell,
        p.from,
        p.to
    ))
}

/// `1.83x (1.71 to 1.95, 12 runs each)`, or `(12 runs each, unstable)`.
pub fn runs_words(r: &Ratio) -> String {
    match r.interval() {
        Some((lo, hi)) => format!(
            "{:.2}x ({lo:.2} to {hi:.2}, {} runs each)",
            r.estimate, r.rounds
        ),
        None => format!("{:.2}x", r.estimate),
    }
}

/// The median of `xs` (the mean of the middle two for an even count); NaN when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The 95% percentile-bootstrap interval of the median of `xs`.
fn bootstrap_median(xs: &[f64], rng: &mut Rng) -> (f64, f64) {
    let mut meds: Vec<f64> = (0..RESAMPLES).map(|_| median(&rng.resample(xs))).collect();
    percentiles(&mut meds)
}

fn percentiles(v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    (at(0.025), at(0.975))
}

/// A small deterministic generator (xorshift64*): the same runs give the same intervals.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn resample(&mut self, xs: &[f64]) -> Vec<f64> {
        (0..xs.len())
            .map(|_| xs[(self.next() % xs.len() as u64) as usize])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parcost::observe::ThreadsSeen;

    fn runs(ms: &[f64], busy: u64) -> Vec<ObservedRun> {
        ms.iter()
            .map(|&m| ObservedRun {
                wall_ns: (m * 1e6) as u64,
                cpu_ns: (m * 1e6) as u64 * busy,
                voluntary_switches: 10,
                involuntary_switches: 100 * busy,
                threads: ThreadsSeen {
                    peak_threads: busy + 2,
                    peak_busy: busy,
                    mean_busy: busy as f64,
                    samples: 5,
                },
            })
            .collect()
    }

    fn config(name: &str, verdict: bool, ms: &[f64]) -> Measured {
        Measured {
            name: name.to_owned(),
            env: vec![EnvChange {
                var: "OPENBLAS_NUM_THREADS".into(),
                value: Some("1".into()),
            }],
            verdict,
            cell: (2, 1),
            runs: runs(ms, 2),
            output_changed: false,
        }
    }

    fn context() -> Context {
        Context {
            command: "prog".into(),
            date: "2026-12-02T00:00:00Z".into(),
            cpu: "cpu".into(),
            logical_cores: 2,
            summary: "reports/summary.json".into(),
            took_s: 1.0,
            prediction: Err("no --like".into()),
            notes: Vec::new(),
        }
    }

    const AS_IS_MS: [f64; 6] = [100.0, 104.0, 98.0, 101.0, 103.0, 99.0];

    #[test]
    fn a_configuration_faster_beyond_the_margin_is_the_answer() {
        let measured = [
            config(AS_IS, false, &AS_IS_MS),
            config("verdict", true, &[55.0, 56.0, 54.0, 57.0, 55.5, 54.5]),
            config("B=2", false, &[99.0, 101.0, 100.0, 98.0, 102.0, 103.0]),
        ];
        let t = analyze(&measured, context());
        let Answer::Faster {
            name,
            ratio,
            verdict_was_it,
        } = &t.answer
        else {
            panic!("{:?}", t.answer);
        };
        assert_eq!(name, "verdict");
        assert!(*verdict_was_it);
        assert!(ratio.lower.is_some_and(|l| l > 1.7), "{ratio:?}");
        assert_eq!(t.configurations[2].separation, Some(Separation::Equivalent));
        assert!(answer_words(&t).contains("the verdict's settings were it"));
    }

    #[test]
    fn a_widely_spread_program_as_it_is_takes_no_advice_away() {
        // Oversubscribed as it is, its runs spread 1.4-2.1 s (seen here); the verdict's runs
        // are steady and 4x faster in every round: faster, its interval wide.
        let measured = [
            config(AS_IS, false, &[100.0, 140.0, 90.0, 160.0, 110.0, 130.0]),
            config("verdict", true, &[30.0, 31.0, 30.5, 29.5, 30.0, 31.0]),
        ];
        let t = analyze(&measured, context());
        assert!(
            matches!(&t.answer, Answer::Faster { name, .. } if name == "verdict"),
            "{:?}",
            t.answer
        );
    }

    #[test]
    fn the_verdict_was_it_when_equivalent_to_the_best_and_not_when_slower() {
        let verdict = [55.0, 56.0, 54.0, 57.0, 55.5, 54.5];
        let best = [54.6, 55.4, 53.8, 56.5, 55.2, 54.3];
        let measured = [
            config(AS_IS, false, &AS_IS_MS),
            config("verdict", true, &verdict),
            config("1 x 1", false, &best),
        ];
        let t = analyze(&measured, context());
        assert!(
            matches!(&t.answer, Answer::Faster { name, verdict_was_it: true, .. } if name == "1 x 1"),
            "{:?}",
            t.answer
        );
        // 20% slower than the best: not it, though faster than as is.
        let measured = [
            config(AS_IS, false, &AS_IS_MS),
            config("verdict", true, &verdict.map(|m| m * 1.2)),
            config("1 x 1", false, &best),
        ];
        let t = analyze(&measured, context());
        assert!(
            matches!(
                &t.answer,
                Answer::Faster {
                    verdict_was_it: false,
                    ..
                }
            ),
            "{:?}",
            t.answer
        );
    }

    #[test]
    fn within_the_margin_or_with_changed_output_the_program_stands_as_it_is() {
        // 3% faster in every run: within the margin (or straddling it), no advice.
        let near = [
            config(AS_IS, false, &AS_IS_MS),
            config("verdict", true, &AS_IS_MS.map(|m| m * 0.97)),
        ];
        let t = analyze(&near, context());
        assert!(
            matches!(
                t.answer,
                Answer::AsIsStands {
                    why: Stands::Equivalent(_) | Stands::Overlap(_),
                    ..
                }
            ),
            "{:?}",
            t.answer
        );
        // 2x faster but its output changed: named, never the answer.
        let mut changed = config("verdict", true, &AS_IS_MS.map(|m| m * 0.5));
        changed.output_changed = true;
        let t = analyze(&[config(AS_IS, false, &AS_IS_MS), changed], context());
        assert!(
            matches!(t.answer, Answer::AsIsStands { .. }),
            "{:?}",
            t.answer
        );
        assert!(t.configurations[1].output_changed);
        assert_eq!(t.notes, ["no prediction: no --like"]);
    }

    /// The complete fixture's summary, every setting marked as having run as printed.
    fn fixture_summary() -> Summary {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/complete");
        let (mut summary, _) = crate::summarize(&crate::results::load(&dir, "new"));
        for a in &mut summary.verdict.settings {
            a.tried = Some(crate::settings::Outcome::Ran {
                seen: "fixture".into(),
            });
        }
        summary
    }

    #[test]
    fn the_configurations_are_as_is_the_verdicts_and_a_grid_around_them() {
        let summary = fixture_summary();
        let env = BTreeMap::from([("OPENBLAS_NUM_THREADS".to_owned(), "3".to_owned())]);
        let (plans, _) = configurations(&summary, 2, &env);
        assert_eq!(plans[0].name, AS_IS);
        assert!(plans[0].env.is_empty());
        // As is: the user's OPENBLAS_NUM_THREADS=3, rayon's global pool at P.
        assert_eq!(plans[0].cell, (2, 3));
        let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
        // Task threads {1, 2} x BLAS threads {1, 2} (P/2 = 1), one of them perhaps the verdict's.
        let grid = ["1 x 1", "1 x 2", "2 x 1", "2 x 2"];
        let found = grid
            .iter()
            .filter(|g| {
                names
                    .iter()
                    .any(|n| n == *g || n.contains(&format!("({g})")))
            })
            .count();
        assert_eq!(found, 4, "{names:?}");
        for p in &plans {
            assert_eq!(p.cell, cell_of(&apply(&env, &p.env), 2), "{p:?}");
        }
        // The fixture's verdict: OPENBLAS_NUM_THREADS=1 and a rayon pool of 2, as an
        // environment; the grid's 2 x 1 sets the same and is merged into it.
        let verdict: Vec<&Planned> = plans.iter().filter(|p| p.verdict).collect();
        assert_eq!(verdict.len(), 1, "{names:?}");
        assert_eq!(verdict[0].name, "verdict (2 x 1)");
        assert_eq!(verdict[0].cell, (2, 1));
        let words: Vec<String> = verdict[0].env.iter().map(EnvChange::words).collect();
        assert_eq!(words, ["OPENBLAS_NUM_THREADS=1", "RAYON_NUM_THREADS=2"]);
    }

    #[test]
    fn the_prediction_is_the_suites_cell_from_as_is_to_the_verdicts() {
        let summary = fixture_summary();
        let p = predict(
            &summary,
            "oversubscription/svd/n=256,matrices=16",
            (2, 2),
            (2, 1),
        )
        .expect("a prediction");
        assert!(
            p.cell.contains("16 SVDs of 256^2") && p.cell.contains("pthreads"),
            "{p:?}"
        );
        assert_eq!(p.from, "2 tasks x 2 BLAS threads");
        assert_eq!(p.to, "2 tasks x 1 BLAS thread");
        // The suite's 2 x 2 over its 2 x 1, as the model compares two rows.
        let row = |b: u64| {
            summary
                .results
                .iter()
                .find(|r| {
                    r.full_id == format!(
                        "oversubscription/svd/layer=pthreads,n=256,matrices=16/tasks=2,blas_threads={b}"
                    )
                })
                .and_then(|r| r.time_or_once())
                .expect("the fixture's cell")
        };
        assert_eq!(p.predicted, Ratio::of(&row(2), &row(1)));
        let e = predict(&summary, "oversubscription/svd/n=999", (2, 2), (2, 1))
            .expect_err("no such cell");
        assert!(e.contains("no results of"), "{e}");
        let e = predict(&summary, "nonsense", (2, 2), (2, 1)).expect_err("not a spec");
        assert!(e.contains("SUITE/WORKLOAD"), "{e}");
    }

    #[test]
    fn the_prediction_holds_within_a_quarter() {
        let predicted = Prediction {
            cell: "16 SVDs of 256^2".into(),
            from: "2 tasks x 2 BLAS threads".into(),
            to: "2 tasks x 1 BLAS thread".into(),
            predicted: Ratio::within(1.9, 1.8, 2.0),
            from_busy_threads: Some(4),
            from_cpu_per_wall: Some(2.0),
            got: None,
            holds: None,
        };
        let measured = [
            config(AS_IS, false, &AS_IS_MS),
            config("verdict", true, &AS_IS_MS.map(|m| m / 1.7)),
        ];
        let t = analyze(
            &measured,
            Context {
                prediction: Ok(predicted.clone()),
                ..context()
            },
        );
        let p = t.prediction.as_ref().expect("a prediction");
        assert_eq!(p.holds, Some(true), "{p:?}");
        assert!(prediction_words(&t).is_some_and(|w| w.contains("within 25%")));
        let far = [
            config(AS_IS, false, &AS_IS_MS),
            config("verdict", true, &AS_IS_MS.map(|m| m / 1.2)),
        ];
        let t = analyze(
            &far,
            Context {
                prediction: Ok(predicted),
                ..context()
            },
        );
        assert_eq!(t.prediction.and_then(|p| p.holds), Some(false));
    }
}
