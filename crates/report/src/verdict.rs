//! The verdict: what to set on this machine, in a few lines computed from the summary, each
//! with the section that holds its evidence and the settings to copy. Only what separated from
//! its alternatives by the 95% intervals is stated as advice; the rest says it did not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use parcost::id::{key, layer as layers, workload};

use crate::facts::{MachineOut, Recommendation, Row};
use crate::findings::{
    Crossover, KernelSweep, batch_of_products, best_sampled, display_kernel, ratio,
};
use crate::model::Advice;
use crate::model::{Comparison, Ratio, Rule, Separated, Separation, Stands};
use crate::mpi::{
    CmpOpt, GRID_AND_VARIANT, SUITE, all_rows, batch_words, cell, cell_words, default_cell,
    grid_cells, instances_but, naive,
};
use crate::results::Estimate;
use crate::results::Value;
use crate::settings::{EnvVar, Outcome, Setting};
use parcost::id::layer as names;

/// What a line of the verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topic {
    Kernel,
    Layer,
    Library,
    Small,
    Large,
    Sharing,
    Mpi,
    Never,
    Noise,
}

impl Topic {
    /// The class of its line on the page (`topic-` and the topic, as summary.json spells it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Kernel => "topic-kernel",
            Self::Layer => "topic-layer",
            Self::Library => "topic-library",
            Self::Small => "topic-small",
            Self::Large => "topic-large",
            Self::Sharing => "topic-sharing",
            Self::Mpi => "topic-mpi",
            Self::Never => "topic-never",
            Self::Noise => "topic-noise",
        }
    }
}

/// What a line rests on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "support", rename_all = "kebab-case")]
pub enum Support {
    /// A comparison that separated beyond its interval and the margin.
    Separated { ratio: Ratio },
    /// The comparison the line is about did not separate: the line says what stands, and why.
    NotSeparated { why: Stands },
    /// A statement of fact about the run (its noise), not a comparison.
    Information,
}

/// One line of the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub topic: Topic,
    pub text: String,
    /// The id of the page element that holds the evidence.
    pub evidence: String,
    /// The layer whose runs it rests on, when it rests on one layer's (for the noise rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    #[serde(flatten)]
    pub support: Support,
}

impl Line {
    /// Whether the line's advice rests on a comparison that separated.
    pub fn seen(&self) -> bool {
        matches!(self.support, Support::Separated { .. })
    }

    /// Whether the line is about a comparison that did not separate (and says so).
    pub fn not_separated(&self) -> bool {
        matches!(self.support, Support::NotSeparated { .. })
    }
}

/// A setting the verdict tells the user to make, with the comparison it rests on and what
/// trying its line on this machine found. Made only by [`Verdict::advise`], from a
/// [`Separated`] comparison; shown only when its trial ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advised {
    pub setting: Setting,
    /// The line to copy, as printed.
    pub line: String,
    /// The speedup it rests on.
    pub because: Ratio,
    pub evidence: String,
    /// The layer whose runs it rests on, when it rests on one layer's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// What trying the line found; absent until [`Verdict::try_settings`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tried: Option<Outcome>,
}

impl Advised {
    /// Whether the line ran as printed on this machine, so the report may show it.
    pub fn shown(&self) -> bool {
        matches!(self.tried, Some(Outcome::Ran { .. }))
    }
}

/// The verdict block: its lines, and the settings ready to copy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub lines: Vec<Line>,
    /// The settings to copy, each from a recommendation whose comparison separated.
    pub settings: Vec<Advised>,
    /// The layer the lines and settings being added rest on (see [`Verdict::within`]).
    #[serde(skip)]
    scope: Option<String>,
}

impl Verdict {
    fn say(&mut self, topic: Topic, text: String, evidence: &str, support: Support) {
        self.lines.push(Line {
            topic,
            text,
            evidence: evidence.to_owned(),
            layer: self.scope.clone(),
            support,
        });
    }

    /// Runs `f` with the lines and settings it adds marked as resting on `layer`'s runs.
    fn within(&mut self, layer: Option<&str>, f: impl FnOnce(&mut Self)) {
        self.scope = layer.map(str::to_owned);
        f(self);
        self.scope = None;
    }

    /// A line whose support is `separation` of `ratio` (the one rule).
    pub(crate) fn judged(
        &mut self,
        topic: Topic,
        text: String,
        evidence: &str,
        ratio: Ratio,
        wanted: Separation,
    ) {
        let sep = ratio.separation(Rule::ADVICE);
        let support = if sep == wanted && !ratio.unstable {
            Support::Separated { ratio }
        } else {
            Support::NotSeparated {
                why: match sep {
                    _ if ratio.unstable => Stands::Unstable(ratio),
                    Separation::Equivalent => Stands::Equivalent(ratio),
                    Separation::Unknown if ratio.interval().is_some() => Stands::FewRounds(ratio),
                    Separation::Unknown => Stands::RanOnce,
                    Separation::Above | Separation::Below => Stands::Slower(ratio),
                    Separation::Overlap => Stands::Overlap(ratio),
                },
            }
        };
        self.say(topic, text, evidence, support);
    }

    pub(crate) fn line(&mut self, topic: Topic, text: String, evidence: &str, support: Support) {
        self.say(topic, text, evidence, support);
    }

    /// A setting to copy: only with the comparison that separated.
    pub(crate) fn advise<C>(&mut self, setting: Setting, because: &Separated<C>, evidence: &str) {
        self.settings.push(Advised {
            line: setting.line(),
            setting,
            because: because.ratio(),
            evidence: evidence.to_owned(),
            layer: self.scope.clone(),
            tried: None,
        });
    }

    /// Tries every setting's line as printed with `probe` (in order: a line runs under the
    /// exports above it), or marks them all not tried when there is no probe.
    pub fn try_settings(&mut self, probe: Option<&std::path::Path>) {
        let settings: Vec<Setting> = self.settings.iter().map(|a| a.setting.clone()).collect();
        let tried = match probe {
            Some(p) => crate::settings::try_all(&settings, p),
            None => crate::settings::not_tried(&settings, crate::settings::NO_PROBE),
        };
        for (a, t) in self.settings.iter_mut().zip(tried) {
            a.tried = Some(t.outcome);
        }
    }
}

