//! Two runs' answers side by side: where their recommendations (the configuration to use for
//! each workload) and their settings lines differ, with each run's figures, and how many agree.
//! "The same answer twice" is measured here: figures may move between runs, advice should not.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::facts::Recommendation;
use crate::model::{AdviceKind, Ratio};
use crate::results::Estimate;
use crate::summary::Summary;

/// One run's answer for one workload instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// What to use: the configuration's keys and values, `key=value` joined by `, `.
    pub choice: String,
    pub recommended: bool,
    /// Whether the run decided ([`AdviceKind::decided`]): a recommendation, or the default
    /// standing on the evidence rather than for want of it.
    pub decided: bool,
    /// The default's time over the pick's, with its interval, when both were sampled.
    pub speedup: Option<String>,
}

/// Where two runs agree and where they differ.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agreement {
    /// Workload instances both runs recommend for.
    pub shared: usize,
    pub agree: usize,
    /// The instances whose answers differ: this run's, then the other's.
    pub differ: Vec<(String, Answer, Answer)>,
    /// Shared instances both runs decided ([`Answer::decided`]), and how many of them agree:
    /// where they differ the two runs contradict each other; every other difference is one
    /// run deciding where the other could not.
    pub decided_both: usize,
    pub decided_both_agree: usize,
    /// Settings lines shown (run as printed), without their comments, in one run only.
    pub settings_here_only: Vec<String>,
    pub settings_there_only: Vec<String>,
    pub settings_shared: usize,
    /// Whether the two runs' intervals held between them.
    pub held: Held,
}

/// Whether the intervals held from one run to the other, on every comparison both runs measured
/// in rounds (a default against another variant of its instance, the comparisons advice rests
/// on, each by [`Ratio::of`]): the two ratios held when the difference of their logarithms is
/// within the root of the sum of their squared half-widths (each about 1.96 standard errors).
/// When the intervals hold between runs, about 1 comparison in 20 falls outside by chance; more
/// says they are too narrow, and advice at the margin would flip for that reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Held {
    pub compared: usize,
    pub held: usize,
    /// The comparison farthest outside, in combined half-widths: its name, this run's ratio
    /// and the other's.
    pub farthest: Option<(String, f64, Ratio, Ratio)>,
}

/// Whether this run's and the other's intervals held between them ([`Held`]).
fn held(this: &Summary, other: &Summary) -> Held {
    let cores = this.machine.logical_cores;
    let in_rounds = |s: &'_ Summary| -> BTreeMap<String, Estimate> {
        s.results
            .iter()
            .filter_map(|r| {
                let t = r
                    .time_ns
                    .filter(|t| t.rounds.len() >= crate::model::MIN_ROUNDS)?;
                Some((r.full_id.clone(), t))
            })
            .collect()
    };
    let (here, there) = (in_rounds(this), in_rounds(other));
    let parsed: Vec<(&String, parcost::id::ParsedId)> = here
        .keys()
        .filter_map(|id| Some((id, parcost::id::parse(id).ok()?)))
        .collect();
    let defaults: BTreeMap<String, &String> = parsed
        .iter()
        .filter(|(_, p)| parcost::id::is_default(p, cores))
        .map(|(id, p)| (parcost::id::instance(p, &[]), *id))
        .collect();
    let mut out = Held::default();
    for (id, p) in &parsed {
        if parcost::id::is_default(p, cores) {
            continue;
        }
        let Some(default) = defaults.get(&parcost::id::instance(p, &[])) else {
            continue;
        };
        let (Some(dh), Some(xh), Some(dt), Some(xt)) = (
            here.get(*default),
            here.get(*id),
            there.get(*default),
            there.get(*id),
        ) else {
            continue;
        };
        let (a, b) = (Ratio::of(dh, xh), Ratio::of(dt, xt));
        let (Some(ha), Some(hb)) = (a.log_half_width(), b.log_half_width()) else {
            continue;
        };
        let width = (ha * ha + hb * hb).sqrt();
        if !a.between_rounds() || !b.between_rounds() || width <= 0.0 {
            continue;
        }
        out.compared += 1;
        let apart = (a.estimate / b.estimate).ln().abs() / width;
        if apart <= 1.0 {
            out.held += 1;
        } else if out.farthest.as_ref().is_none_or(|f| apart > f.1) {
            out.farthest = Some(((*id).clone(), apart, a, b));
        }
    }
    out
}

