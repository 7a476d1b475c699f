//! The page's section on the user's own program (`cargo xtask try`): the answer first, the
//! prediction beside it, then each configuration with what its threads really did.

use std::fmt::Write;

use crate::markup::esc;
use crate::tried::{EnvChange, Tried, answer_words, prediction_words, runs_words};

/// The section, right after the verdict: it answers for the program the user runs.
pub fn section(h: &mut String, t: &Tried) {
    let _ = write!(
        h,
        "<section id=\"your-program\"><h2>Your program</h2>\n<p><strong>{}</strong></p>\n",
        esc(&answer_words(t))
    );
    if let Some(p) = prediction_words(t) {
        let _ = writeln!(h, "<p>{}</p>", esc(&p));
    }
    let _ = writeln!(
        h,
        "<p class=\"muted\"><code>{}</code> on {} ({} logical CPUs), {}: {} configurations in \
         {:.0} s, each run a process of its own, interleaved; the settings from {}. Intervals: \
         95% bootstrap of the median run, and of a ratio the t-interval of the runs paired by \
         round; \"faster\" is the report's rule for advice (beyond the interval and the 5% \
         margin).</p>",
        esc(&t.command),
        esc(&t.cpu),
        t.logical_cores,
        esc(&t.date),
        t.configurations.len(),
        t.took_s,
        esc(&t.summary)
    );
    for n in &t.notes {
        let _ = writeln!(h, "<p class=\"muted\">{}</p>", esc(n));
    }
    h.push_str(
        "<table><tr><th>Configuration</th><th>Environment</th><th>Cell (tasks x BLAS threads)</th>\
         <th>Median run</th><th>As is over it</th><th>Threads alive / busy at once</th>\
         <th>CPU / wall</th><th>Context switches (voluntary / involuntary)</th></tr>\n",
    );
    for c in &t.configurations {
        let env = if c.env.is_empty() {
            "as set".to_owned()
        } else {
            c.env
                .iter()
                .map(EnvChange::words)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let vs = c
            .vs_as_is
            .map_or_else(|| "-".to_owned(), |r| runs_words(&r));
        let mut name = c.name.clone();
        if c.verdict {
            name.push_str(" (the verdict's settings)");
        }
        if c.output_changed {
            name.push_str(" (changed the output: never recommended)");
        }
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{} x {}</td><td>{:.3} s ({:.3} to {:.3})</td>\
             <td>{}</td><td>{} / {} (mean busy {:.1})</td><td>{:.2}</td><td>{} / {}</td></tr>",
            esc(&name),
            esc(&env),
            c.tasks,
            c.blas_threads,
            c.median_ns / 1e9,
            c.lower_ns / 1e9,
            c.upper_ns / 1e9,
            esc(&vs),
            c.peak_threads,
            c.peak_busy,
            c.mean_busy,
            c.cpu_per_wall,
            c.voluntary_switches,
            c.involuntary_switches
        );
    }
    h.push_str("</table></section>\n");
}