fn x(r: Ratio) -> String {
    r.words()
}

/// The best sampled row of `rows` (by Criterion's estimate).
fn fastest<'a>(rows: impl Iterator<Item = &'a Row>) -> Option<&'a Row> {
    rows.filter(|r| r.time_ns.is_some()).min_by(|a, b| {
        a.typical_ns()
            .unwrap_or(f64::MAX)
            .total_cmp(&b.typical_ns().unwrap_or(f64::MAX))
    })
}

fn time(r: &Row) -> Option<Estimate> {
    r.time_ns
}

/// `subject` against `against` (above 1: subject faster), when both were sampled.
fn compare<'a>(subject: &'a Row, against: &'a Row) -> Option<Comparison<&'a Row>> {
    Some(Comparison {
        subject,
        against,
        ratio: ratio(&time(against)?, &time(subject)?),
    })
}

/// Computes the verdict of a run; `cross`: the task-level crossovers the analysis computed.
pub fn verdict(
    machine: &MachineOut,
    rows: &[Row],
    recs: &[crate::facts::Recommendation],
    cross: &BTreeMap<String, Crossover>,
) -> Verdict {
    let p = machine.logical_cores.max(1) as u64;
    let mut v = Verdict::default();
    kernel(machine, rows, p, &mut v);
    let layer = layer(rows, p, &mut v);
    library(rows, recs, p, &mut v);
    threads(cross, p, layer.as_deref(), &mut v);
    sharing(rows, &mut v);
    mpi(rows, recs, machine, &mut v);
    never(rows, p, &mut v);
    unless_noisy(machine, &mut v);
    noise(machine, &mut v);
    v
}

/// The noise rule for the verdict (recommendations get it in [`crate::findings::unless_noisy`]):
/// a line whose evidence is a suite that ran on a noisy machine is no advice, and its settings
/// are dropped.
fn unless_noisy(machine: &MachineOut, v: &mut Verdict) {
    // A line rests on its evidence suite's runs: those of its layer where it names one, the
    // kernel sweep's for the kernel, else every layer's.
    let noisy = |evidence: &str, layer: Option<&str>| {
        machine.noise.iter().filter(|n| n.flagged).any(|n| {
            if evidence == "kernels" {
                n.suite == parcost::id::BLAS_TUNING.name
                    && n.part
                        .as_deref()
                        .is_some_and(|p| p.starts_with(parcost::id::KERNEL_PART_PREFIX))
            } else {
                n.suite == evidence
                    && (layer.is_none() || n.layer.is_none() || n.layer.as_deref() == layer)
            }
        })
    };
    v.settings
        .retain(|a| !noisy(&a.evidence, a.layer.as_deref()));
    for l in &mut v.lines {
        if l.seen() && noisy(&l.evidence, l.layer.as_deref()) {
            l.support = Support::NotSeparated {
                why: Stands::NoisySuite,
            };
        }
    }
}

fn kernel(machine: &MachineOut, rows: &[Row], p: u64, v: &mut Verdict) {
    let Some(o) = &machine.openblas else {
        return;
    };
    // A build for one target has no other kernel: OPENBLAS_CORETYPE does nothing there, and
    // "its own choice was the fastest" would be a comparison that never happened.
    if !o.config.is_empty() && !o.config.contains("DYNAMIC_ARCH") {
        v.line(
            Topic::Kernel,
            format!(
                "Kernel: this OpenBLAS was built without DYNAMIC_ARCH, for {} alone: it has no \
                 other kernel to try, and OPENBLAS_CORETYPE changes nothing ({}).",
                o.core, o.config
            ),
            "machine",
            Support::Information,
        );
        return;
    }
    let sweep = KernelSweep::of(rows, p);
    let of = |k: &str| sweep.as_ref().and_then(|s| s.row(k));
    let (Some(best), Some(lib)) = (sweep.as_ref().map(|s| s.best), of(&o.core)) else {
        v.line(
            Topic::Kernel,
            format!(
                "OpenBLAS kernel: {} ran every suite (OpenBLAS itself chooses {}); the kernel \
                 sweep has no results to compare them.",
                o.kernel, o.core
            ),
            "machine",
            Support::Information,
        );
        return;
    };
    let best_name = display_kernel(best.name(key::KERNEL).unwrap_or("?"));
    if lib.full_id == best.full_id {
        // The library's own kernel was the fastest: by how much over the next one.
        let next = fastest(
            sweep
                .iter()
                .flat_map(|s| s.rows.iter().copied())
                .filter(|r| r.full_id != lib.full_id),
        );
        match next.and_then(|n| compare(lib, n)) {
            Some(c) => v.judged(
                Topic::Kernel,
                format!(
                    "Kernel: leave it to OpenBLAS: its own choice, {}, had the best estimate of \
                     the correct kernels measured, {} against the next, {}.",
                    o.core,
                    x(c.ratio),
                    display_kernel(c.against.name(key::KERNEL).unwrap_or("?"))
                ),
                "kernels",
                c.ratio,
                Separation::Above,
            ),
            None => v.line(
                Topic::Kernel,
                format!(
                    "Kernel: OpenBLAS's own choice, {}, is the only kernel measured.",
                    o.core
                ),
                "kernels",
                Support::Information,
            ),
        }
    } else if let Some(c) = compare(best, lib) {
        let r = c.ratio;
        match c.faster(Rule::ADVICE) {
            Ok(s) => {
                v.line(
                    Topic::Kernel,
                    format!(
                        "Kernel: set OPENBLAS_CORETYPE={best_name}. OpenBLAS's own choice here, \
                         {}, ran dgemm {} slower; {best_name} computed the same results.",
                        o.core,
                        x(r)
                    ),
                    "kernels",
                    Support::Separated { ratio: r },
                );
                v.advise(
                    Setting::Env {
                        var: EnvVar::OpenblasCoretype,
                        value: best_name.clone(),
                        for_what: "the fastest correct kernel here".into(),
                    },
                    &s,
                    "kernels",
                );
            }
            Err(why) => v.line(
                Topic::Kernel,
                format!(
                    "Kernel: leave it to OpenBLAS: its own choice, {}, against the fastest \
                     measured, {best_name}: {}.",
                    o.core,
                    why.words()
                ),
                "kernels",
                Support::NotSeparated { why },
            ),
        }
    }
    if !parcost::kernel::same(&o.kernel, &o.core)
        && o.kernel_source == "environment"
        && let Some(used) = of(&o.kernel)
        && let Some(c) = compare(best, used)
    {
        v.judged(
            Topic::Kernel,
            format!(
                "This run kept OPENBLAS_CORETYPE={} from your environment, {} slower than \
                 {best_name}: every figure below is of {}.",
                o.kernel,
                x(c.ratio),
                o.kernel
            ),
            "kernels",
            c.ratio,
            Separation::Above,
        );
    }
}

