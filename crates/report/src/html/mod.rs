//! The HTML page: one self-contained file, inline CSS and SVG, no script, light and dark.

pub(crate) mod libraries;
pub(crate) mod mpi;
pub(crate) mod tried;

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::charts::{self, Axis, Marks};
use crate::figures::{
    Figures, GridFigure, HeatPanel, KernelBars, RateLines, Shared, Speedups, TaskLevel, ThreadSweep,
};
pub use crate::markup::{esc, fastest, figure, heat_figure, ms, percent, slower, takeaway, times};
use crate::model::{AdviceKind, Stands};
use crate::results::Skipped;
use crate::settings::Outcome;
use crate::summary::{Finding, Limits, MachineOut, NoiseOut, Recommendation, Row, Summary};

/// The page's style: light and dark, full-width figures.
const CSS: &str = include_str!("../page.css");

/// Inputs of the page: the summary, the figures computed from it, and what was left out.
#[derive(Debug)]
pub struct Page<'a> {
    pub summary: &'a Summary,
    pub figures: &'a Figures,
    pub skipped: &'a [Skipped],
    /// Results of earlier runs, left out.
    pub stale: &'a [Skipped],
    /// Criterion's page of a benchmark, relative to the report, by full id.
    pub links: &'a BTreeMap<String, String>,
    pub other: Option<(&'a str, &'a Summary)>,
    /// What `cargo xtask try` found of the user's own program (`try.json`), if it ran.
    pub tried: Option<&'a crate::tried::Tried>,
    /// Which runs of `cargo xtask bench` were judged, when more than one is in the folder.
    pub runs: Option<&'a str>,
}

