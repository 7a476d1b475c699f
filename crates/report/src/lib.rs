//! parcost's report: reads Criterion's results and parcost's sidecars (never runs a benchmark),
//! and writes `index.html`, `summary.json` and `summary.csv`, all or none.
//!
//! The stages are separate: [`results`] reads a run, [`summary`], [`findings`], [`verdict`]
//! and [`figures`] (what each chart and takeaway shows) compute every number, and [`html`]
//! (with [`markup`] and [`charts`]) and [`terminal`] only format them;
//! [`libraries`] compares the linear-algebra libraries (its findings, and its section of the
//! page); [`settings`] types the lines a user may copy and tries each on this machine.

pub mod answers;
pub mod charts;
pub mod facts;
pub mod figures;
pub mod findings;
pub mod html;
pub mod libraries;
pub mod markup;
pub mod model;
pub mod mpi;
pub mod results;
pub mod rounds;
pub mod settings;
pub mod summary;
pub mod terminal;
pub mod tried;
pub mod verdict;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use summary::Row;
pub use summary::{SCHEMA, Summary};

/// What to read and where to write.
#[derive(Debug, Clone)]
pub struct Options {
    /// Criterion's output folder (`target/criterion`).
    pub criterion_dir: PathBuf,
    pub out_dir: PathBuf,
    /// Another run's `summary.json` to put beside this one.
    pub compare: Option<PathBuf>,
    /// A Criterion baseline to put beside this run.
    pub baseline: Option<String>,
    /// `parcost-probe`, which every setting the report prints is tried against first
    /// ([`settings::try_all`]); without it no setting is shown ([`settings::NO_PROBE`]).
    pub probe: Option<PathBuf>,
    /// The newest run of `cargo xtask bench` alone, or every suite's latest (`--mix-runs`).
    pub runs: results::Runs,
}

/// Why no report was written; the previous one, if any, is untouched.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "no benchmark results in {0} (run `cargo xtask bench --quick` or `cargo xtask bench` first)"
    )]
    NoResults(PathBuf),
    #[error("use --compare or --baseline, not both")]
    CompareAndBaseline,
    #[error("no Criterion baseline named {name:?} in {dir}")]
    NoBaseline { name: String, dir: PathBuf },
    #[error("{0}")]
    Compare(String),
    #[error("drawing the report: {0}")]
    Render(String),
    #[error("{0}")]
    Write(String),
}

/// A report written, and what the reader should be told about it.
#[derive(Debug)]
pub struct Written {
    pub summary: Summary,
    pub index: PathBuf,
    /// One line each: files and ids left out, a missing sidecar, earlier runs left out.
    pub warnings: Vec<String>,
    pub left_out: usize,
    pub took: Duration,
}

/// The variants of the latest run under `criterion_dir` that more rounds could decide
/// ([`rounds::undecided`]): `cargo xtask bench` measures them in its next extra round (up to
/// [`rounds::EXTRA_ROUNDS`]).
pub fn undecided(criterion_dir: &Path) -> Vec<String> {
    let run = results::load(criterion_dir, "new");
    let (summary, _) = summarize(&run);
    rounds::undecided(&summary.results, &summary.recommendations)
}

/// Builds the summary of one run (rows, limits, findings, recommendations, the verdict) and
/// the figures of its page.
fn summarize(run: &results::Run) -> (Summary, figures::Figures) {
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
    // Where task-level stops winning: computed once, for the findings, the verdict and the page.
    let cross = findings::crossovers(&rows);
    let (findings, recommendations, library_findings) = if logical == 0 {
        (Vec::new(), Vec::new(), Vec::new())
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
            machine.capacity(parcost::id::THREADS_VS_PROCESSES.name),
            &cross,
        ));
        all.extend(mpi::findings(&rows, logical));
        let library_findings = libraries::findings(&rows, logical, limits);
        all.extend(library_findings.iter().cloned());
        let mut recs = findings::recommendations(&rows, logical, limits);
        recs.extend(mpi::recommendations(&rows, logical, limits));
        recs.extend(libraries::recommendations(&rows, logical, limits));
        findings::unless_noisy(&mut recs, &machine.noise);
        (all, recs, library_findings)
    };
    let verdict = if logical == 0 {
        verdict::Verdict::default()
    } else {
        verdict::verdict(&machine, &rows, &recommendations, &cross)
    };
    let figures = figures::figures(&rows, &machine, &cross, library_findings);
    let summary = Summary {
        schema: SCHEMA,
        findings,
        recommendations,
        verdict,
        machine,
        stability: rounds::stability(&rows),
        threads_above_set: facts::threads_above_set(&rows),
        results: rows,
    };
    (summary, figures)
}

/// One run of `cargo xtask bench` in words: when it started, its mode and kernels, its suites.
fn bench_run_words(r: &results::BenchRun) -> String {
    let kernels = if r.kernels.is_empty() {
        String::new()
    } else {
        format!(
            ", kernel {}",
            r.kernels.iter().cloned().collect::<Vec<_>>().join(" and ")
        )
    };
    format!(
        "the run of {} ({}{kernels}: {})",
        facts::iso8601(r.started_ms / 1000),
        if r.quick { "quick" } else { "full" },
        r.suites.iter().cloned().collect::<Vec<_>>().join(", ")
    )
}