/// The OpenBLAS layer to use for the batch of small products: another build only when its best
/// beat the default build's best (pthreads, Debian's `libopenblas.so.0`) beyond the interval
/// and the margin; and what naive nesting cost under each.
fn layer(rows: &[Row], p: u64, v: &mut Verdict) -> Option<String> {
    let batch: Vec<&Row> = batch_of_products(rows)
        .into_iter()
        .filter(|r| r.name(key::LAYER).is_some_and(layers::is_openblas))
        .collect();
    let names: std::collections::BTreeSet<&str> =
        batch.iter().filter_map(|r| r.name(key::LAYER)).collect();
    let best_of = |l: &str| {
        fastest(
            batch
                .iter()
                .copied()
                .filter(move |r| r.name(key::LAYER) == Some(l)),
        )
    };
    let mut bests: Vec<(&str, &Row)> = names
        .iter()
        .filter_map(|l| Some((*l, best_of(l)?)))
        .collect();
    bests.sort_by(|a, b| {
        a.1.typical_ns()
            .unwrap_or(f64::MAX)
            .total_cmp(&b.1.typical_ns().unwrap_or(f64::MAX))
    });
    let (winner, win_row) = *bests.first()?;
    let naive: Vec<String> = bests
        .iter()
        .filter_map(|(l, best)| {
            let max_tasks = batch
                .iter()
                .filter(|r| r.name(key::LAYER) == Some(l))
                .filter_map(|r| r.int(key::TASKS))
                .max()?;
            let cell = batch.iter().find(|r| {
                r.name(key::LAYER) == Some(l)
                    && r.int(key::TASKS) == Some(max_tasks)
                    && r.int(key::BLAS_THREADS) == Some(p)
            })?;
            let r = ratio(&time(cell)?, &time(best)?);
            Some(format!("{l} {:.1}x", r.estimate))
        })
        .collect();
    let naive = if naive.is_empty() {
        String::new()
    } else {
        format!(
            " Naive nesting (most tasks x {p} BLAS threads) against each layer's best: {}.",
            naive.join(", ")
        )
    };
    let what = crate::findings::human(&win_row.workload, &{
        let mut params = win_row.params.clone();
        params.retain(|k, _| ![key::LAYER, key::TASKS, key::BLAS_THREADS].contains(&k.as_str()));
        params
    });
    let default = bests.iter().find(|(l, _)| *l == layers::PTHREADS);
    let chosen = match default {
        None => {
            v.line(
                Topic::Layer,
                format!(
                    "Layer: OpenBLAS {winner} was the fastest build measured on {what}; the \
                     default build (pthreads) was not measured, so nothing is recommended \
                     over it.{naive}"
                ),
                parcost::id::OVERSUBSCRIPTION.name,
                Support::NotSeparated {
                    why: Stands::NoDefault,
                },
            );
            winner
        }
        Some((_, d)) if winner == layers::PTHREADS => {
            match bests.get(1).and_then(|(_, r)| compare(d, r)) {
                Some(c) => v.judged(
                    Topic::Layer,
                    format!(
                        "Layer: keep OpenBLAS pthreads, the default build: at its best it ran {what} \
                         {} against {} at its best.{naive}",
                        x(c.ratio),
                        c.against.name(key::LAYER).unwrap_or("?")
                    ),
                    parcost::id::OVERSUBSCRIPTION.name,
                    c.ratio,
                    Separation::Above,
                ),
                None => v.line(
                    Topic::Layer,
                    format!("Layer: OpenBLAS pthreads, the only build measured.{naive}"),
                    parcost::id::OVERSUBSCRIPTION.name,
                    Support::Information,
                ),
            }
            winner
        }
        Some((_, d)) => {
            let c = compare(win_row, d)?;
            let r = c.ratio;
            match c.faster(Rule::ADVICE) {
                Ok(s) => {
                    v.line(
                        Topic::Layer,
                        format!(
                            "Layer: OpenBLAS {winner}. At its best it ran {what} {} faster than \
                             the default build, pthreads, at its best.{naive}",
                            x(r)
                        ),
                        parcost::id::OVERSUBSCRIPTION.name,
                        Support::Separated { ratio: r },
                    );
                    v.advise(
                        Setting::OpenBlasLayer {
                            layer: winner.to_owned(),
                            for_what: format!("OpenBLAS {winner} for {what}"),
                        },
                        &s,
                        parcost::id::OVERSUBSCRIPTION.name,
                    );
                    winner
                }
                Err(why) => {
                    v.line(
                        Topic::Layer,
                        format!(
                            "Layer: keep the default build, pthreads: {winner}'s best on {what} \
                             against it: {}.{naive}",
                            why.words()
                        ),
                        parcost::id::OVERSUBSCRIPTION.name,
                        Support::NotSeparated { why },
                    );
                    layers::PTHREADS
                }
            }
        }
    };
    Some(chosen.to_owned())
}

