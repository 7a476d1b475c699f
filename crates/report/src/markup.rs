//! The page's small pieces shared by every section: escaping, times and ratios in words,
//! figures, heatmaps and takeaways. Formatting only: nothing here compares or judges; the
//! comparisons come judged from [`crate::figures`].

use std::fmt::Write;

use crate::charts;
use crate::figures::{Extremes, HeatPanel, Versus};
use crate::model::Separation;
use crate::results::Estimate;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn ms(ns: f64) -> String {
    format!("{:.3} ms", ns / 1e6)
}

/// A ratio with its interval: `1.52x (1.40 to 1.66)`.
pub fn times(e: Estimate) -> String {
    format!("{:.2}x ({:.2} to {:.2})", e.estimate, e.lower, e.upper)
}

/// A share with its interval: `82% (79 to 85)`.
pub fn percent(e: Estimate) -> String {
    format!(
        "{:.0}% ({:.0} to {:.0})",
        100.0 * e.estimate,
        100.0 * e.lower,
        100.0 * e.upper
    )
}

pub fn figure(h: &mut String, svg: anyhow::Result<String>) -> anyhow::Result<()> {
    let _ = writeln!(h, "<figure>{}</figure>", svg?);
    Ok(())
}

/// The heatmaps of one workload, a panel a layer (nothing when no layer has a cell).
pub fn heat_figure(h: &mut String, title: &str, panels: &[HeatPanel]) -> anyhow::Result<()> {
    if panels.is_empty() {
        return Ok(());
    }
    figure(
        h,
        charts::heatmaps(
            &format!("{title}: times the best cell of each layer"),
            panels,
        ),
    )
}

/// `fastest {at}{name}{detail}`; when the fastest did not separate from the runner-up, it is
/// called fastest by its estimate only, and the runner-up is named with the ratio.
pub fn fastest(e: &Extremes, at: &str, detail: &str) -> String {
    match &e.runner_up {
        Some(next) if !e.leads() => format!(
            "fastest by its estimate {at}{}{detail}, not separated from {}: {}",
            e.fastest,
            next.name,
            next.ratio.words()
        ),
        _ => format!("fastest {at}{}{detail}", e.fastest),
    }
}

/// How much slower a cell was: its ratio with the interval, marked when it did not separate.
pub fn slower(v: &Versus) -> String {
    match v.separation {
        Separation::Above | Separation::Unknown => v.ratio.words(),
        _ => format!("{} (not separated)", v.ratio.words()),
    }
}

/// A one-line takeaway over a chart, computed from the data it draws.
pub fn takeaway(h: &mut String, text: &str) {
    let _ = write!(h, "<p class=\"takeaway\">{}</p>", esc(text));
}