pub fn render(page: &Page) -> anyhow::Result<String> {
    let s = page.summary;
    let figs = page.figures;
    let m = &s.machine;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>parcost report</title><style>{CSS}</style></head><body>\n<h1>parcost: what naive parallelism cost on this machine</h1>\n<p class=\"muted\">Generated from Criterion's results by <code>cargo xtask report</code>. Every figure below was computed from those results. Intervals are 95%: a ratio's is between rounds (each round a fresh process) where it names its rounds; otherwise it is built from Criterion's intervals of one process's samples (for a variant too slow to sample, the range of the harness's runs).</p>\n"
    );
    verdict(&mut h, &s.verdict, m);
    if let Some(t) = page.tried {
        tried::section(&mut h, t);
    }
    h.push_str("<h2 id=\"machine\">Machine</h2><table>");
    let mut row = |k: &str, v: String| {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    };
    if let Some(runs) = page.runs {
        row("Runs", runs.to_owned());
    }
    row("CPU", m.cpu.clone());
    row(
        "Cores",
        format!("{} logical, {} physical", m.logical_cores, m.physical_cores),
    );
    row("OS", m.os.clone());
    row("rustc", m.rustc.clone().unwrap_or_else(|| "unknown".into()));
    row("git", m.git_sha.clone().unwrap_or_else(|| "unknown".into()));
    row("Measured", m.created.clone());
    if let Some(f) = &m.cpu_features {
        let what = f.family_model().unwrap_or_else(|| f.arch.clone());
        let flags = if f.checked() {
            f.flags.iter().cloned().collect::<Vec<_>>().join(" ")
        } else {
            "not checked on this architecture".to_owned()
        };
        row("CPU features", format!("{what}: {flags}"));
    }
    if let Some(peak) = &m.peak {
        row(
            "Clock",
            format!(
                "{:.2} GHz, measured (a chain of dependent adds on one core, checked against \
                 one of multiplies)",
                peak.clock_ghz
            ),
        );
        let of_cores = format!(
            "{} physical cores x {} FLOP/cycle x {:.2} GHz (features imply {}; a loop of \
             independent multiply-adds on one core reached {:.1} a cycle)",
            peak.cores,
            peak.flop_per_cycle,
            peak.clock_ghz,
            peak.implied_flop_per_cycle,
            peak.measured_flop_per_cycle
        );
        let line = if peak.together_short_of_the_cores() {
            format!(
                "{:.1} GFLOP/s: what that loop delivered on every CPU at once, less than {} \
                 cores at one core's rate ({:.1} GFLOP/s; {of_cores}): SMT siblings, a lower \
                 all-core or wide-vector clock, or slower cores",
                peak.theoretical_gflops,
                peak.cores,
                peak.of_cores_measured()
            )
        } else if peak.limited_by_together() {
            format!(
                "{:.1} GFLOP/s: what that loop delivered on every CPU at once ({of_cores}; the \
                 cores together ran at the loop's own rate)",
                peak.theoretical_gflops
            )
        } else {
            format!("{:.1} GFLOP/s = {of_cores}", peak.theoretical_gflops)
        };
        row("Theoretical peak", line);
    } else if m.cpu_features.as_ref().is_some_and(|f| !f.checked()) {
        row(
            "Theoretical peak",
            "none: the clock and FMA loops that measure it are x86-64 only; every \"% of peak\" \
             here is of the best DGEMM measured"
                .to_owned(),
        );
    }
    if let Some(o) = &m.openblas {
        row("OpenBLAS", o.config.clone());
        let kernel = if parcost::kernel::same(&o.kernel, &o.core) {
            format!("{} (OpenBLAS's own choice)", o.kernel)
        } else {
            format!(
                "{} ({}); OpenBLAS itself chooses {}",
                o.kernel,
                match o.kernel_source.as_str() {
                    "environment" => "OPENBLAS_CORETYPE from the environment",
                    "auto" => "chosen by cargo xtask bench: the fastest that passed its check",
                    "named" => "cargo xtask bench --kernel",
                    _ => "the library's choice",
                },
                o.core
            )
        };
        row("Kernel the suites ran", kernel);
        row("Layers measured", o.layers.join(", "));
    }
    row(
        "Best DGEMM measured",
        m.limits.dgemm_peak_gflops.map_or_else(
            || "not measured (blas-tuning)".into(),
            |g| {
                let of = figs
                    .peak_share
                    .map(|share| format!(", {:.0}% of the theoretical peak", 100.0 * share))
                    .unwrap_or_default();
                format!("{g:.1} GFLOP/s (best of blas-tuning/matmul with that kernel{of})")
            },
        ),
    );
    row(
        "memcpy",
        m.limits.memcpy_gbps.map_or_else(
            || "not measured (array-sharing)".into(),
            |g| format!("{g:.2} GB/s (array-sharing/copy at its largest size)"),
        ),
    );
    h.push_str("</table>\n");
    noise(&mut h, &m.noise);
    stability(&mut h, &s.stability, &s.results);
    threads_seen(&mut h, &s.threads_above_set);

    h.push_str("<h2 id=\"findings\">Findings</h2>\n");
    if s.findings.is_empty() {
        h.push_str("<p>No finding could be computed from these results.</p>");
    }
    for f in &s.findings {
        finding(&mut h, f);
    }

    recommendations(&mut h, &s.recommendations);
    if let Some(libs) = &figs.libraries {
        libraries::section(&mut h, libs)?;
    }

    let p = m.logical_cores.max(1) as u64;
    for suite in parcost::id::SUITES.map(|s| s.name) {
        let rows: Vec<&Row> = s.results.iter().filter(|r| r.suite == suite).collect();
        let _ = write!(
            h,
            "<h2 id=\"{suite}\">{}</h2>\n<p class=\"muted\">{}</p>",
            esc(suite),
            esc(about(suite))
        );
        if rows.is_empty() {
            let _ = write!(
                h,
                "<p><b>Missing:</b> no results for this suite. Produce them with <code>cargo xtask bench --suite {suite}</code>.</p>"
            );
            continue;
        }
        for f in s.findings.iter().filter(|f| f.suite == suite) {
            finding(&mut h, f);
        }
        use parcost::id as ids;
        if suite == ids::OVERSUBSCRIPTION.name {
            oversubscription(&mut h, &figs.oversubscription)?;
        } else if suite == ids::BLAS_TUNING.name {
            blas_tuning(&mut h, &figs.blas_tuning, m.physical_cores, m.limits)?;
            kernels(&mut h, &figs.kernels, m)?;
        } else if suite == ids::TASK_LEVEL.name {
            task_level(&mut h, &figs.task_level)?;
        } else if suite == ids::THREADS_VS_PROCESSES.name {
            threads_vs_processes(&mut h, &figs.threads_vs_processes)?;
        } else if suite == ids::RANKS_X_THREADS.name {
            mpi::section(&mut h, figs, &s.recommendations, p)?;
        } else {
            array_sharing(&mut h, &figs.array_sharing, m.limits.memcpy_gbps)?;
        }
        table(&mut h, &rows, page.links);
    }

    if let Some((name, other)) = page.other {
        compare(&mut h, s, name, other, &figs.shared);
    }
    if !page.skipped.is_empty() {
        h.push_str("<h2 id=\"skipped\">Left out</h2><p>These files or ids could not be used:</p>");
        left_out(&mut h, page.skipped);
    }
    if !page.stale.is_empty() {
        let _ = write!(
            h,
            "<h2 id=\"stale\">Earlier runs left out</h2><details><summary>{} results are from \
             earlier runs than the ones judged here, so they are not mixed with them</summary>",
            page.stale.len()
        );
        left_out(&mut h, page.stale);
        h.push_str("</details>");
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// A list of what was left out and why.
fn left_out(h: &mut String, items: &[Skipped]) {
    h.push_str("<ul>");
    for sk in items {
        let _ = write!(
            h,
            "<li><code>{}</code>: {}</li>",
            esc(&sk.what),
            esc(&sk.why)
        );
    }
    h.push_str("</ul>");
}

/// The verdict, first on the page: what to set, each line linked to its evidence.
fn verdict(h: &mut String, v: &crate::verdict::Verdict, m: &MachineOut) {
    if v.lines.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<section id=\"verdict\" class=\"verdict\"><h2>What to set on this machine</h2>\
         <p class=\"muted\">{} ({} logical / {} physical cores), measured {}. Advice stands only \
         where the 95% intervals separated beyond a {:.0}% margin; lines marked <i>(not \
         separated)</i> say so and why the default stands.</p><ul>",
        esc(&m.cpu),
        m.logical_cores,
        m.physical_cores,
        esc(&m.created),
        100.0 * crate::model::MARGIN
    );
    for l in &v.lines {
        let _ = write!(
            h,
            "<li class=\"{}\">{}{} <a class=\"evidence\" href=\"#{}\">evidence</a></li>",
            l.topic.name(),
            esc(&l.text),
            if l.not_separated() {
                " <i>(not separated)</i>"
            } else {
                ""
            },
            esc(&l.evidence)
        );
    }
    h.push_str("</ul>");
    let shown: Vec<&str> = v
        .settings
        .iter()
        .filter(|a| a.shown())
        .map(|a| a.line.as_str())
        .collect();
    if !shown.is_empty() {
        let _ = write!(
            h,
            "<p class=\"muted\">Each line below was run as printed on this machine (against \
             parcost-probe, which reads the setting back through the library) before this page \
             was written.</p><pre class=\"setup\"><code>{}</code></pre>",
            esc(&shown.join("\n"))
        );
    }
    let failed: Vec<String> = v
        .settings
        .iter()
        .filter(|a| !a.shown())
        .map(|a| match &a.tried {
            Some(Outcome::Failed { why }) => {
                format!("<li><code>{}</code>: {}</li>", esc(&a.line), esc(why))
            }
            _ => format!("<li><code>{}</code>: not tried</li>", esc(&a.line)),
        })
        .collect();
    if !failed.is_empty() {
        let _ = write!(
            h,
            "<details class=\"not-shown\"><summary>{} setting{} left out: {} not run as printed \
             here</summary><ul>{}</ul></details>",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            if failed.len() == 1 {
                "it did"
            } else {
                "they did"
            },
            failed.join("")
        );
    }
    h.push_str("</section>\n");
}