fn threads(cross: &BTreeMap<String, Crossover>, p: u64, layer: Option<&str>, v: &mut Verdict) {
    let Some((layer, c)): Option<(&str, &Crossover)> = layer
        .and_then(|l| cross.get(l).map(|c| (l, c)))
        .or_else(|| {
            cross
                .iter()
                .find(|(l, _)| layers::is_openblas(l))
                .map(|(l, c)| (l.as_str(), c))
        })
    else {
        return;
    };
    v.within(Some(layer), |v| threads_in(layer, c, p, v));
}

/// [`threads`] for the crossover of `layer`.
fn threads_in(layer: &str, c: &Crossover, p: u64, v: &mut Verdict) {
    let largest = c.by_n.last().map_or(0, |(n, _)| *n);
    let evidence = parcost::id::TASK_LEVEL.name;
    // Task-level (P x 1) against op-level (1 x P, the library default) at its best size.
    let win = c.best_win.map(|(n, r)| {
        (
            n,
            Comparison {
                subject: parcost::id::variant::TASK_LEVEL,
                against: parcost::id::variant::OP_LEVEL,
                ratio: r,
            },
        )
    });
    match win.map(|(n, c)| (n, c.faster(Rule::ADVICE))) {
        Some((n, Ok(s))) => {
            // The sizes the advice covers: every size below the crossover only where task-level
            // separated at each of them; else just the sizes where it did.
            let won: Vec<u64> = c
                .by_n
                .iter()
                .filter(|(_, r)| r.separation(Rule::ADVICE) == Separation::Above)
                .map(|(n, _)| *n)
                .collect();
            let below = c.by_n.iter().filter(|(m, _)| match c.crossover {
                Some(cx) => *m < cx,
                None => true,
            });
            let all_below = below.clone().count() == won.len();
            let upto = match c.crossover {
                _ if !all_below => format!(
                    "n = {}",
                    won.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(cx) => format!("below n={cx}"),
                None => format!("every size measured, up to n={largest}"),
            };
            v.line(
                Topic::Small,
                format!(
                    "Many small products ({upto}): {p} task threads x 1 BLAS thread. Task-level \
                     beat BLAS threading by {} at n={n} ({layer}).",
                    x(s.ratio())
                ),
                evidence,
                Support::Separated { ratio: s.ratio() },
            );
            let purpose = if all_below {
                match c.crossover {
                    Some(cx) => format!("batches of independent products below n={cx}"),
                    None => format!("batches of independent products up to n={largest}"),
                }
            } else {
                format!("batches of independent products of {upto}")
            };
            // OpenBLAS's OpenMP build takes its thread count from OMP_NUM_THREADS (0.3.21
            // ignores OPENBLAS_NUM_THREADS there: the probe saw 2 threads with it set to 1).
            let var = if layer == layers::OPENMP {
                EnvVar::OmpNumThreads
            } else {
                EnvVar::OpenblasNumThreads
            };
            v.advise(
                Setting::Env {
                    var,
                    value: "1".into(),
                    for_what: purpose.clone(),
                },
                &s,
                evidence,
            );
            v.advise(
                Setting::RayonPool {
                    threads: p,
                    for_what: format!("one product a task: {purpose}"),
                },
                &s,
                evidence,
            );
        }
        Some((n, Err(why))) => v.line(
            Topic::Small,
            format!(
                "Many small products: keep BLAS threading (1 task x {p} BLAS threads). \
                 Task-level's best, at n={n} under {layer}: {}.",
                why.words()
            ),
            evidence,
            Support::NotSeparated { why },
        ),
        None => {}
    }
    // Op-level at the largest size: the library default, when it is ahead there.
    if let Some(&(n, r)) = c.by_n.last() {
        let from = c
            .crossover
            .map(|cx| format!("n >= {cx}"))
            .unwrap_or_else(|| format!("n = {n}"));
        let crossings = if c.crossings > 1 {
            format!(
                " (the curves cross {} times: sizes near the crossover are a toss-up)",
                c.crossings
            )
        } else {
            String::new()
        };
        v.judged(
            Topic::Large,
            format!(
                "Large matrices ({from}): 1 task x {p} BLAS threads, the library default: at \
                 n={n} op-level against task-level was {}{crossings}.",
                x(r.inverse())
            ),
            evidence,
            r,
            Separation::Below,
        );
    }
}

fn sharing(rows: &[Row], v: &mut Verdict) {
    let send: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            parcost::id::parse(&r.full_id).is_ok_and(|p| parcost::id::is_sharing_candidate(&p))
        })
        .collect();
    // The largest size measured in rounds (moving arrays is about large ones; the 800 MB
    // arrays run in the first round only, information beside it), else the largest measured.
    let in_rounds = |r: &&&Row| {
        r.time_ns
            .is_some_and(|t| t.rounds.len() >= crate::model::MIN_ROUNDS)
    };
    let Some(size) = send
        .iter()
        .filter(in_rounds)
        .filter_map(|r| r.int(key::BYTES))
        .max()
        .or_else(|| send.iter().filter_map(|r| r.int(key::BYTES)).max())
    else {
        return;
    };
    let send: Vec<&Row> = send
        .into_iter()
        .filter(|r| r.int(key::BYTES) == Some(size))
        .collect();
    let Some(best) = fastest(send.iter().copied()) else {
        return;
    };
    let second = fastest(
        send.iter()
            .copied()
            .filter(|r| r.name(key::TRANSPORT) != best.name(key::TRANSPORT)),
    );
    let name = best.name(key::TRANSPORT).unwrap_or("?").to_owned();
    let mib = size >> 20;
    let gbs = best
        .throughput
        .as_ref()
        .filter(|t| t.unit == "GB/s")
        .map(|t| format!(" at {:.1} GB/s", t.estimate))
        .unwrap_or_default();
    let evidence = parcost::id::ARRAY_SHARING.name;
    match second.and_then(|s| compare(best, s)) {
        Some(c) => v.judged(
            Topic::Sharing,
            format!(
                "Sending a {mib} MiB array to another process: {name}{gbs}, {} against the next, \
                 {}. Threads share it by reference for free.",
                x(c.ratio),
                c.against.name(key::TRANSPORT).unwrap_or("?")
            ),
            evidence,
            c.ratio,
            Separation::Above,
        ),
        None => v.line(
            Topic::Sharing,
            format!("Sending a {mib} MiB array to another process: {name}{gbs}."),
            evidence,
            Support::Information,
        ),
    }
}

