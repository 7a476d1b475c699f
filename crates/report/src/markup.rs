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

pub use crate::facts::ms_words as ms;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Ratio;

    fn versus(name: &str, estimate: f64, lower: f64, upper: f64) -> Versus {
        let ratio = Ratio::within(estimate, lower, upper);
        Versus {
            name: name.into(),
            separation: ratio.separation(crate::model::Rule::REPORT),
            ratio,
        }
    }

    #[test]
    fn a_lead_that_did_not_separate_is_not_claimed() {
        let mut e = Extremes {
            fastest: "4 x 1".into(),
            time_ns: 18.761e6,
            runner_up: Some(versus("2 x 1", 1.03, 1.01, 1.05)),
            slowest: Some(versus("8 x 4", 1.04, 0.98, 1.10)),
        };
        assert_eq!(
            fastest(&e, "", ", 18.761 ms"),
            "fastest by its estimate 4 x 1, 18.761 ms, not separated from 2 x 1: 1.03x (1.01 to 1.05)"
        );
        assert_eq!(
            slower(e.slowest.as_ref().expect("a slowest")),
            "1.04x (0.98 to 1.10) (not separated)"
        );
        e.runner_up = Some(versus("2 x 1", 1.5, 1.4, 1.6));
        assert_eq!(fastest(&e, "at ", ""), "fastest at 4 x 1");
    }
}
