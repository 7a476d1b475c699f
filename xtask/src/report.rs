//! `cargo xtask report`: reads Criterion's results and parcost's sidecars, writes
//! `reports/index.html`, `summary.json` and `summary.csv`, and prints the findings.

mod charts;
mod findings;
mod html;
mod results;
mod summary;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use summary::{Row, SCHEMA, Summary};

#[derive(Debug, Default)]
struct Options {
    out: Option<PathBuf>,
    criterion: Option<PathBuf>,
    compare: Vec<PathBuf>,
    baseline: Option<String>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut opts = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--out" => opts.out = Some(value("--out")?.into()),
            "--criterion" => opts.criterion = Some(value("--criterion")?.into()),
            "--compare" => opts.compare.push(value("--compare")?.into()),
            "--baseline" => opts.baseline = Some(value("--baseline")?),
            other => {
                bail!("unknown option {other:?} for `cargo xtask report`; `cargo xtask` lists them")
            }
        }
    }
    Ok(opts)
}

/// Builds the summary of one run: rows, limits, findings, recommendations.
fn summarize(run: &results::Run) -> Summary {
    let rows: Vec<Row> = run.measurements.iter().map(Row::from_measurement).collect();
    let theoretical = run
        .machine
        .as_ref()
        .and_then(|m| m.peak)
        .map(|p| p.theoretical_gflops);
    let limits = findings::limits(&rows, theoretical);
    let machine = summary::machine_out(run, limits);
    // P comes from the sidecars only: without one it is unknown, and every finding that
    // compares against P threads is left out rather than judged against a guess.
    let logical = run.machine.as_ref().map_or(0, |m| m.logical_cores);
    let (findings, recommendations) = if logical == 0 {
        (Vec::new(), Vec::new())
    } else {
        // Cost 0 first: the kernel decides what every other figure means.
        let mut all = machine
            .openblas
            .as_ref()
            .map(|o| findings::kernel_findings(&rows, logical, &o.core, &o.kernel))
            .unwrap_or_default();
        all.extend(findings::findings(
            &rows,
            logical,
            machine.capacity("threads-vs-processes"),
        ));
        (all, findings::recommendations(&rows, logical, limits))
    };
    Summary {
        schema: SCHEMA,
        findings,
        recommendations,
        machine,
        results: rows,
    }
}