/// The worst oversubscribed configuration (more threads than the `p` logical cores: the naive
/// nesting) against the best of its own grid. Not the serial cell, which can be the slowest
/// of all (qK: 1 x 1 at 2.68x) and says nothing about naive parallelism.
fn never(rows: &[Row], p: u64, v: &mut Verdict) {
    let mut worst: Option<(Ratio, &Row, &Row)> = None;
    let oversubscribed = |r: &Row| {
        r.int(key::TASKS)
            .zip(r.int(key::BLAS_THREADS))
            .is_some_and(|(t, b)| t * b > p)
    };
    for r in rows
        .iter()
        .filter(|r| r.suite == parcost::id::OVERSUBSCRIPTION.name && oversubscribed(r))
    {
        let group = rows.iter().filter(|o| {
            o.suite == r.suite
                && o.workload == r.workload
                && o.name(key::LAYER) == r.name(key::LAYER)
                && o.int(key::N) == r.int(key::N)
        });
        let Some(best) = fastest(group) else { continue };
        let Some(c) = compare(best, r) else {
            continue;
        };
        if c.separation(Rule::REPORT) == Separation::Above
            && worst.is_none_or(|w| c.ratio.estimate > w.0.estimate)
        {
            worst = Some((c.ratio, r, best));
        }
    }
    if let Some((q, r, best)) = worst {
        let cell = |r: &Row| {
            crate::facts::tasks_x_threads(
                r.int(key::TASKS).unwrap_or(0),
                r.int(key::BLAS_THREADS).unwrap_or(0),
            )
        };
        v.scope = r.name(key::LAYER).map(str::to_owned);
        v.line(
            Topic::Never,
            format!(
                "Never: {} on {} of {}^2 under {}: {} slower than {}.",
                cell(r),
                r.workload,
                r.int(key::N).unwrap_or(0),
                r.name(key::LAYER).unwrap_or("?"),
                x(q),
                cell(best)
            ),
            parcost::id::OVERSUBSCRIPTION.name,
            // The worst cell is no contender: one round, information, not advice.
            Support::Information,
        );
        v.scope = None;
    }
}