/// The machine's noise around each suite: how far to trust its figures.
fn noise(h: &mut String, runs: &[NoiseOut]) {
    if runs.is_empty() {
        return;
    }
    let flagged: Vec<&NoiseOut> = runs.iter().filter(|n| n.flagged).collect();
    let limit = 100.0 * parcost::noise::NOISE_LIMIT;
    let verdict = if flagged.is_empty() {
        format!(
            "The machine was quiet enough for every suite: its calibrations agree within \
             {limit:.0}% and other processes and other guests (steal) used under {limit:.0}% of \
             the CPUs."
        )
    } else {
        format!(
            "{} of {} suite runs ran on a noisy machine (calibrations {limit:.0}% apart or over \
             {limit:.0}% foreign load and steal together, in every round): their figures carry no \
             advice; rerun them with the command shown.",
            flagged.len(),
            runs.len()
        )
    };
    let _ = write!(
        h,
        "<h2 id=\"noise\">Noise</h2><p>{}</p><p class=\"muted\">Capacity: the speedup a fixed \
         scalar loop got on all cores at once over one core, before and after each suite (P on \
         a quiet machine of real cores; less on SMT siblings or a busy host). Steal: time the \
         hypervisor gave to other guests. Foreign load: CPU time of other processes.</p>\
         <table><tr><th>suite</th><th>run</th><th class=\"num\">capacity before</th>\
         <th class=\"num\">after</th><th class=\"num\">steal</th><th class=\"num\">foreign \
         load</th><th>verdict</th></tr>",
        esc(&verdict)
    );
    for n in runs {
        let name = [
            Some(n.suite.as_str()),
            n.part.as_deref(),
            n.layer.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" / ");
        let verdict = match &n.rerun {
            Some(cmd) => format!("<b>rerun</b>: <code>{}</code>", esc(cmd)),
            None => "ok".to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}{}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td>\
             <td class=\"num\">{:.1}%</td><td class=\"num\">{:.1}%</td><td>{verdict}</td></tr>",
            esc(&name),
            esc(&n.started),
            if n.quick { " (quick)" } else { "" },
            n.capacity_before,
            n.capacity_after,
            100.0 * n.steal,
            100.0 * n.foreign_load,
        );
    }
    h.push_str("</table>\n");
}