/// The line that says which runs of `cargo xtask bench` the report judged: the newest alone
/// with `left_out` results of earlier ones set aside, or several (mixed as asked, or runs of a
/// plain `cargo bench`, each suite process its own).
fn runs_warning(
    runs: &[results::BenchRun],
    left_out: usize,
    asked: results::Runs,
) -> Option<String> {
    let (judged, earlier): (Vec<_>, Vec<_>) = runs.iter().partition(|r| r.included);
    if !earlier.is_empty() {
        return Some(format!(
            "judged {} alone; left out {left_out} results of {} earlier run(s) ({}): a report \
             judges one run at a time (`cargo xtask report --mix-runs` judges every suite's \
             latest together)",
            judged
                .first()
                .map_or_else(String::new, |r| bench_run_words(r)),
            earlier.len(),
            earlier
                .iter()
                .map(|r| bench_run_words(r))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    (judged.len() > 1).then(|| {
        format!(
            "judged {} runs together ({}): {}",
            judged.len(),
            match asked {
                results::Runs::Mixed => "--mix-runs",
                results::Runs::Newest => "a plain cargo bench keys each suite process apart",
            },
            judged
                .iter()
                .map(|r| bench_run_words(r))
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
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

/// Reads the run under `opts.criterion_dir` and writes the report into `opts.out_dir`.
pub fn write(opts: &Options) -> Result<Written, ReportError> {
    let started = Instant::now();
    let criterion_dir = &opts.criterion_dir;
    let out_dir = &opts.out_dir;
    let run = results::load_runs(criterion_dir, "new", opts.runs);
    if run.measurements.is_empty() {
        return Err(ReportError::NoResults(criterion_dir.clone()));
    }
    let mut warnings: Vec<String> = run
        .skipped
        .iter()
        .map(|s| format!("left out {}: {}", s.what, s.why))
        .collect();
    let runs_line = runs_warning(&run.bench_runs, run.earlier.len(), opts.runs);
    warnings.extend(runs_line.clone());
    if run.machine.is_none() {
        warnings.push(format!(
            "no parcost sidecar in {}: the machine and P are unknown, so no finding or \
             recommendation is drawn (run the suites with `cargo xtask bench`)",
            criterion_dir.join(parcost::meta::SIDECAR_DIR).display()
        ));
    }
    if !run.stale.is_empty() {
        warnings.push(format!(
            "left out {} results of earlier runs than their suite's latest (listed at the end \
             of the report)",
            run.stale.len()
        ));
    }
    let (mut summary, mut figures) = summarize(&run);
    // Every line a user may copy is run as printed here before it is shown.
    summary.verdict.try_settings(opts.probe.as_deref());

    let other = match (&opts.baseline, &opts.compare) {
        (Some(_), Some(_)) => return Err(ReportError::CompareAndBaseline),
        (Some(name), None) => {
            let base = results::load(criterion_dir, name);
            if base.measurements.is_empty() {
                return Err(ReportError::NoBaseline {
                    name: name.clone(),
                    dir: criterion_dir.clone(),
                });
            }
            Some((format!("baseline {name}"), summarize(&base).0))
        }
        (None, Some(path)) => Some((
            path.display().to_string(),
            summary::read_other(path).map_err(|e| ReportError::Compare(format!("{e:#}")))?,
        )),
        (None, None) => None,
    };

    if let Some((_, o)) = &other {
        figures.shared = figures::shared(&summary.results, &o.results);
    }

    // What `cargo xtask try` found of the user's program, beside the summary.
    let tried = tried::read(&out_dir.join(tried::FILE)).unwrap_or_else(|e| {
        warnings.push(format!("left out {e}"));
        None
    });

    let out_abs = absolute(out_dir);
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
    let left_out: Vec<results::Skipped> = run.stale.iter().chain(&run.earlier).cloned().collect();
    let page = html::Page {
        summary: &summary,
        figures: &figures,
        skipped: &run.skipped,
        stale: &left_out,
        links: &links,
        other: other.as_ref().map(|(n, s)| (n.as_str(), s)),
        tried: tried.as_ref(),
        runs: runs_line.as_deref(),
    };
    let html_text = html::render(&page).map_err(|e| ReportError::Render(format!("{e:#}")))?;
    let json =
        serde_json::to_string_pretty(&summary).map_err(|e| ReportError::Render(e.to_string()))?;
    let csv = summary::csv(&summary);
    write_all(
        out_dir,
        &[
            ("index.html", html_text.as_bytes()),
            ("summary.json", json.as_bytes()),
            ("summary.csv", csv.as_bytes()),
        ],
    )?;
    Ok(Written {
        summary,
        index: out_dir.join("index.html"),
        warnings,
        left_out: run.skipped.len(),
        took: started.elapsed(),
    })
}

/// Writes every file to a temporary in `dir` first and moves them into place only when all
/// were written, so a failure leaves the previous report whole.
fn write_all(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), ReportError> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| {
        ReportError::Write(format!(
            "cannot create the report folder {}: {e}",
            dir.display()
        ))
    })?;
    let untouched = |e: &dyn std::fmt::Display| {
        ReportError::Write(format!(
            "cannot write the report into {}: {e}; the previous report is untouched",
            dir.display()
        ))
    };
    let mut temps = Vec::new();
    for (name, bytes) in files {
        if dir.join(name).is_dir() {
            return Err(ReportError::Write(format!(
                "cannot write the report: {} is a folder; the previous report is untouched",
                dir.join(name).display()
            )));
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .tempfile_in(dir)
            .map_err(|e| untouched(&e))?;
        tmp.write_all(bytes).map_err(|e| untouched(&e))?;
        temps.push((name, tmp));
    }
    for (name, tmp) in temps {
        tmp.persist(dir.join(name)).map_err(|e| {
            ReportError::Write(format!("cannot replace {}: {e}", dir.join(name).display()))
        })?;
    }
    Ok(())
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