fn noise(machine: &MachineOut, v: &mut Verdict) {
    if machine.noise.is_empty() {
        return;
    }
    let flagged: Vec<String> = machine
        .noise
        .iter()
        .filter(|n| n.flagged)
        .map(|n| {
            [Some(n.suite.as_str()), n.layer.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let low = machine
        .noise
        .iter()
        .map(|n| n.capacity_before.min(n.capacity_after))
        .fold(f64::INFINITY, f64::min);
    let text = if flagged.is_empty() {
        format!(
            "Noise: quiet enough. Every suite's calibrations agree within {limit:.0}% (the lowest \
             delivered parallel capacity was {low:.2} on {} cores), foreign load under {limit:.0}%.",
            machine.logical_cores,
            limit = 100.0 * parcost::noise::NOISE_LIMIT
        )
    } else {
        format!(
            "Noise: {} ran on a noisy machine; their figures carry no advice: rerun them.",
            flagged.join(", ")
        )
    };
    v.line(Topic::Noise, text, "noise", Support::Information);
}

/// The verdict's line on the library, from the batch of small products: the library
/// recommendation for it (the fastest layer's best against ndarray on OpenBLAS's default build at
/// 1 task x P threads, by the one rule), and what naive nesting cost under each library.
pub(crate) fn library(rows: &[Row], recs: &[Recommendation], p: u64, v: &mut Verdict) {
    let batch = batch_of_products(rows);
    let Some(first) = batch.first() else {
        return;
    };
    let all = crate::libraries::comparisons(rows);
    let Some(c) = all.iter().find(|c| {
        c.suite == first.suite
            && c.workload == first.workload
            && c.params.iter().all(|(k, v)| first.params.get(k) == Some(v))
            && c.has_native()
    }) else {
        return;
    };
    let Some(rec) = recs
        .iter()
        .find(|r| r.suite == c.suite && r.workload == c.workload && r.params == c.params)
    else {
        return;
    };
    let Some(advice) = &rec.typed else {
        return;
    };
    let cells: Vec<&Row> = batch.clone();
    let naive: Vec<String> = c
        .entries
        .iter()
        .filter_map(|e| {
            let (_, cost) = crate::libraries::naive_cost(&cells, &e.layer, p)?;
            Some(format!(
                "{:.1}x under {}",
                cost.estimate,
                names::describe(&e.layer)
            ))
        })
        .collect();
    let naive = if naive.is_empty() {
        String::new()
    } else {
        format!(
            " Naive nesting (most tasks x {p} threads) against each one's best: {}.",
            naive.join(", ")
        )
    };
    let words = |cfg: &crate::findings::Config| {
        let layer = cfg
            .get(key::LAYER)
            .map(ToString::to_string)
            .unwrap_or_default();
        format!(
            "{} ({} x {})",
            names::describe(&layer),
            cfg.get(key::TASKS)
                .map(ToString::to_string)
                .unwrap_or_default(),
            cfg.get(key::BLAS_THREADS)
                .map(ToString::to_string)
                .unwrap_or_default()
        )
    };
    // Its evidence is the libraries' section; for the noise rule it rests on the suite's runs.
    let evidence = c.suite.as_str();
    let title = c.title();
    match advice {
        Advice::Recommend(s) => {
            let pick = s.subject();
            let layer = pick.get(key::LAYER).and_then(Value::name).unwrap_or("?");
            let int = |k: &str| pick.get(k).and_then(Value::int).unwrap_or(1);
            let (t, b) = (int(key::TASKS), int(key::BLAS_THREADS));
            v.line(
                Topic::Library,
                format!(
                    "Library: {}. At its best, {} ran {} {} faster than ndarray on OpenBLAS's \
                     default build, {}.{naive}",
                    names::library(layer),
                    words(pick),
                    title,
                    s.ratio().words(),
                    words(&s.comparison().against)
                ),
                evidence,
                Support::Separated { ratio: s.ratio() },
            );
            let purpose = format!("{title} on {}", names::library(layer));
            match layer {
                names::FAER => v.advise(
                    Setting::FaerPar {
                        tasks: t,
                        par: b,
                        for_what: purpose,
                    },
                    s,
                    evidence,
                ),
                names::MATRIXMULTIPLY => {
                    v.advise(
                        Setting::Env {
                            var: EnvVar::MatmulNumThreads,
                            value: b.to_string(),
                            for_what: purpose.clone(),
                        },
                        s,
                        evidence,
                    );
                    v.advise(
                        Setting::RayonPool {
                            threads: t,
                            for_what: purpose,
                        },
                        s,
                        evidence,
                    );
                }
                _ => {}
            }
        }
        Advice::Keep { default, why } => v.line(
            Topic::Library,
            format!(
                "Library: keep ndarray on OpenBLAS{}: the fastest library's best on {title}, {}, \
                 against it: {}.{naive}",
                default
                    .as_ref()
                    .map(|d| format!(", {}", words(d)))
                    .unwrap_or_default(),
                words(&rec.fastest),
                why.words()
            ),
            evidence,
            Support::NotSeparated { why: *why },
        ),
    }
}

/// The verdict's line: the ranks x threads to run the batch with against the default, the
/// naive hybrid's cost, and what moving the arrays cost; the command to copy only when the
/// recommendation separated, with the binding it ran with and `--oversubscribe` past the slots.
pub(crate) fn mpi(rows: &[Row], recs: &[Recommendation], machine: &MachineOut, v: &mut Verdict) {
    let all = all_rows(rows);
    let p = machine.logical_cores.max(1) as u64;
    // The layer whose batch ran fastest, at its best grid cell.
    let Some(((_, params), cells)) = instances_but(&all, workload::BATCH, &GRID_AND_VARIANT)
        .into_iter()
        .filter(|(_, cells)| best_sampled(&grid_cells(cells)).is_some())
        .min_by(|(_, a), (_, b)| {
            let t = |c: &Vec<&Row>| best_sampled(&grid_cells(c)).and_then(Row::typical_ns);
            t(a).total_cmp_opt(t(b))
        })
    else {
        return;
    };
    let Some(rec) = recs
        .iter()
        .find(|r| r.suite == SUITE && r.workload == workload::BATCH && r.params == params)
    else {
        return;
    };
    let Some(advice) = &rec.typed else {
        return;
    };
    let grid = grid_cells(&cells);
    let Some(fastest) = best_sampled(&grid) else {
        return;
    };
    let layer = params
        .get(key::LAYER)
        .map(ToString::to_string)
        .unwrap_or_default();
    let default = default_cell(&cells);
    let seen_in_default = default
        .map(|d| format!(" ({})", default_words(d)))
        .unwrap_or_default();
    let naive_said = naive(&grid, p)
        .filter(|n| n.full_id != fastest.full_id)
        .and_then(|n| {
            let r = match (n.time_ns, fastest.time_ns) {
                (Some(nt), Some(ft)) => ratio(&nt, &ft),
                _ => crate::model::Ratio::once(n.typical_ns()?, fastest.typical_ns()?),
            };
            // Called slower only where it separated, by the one rule.
            let how = match r.separation(Rule::REPORT) {
                Separation::Above => "slower",
                Separation::Unknown => "slower in its one run",
                _ => "against it, not separated",
            };
            Some(format!(
                "; the naive hybrid, {} (the most ranks at P BLAS threads each), was {} {how}",
                cell(n),
                r.words()
            ))
        })
        .unwrap_or_default();
    let what = format!("{} under {layer}", batch_words(&params));
    v.scope = Some(layer.clone());
    let evidence = SUITE;
    match advice {
        Advice::Recommend(s) => {
            let pick = s.subject();
            let int = |k: &str| pick.get(k).and_then(Value::int).unwrap_or(0);
            let (ranks, b) = (int(key::RANKS), int(key::BLAS_THREADS));
            v.line(
                Topic::Mpi,
                format!(
                    "MPI ({what}): {} x {} each, ranks not bound, {} faster than the default, \
                     mpirun -np {p}{seen_in_default}{naive_said}.",
                    crate::facts::count(ranks, "rank"),
                    crate::facts::count(b, "BLAS thread"),
                    s.ratio().words()
                ),
                evidence,
                Support::Separated { ratio: s.ratio() },
            );
            // OpenMPI's slots are the physical cores: more ranks need --oversubscribe.
            let slots = machine.physical_cores.max(1) as u64;
            v.advise(
                Setting::Mpirun {
                    ranks,
                    bind_none: true,
                    oversubscribe: ranks > slots,
                    blas_threads: Some(b),
                    for_what: format!("MPI ranks x BLAS threads for {what}"),
                },
                s,
                evidence,
            );
        }
        Advice::Keep { why, .. } => v.line(
            Topic::Mpi,
            format!(
                "MPI ({what}): keep the default, mpirun -np {p} with nothing set{seen_in_default}: \
                 the fastest cell, {}, against it: {}{naive_said}.",
                cell_words(fastest),
                why.words()
            ),
            evidence,
            Support::NotSeparated { why: *why },
        ),
    }
    v.scope = None;
}

/// What the default cell's ranks had: `each rank bound to 1 CPU, 1 BLAS thread`, from the
/// ranks' own readings where the run recorded them.
fn default_words(d: &Row) -> String {
    use crate::facts::counts;
    use std::collections::BTreeSet;
    let seen = &d.ranks_seen;
    let inside = if seen.is_empty() {
        String::new()
    } else {
        let cpus: BTreeSet<u64> = seen.iter().map(|r| r.cpus.len() as u64).collect();
        let counted: BTreeSet<u64> = seen.iter().map(|r| r.blas_threads as u64).collect();
        let busy: BTreeSet<String> = seen
            .iter()
            .filter_map(|r| r.busy_threads)
            .map(|b| b.to_string())
            .collect();
        let busy = if busy.is_empty() {
            String::new()
        } else {
            let busy: Vec<String> = busy.into_iter().collect();
            format!(", {} busy in a product", busy.join(" or "))
        };
        format!(
            "; inside, each rank could run on {} and OpenBLAS counted {}{busy}",
            counts(&cpus, "CPU"),
            counts(&counted, "thread")
        )
    };
    format!(
        "OpenMPI's own binding, OPENBLAS_NUM_THREADS unset, {}{inside}",
        crate::facts::ms_short(d.typical_ns().unwrap_or(0.0))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdict of `rows`, their crossovers computed here as the analysis does.
    fn verdict(machine: &MachineOut, rows: &[Row], recs: &[Recommendation]) -> Verdict {
        super::verdict(machine, rows, recs, &crate::findings::crossovers(rows))
    }

    fn row(id: &str, ms: f64) -> Row {
        Row::for_test(id, ms, None)
    }

    fn machine() -> MachineOut {
        MachineOut {
            logical_cores: 2,
            physical_cores: 2,
            ..MachineOut::default()
        }
    }

    fn levels(sizes: &[(u64, f64, f64)]) -> Vec<Row> {
        let mut rows = Vec::new();
        for &(n, op, task) in sizes {
            rows.push(row(&format!("task-level/matmul/layer=openmp,n={n},pairs=8/variant=op-level,tasks=1,blas_threads=2"), op));
            rows.push(row(&format!("task-level/matmul/layer=openmp,n={n},pairs=8/variant=task-level,tasks=2,blas_threads=1"), task));
        }
        rows
    }

    fn text(v: &Verdict, topic: Topic) -> String {
        v.lines
            .iter()
            .find(|l| l.topic == topic)
            .map(|l| l.text.clone())
            .unwrap_or_default()
    }

    #[test]
    fn the_verdict_names_the_crossover_the_worst_cell_and_the_copyable_settings() {
        let mut rows = levels(&[
            (64, 40.0, 20.0),
            (256, 30.0, 20.0),
            (512, 20.0, 20.5),
            (1024, 18.0, 25.0),
        ]);
        // The serial cell, slowest of all, is no naive parallelism: the worst named is 8 x 2.
        for (t, b, ms) in [(2, 1, 20.0), (8, 2, 262.0), (1, 2, 30.0), (1, 1, 300.0)] {
            rows.push(row(
                &format!(
                    "oversubscription/matmul/layer=openmp,n=256,pairs=64/tasks={t},blas_threads={b}"
                ),
                ms,
            ));
        }
        let v = verdict(&machine(), &rows, &[]);
        assert!(
            text(&v, Topic::Small).contains("below n=512"),
            "{}",
            text(&v, Topic::Small)
        );
        assert!(
            text(&v, Topic::Large).contains("n >= 512"),
            "{}",
            text(&v, Topic::Large)
        );
        assert!(
            text(&v, Topic::Never).contains("8 tasks x 2 BLAS threads")
                && text(&v, Topic::Never).contains("13.1x"),
            "{}",
            text(&v, Topic::Never)
        );
        // Under OpenBLAS's OpenMP build the count is OMP_NUM_THREADS (it ignores
        // OPENBLAS_NUM_THREADS: the probe saw 2 threads with it set to 1).
        assert!(
            v.settings
                .iter()
                .any(|s| s.line.starts_with("export OMP_NUM_THREADS=1")),
            "{:?}",
            v.settings
        );
        assert!(v.settings.iter().any(|s| s.line.contains("num_threads(2)")));
        assert!(v.lines.iter().all(|l| !l.evidence.is_empty()));
    }

    #[test]
    fn a_build_without_dynamic_arch_is_named_and_gets_no_kernel_setting() {
        // SkylakeX's dgemm twice as fast as Haswell, OpenBLAS's own choice.
        let rows: Vec<Row> = [("haswell", 20.0), ("skylakex", 10.0)]
            .iter()
            .map(|(k, ms)| {
                row(
                    &format!("blas-tuning/matmul/layer=pthreads,kernel={k},n=1024/blas_threads=2"),
                    *ms,
                )
            })
            .collect();
        let with_config = |config: &str| {
            let mut m = machine();
            m.openblas = Some(crate::facts::OpenBlasOut {
                config: config.into(),
                core: "Haswell".into(),
                kernel: "Haswell".into(),
                kernel_source: "library".into(),
                layers: vec!["pthreads".into()],
            });
            verdict(&m, &rows, &[])
        };
        let dynamic =
            with_config("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64");
        assert!(
            dynamic
                .settings
                .iter()
                .any(|s| s.line.contains("OPENBLAS_CORETYPE=SkylakeX")),
            "{:?}",
            dynamic.lines
        );
        let single = with_config("OpenBLAS 0.3.21 NO_AFFINITY HASWELL MAX_THREADS=64");
        assert!(
            text(&single, Topic::Kernel).contains("without DYNAMIC_ARCH"),
            "{}",
            text(&single, Topic::Kernel)
        );
        assert!(single.settings.is_empty(), "{:?}", single.settings);
    }

    #[test]
    fn the_settings_cover_only_the_sizes_that_separated() {
        // n=128 within the margin, below the crossover at 512: the advice names 64 and 256.
        let mut rows = levels(&[
            (64, 40.0, 20.0),
            (128, 20.4, 20.0),
            (256, 30.0, 20.0),
            (512, 20.0, 20.5),
            (1024, 18.0, 25.0),
        ]);
        for r in rows.iter_mut().filter(|r| r.int(key::N) == Some(128)) {
            let t = r.time_ns.as_mut().expect("sampled");
            t.lower = t.estimate * 0.999;
            t.upper = t.estimate * 1.001;
        }
        let v = verdict(&machine(), &rows, &[]);
        assert!(
            text(&v, Topic::Small).contains("(n = 64, 256)"),
            "{}",
            text(&v, Topic::Small)
        );
        assert!(
            v.settings.iter().all(|s| s.line.contains("of n = 64, 256")),
            "{:?}",
            v.settings
        );
    }

    #[test]
    fn a_noisy_suite_gives_no_setting() {
        let rows = levels(&[(64, 40.0, 20.0), (1024, 18.0, 25.0)]);
        let mut m = machine();
        m.noise.push(crate::facts::NoiseOut {
            suite: "task-level".into(),
            layer: Some("openmp".into()),
            part: None,
            started: String::new(),
            quick: true,
            threads: 2,
            capacity_before: 2.0,
            capacity_after: 1.4,
            steal: 0.0,
            foreign_load: 0.0,
            rounds: 1,
            noisy_rounds: 1,
            flagged: true,
            rerun: None,
        });
        let v = verdict(&m, &rows, &[]);
        assert!(v.settings.is_empty(), "{:?}", v.settings);
        assert!(!v.lines.iter().any(|l| l.topic == Topic::Small && l.seen()));
        // The same rows on a quiet machine give the settings, and so does noise in another
        // layer's run of the suite: the advice rests on openmp's runs only.
        assert!(!verdict(&machine(), &rows, &[]).settings.is_empty());
        m.noise[0].layer = Some("matrixmultiply".into());
        let v = verdict(&m, &rows, &[]);
        assert!(!v.settings.is_empty(), "{:?}", v.lines);
    }

    #[test]
    fn the_best_win_is_the_largest_that_separated() {
        // n=64: 3x by its estimate but with an interval that straddles 1; n=128: 1.5x, clear.
        let mut rows = levels(&[(64, 60.0, 20.0), (128, 30.0, 20.0), (1024, 18.0, 25.0)]);
        for (i, r) in rows
            .iter_mut()
            .filter(|r| r.int(key::N) == Some(64))
            .enumerate()
        {
            let t = r.time_ns.as_mut().expect("sampled");
            *t = Estimate::in_rounds(t.estimate, t.estimate * 0.8, i);
        }
        let v = verdict(&machine(), &rows, &[]);
        assert!(
            text(&v, Topic::Small).contains("at n=128"),
            "{}",
            text(&v, Topic::Small)
        );
        assert!(
            v.lines
                .iter()
                .find(|l| l.topic == Topic::Small)
                .is_some_and(Line::seen)
        );
    }

    #[test]
    fn no_setting_without_a_separated_comparison() {
        // Task-level ahead by 3% everywhere, with tight intervals: within the margin.
        let mut near = levels(&[(64, 20.6, 20.0), (256, 20.6, 20.0), (1024, 20.6, 20.0)]);
        for (i, r) in near.iter_mut().enumerate() {
            let t = r.time_ns.as_mut().expect("sampled");
            *t = Estimate::in_rounds(t.estimate, t.estimate * 0.001, i);
        }
        let v = verdict(&machine(), &near, &[]);
        assert!(v.settings.is_empty(), "{:?}", v.settings);
        assert!(
            !v.lines
                .iter()
                .find(|l| l.topic == Topic::Small)
                .is_some_and(Line::seen)
        );
        // Rounds that overlap the margin (7.5% apart, each variant steady).
        let mut overlap = levels(&[(64, 21.5, 20.0), (1024, 21.5, 20.0)]);
        for (i, r) in overlap.iter_mut().enumerate() {
            let t = r.time_ns.as_mut().expect("sampled");
            *t = Estimate::in_rounds(t.estimate, t.estimate * 0.03, i);
        }
        let v = verdict(&machine(), &overlap, &[]);
        assert!(v.settings.is_empty(), "{:?}", v.settings);
        // Rounds spread 40% (a spread that wide is in the interval): it overlaps, no advice
        // though 1.5x apart.
        let mut wide = levels(&[(64, 30.0, 20.0), (1024, 30.0, 20.0)]);
        for (i, r) in wide.iter_mut().enumerate() {
            let t = r.time_ns.as_mut().expect("sampled");
            *t = Estimate::in_rounds(t.estimate, t.estimate * 0.4, i);
        }
        let v = verdict(&machine(), &wide, &[]);
        assert!(v.settings.is_empty(), "{:?}", v.settings);
        // Op-level run once at every size: no interval, no advice.
        let mut once = levels(&[(64, 40.0, 20.0), (1024, 40.0, 20.0)]);
        for r in once
            .iter_mut()
            .filter(|r| r.name(key::VARIANT) == Some("op-level"))
        {
            r.single_run_ns = r.time_ns.take().map(|t| t.estimate);
        }
        let v = verdict(&machine(), &once, &[]);
        assert!(v.settings.is_empty(), "{:?}", v.settings);
    }

    #[test]
    fn a_layer_is_recommended_only_over_the_default_build() {
        let over = |layer: &str, t: u64, b: u64, ms: f64| {
            row(
                &format!(
                    "oversubscription/matmul/layer={layer},n=256,pairs=64/tasks={t},blas_threads={b}"
                ),
                ms,
            )
        };
        // openmp 2% ahead of pthreads, tight intervals: equivalent here, keep the default build.
        let mut rows = [over("openmp", 2, 1, 19.6), over("pthreads", 2, 1, 20.0)];
        for r in &mut rows {
            let t = r.time_ns.as_mut().expect("sampled");
            t.lower = t.estimate * 0.999;
            t.upper = t.estimate * 1.001;
        }
        let v = verdict(&machine(), &rows, &[]);
        assert!(v.settings.is_empty(), "{:?}", v.settings);
        assert!(text(&v, Topic::Layer).starts_with("Layer: keep the default build"));
        // openmp clearly ahead: its library path is the setting.
        let rows = [over("openmp", 2, 1, 10.0), over("pthreads", 2, 1, 20.0)];
        let v = verdict(&machine(), &rows, &[]);
        assert_eq!(v.settings.len(), 1, "{:?}", v.settings);
        assert!(
            v.settings[0].line.contains("openblas-openmp"),
            "{:?}",
            v.settings
        );
        // No pthreads measured: nothing to recommend over.
        let rows = [over("openmp", 2, 1, 10.0), over("serial", 1, 1, 20.0)];
        let v = verdict(&machine(), &rows, &[]);
        assert!(v.settings.is_empty(), "{:?}", v.settings);
    }
}