/// The cells in which more threads ran than were set (their own CPU clocks counted), if any.
fn threads_seen(h: &mut String, above: &[crate::facts::ThreadsSeen]) {
    if above.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<h2 id=\"threads-seen\">More threads ran than were set</h2><p>In these cells under an \
         OpenBLAS layer, more threads of the process were on a CPU for over {:.0}% of the run \
         than its tasks x BLAS threads: the library did not keep its count (OpenBLAS's OpenMP \
         build can reset it to OpenMP's), or a pool of the cell before was still spinning. Each \
         cell's count is in the results tables (threads ran).</p><ul>",
        100.0 * parcost::meta::BUSY_SHARE
    );
    for t in above {
        let _ = write!(
            h,
            "<li><code>{}</code>: {} ran, {} set</li>",
            esc(&t.full_id),
            t.ran,
            t.set
        );
    }
    h.push_str("</ul>\n");
}

/// How far each suite's variants spread between rounds (each a fresh process), the unstable
/// ones named, and the variants stopped as hopeless with their bounds.
fn stability(h: &mut String, suites: &[crate::rounds::Stability], rows: &[Row]) {
    let bounded: Vec<&Row> = rows.iter().filter(|r| r.at_least_ns.is_some()).collect();
    if suites.is_empty() && bounded.is_empty() {
        return;
    }
    let margin = 100.0 * crate::model::MARGIN;
    let _ = write!(
        h,
        "<h2 id=\"stability\">Stability between rounds</h2><p>Every contender (the variants \
         whose fastest first-round run was within {factor}x of their instance's best, or \
         less where their rounds would not have ended in time, as the bench said; for \
         arrays over 64 MiB none, their first round is information; the defaults, and P tasks x 1 BLAS thread) ran in rounds, each a fresh process. Spread: the standard deviation of a \
         variant's rounds (of their logarithms: about the relative spread of one round). The \
         intervals of the advice pair two variants round by round and take their width from \
         the spread pooled over each suite run (its layer and kernel), which three rounds of \
         one variant cannot tell (from at least {} rounds); they hold from run to run. A \
         variant whose rounds spread wider than the {margin:.0}% margin and wider than its \
         run's, both beyond doubt, is unstable: named here, and its own spread sets the \
         intervals it is in (which alone decide whether it is recommended).</p><table><tr><th>suite</th><th \
         class=\"num\">variants in rounds</th><th class=\"num\">median spread</th><th>pooled \
         spread (by run)</th><th>unstable (rounds, ms)</th></tr>",
        crate::model::MIN_ROUNDS,
        factor = crate::rounds::CONTENDER_FACTOR,
    );
    for s in suites {
        let unstable: Vec<String> = s
            .unstable
            .iter()
            .map(|u| {
                let rounds: Vec<String> = u
                    .rounds
                    .iter()
                    .map(|(_, v)| format!("{:.3}", v / 1e6))
                    .collect();
                format!(
                    "<code>{}</code>: {} ({:.1}% spread, {:.2}x from least to most)",
                    esc(&u.full_id),
                    rounds.join(", "),
                    100.0 * u.spread,
                    u.range()
                )
            })
            .collect();
        let pooled: Vec<String> = s
            .pooled
            .iter()
            .map(|(run, p)| format!("{}: {:.1}%", esc(run), 100.0 * p.sd))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}%</td><td>{}</td><td>{}</td></tr>",
            esc(&s.suite),
            s.measured,
            100.0 * s.median_spread,
            pooled.join(", "),
            if unstable.is_empty() {
                "none".to_owned()
            } else {
                unstable.join("<br>")
            }
        );
    }
    h.push_str("</table>\n");
    if !bounded.is_empty() {
        let _ = write!(
            h,
            "<p>Stopped as hopeless after their checked run (more than {}x the best of their \
             instance so far): a bound, never an estimate.</p><ul>",
            parcost::id::round::HOPELESS_FACTOR
        );
        for r in bounded {
            let _ = write!(
                h,
                "<li><code>{}</code>: at least {} ms</li>",
                esc(&r.full_id),
                r.at_least_ns
                    .map_or_else(String::new, |b| format!("{:.1}", b / 1e6))
            );
        }
        h.push_str("</ul>\n");
    }
}