/// `to` relative to the folder `from`, for links that keep working when the tree moves.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let (from, to): (Vec<Component>, Vec<Component>) =
        (from.components().collect(), to.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c.as_os_str());
    }
    out
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let started = Instant::now();
    let opts = parse(args)?;
    let criterion_dir = opts
        .criterion
        .clone()
        .unwrap_or_else(parcost::meta::criterion_dir);
    let out_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| crate::workspace_root().join("reports"));

    let run = results::load(&criterion_dir, "new");
    if run.measurements.is_empty() {
        bail!(
            "no benchmark results in {} (run `cargo xtask bench --quick` or `cargo xtask bench` first)",
            criterion_dir.display()
        );
    }
    for s in &run.skipped {
        eprintln!("warning: left out {}: {}", s.what, s.why);
    }
    if run.machine.is_none() {
        eprintln!(
            "warning: no parcost sidecar in {}: the machine and P are unknown, so no finding or \
             recommendation is drawn (run the suites with `cargo xtask bench`)",
            criterion_dir.join(parcost::meta::SIDECAR_DIR).display()
        );
    }
    if !run.stale.is_empty() {
        eprintln!(
            "note: left out {} results of earlier runs than their suite's latest (listed at the \
             end of the report)",
            run.stale.len()
        );
    }
    let summary = summarize(&run);

    let other = match (&opts.baseline, opts.compare.as_slice()) {
        (Some(_), [_, ..]) => bail!("use --compare or --baseline, not both"),
        (Some(name), []) => {
            let base = results::load(&criterion_dir, name);
            if base.measurements.is_empty() {
                bail!(
                    "no Criterion baseline named {name:?} in {}",
                    criterion_dir.display()
                );
            }
            Some((format!("baseline {name}"), summarize(&base)))
        }
        (None, [path]) => Some((path.display().to_string(), summary::read_other(path)?)),
        (None, []) => None,
        (None, [_, _, ..]) => bail!("one --compare file at a time, please"),
    };

    let out_abs = absolute(&out_dir);
    let links: BTreeMap<String, String> = run
        .measurements
        .iter()
        .filter_map(|m| {
            let page = m.criterion_page.as_ref()?;
            Some((
                m.full_id.clone(),
                relative(&out_abs, &absolute(page)).display().to_string(),
            ))
        })
        .collect();
    let page = html::Page {
        summary: &summary,
        skipped: &run.skipped,
        stale: &run.stale,
        links: &links,
        other: other.as_ref().map(|(n, s)| (n.as_str(), s)),
    };
    let html_text = html::render(&page)?;
    let json = serde_json::to_string_pretty(&summary)?;
    let csv = summary::csv(&summary);
    write_all(
        &out_dir,
        &[
            ("index.html", html_text.as_bytes()),
            ("summary.json", json.as_bytes()),
            ("summary.csv", csv.as_bytes()),
        ],
    )?;

    print_terminal(&summary);
    println!(
        "report: {} ({} results, {} left out, {:.2} s)",
        out_dir.join("index.html").display(),
        summary.results.len(),
        run.skipped.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes every file to a temporary first and renames only when all were written, so a
/// failure leaves the previous report whole.
fn write_all(dir: &Path, files: &[(&str, &[u8])]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the report folder {}", dir.display()))?;
    let mut temps = Vec::new();
    for (name, bytes) in files {
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        if let Err(e) = std::fs::write(&tmp, bytes) {
            for t in temps.iter().chain(std::iter::once(&tmp)) {
                let _ = std::fs::remove_file(t);
            }
            bail!(
                "cannot write the report into {}: {e}; the previous report is untouched",
                dir.display()
            );
        }
        temps.push(tmp);
    }
    if let Some((name, _)) = files.iter().find(|(name, _)| dir.join(name).is_dir()) {
        for t in &temps {
            let _ = std::fs::remove_file(t);
        }
        bail!(
            "cannot write the report: {} is a folder; the previous report is untouched",
            dir.join(name).display()
        );
    }
    for ((name, _), tmp) in files.iter().zip(&temps) {
        std::fs::rename(tmp, dir.join(name))
            .with_context(|| format!("cannot replace {}", dir.join(name).display()))?;
    }
    Ok(())
}

fn print_terminal(s: &Summary) {
    if let Some(o) = &s.machine.openblas {
        let peak = s
            .machine
            .limits
            .theoretical_peak_gflops
            .map(|t| format!("; theoretical peak {t:.0} GFLOP/s"))
            .unwrap_or_default();
        println!(
            "Kernel: the suites ran {} ({}); OpenBLAS itself chooses {}{peak}",
            o.kernel, o.kernel_source, o.core
        );
    }
    let noisy: Vec<_> = s.machine.noise.iter().filter(|n| n.flagged).collect();
    if !s.machine.noise.is_empty() {
        if noisy.is_empty() {
            println!(
                "Noise: quiet enough for every suite (calibrations within 10%, foreign load under 10%)"
            );
        }
        for n in noisy {
            println!(
                "Noise: {} {}: capacity {:.2} then {:.2}, foreign load {:.0}%: rerun with `{}`",
                n.suite,
                n.layer.as_deref().unwrap_or(""),
                n.capacity_before,
                n.capacity_after,
                100.0 * n.foreign_load,
                n.rerun.as_deref().unwrap_or("")
            );
        }
    }
    println!("Findings:");
    for f in &s.findings {
        println!("  [{}] {}: {}", f.suite, f.title, f.text);
    }
    if s.findings.is_empty() {
        println!("  none could be computed");
    }
    println!(
        "Recommendations (the fastest only when it beat the default beyond both intervals; \
         speedup of the fastest over 1 x all BLAS threads):"
    );
    for r in &s.recommendations {
        let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let best: Vec<String> = r.best.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let verdict = if r.seen {
            ""
        } else if r.fastest == r.default {
            " (the default was fastest)"
        } else {
            " (the default: as good here)"
        };
        println!(
            "  {:<17} {:<10} {:<34} use {:<34} {}{verdict}",
            r.suite,
            r.workload,
            params.join(","),
            best.join(","),
            r.speedup_vs_default
                .map_or_else(|| "-".to_owned(), html::times),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_and_descend() {
        assert_eq!(
            relative(
                Path::new("/w/reports"),
                Path::new("/w/target/criterion/a/report/index.html")
            ),
            PathBuf::from("../target/criterion/a/report/index.html")
        );
        assert_eq!(
            relative(Path::new("/w"), Path::new("/w/x")),
            PathBuf::from("x")
        );
    }
}
