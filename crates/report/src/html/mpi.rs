//! The ranks-x-threads section of the page: an R x B heatmap per layer with CPU/wall and
//! context switches, batch against scatter, the jobs' start-up and the recommendations in words.

use std::collections::BTreeSet;
use std::fmt::Write;

use parcost::id::key;

use crate::facts::{Recommendation, Row};
use crate::findings::ratio_of;
use crate::markup::{esc, heat_figure, ms, takeaway};
use crate::model::AdviceKind;
use crate::mpi::{CmpOpt, SUITE, at, batch_words, cell, instances, instances_but, same_cell};
use crate::results::Value;

/// The suite's part of the page.
pub fn section(
    h: &mut String,
    rows: &[&Row],
    recs: &[Recommendation],
    p: u64,
) -> anyhow::Result<()> {
    for workload in ["batch", "scatter"] {
        // One figure a workload instance, a panel a layer.
        for ((_, params), cells) in instances_but(
            rows,
            workload,
            &[
                parcost::id::key::RANKS,
                parcost::id::key::BLAS_THREADS,
                parcost::id::key::LAYER,
            ],
        ) {
            let layers: BTreeSet<&str> = cells
                .iter()
                .filter_map(|r| r.name(parcost::id::key::LAYER))
                .collect();
            let title = format!("{workload}: {}", batch_words(&params));
            let mut panels = Vec::new();
            let mut grids = Vec::new();
            for layer in layers {
                let of: Vec<&Row> = cells
                    .iter()
                    .copied()
                    .filter(|r| r.name(parcost::id::key::LAYER) == Some(layer))
                    .collect();
                let axis = |k: &str| -> Vec<u64> {
                    of.iter()
                        .filter_map(|r| r.int(k))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect()
                };
                grids.push((
                    layer,
                    of.clone(),
                    axis(parcost::id::key::RANKS),
                    axis(parcost::id::key::BLAS_THREADS),
                ));
            }
            // The takeaway: each layer's best and worst cell.
            let said: Vec<String> = grids
                .iter()
                .filter_map(|(layer, of, _, _)| {
                    let best = of
                        .iter()
                        .copied()
                        .filter(|r| r.typical_ns().is_some())
                        .min_by(|a, b| a.typical_ns().total_cmp_opt(b.typical_ns()))?;
                    let worst = of
                        .iter()
                        .copied()
                        .filter(|r| r.typical_ns().is_some())
                        .max_by(|a, b| a.typical_ns().total_cmp_opt(b.typical_ns()))?;
                    Some(format!(
                        "{layer}: fastest {} (ranks x BLAS threads), {}; slowest {} at {:.1}x",
                        cell(best),
                        ms(best.typical_ns()?),
                        cell(worst),
                        worst.typical_ns()? / best.typical_ns()?
                    ))
                })
                .collect();
            takeaway(h, &format!("{title}. {}.", said.join("; ")));
            for (layer, of, ranks, blas) in &grids {
                let find = |r: u64, b: u64| at(of, r, b);
                panels.push(crate::markup::heat_panel(
                    layer,
                    ("MPI ranks", ranks.as_slice()),
                    ("BLAS threads a rank", blas.as_slice()),
                    find,
                ));
            }
            heat_figure(h, &title, &panels)?;
            for (layer, of, ranks, blas) in &grids {
                let _ = write!(
                    h,
                    "<table class=\"usage\"><tr><th>{workload}, {layer}: CPU/wall, switches</th>"
                );
                for r in ranks {
                    let _ = write!(
                        h,
                        "<th class=\"num\">{r} rank{}</th>",
                        if *r == 1 { "" } else { "s" }
                    );
                }
                h.push_str("</tr>");
                for &b in blas.iter().rev() {
                    let _ = write!(h, "<tr><th>{b} BLAS threads</th>");
                    for &r in ranks {
                        let text = at(of, r, b)
                            .and_then(|x| Some((x.cpu_per_wall?, x.context_switches?)))
                            .map_or_else(String::new, |(c, s)| format!("{c:.2}, {s}"));
                        let _ = write!(h, "<td class=\"num\">{text}</td>");
                    }
                    h.push_str("</tr>");
                }
                h.push_str("</table>\n");
            }
        }
    }
    batch_against_scatter(h, rows);
    startup(h, rows);
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
        let said = match (r.advice, r.speedup_vs_default) {
            (AdviceKind::Recommend, Some(s)) => format!(
                "{ranks} rank{} x {b} BLAS thread{} each (ranks not bound), {} faster than the \
                 default",
                if ranks == 1 { "" } else { "s" },
                if b == 1 { "" } else { "s" },
                crate::markup::times(s)
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
fn batch_against_scatter(h: &mut String, rows: &[&Row]) {
    let scatter = instances(rows, "scatter");
    let mut body = String::new();
    for ((_, params), cells) in instances(rows, "batch") {
        let Some(theirs) = scatter.get(&("scatter".to_owned(), params.clone())) else {
            continue;
        };
        let layer = params
            .get(parcost::id::key::LAYER)
            .map(ToString::to_string)
            .unwrap_or_default();
        let mut cells = cells.clone();
        cells.sort_by_key(|r| {
            (
                r.int(parcost::id::key::RANKS),
                r.int(parcost::id::key::BLAS_THREADS),
            )
        });
        for b in cells {
            let Some(s) = same_cell(theirs, b) else {
                continue;
            };
            let (Some(bt), Some(st)) = (b.typical_ns(), s.typical_ns()) else {
                continue;
            };
            let r = match (s.time_ns, b.time_ns) {
                (Some(s), Some(b)) => crate::markup::times(ratio_of(&s, &b)),
                _ => format!("{:.2}x (one run)", st / bt),
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td></tr>",
                esc(&layer),
                cell(b),
                ms(bt),
                ms(st),
                esc(&r)
            );
        }
    }
    if body.is_empty() {
        return;
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
fn startup(h: &mut String, rows: &[&Row]) {
    let starts: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.workload == "startup" && r.typical_ns().is_some())
        .collect();
    if starts.is_empty() {
        return;
    }
    let mut times: Vec<f64> = starts.iter().filter_map(|r| r.typical_ns()).collect();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let best_batch = rows
        .iter()
        .filter(|r| r.workload == "batch")
        .filter_map(|r| r.typical_ns())
        .min_by(f64::total_cmp);
    let iterations = best_batch
        .map(|b| {
            format!(
                ", the time of {:.0} iterations of the fastest batch",
                median / b
            )
        })
        .unwrap_or_default();
    let _ = write!(h, "<h3>Job start-up</h3>");
    takeaway(
        h,
        &format!(
            "Starting a job (mpirun to rank 0's first answer, every rank up) took {} to {}, \
             median {}{iterations}; one run a cell, so no interval.",
            ms(times[0]),
            ms(times[times.len() - 1]),
            ms(median)
        ),
    );
    let layers: BTreeSet<&str> = starts
        .iter()
        .filter_map(|r| r.name(parcost::id::key::LAYER))
        .collect();
    let mut cells: Vec<(u64, u64)> = starts
        .iter()
        .filter_map(|r| {
            Some((
                r.int(parcost::id::key::RANKS)?,
                r.int(parcost::id::key::BLAS_THREADS)?,
            ))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    cells.sort_unstable();
    h.push_str("<table><tr><th>layer</th>");
    for (r, b) in &cells {
        let _ = write!(h, "<th class=\"num\">{r} x {b}</th>");
    }
    h.push_str("</tr>");
    for layer in layers {
        let _ = write!(h, "<tr><td>{}</td>", esc(layer));
        for &(r, b) in &cells {
            let t = starts
                .iter()
                .find(|x| {
                    x.name(parcost::id::key::LAYER) == Some(layer)
                        && x.int(parcost::id::key::RANKS) == Some(r)
                        && x.int(parcost::id::key::BLAS_THREADS) == Some(b)
                })
                .and_then(|x| x.typical_ns());
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