fn about(suite: &str) -> &'static str {
    parcost::id::suite(suite).map_or("", |s| s.about)
}

fn finding(h: &mut String, f: &Finding) {
    let _ = writeln!(
        h,
        "<div class=\"finding{}\"><b>{}</b>: {}</div>",
        if f.seen { "" } else { " unseen" },
        esc(&f.title),
        esc(&f.text)
    );
}

fn recommendations(h: &mut String, recs: &[Recommendation]) {
    h.push_str("<h2 id=\"recommendations\">Recommendations</h2>\n");
    if recs.is_empty() {
        h.push_str("<p>No recommendation: the BLAS suites have no results.</p>");
        return;
    }
    let _ = write!(
        h,
        "<details><summary>What to use for each workload (the verdict above sums it up)</summary><p class=\"muted\">What to use for each workload: the fastest configuration measured (or the simplest one tied with it) when it beat the library default (1 task x all BLAS threads; all BLAS threads in blas-tuning) beyond the interval of their ratio and the {margin:.0}% margin, else the default, which is as good here. The default's time over the pick's, with the interval the advice was judged by (between rounds where it names them), the speedup over naive (all x all), and the share of the best DGEMM rate measured and of the theoretical peak the fastest reached, each with its interval.</p><table><tr><th>suite</th><th>workload</th><th>use</th><th class=\"num\">speedup over the default</th><th class=\"num\">vs naive</th><th class=\"num\">of best DGEMM</th><th class=\"num\">of theoretical peak</th></tr>",
        margin = 100.0 * crate::model::MARGIN
    );
    // A workload with one configuration (the serial layer) has nothing to recommend.
    for r in recs.iter().filter(|r| r.speedup_vs_default.is_some()) {
        let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let use_it = match r.advice {
            AdviceKind::Recommend => config(&r.best),
            AdviceKind::Keep(Stands::FastestIsDefault) => {
                format!("{} (the default, and the fastest)", config(&r.best))
            }
            AdviceKind::Keep(Stands::NoDefault) => format!(
                "no recommendation: the default was not measured (the fastest was {})",
                config(&r.fastest)
            ),
            AdviceKind::Keep(why) => format!(
                "{} (the default; the fastest, {}: {})",
                config(&r.best),
                config(&r.fastest),
                why.words()
            ),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{} ({})</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&r.suite),
            esc(&r.workload),
            esc(&params.join(", ")),
            esc(&use_it),
            r.speedup_vs_default
                .as_ref()
                .map(crate::model::Ratio::words)
                .unwrap_or_default(),
            r.speedup_vs_naive.map(times).unwrap_or_default(),
            r.efficiency.map(percent).unwrap_or_default(),
            r.efficiency_theoretical.map(percent).unwrap_or_default(),
        );
    }
    h.push_str("</table></details>\n");
}

