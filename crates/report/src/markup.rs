//! The page's small pieces shared by every section: escaping, times and ratios in words,
//! figures, heatmap panels and takeaways. Formatting only: nothing here compares or judges.

use std::fmt::Write;

use crate::charts;
use crate::facts::Row;
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
pub fn heat_figure(
    h: &mut String,
    title: &str,
    panels: &[charts::HeatPanel],
) -> anyhow::Result<()> {
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

/// One layer's heatmap of a grid: the time of the row `find(x, y)` gives in each cell, marked
/// when it is a single run (no interval).
pub fn heat_panel<'a, 'r>(
    layer: &str,
    x: (&'a str, &'a [u64]),
    y: (&'a str, &'a [u64]),
    find: impl Fn(u64, u64) -> Option<&'r Row>,
) -> charts::HeatPanel<'a> {
    let rows: Vec<Vec<Option<&Row>>> =
        y.1.iter()
            .map(|&b| x.1.iter().map(|&t| find(t, b)).collect())
            .collect();
    let cells = rows
        .iter()
        .map(|row| row.iter().map(|r| r.and_then(Row::typical_ns)).collect())
        .collect();
    let single = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|r| r.is_some_and(|r| r.time_ns.is_none()))
                .collect()
        })
        .collect();
    charts::HeatPanel {
        title: layer.to_owned(),
        x,
        y,
        cells,
        single,
    }
}

/// A one-line takeaway over a chart, computed from the data it draws.
pub fn takeaway(h: &mut String, text: &str) {
    let _ = write!(h, "<p class=\"takeaway\">{}</p>", esc(text));
}
