//! The libraries' section of the page: each layer's best configuration side by side, the chart
//! across the task-level sizes, and the libraries' findings.

use std::collections::BTreeMap;
use std::fmt::Write;

use parcost::id::layer as names;

use crate::charts::{self, Axis, Marks, Point, Series};
use crate::facts::Row;
use crate::libraries::{Comparison, by_size, comparisons, findings, lasting_side, rate, share};
use crate::markup::esc;
use crate::results::Value;
use crate::summary::Summary;

/// The section of the page: the libraries' best configurations side by side, the chart of
/// each layer across the task-level sizes, and the findings. Nothing without a native layer.
pub fn section(h: &mut String, s: &Summary) -> anyhow::Result<()> {
    let all = comparisons(&s.results);
    if !all.iter().any(Comparison::has_native) {
        return Ok(());
    }
    let limits = s.machine.limits;
    let _ = write!(
        h,
        "<h2 id=\"libraries\">Libraries side by side</h2><p class=\"muted\">The same workloads \
         with the same seeded inputs under each layer: OpenBLAS's builds, faer (pure Rust; its \
         parallelism is a Par per call and runs as rayon jobs in the caller's pool) and \
         matrixmultiply (ndarray's dot without BLAS; its own pool, sized once per process by \
         MATMUL_NUM_THREADS). T is the task pool; B is OpenBLAS's thread count, faer's \
         Par::rayon(B) (Par::Seq for 1) in a pool of max(T, B), or MATMUL_NUM_THREADS. Every \
         result was checked against OpenBLAS's serial result within 1e-10 of the largest value \
         before it was timed. Each cell below is that layer's best configuration; the share of \
         the peak is of the best DGEMM rate measured in this run.</p>"
    );
    let p = s.machine.logical_cores.max(1);
    for f in findings(&s.results, p, limits) {
        let _ = writeln!(
            h,
            "<div class=\"finding{}\"><b>{}</b>: {}</div>",
            if f.seen { "" } else { " unseen" },
            esc(&f.title),
            esc(&f.text)
        );
    }
    chart(h, &s.results)?;
    h.push_str(
        "<table><tr><th>workload</th><th>layer</th><th>best configuration</th>\
         <th class=\"num\">time</th><th class=\"num\">95% interval</th><th class=\"num\">rate\
         </th><th class=\"num\">of best DGEMM</th><th class=\"num\">vs fastest</th></tr>",
    );
    for c in &all {
        let fastest = &c.entries[0];
        for (i, e) in c.entries.iter().enumerate() {
            let t = e.time();
            let rate_text = match rate(e.best) {
                Some(g) => format!("{:.1} GFLOP/s", g.estimate),
                None => e
                    .best
                    .throughput
                    .as_ref()
                    .map_or_else(String::new, |t| format!("{:.2} {}", t.estimate, t.unit)),
            };
            let of_peak = rate(e.best)
                .zip(limits.dgemm_peak)
                .map(|(g, peak)| crate::markup::percent(share(g, peak)))
                .unwrap_or_default();
            let vs = if i == 0 {
                "fastest".to_owned()
            } else {
                crate::findings::ratio(&t, &fastest.time()).words()
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{:.3} ms</td>\
                 <td class=\"num\">{:.3} to {:.3}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                if i == 0 {
                    esc(&format!("{}: {}", c.suite, c.title()))
                } else {
                    String::new()
                },
                esc(&names::describe(&e.layer)),
                esc(&e.config()),
                t.estimate / 1e6,
                t.lower / 1e6,
                t.upper / 1e6,
                esc(&rate_text),
                of_peak,
                esc(&vs)
            );
        }
    }
    h.push_str("</table>\n");
    Ok(())
}

/// GFLOP/s of each layer's best configuration at each task-level size, one line a layer.
fn chart(h: &mut String, rows: &[Row]) -> anyhow::Result<()> {
    let mut by_layer: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for c in comparisons(rows)
        .iter()
        .filter(|c| c.suite == parcost::id::TASK_LEVEL.name)
    {
        let Some(n) = c.params.get(parcost::id::key::N).and_then(Value::int) else {
            continue;
        };
        for e in &c.entries {
            if let Some(g) = rate(e.best) {
                by_layer.entry(e.layer.clone()).or_default().push(Point {
                    x: n as f64,
                    y: g.estimate,
                    lo: g.lower,
                    hi: g.upper,
                });
            }
        }
    }
    if by_layer.len() < 2 {
        return Ok(());
    }
    let mut marks = Marks::default();
    let mut takeaways = Vec::new();
    for layer in names::NATIVE {
        let by_n = by_size(rows, layer);
        match lasting_side(&by_n) {
            Some((from, s)) => {
                let word = if s > 0 { "faster" } else { "slower" };
                if by_n.first().is_some_and(|(n, _)| *n != from) {
                    takeaways.push(format!("{layer} {word} than OpenBLAS from n={from} on"));
                    marks
                        .vertical
                        .push((from as f64, format!("{layer} {word} from n={from}")));
                } else {
                    takeaways.push(format!("{layer} {word} than OpenBLAS at every size"));
                }
            }
            None if !by_n.is_empty() => {
                takeaways.push(format!("{layer} and OpenBLAS: no lasting winner by size"));
            }
            None => {}
        }
    }
    if !takeaways.is_empty() {
        let _ = write!(
            h,
            "<p class=\"takeaway\">{}.</p>",
            esc(&takeaways.join("; "))
        );
    }
    let series: Vec<Series> = by_layer
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            Series { name, points }
        })
        .collect();
    let svg = charts::lines(
        "task-level: GFLOP/s of the batch, each layer's best configuration at each size",
        Axis::log2("matrix size n"),
        Axis::linear("GFLOP/s"),
        &series,
        &marks,
    )?;
    let _ = writeln!(h, "<figure>{svg}</figure>");
    Ok(())
}