impl Agreement {
    /// The share of shared recommendations that agree (1 when none are shared).
    pub fn share(&self) -> f64 {
        if self.shared == 0 {
            1.0
        } else {
            self.agree as f64 / self.shared as f64
        }
    }

    pub fn settings_agree(&self) -> bool {
        self.settings_here_only.is_empty() && self.settings_there_only.is_empty()
    }
}

/// A recommendation's workload instance, as both runs name it.
fn key(r: &Recommendation) -> String {
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{} {} ({})", r.suite, r.workload, params.join(", "))
}

fn answer(r: &Recommendation) -> Answer {
    let choice: Vec<String> = r.best.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Answer {
        choice: if choice.is_empty() {
            "nothing (no default measured)".into()
        } else {
            choice.join(", ")
        },
        recommended: r.advice == AdviceKind::Recommend,
        decided: r.advice.decided(),
        speedup: r
            .speedup_vs_default
            .as_ref()
            .map(crate::model::Ratio::words),
    }
}

/// A settings line without its comment: what a user would run.
fn command(line: &str) -> String {
    line.split("   #")
        .next()
        .unwrap_or(line)
        .split("   //")
        .next()
        .unwrap_or(line)
        .trim()
        .to_owned()
}

/// Compares this run's answers with another's.
pub fn compare(this: &Summary, other: &Summary) -> Agreement {
    let theirs: BTreeMap<String, &Recommendation> =
        other.recommendations.iter().map(|r| (key(r), r)).collect();
    let mut out = Agreement::default();
    for r in &this.recommendations {
        let k = key(r);
        let Some(o) = theirs.get(&k) else {
            continue;
        };
        out.shared += 1;
        let (a, b) = (answer(r), answer(o));
        let both = a.decided && b.decided;
        out.decided_both += usize::from(both);
        if a.choice == b.choice {
            out.agree += 1;
            out.decided_both_agree += usize::from(both);
        } else {
            out.differ.push((k, a, b));
        }
    }
    let lines = |s: &Summary| -> BTreeSet<String> {
        s.verdict
            .settings
            .iter()
            .filter(|a| a.shown())
            .map(|a| command(&a.line))
            .collect()
    };
    let (here, there) = (lines(this), lines(other));
    out.settings_shared = here.intersection(&there).count();
    out.settings_here_only = here.difference(&there).cloned().collect();
    out.settings_there_only = there.difference(&here).cloned().collect();
    out.held = held(this, other);
    out
}

