//! The libraries' section of the page: each layer's best configuration side by side, the chart
//! across the task-level sizes, and the libraries' findings.

use std::fmt::Write;

use crate::charts::{self, Axis, Marks};
use crate::figures::{Lasting, Libraries};
use crate::markup::{esc, percent};

/// The section of the page: the libraries' best configurations side by side, the chart of
/// each layer across the task-level sizes, and the findings (shown only with a native layer).
pub fn section(h: &mut String, libs: &Libraries) -> anyhow::Result<()> {
    let _ = write!(
        h,
        "<h2 id=\"libraries\">Libraries side by side</h2><p class=\"muted\">The same workloads \
         with the same seeded inputs under each layer: OpenBLAS's builds, faer (pure Rust; its \
         parallelism is a Par per call and runs as rayon jobs in the caller's pool) and \
         matrixmultiply (ndarray's dot without BLAS; its own pool, sized once per process by \
         MATMUL_NUM_THREADS). T is the task pool; B is OpenBLAS's thread count, faer's \
         Par::rayon(B) (Par::Seq for 1) in a pool of max(T, B), or the threads matrixmultiply ran. Every \
         result was checked against OpenBLAS's serial result within 1e-10 of the largest value \
         before it was timed. Each cell below is that layer's best configuration; the share of \
         the peak is of the best DGEMM rate measured in this run.</p><p class=\"muted\">{} {}</p>",
        esc(parcost::id::layer::FAER_GRID_NOTE),
        esc(parcost::id::layer::MATRIXMULTIPLY_GRID_NOTE)
    );
    for f in &libs.findings {
        let _ = writeln!(
            h,
            "<div class=\"finding{}\"><b>{}</b>: {}</div>",
            if f.seen { "" } else { " unseen" },
            esc(&f.title),
            esc(&f.text)
        );
    }
    chart(h, libs)?;
    h.push_str(
        "<table><tr><th>workload</th><th>layer</th><th>best configuration</th>\
         <th class=\"num\">time</th><th class=\"num\">95% interval</th><th class=\"num\">rate\
         </th><th class=\"num\">of best DGEMM</th><th class=\"num\">vs fastest</th></tr>",
    );
    for r in &libs.table {
        let rate_text = match (r.gflops, &r.throughput) {
            (Some(g), _) => format!("{:.1} GFLOP/s", g.estimate),
            (None, Some(t)) => format!("{:.2} {}", t.estimate, t.unit),
            (None, None) => String::new(),
        };
        let vs = r
            .vs_fastest
            .map_or_else(|| "fastest".to_owned(), |v| v.words());
        // Nanoseconds shown in milliseconds.
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{:.3} ms</td>\
             <td class=\"num\">{:.3} to {:.3}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            r.workload.as_deref().map(esc).unwrap_or_default(),
            esc(&r.layer),
            esc(&r.config),
            r.time.estimate * 1e-6,
            r.time.lower * 1e-6,
            r.time.upper * 1e-6,
            esc(&rate_text),
            r.of_peak.map(percent).unwrap_or_default(),
            esc(&vs)
        );
    }
    h.push_str("</table>\n");
    Ok(())
}

/// GFLOP/s of each layer's best configuration at each task-level size, one line a layer.
fn chart(h: &mut String, libs: &Libraries) -> anyhow::Result<()> {
    if libs.chart.len() < 2 {
        return Ok(());
    }
    let mut marks = Marks::default();
    let mut takeaways = Vec::new();
    for (layer, side) in &libs.lasting {
        let word = |faster: bool| if faster { "faster" } else { "slower" };
        match *side {
            Lasting::From { n, faster } => {
                let word = word(faster);
                takeaways.push(format!("{layer} {word} than OpenBLAS from n={n} on"));
                marks
                    .vertical
                    .push((n as f64, format!("{layer} {word} from n={n}")));
            }
            Lasting::Every { faster } => {
                takeaways.push(format!(
                    "{layer} {} than OpenBLAS at every size",
                    word(faster)
                ));
            }
            Lasting::None => {
                takeaways.push(format!("{layer} and OpenBLAS: no lasting winner by size"));
            }
        }
    }
    if !takeaways.is_empty() {
        let _ = write!(
            h,
            "<p class=\"takeaway\">{}.</p>",
            esc(&takeaways.join("; "))
        );
    }
    let svg = charts::lines(
        "task-level: GFLOP/s of the batch, each layer's best configuration at each size",
        Axis::log2("matrix size n"),
        Axis::linear("GFLOP/s"),
        &libs.chart,
        &marks,
    )?;
    let _ = writeln!(h, "<figure>{svg}</figure>");
    Ok(())
}
