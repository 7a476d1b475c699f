//! The ranks-x-threads section of the page: an R x B heatmap per layer with CPU/wall and
//! context switches, batch against scatter, the jobs' start-up and the recommendations in words.

use std::fmt::Write;

use parcost::id::key;

use crate::facts::Recommendation;
use crate::figures::{BatchScatter, Figures, Startup};
use crate::markup::{esc, fastest, heat_figure, ms, slower, takeaway};
use crate::model::AdviceKind;
use crate::mpi::{SUITE, batch_words};
use crate::results::Value;

/// The suite's part of the page.
pub fn section(
    h: &mut String,
    figs: &Figures,
    recs: &[Recommendation],
    p: u64,
) -> anyhow::Result<()> {
    for g in &figs.mpi {
        // The takeaway: each layer's fastest and slowest cell.
        let said: Vec<String> = g
            .layers
            .iter()
            .map(|(layer, e)| {
                let slowest = e
                    .slowest
                    .as_ref()
                    .map(|w| format!("; slowest {} at {}", w.name, slower(w)))
                    .unwrap_or_default();
                format!(
                    "{layer} (ranks x BLAS threads): {}{slowest}",
                    fastest(e, "", &format!(", {}", ms(e.time_ns)))
                )
            })
            .collect();
        takeaway(h, &format!("{}. {}.", g.title, said.join("; ")));
        heat_figure(h, &g.title, &g.panels)?;
        for panel in &g.panels {
            super::usage(
                h,
                &format!("{}, {}: CPU/wall, switches", g.workload, panel.title),
                panel,
                |r| crate::facts::count(r, "rank"),
            );
        }
    }
    batch_against_scatter(h, &figs.batch_scatter);
    if let Some(s) = &figs.startup {
        startup(h, s);
    }
    let _ = write!(
        h,
        "<h3>Recommendation</h3><p class=\"muted\">The fastest grid cell where it beat the \
         default beyond both 95% intervals and the {:.0}% margin, else the default. The default is \
         measured as a user runs it: mpirun -np {p} with OpenMPI's own binding and \
         OPENBLAS_NUM_THREADS unset; the grid's cells run with --bind-to none.</p><ul>",
        100.0 * crate::model::MARGIN
    );
    for r in recs.iter().filter(|r| r.suite == SUITE) {
        let int = |k: &str| r.best.get(k).and_then(Value::int).unwrap_or(0);
        let (ranks, b) = (int(key::RANKS), int(key::BLAS_THREADS));
        // Words only: the command to copy is in the verdict's settings, where it was tried.
        let said = match (r.advice, &r.speedup_vs_default) {
            (AdviceKind::Recommend, Some(s)) => format!(
                "{} x {} each (ranks not bound), {} faster than the default",
                crate::facts::count(ranks, "rank"),
                crate::facts::count(b, "BLAS thread"),
                s.words()
            ),
            (AdviceKind::Keep(why), _) => {
                format!(
                    "keep the default, mpirun -np {p} with nothing set ({})",
                    why.words()
                )
            }
            (AdviceKind::Recommend, None) => String::new(),
        };
        let _ = write!(
            h,
            "<li>{}, {}: {}</li>",
            esc(&r.workload),
            esc(&format!(
                "{}, {}",
                batch_words(&r.params),
                r.params
                    .get(key::LAYER)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )),
            esc(&said)
        );
    }
    h.push_str("</ul>\n");
    Ok(())
}

/// scatter over batch in every cell both measured.
fn batch_against_scatter(h: &mut String, rows: &[BatchScatter]) {
    if rows.is_empty() {
        return;
    }
    let mut body = String::new();
    for r in rows {
        let ratio = match r.ratio.interval() {
            Some((lo, hi)) => format!("{:.2}x ({lo:.2} to {hi:.2})", r.ratio.estimate),
            None => format!("{:.2}x (one run)", r.ratio.estimate),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            esc(&r.layer),
            r.cell,
            ms(r.batch_ns),
            ms(r.scatter_ns),
            esc(&ratio)
        );
    }
    let _ = writeln!(
        h,
        "<h3>batch against scatter</h3><p class=\"muted\">scatter does what batch does and also \
         moves the arrays: rank 0 scatters the inputs (MPI_Scatterv) and gathers the results \
         (MPI_Gatherv) every iteration. With one rank nothing crosses between processes.</p>\
         <table><tr><th>layer</th><th>ranks x BLAS threads</th><th class=\"num\">batch</th>\
         <th class=\"num\">scatter</th><th class=\"num\">scatter / batch</th></tr>{body}</table>"
    );
}

/// Each job's start-up, one run a cell.
fn startup(h: &mut String, s: &Startup) {
    let iterations = s
        .iterations
        .map(|i| format!(", the time of {i:.0} iterations of the fastest batch"))
        .unwrap_or_default();
    let _ = write!(h, "<h3>Job start-up</h3>");
    takeaway(
        h,
        &format!(
            "Starting a job (mpirun to rank 0's first answer, every rank up) took {} to {}, \
             median {}{iterations}; one run a cell, so no interval.",
            ms(s.min_ns),
            ms(s.max_ns),
            ms(s.median_ns)
        ),
    );
    h.push_str("<table><tr><th>layer</th>");
    for (r, b) in &s.cells {
        let _ = write!(h, "<th class=\"num\">{r} x {b}</th>");
    }
    h.push_str("</tr>");
    for (layer, times) in &s.layers {
        let _ = write!(h, "<tr><td>{}</td>", esc(layer));
        for t in times {
            let _ = write!(
                h,
                "<td class=\"num\">{}</td>",
                t.map_or_else(String::new, ms)
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>\n");
}