/// The comparison as the terminal shows it.
pub fn render(a: &Agreement, other_name: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Answers against {other_name}: {} of {} shared recommendations agree ({:.0}%); settings \
         lines: {} shared, {} here only, {} there only.",
        a.agree,
        a.shared,
        100.0 * a.share(),
        a.settings_shared,
        a.settings_here_only.len(),
        a.settings_there_only.len()
    );
    if !a.differ.is_empty() {
        let contradicted = a.decided_both - a.decided_both_agree;
        let _ = write!(
            out,
            "Of the {} that differ: {contradicted} decided differently in both runs, {} not \
             decided in one of them (the default kept without the evidence: an interval across \
             the margin, too few rounds, a single run)",
            a.differ.len(),
            a.differ.len() - contradicted,
        );
        if a.decided_both > 0 {
            let _ = write!(
                out,
                "; where both decided, {} of {} agree ({:.1}%)",
                a.decided_both_agree,
                a.decided_both,
                100.0 * a.decided_both_agree as f64 / a.decided_both as f64
            );
        }
        let _ = writeln!(out, ".");
    }
    let said = |x: &Answer| {
        format!(
            "{}{}{}",
            x.choice,
            match (x.recommended, x.decided) {
                (true, _) => " (recommended)",
                (false, true) => " (the default stands, decided)",
                (false, false) => " (the default stands, undecided)",
            },
            x.speedup
                .as_ref()
                .map(|s| format!(", default/fastest {s}"))
                .unwrap_or_default()
        )
    };
    let h = &a.held;
    if h.compared > 0 {
        let _ = writeln!(
            out,
            "Intervals between the two runs: of {} comparisons with a default both measured in \
             rounds, {} ({:.1}%) had ratios within their combined 95% intervals (about 95% when \
             the intervals hold from run to run).",
            h.compared,
            h.held,
            100.0 * h.held as f64 / h.compared as f64
        );
        if let Some((id, apart, here, there)) = &h.farthest {
            let _ = writeln!(
                out,
                "  farthest apart ({apart:.1}x the combined half-widths): {id}: default over it \
                 {} here, {} there",
                here.words(),
                there.words()
            );
        }
    }
    for (k, here, there) in &a.differ {
        let _ = writeln!(
            out,
            "  differs: {k}\n    this run:  {}\n    other run: {}",
            said(here),
            said(there)
        );
    }
    for l in &a.settings_here_only {
        let _ = writeln!(out, "  setting in this run only:  {l}");
    }
    for l in &a.settings_there_only {
        let _ = writeln!(out, "  setting in the other only: {l}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{MachineOut, Recommendation, Row};
    use crate::model::Stands;
    use crate::results::Value;
    use crate::verdict::Verdict;

    fn rec(n: u64, tasks: u64, recommended: bool) -> Recommendation {
        rec_why(n, tasks, (!recommended).then_some(Stands::FastestIsDefault))
    }

    /// A recommendation (`why` none) or the default standing for `why`.
    fn rec_why(n: u64, tasks: u64, why: Option<Stands>) -> Recommendation {
        Recommendation {
            suite: "task-level".into(),
            workload: "matmul".into(),
            params: [("n".to_owned(), Value::Int(n))].into(),
            best: [("tasks".to_owned(), Value::Int(tasks))].into(),
            fastest: [("tasks".to_owned(), Value::Int(tasks))].into(),
            default: [("tasks".to_owned(), Value::Int(1))].into(),
            advice: why.map_or(AdviceKind::Recommend, AdviceKind::Keep),
            speedup_vs_default: None,
            speedup_vs_naive: None,
            efficiency: None,
            efficiency_theoretical: None,
            typed: None,
        }
    }

    fn summary(recs: Vec<Recommendation>) -> Summary {
        Summary {
            schema: crate::SCHEMA,
            machine: MachineOut::default(),
            results: Vec::new(),
            findings: Vec::new(),
            recommendations: recs,
            verdict: Verdict::default(),
            stability: Vec::new(),
            threads_above_set: Vec::new(),
        }
    }

    #[test]
    fn answers_agree_by_the_configuration_to_use() {
        let a = summary(vec![
            rec(64, 2, true),
            rec(128, 2, true),
            rec(512, 1, false),
        ]);
        let b = summary(vec![
            rec(64, 2, true),
            rec(128, 1, false),
            rec(1024, 1, false),
        ]);
        let c = compare(&a, &b);
        assert_eq!((c.shared, c.agree), (2, 1), "{c:?}");
        assert_eq!(c.differ.len(), 1);
        assert!(c.differ[0].0.contains("n=128"));
        assert!((c.share() - 0.5).abs() < 1e-12);
        let text = render(&c, "b");
        assert!(
            text.contains("1 of 2 shared recommendations agree (50%)"),
            "{text}"
        );
        assert!(
            text.contains("tasks=2 (recommended)")
                && text.contains("tasks=1 (the default stands, decided)"),
            "{text}"
        );
    }

    #[test]
    fn a_run_short_of_rounds_is_told_from_a_contradiction() {
        let overlap = Some(Stands::Overlap(Ratio::within(1.15, 0.98, 1.35)));
        // n=64: both recommend tasks=2; n=128: one recommends, the other's interval straddles
        // the margin; n=256: one recommends, the other decided the default was the fastest.
        let a = summary(vec![rec(64, 2, true), rec(128, 2, true), rec(256, 2, true)]);
        let b = summary(vec![
            rec(64, 2, true),
            rec_why(128, 1, overlap),
            rec(256, 1, false),
        ]);
        let c = compare(&a, &b);
        assert_eq!((c.shared, c.agree, c.differ.len()), (3, 1, 2), "{c:?}");
        assert_eq!((c.decided_both, c.decided_both_agree), (2, 1), "{c:?}");
        let text = render(&c, "b");
        assert!(
            text.contains(
                "Of the 2 that differ: 1 decided differently in both runs, 1 not decided in one \
                 of them (the default kept without the evidence: an interval across the margin, \
                 too few rounds, a single run); where both decided, 1 of 2 agree (50.0%)."
            ),
            "{text}"
        );
        assert!(
            text.contains("tasks=1 (the default stands, undecided)"),
            "{text}"
        );
        // No default measured in the other run: a measurement missing, not a contradiction;
        // with nothing decided in both, no share of them is printed.
        let c = compare(
            &summary(vec![rec(64, 2, true)]),
            &summary(vec![rec_why(64, 1, Some(Stands::NoDefault))]),
        );
        assert_eq!((c.differ.len(), c.decided_both), (1, 0), "{c:?}");
        let text = render(&c, "b");
        assert!(
            text.contains("0 decided differently in both runs, 1 not decided")
                && !text.contains("where both decided"),
            "{text}"
        );
    }

    /// A variant of 64 products of `n`^2 measured in four rounds (ms), with a pooled spread.
    fn timed(n: u64, cell: &str, ms: [f64; 4]) -> Row {
        let full_id = format!("oversubscription/matmul/layer=pthreads,n={n},pairs=64/{cell}");
        let mut rounds = crate::results::Rounds::default();
        for (round, v) in (1..).zip(ms) {
            rounds.set(round, v * 1e6);
        }
        let mut t = crate::model::between_rounds(rounds).expect("four rounds");
        t.pooled = Some(crate::model::Pooled { sd: 0.03, df: 40 });
        Row::timed(&full_id, t)
    }

    #[test]
    fn the_intervals_held_where_both_ratios_lie_within_them() {
        let run = |two_by_one_at_512: f64| {
            let mut s = summary(Vec::new());
            s.machine.logical_cores = 2;
            s.results = vec![
                timed(256, "tasks=1,blas_threads=2", [30.0, 30.5, 29.5, 30.0]),
                timed(256, "tasks=2,blas_threads=1", [20.0, 20.2, 19.8, 20.0]),
                timed(512, "tasks=1,blas_threads=2", [100.0, 101.0, 99.0, 100.0]),
                timed(512, "tasks=2,blas_threads=1", [two_by_one_at_512; 4]),
            ];
            s
        };
        // At n = 512 one run has 2.0x, the other 1.25x, each within a few percent.
        let c = compare(&run(50.0), &run(80.0));
        assert_eq!((c.held.compared, c.held.held), (2, 1), "{:?}", c.held);
        let (id, apart, ..) = c.held.farthest.clone().expect("one fell outside");
        assert!(id.contains("n=512") && apart > 5.0, "{id} {apart}");
        let text = render(&c, "b");
        assert!(
            text.contains("of 2 comparisons with a default both measured in rounds, 1 (50.0%)"),
            "{text}"
        );
        let same = compare(&run(50.0), &run(50.5));
        assert_eq!(
            (same.held.compared, same.held.held),
            (2, 2),
            "{:?}",
            same.held
        );
    }

    #[test]
    fn settings_compare_without_their_comments() {
        assert_eq!(
            command("export OPENBLAS_NUM_THREADS=1   # batches of products below n=512"),
            "export OPENBLAS_NUM_THREADS=1"
        );
        assert_eq!(
            command("let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;   // x"),
            "let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;"
        );
    }
}