/// `tasks=2, blas_threads=1`.
fn config(c: &BTreeMap<String, crate::results::Value>) -> String {
    c.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn oversubscription(h: &mut String, figs: &[GridFigure]) -> anyhow::Result<()> {
    for g in figs {
        // The takeaway: the best cell of all, and what each layer's slowest cell cost.
        if let Some(best) = &g.overall {
            let worst: Vec<String> = g
                .layers
                .iter()
                .filter_map(|(layer, e)| {
                    let w = e.slowest.as_ref()?;
                    Some(format!(
                        "{layer}: worst {} at {} its best",
                        w.name,
                        slower(w)
                    ))
                })
                .collect();
            takeaway(
                h,
                &format!(
                    "{}: {}; {}.",
                    g.title,
                    fastest(best, "", &format!(", {}", ms(best.time_ns))),
                    worst.join("; ")
                ),
            );
        }
        for (layer, cell, t) in &g.single {
            let _ = write!(
                h,
                "<p>Under {layer}: one configuration, {cell} (tasks x BLAS threads): {}.</p>",
                ms(*t)
            );
        }
        heat_figure(h, &g.title, &g.panels)?;
        // Why a cell is slow: busy cores (spinning counts) and context switches of one run.
        for panel in &g.panels {
            usage(
                h,
                &format!("{}: CPU/wall, switches", panel.title),
                panel,
                |t| crate::facts::count(t, "task"),
            );
        }
    }
    Ok(())
}

/// A panel's CPU/wall and context switches as a table, the largest BLAS thread count first.
pub(crate) fn usage(
    h: &mut String,
    title: &str,
    panel: &HeatPanel,
    column: impl Fn(u64) -> String,
) {
    let _ = write!(h, "<table class=\"usage\"><tr><th>{title}</th>");
    for &x in &panel.x.1 {
        let _ = write!(h, "<th class=\"num\">{}</th>", column(x));
    }
    h.push_str("</tr>");
    for (b, row) in panel.y.1.iter().zip(&panel.usage).rev() {
        let _ = write!(h, "<tr><th>{}</th>", crate::facts::count(*b, "BLAS thread"));
        for u in row {
            let text = u.map_or_else(String::new, |(c, s)| format!("{c:.2}, {s}"));
            let _ = write!(h, "<td class=\"num\">{text}</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>\n");
}

fn blas_tuning(
    h: &mut String,
    figs: &[ThreadSweep],
    physical: usize,
    limits: Limits,
) -> anyhow::Result<()> {
    let mut marks = Marks::default();
    if physical > 0 {
        marks
            .vertical
            .push((physical as f64, format!("physical ({physical})")));
        if physical > 1 {
            marks.vertical.push((
                (physical - 1) as f64,
                format!("physical-1 ({})", physical - 1),
            ));
        }
    }
    for s in figs {
        let op = &s.title;
        // The takeaway: the fastest count, its rate and share of the peak, and the worst.
        if let Some(e) = &s.extremes {
            let rate = match s.rate {
                Some(r) if s.gflops => {
                    let of = s
                        .share_of_theoretical
                        .map(|share| format!(", {:.0}% of the theoretical peak", 100.0 * share))
                        .unwrap_or_default();
                    format!(" at {:.1} GFLOP/s{of}", r.estimate)
                }
                Some(_) => String::new(),
                None => format!(", {}", ms(e.time_ns)),
            };
            let worst = e
                .slowest
                .as_ref()
                .map(|w| format!("; {} took {} as long", w.name, slower(w)))
                .unwrap_or_default();
            takeaway(h, &format!("{op}: {}{worst}.", fastest(e, "at ", &rate)));
        }
        let mut m = marks.clone();
        let y = if s.gflops {
            if op.starts_with("matmul") {
                if let Some(peak) = limits.dgemm_peak_gflops {
                    m.horizontal
                        .push((peak, format!("best measured {peak:.0} GFLOP/s")));
                }
                if let Some(t) = limits.theoretical_peak_gflops {
                    m.horizontal
                        .push((t, format!("theoretical peak {t:.0} GFLOP/s")));
                }
            }
            Axis::linear("GFLOP/s")
        } else {
            Axis::linear("time (ms)")
        };
        for (layer, p) in &s.single {
            let unit = if s.gflops { "GFLOP/s" } else { "ms" };
            let _ = write!(
                h,
                "<p>Under {layer}: one configuration, {} BLAS thread: {:.1} {unit}.</p>",
                p.x, p.y
            );
        }
        let panels: Vec<charts::Panel> = s
            .panels
            .iter()
            .map(|series| charts::Panel {
                title: series.name.clone(),
                series: vec![series.clone()],
                marks: m.clone(),
            })
            .collect();
        if !panels.is_empty() {
            figure(
                h,
                charts::lines_grid(op, &Axis::linear("BLAS threads"), &y, &panels),
            )?;
        }
    }
    Ok(())
}

/// Cost 0: every kernel of the sweep, GFLOP/s at 1 and P BLAS threads, and every trial.
fn kernels(h: &mut String, figs: &[KernelBars], m: &MachineOut) -> anyhow::Result<()> {
    let _ = write!(
        h,
        "<h3 id=\"kernels\">The kernel (cost 0)</h3><p class=\"muted\">The same products and \
         factorisations under each OpenBLAS kernel this CPU can run, one process a kernel \
         (OPENBLAS_CORETYPE), each checked before it was timed. FLOP counted: 2n^3 for a product, \
         n^3/3 for a Cholesky factorisation, 2n^3/3 + 2n^2 for a solve.</p>"
    );
    for k in figs {
        let mut marks = Marks::default();
        if let Some(t) = m.limits.theoretical_peak_gflops {
            marks
                .horizontal
                .push((t, format!("theoretical peak {t:.0} GFLOP/s")));
        }
        figure(
            h,
            charts::bars(
                &k.title,
                Axis::linear("GFLOP/s"),
                &k.kernels,
                &k.series,
                &marks,
            ),
        )?;
    }
    if !m.kernel_trials.is_empty() {
        h.push_str(
            "<table><tr><th>layer</th><th>kernel asked for</th><th>loaded</th><th>trial</th></tr>",
        );
        for t in &m.kernel_trials {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&t.layer),
                esc(t
                    .requested
                    .as_deref()
                    .unwrap_or("(none: the library's choice)")),
                esc(t.loaded.as_deref().unwrap_or("")),
                esc(&t.verdict)
            );
        }
        h.push_str("</table>");
    }
    Ok(())
}

fn task_level(h: &mut String, f: &TaskLevel) -> anyhow::Result<()> {
    let sizes: Vec<String> = f
        .work
        .iter()
        .map(|w| format!("n={}: {} products, {:.1} GFLOP", w.n, w.products, w.gflop))
        .collect();
    let _ = write!(
        h,
        "<p class=\"muted\">Work per size: {}.</p>",
        esc(&sizes.join("; "))
    );
    let mut panels = Vec::new();
    for l in &f.layers {
        let layer = &l.layer;
        if l.series.len() <= 1 {
            let _ = write!(
                h,
                "<p>Under {layer}: one way to run the batches ({}), so nothing to compare.</p>",
                l.series.first().map_or("none", |s| s.name.as_str())
            );
            continue;
        }
        let mut marks = Marks::default();
        if let Some(n) = l.crossover {
            marks.vertical.push((n as f64, format!("crossover n={n}")));
        }
        let text = match (l.win, l.crossover) {
            (Some((n, r)), Some(cx)) => format!(
                "{layer}: task-level ahead of op-level below n={cx} (by {} at n={n}); op-level not slower from n={cx} on.",
                r.words()
            ),
            (Some((n, r)), None) => format!(
                "{layer}: task-level ahead of op-level at every size up to the largest (by {} at n={n}).",
                r.words()
            ),
            _ => format!(
                "{layer}: task-level did not beat op-level beyond the intervals and the {:.0}% margin at any size.",
                100.0 * crate::model::MARGIN
            ),
        };
        takeaway(h, &text);
        panels.push(charts::Panel {
            title: layer.clone(),
            series: l.series.clone(),
            marks,
        });
    }
    if !panels.is_empty() {
        figure(
            h,
            charts::lines_grid(
                "task-level: GFLOP/s of the batch by matrix size, one panel a layer",
                &Axis::log2("matrix size n"),
                &Axis::linear("GFLOP/s"),
                &panels,
            ),
        )?;
    }
    Ok(())
}

fn threads_vs_processes(h: &mut String, figs: &[Speedups]) -> anyhow::Result<()> {
    for s in figs {
        let marks = Marks {
            vertical: vec![],
            horizontal: vec![
                (1.0, "serial".into()),
                (
                    s.linear as f64,
                    format!("linear speedup ({} cores)", s.linear),
                ),
            ],
        };
        figure(
            h,
            charts::bars(
                &format!("speedup over serial, W={}", s.workers),
                Axis::linear("speedup"),
                &s.jobs,
                &s.series,
                &marks,
            ),
        )?;
    }
    Ok(())
}

fn array_sharing(h: &mut String, figs: &[RateLines], memcpy: Option<f64>) -> anyhow::Result<()> {
    let marks = Marks {
        vertical: vec![],
        horizontal: memcpy
            .map(|m| vec![(m, format!("memcpy {m:.1} GB/s"))])
            .unwrap_or_default(),
    };
    for f in figs {
        figure(
            h,
            charts::lines(
                &f.title,
                Axis::mib("array size"),
                Axis::log("GB/s"),
                &f.series,
                &marks,
            ),
        )?;
    }
    Ok(())
}

fn table(h: &mut String, rows: &[&Row], links: &BTreeMap<String, String>) {
    h.push_str("<details><summary>All results of this suite</summary><table><tr><th>benchmark</th><th class=\"num\">time</th><th class=\"num\">95% interval</th><th class=\"num\">rate</th><th class=\"num\">CPU/wall</th><th class=\"num\">context switches</th><th class=\"num\">threads ran</th></tr>");
    for r in rows {
        let id = match links.get(&r.full_id) {
            Some(l) => format!("<a href=\"{}\">{}</a>", esc(l), esc(&r.full_id)),
            None => esc(&r.full_id),
        };
        let (time, interval) = match (r.time_ns, r.single_run_ns) {
            (Some(t), _) => (
                ms(t.estimate),
                format!("{} to {}", ms(t.lower), ms(t.upper)),
            ),
            (None, Some(s)) => (ms(s), "one run, not sampled".into()),
            _ => match r.at_least_ns {
                Some(b) => (
                    format!("&gt; {}", ms(b)),
                    "stopped as hopeless: a bound".into(),
                ),
                None => (String::new(), String::new()),
            },
        };
        let rate = r
            .throughput
            .as_ref()
            .map_or_else(String::new, |t| format!("{:.2} {}", t.estimate, t.unit));
        let _ = write!(
            h,
            "<tr><td><code>{id}</code></td><td class=\"num\">{time}</td><td class=\"num\">{interval}</td><td class=\"num\">{rate}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            r.cpu_per_wall
                .map_or_else(String::new, |c| format!("{c:.2}")),
            r.context_switches
                .map_or_else(String::new, |c| c.to_string()),
            r.busy_threads.map_or_else(String::new, |c| c.to_string()),
        );
    }
    h.push_str("</table></details>\n");
}

fn compare(h: &mut String, this: &Summary, name: &str, other: &Summary, shared: &[Shared]) {
    let _ = write!(
        h,
        "<h2 id=\"compare\">Compared with {}</h2><p>Other run: {}, {} logical / {} physical cores, {}. Ratio is the other run's time over this one's (above 1: this run was faster).</p>",
        esc(name),
        esc(&other.machine.cpu),
        other.machine.logical_cores,
        other.machine.physical_cores,
        esc(&other.machine.created)
    );
    // Recommendations are keyed by workload, not by thread counts, so runs on machines with
    // different core counts meet here even where no benchmark id is shared.
    let key = |r: &Recommendation| {
        let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{} {} ({})", r.suite, r.workload, params.join(", "))
    };
    let best = |r: &Recommendation| {
        let x = r
            .speedup_vs_default
            .as_ref()
            .filter(|_| r.recommended())
            .map_or_else(String::new, |x| format!(", {} over default", x.words()));
        format!("{}{x}", config(&r.best))
    };
    let theirs: BTreeMap<String, &Recommendation> =
        other.recommendations.iter().map(|r| (key(r), r)).collect();
    h.push_str("<h3>Recommendations side by side</h3><table><tr><th>workload</th><th>this run</th><th>other run</th></tr>");
    for r in &this.recommendations {
        let k = key(r);
        let o = theirs
            .get(&k)
            .map_or_else(|| "not measured".to_owned(), |o| best(o));
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&k),
            esc(&best(r)),
            esc(&o)
        );
    }
    h.push_str("</table><h3>Benchmarks in both runs</h3>");
    h.push_str("<table><tr><th>benchmark</th><th class=\"num\">this run</th><th class=\"num\">other run</th><th class=\"num\">other / this</th></tr>");
    for r in shared {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2}</td></tr>",
            esc(&r.full_id),
            ms(r.this_ns),
            ms(r.other_ns),
            r.ratio.estimate
        );
    }
    h.push_str("</table>");
    if shared.is_empty() {
        h.push_str("<p>The two runs have no benchmark id in common.</p>");
    }
}
