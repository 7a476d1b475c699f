//! The summary as a terminal shows it at the end of `cargo xtask bench` or `report`: the
//! verdict first, then the noise, the findings and the recommendations.

use std::fmt::Write;

use crate::model::AdviceKind;
use crate::summary::Summary;

/// `writeln!` into a `String`, which cannot fail.
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

/// The summary as the terminal shows it after a run: kernel, noise, findings, recommendations.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    if !s.verdict.lines.is_empty() {
        outln!(out, "What to set on this machine:");
        for l in &s.verdict.lines {
            outln!(
                out,
                "  {}{}",
                l.text,
                if l.not_separated() {
                    " (not separated)"
                } else {
                    ""
                }
            );
        }
        for a in s.verdict.settings.iter().filter(|a| a.shown()) {
            outln!(out, "    {}", a.line);
        }
        for a in s.verdict.settings.iter().filter(|a| !a.shown()) {
            let why = match &a.tried {
                Some(crate::settings::Outcome::Failed { why }) => why.as_str(),
                _ => "not tried",
            };
            outln!(
                out,
                "  left out (it did not run as printed here: {why}): {}",
                a.line
            );
        }
    }
    if let Some(o) = &s.machine.openblas {
        let peak = s
            .machine
            .limits
            .theoretical_peak_gflops
            .map(|t| format!("; theoretical peak {t:.0} GFLOP/s"))
            .unwrap_or_default();
        outln!(
            out,
            "Kernel: the suites ran {} ({}); OpenBLAS itself chooses {}{peak}",
            o.kernel,
            o.kernel_source,
            o.core
        );
    }
    let noisy: Vec<_> = s.machine.noise.iter().filter(|n| n.flagged).collect();
    if !s.machine.noise.is_empty() {
        if noisy.is_empty() {
            outln!(
                out,
                "Noise: quiet enough for every suite (calibrations within {limit:.0}%, foreign \
                 load and steal under {limit:.0}% together)",
                limit = 100.0 * parcost::noise::NOISE_LIMIT
            );
        }
        for n in noisy {
            outln!(
                out,
                "Noise: {} {}: capacity {:.2} then {:.2}, foreign load {:.0}%, steal {:.0}%: rerun \
                 with `{}`",
                n.suite,
                n.layer.as_deref().unwrap_or(""),
                n.capacity_before,
                n.capacity_after,
                100.0 * n.foreign_load,
                100.0 * n.steal,
                n.rerun.as_deref().unwrap_or("")
            );
        }
    }
    if !s.threads_above_set.is_empty() {
        outln!(
            out,
            "Threads: in {} cells more threads ran than were set (the first: {}, {} ran, {} set)",
            s.threads_above_set.len(),
            s.threads_above_set[0].full_id,
            s.threads_above_set[0].ran,
            s.threads_above_set[0].set
        );
    }
    outln!(out, "Findings:");
    for f in &s.findings {
        outln!(out, "  [{}] {}: {}", f.suite, f.title, f.text);
    }
    if s.findings.is_empty() {
        outln!(out, "  none could be computed");
    }
    outln!(
        out,
        "Recommendations (the fastest, or the simplest tied with it, only when it beat the \
         default beyond the interval of their ratio and the {:.0}% margin; the default's time \
         over the pick's):",
        100.0 * crate::model::MARGIN
    );
    for r in &s.recommendations {
        let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let best: Vec<String> = r.best.iter().map(|(k, v)| format!("{k}={v}")).collect();
        // Nothing chosen (no default measured, one configuration): say so, not "use ".
        let best = if best.is_empty() {
            "nothing".to_owned()
        } else {
            best.join(",")
        };
        let verdict = match r.advice {
            AdviceKind::Recommend => String::new(),
            AdviceKind::Keep(why) => format!(" (kept: {})", why.words()),
        };
        outln!(
            out,
            "  {:<17} {:<10} {:<34} use {:<34} {}{verdict}",
            r.suite,
            r.workload,
            params.join(","),
            best,
            r.speedup_vs_default
                .as_ref()
                .map_or_else(|| "-".to_owned(), crate::model::Ratio::words),
        );
    }
    out
}

/// What `cargo xtask try` found, as the terminal shows it: the answer first, the prediction
/// beside it, then each configuration with what its threads really did.
pub fn tried(t: &crate::tried::Tried) -> String {
    use crate::tried::{EnvChange, answer_words, prediction_words, runs_words};
    let mut out = String::new();
    outln!(out, "Your program: {}", answer_words(t));
    if let Some(p) = prediction_words(t) {
        outln!(out, "  {p}");
    }
    for n in &t.notes {
        outln!(out, "  {n}");
    }
    outln!(
        out,
        "  {:<28} {:>9} {:>30} {:>8} {:>5} {:>9} {:>14}",
        "configuration",
        "median",
        "as is over it",
        "threads",
        "busy",
        "cpu/wall",
        "switches v/i"
    );
    for c in &t.configurations {
        let mut name = c.name.clone();
        if c.output_changed {
            name.push_str(" (output changed)");
        }
        outln!(
            out,
            "  {:<28} {:>7.3} s {:>30} {:>8} {:>5} {:>9.2} {:>14}",
            name,
            c.median_ns / 1e9,
            c.vs_as_is
                .map_or_else(|| "-".to_owned(), |r| runs_words(&r)),
            c.peak_threads,
            c.peak_busy,
            c.cpu_per_wall,
            format!("{}/{}", c.voluntary_switches, c.involuntary_switches)
        );
        if !c.env.is_empty() {
            outln!(
                out,
                "  {:<28} {}",
                "",
                c.env
                    .iter()
                    .map(EnvChange::words)
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    outln!(
        out,
        "  {} on {}, {}: {:.0} s; threads: the most alive and busy at once over the program's processes",
        t.command,
        t.cpu,
        t.date,
        t.took_s
    );
    out
}
