//! `cargo xtask report` on committed result trees: a complete run, a partial one, a corrupt
//! one, a baseline, and the ways it must fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/report/tests/fixtures")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn report(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("report")
        .args(args)
        .output()
        .expect("xtask runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("json")
}

fn run_fixture(fixture: &str, out: &Path, extra: &[&str]) -> Output {
    let criterion = fixtures().join(fixture);
    let mut args = vec![
        "--criterion",
        criterion.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    report(&args)
}

#[test]
fn a_complete_run_gives_every_section_findings_and_recommendations() {
    let out = temp("complete");
    let o = run_fixture("complete", &out, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = summary(&out);
    assert_eq!(s["schema"], 5);
    // The machine block names both kernels, the CPU's features, its clock and the peak.
    let m = &s["machine"];
    assert_eq!(
        m["openblas"]["core"], "Cooperlake",
        "the library's own choice"
    );
    assert_eq!(m["openblas"]["kernel"], "SkylakeX", "what the suites ran");
    assert_eq!(m["openblas"]["kernel_source"], "auto");
    assert!(
        m["cpu_features"]["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "avx512f"))
    );
    assert!(m["peak"]["clock_ghz"].as_f64().is_some_and(|c| c > 1.0));
    assert!(
        m["limits"]["theoretical_peak_gflops"]
            .as_f64()
            .is_some_and(|t| t > 100.0)
    );
    let trials = m["kernel_trials"].as_array().expect("the kernel trials");
    assert!(
        trials
            .iter()
            .any(|t| t["verdict"].as_str().is_some_and(|v| v.contains("SIGILL")))
    );
    let results = s["results"].as_array().expect("results");
    for suite in [
        "oversubscription",
        "blas-tuning",
        "task-level",
        "threads-vs-processes",
        "array-sharing",
        "ranks-x-threads",
    ] {
        assert!(
            results.iter().any(|r| r["suite"] == suite),
            "{suite} has results"
        );
    }
    // Every sampled row carries Criterion's estimate inside its interval.
    for r in results {
        if let Some(t) = r.get("time_ns") {
            let (e, l, u) = (
                t["estimate"].as_f64().unwrap_or(0.0),
                t["lower"].as_f64().unwrap_or(0.0),
                t["upper"].as_f64().unwrap_or(0.0),
            );
            assert!(l <= e && e <= u, "{r}");
        } else {
            assert!(
                r["single_run_ns"].as_f64().is_some(),
                "a row without an estimate was run once: {r}"
            );
        }
    }
    let peak = s["machine"]["limits"]["dgemm_peak_gflops"]
        .as_f64()
        .expect("peak");
    let best_matmul = results
        .iter()
        .filter(|r| r["suite"] == "blas-tuning" && r["workload"] == "matmul")
        .filter_map(|r| r["throughput"]["estimate"].as_f64())
        .fold(0.0, f64::max);
    assert_eq!(
        peak, best_matmul,
        "the peak is the best measured matmul rate"
    );
    assert!(s["machine"]["limits"]["memcpy_gbps"].as_f64().is_some());

    let findings = s["findings"].as_array().expect("findings");
    assert!(!findings.is_empty());
    for f in findings {
        let (r, l, u) = (
            f["ratio"].as_f64().expect("ratio"),
            f["lower"].as_f64().expect("lower"),
            f["upper"].as_f64().expect("upper"),
        );
        assert!(l <= r && r <= u, "{f}");
        let seen = f["seen"].as_bool().expect("seen");
        let said = f["text"].as_str().expect("text");
        assert_eq!(said.starts_with("Not seen"), !seen, "{said}");
    }
    let recs = s["recommendations"].as_array().expect("recommendations");
    assert!(recs.iter().any(|r| r["suite"] == "task-level"));
    assert!(recs.iter().any(|r| r["suite"] == "oversubscription"));
    // Cost 1 across MPI: the naive hybrid by the oversubscription rule, scatter against batch,
    // a recommendation a workload, and a line of the verdict with the command to copy.
    let mpi: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["suite"] == "ranks-x-threads")
        .collect();
    assert!(mpi.iter().any(|f| f["title"] == "naive hybrid"), "{mpi:?}");
    assert!(
        mpi.iter().any(|f| f["title"] == "moving the arrays"),
        "{mpi:?}"
    );
    for workload in ["batch", "scatter"] {
        assert!(
            recs.iter()
                .any(|r| r["suite"] == "ranks-x-threads" && r["workload"] == workload),
            "{workload}"
        );
    }
    let verdict = s["verdict"]["lines"].as_array().expect("verdict");
    assert!(verdict.iter().any(|l| l["topic"] == "mpi"), "{verdict:?}");
    // This run measured the MPI grid but not the default as users run it: no command to copy.
    assert!(
        s["verdict"]["settings"].as_array().is_some_and(|l| l
            .iter()
            .all(|x| !x["line"].as_str().is_some_and(|x| x.starts_with("mpirun")))),
        "{}",
        s["verdict"]
    );
    // Every setting rests on a comparison that separated beyond the margin, and was tried as
    // printed before the page was written: the page shows only the lines that ran.
    let html_text = std::fs::read_to_string(out.join("index.html")).expect("html");
    let settings = s["verdict"]["settings"].as_array().expect("settings");
    // The fixture's task-level advice gives lines to copy, and on a machine with OpenBLAS the
    // probe runs them: a run where nothing was tried would pass the loop below vacuously.
    assert!(
        settings.iter().any(|a| a["tried"]["outcome"] == "ran"),
        "{settings:?}"
    );
    for a in settings {
        let lower = a["because"]["lower"].as_f64().expect("an interval");
        assert!(lower > 1.05, "{a}");
        let outcome = a["tried"]["outcome"].as_str().expect("tried");
        let line = a["line"].as_str().expect("a line");
        let escaped = line
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
        let shown = html_text
            .split("<pre class=\"setup\">")
            .nth(1)
            .is_some_and(|block| {
                block
                    .split("</pre>")
                    .next()
                    .is_some_and(|b| b.contains(&escaped))
            });
        assert_eq!(shown, outcome == "ran", "{a}");
    }

    let html = std::fs::read_to_string(out.join("index.html")).expect("html");
    for id in [
        "machine",
        "findings",
        "recommendations",
        "oversubscription",
        "blas-tuning",
        "task-level",
        "threads-vs-processes",
        "array-sharing",
        "ranks-x-threads",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
    }
    for part in [
        "MPI ranks",
        "batch against scatter",
        "Job start-up",
        "mpirun -np ",
    ] {
        assert!(html.contains(part), "{part}");
    }
    assert!(!html.contains("<script"), "no JavaScript");
    for fetch in ["src=\"http", "href=\"http", "url(", "@import", "<link"] {
        assert!(!html.contains(fetch), "nothing fetched: {fetch}");
    }
    assert!(html.matches("<svg").count() >= 10, "charts drawn");
    assert!(!html.contains("Missing:"));
    let csv = std::fs::read_to_string(out.join("summary.csv")).expect("csv");
    assert_eq!(csv.lines().count(), results.len() + 1);
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("Findings:")
            && stdout.contains("Recommendations")
            && stdout.contains("index.html"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn a_partial_run_shows_the_missing_suites_with_their_command() {
    let out = temp("partial");
    let o = run_fixture("partial", &out, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(out.join("index.html")).expect("html");
    assert!(html.contains("cargo xtask bench --suite oversubscription"));
    assert!(html.contains("cargo xtask bench --suite array-sharing"));
    let s = summary(&out);
    assert!(
        s["results"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["suite"] == "task-level")
    );
    assert!(
        s["machine"]["limits"].get("dgemm_peak_gflops").is_none(),
        "no made-up limit"
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn corrupt_files_and_bad_ids_are_named_and_left_out() {
    let out = temp("corrupt");
    let o = run_fixture("corrupt", &out, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("warning: left out") && err.contains("estimates.json"),
        "{err}"
    );
    assert!(err.contains("breaks the contract"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let html = std::fs::read_to_string(out.join("index.html")).expect("html");
    assert!(html.contains("id=\"skipped\""));
    let corrupt_rows = summary(&out)["results"].as_array().expect("rows").len();
    let whole = temp("corrupt-whole");
    assert!(run_fixture("partial", &whole, &[]).status.success());
    let whole_rows = summary(&whole)["results"].as_array().expect("rows").len();
    assert_eq!(
        corrupt_rows + 1,
        whole_rows,
        "exactly the corrupt benchmark is left out"
    );
    let _ = std::fs::remove_dir_all(out);
    let _ = std::fs::remove_dir_all(whole);
}

#[test]
fn a_corrupt_try_json_is_named_and_the_report_is_written_without_it() {
    let out = temp("try-corrupt");
    std::fs::create_dir_all(&out).expect("out");
    std::fs::write(out.join("try.json"), "{\"schema\": 1, \"command\": ").expect("write");
    let o = run_fixture("partial", &out, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    let named: Vec<&str> = err.lines().filter(|l| l.contains("try.json")).collect();
    assert_eq!(named.len(), 1, "{err}");
    assert!(
        named[0].starts_with("warning: left out") && named[0].contains("rerun `cargo xtask try`"),
        "{err}"
    );
    let html = std::fs::read_to_string(out.join("index.html")).expect("html");
    assert!(!html.contains("id=\"your-program\""));
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn a_criterion_baseline_is_compared_side_by_side() {
    let out = temp("baseline");
    let o = run_fixture("partial", &out, &["--baseline", "base"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(out.join("index.html")).expect("html");
    assert!(html.contains("Compared with baseline base"));
    let o = run_fixture("partial", &out, &["--baseline", "nope"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("no Criterion baseline named \"nope\""));
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn another_summary_is_compared_and_another_schema_refused() {
    let first = temp("first");
    assert!(run_fixture("complete", &first, &[]).status.success());
    let out = temp("compared");
    let other = first.join("summary.json");
    let o = run_fixture(
        "partial",
        &out,
        &["--compare", other.to_str().expect("utf-8")],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(out.join("index.html")).expect("html");
    assert!(html.contains("Compared with") && html.contains("other / this"));
    assert!(html.contains("Recommendations side by side"));
    assert!(html.contains("task-level matmul (layer=openmp, n=256, pairs=60)"));

    let mut s = summary(&first);
    s["schema"] = 99.into();
    let bad = first.join("schema99.json");
    std::fs::write(&bad, s.to_string()).expect("write");
    let o = run_fixture(
        "partial",
        &out,
        &["--compare", bad.to_str().expect("utf-8")],
    );
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("has summary schema 99, this parcost reads schema 5"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(first);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn no_results_is_one_line_naming_the_command() {
    let empty = temp("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = temp("empty-out");
    let o = report(&[
        "--criterion",
        empty.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cargo xtask bench"), "{err}");
    assert!(!out.join("index.html").exists());
    let _ = std::fs::remove_dir_all(empty);
}

#[test]
fn an_unwritable_output_is_a_clear_error_and_the_old_report_stays_whole() {
    let out = temp("readonly");
    assert!(run_fixture("partial", &out, &[]).status.success());
    let before = std::fs::read(out.join("index.html")).expect("old report");
    // A folder where a file must go: no file of the new report may replace the old one.
    std::fs::remove_file(out.join("summary.json")).expect("rm");
    std::fs::create_dir(out.join("summary.json")).expect("mkdir");
    let o = run_fixture("complete", &out, &[]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("summary.json") && err.contains("untouched"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        std::fs::read(out.join("index.html")).expect("still there"),
        before
    );
    let leftovers = std::fs::read_dir(&out)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(leftovers, 0, "no temporary left");
    let o = report(&[
        "--criterion",
        fixtures().join("partial").to_str().expect("utf-8"),
        "--out",
        "/proc/parcost-report",
    ]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("/proc/parcost-report"));
    let _ = std::fs::remove_dir_all(out);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// One run's record in a sidecar: a run started `ago_ms` before now, with a noisy host.
fn with_runs(sidecar: &Path, edit: impl Fn(&str, &mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sidecar).expect("read")).expect("json");
    let ids: Vec<String> = v["variants"]
        .as_object()
        .expect("variants")
        .keys()
        .cloned()
        .collect();
    for id in ids {
        edit(&id, &mut v["variants"][&id]);
    }
    edit("", &mut v);
    std::fs::write(sidecar, v.to_string()).expect("write");
}

#[test]
fn only_each_suites_latest_run_counts_and_its_noise_is_shown() {
    let tree = temp("stale-tree");
    copy_tree(&fixtures().join("partial"), &tree);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let latest = now_ms - 60_000;
    let older = latest - 86_400_000;
    let old_id =
        "task-level/matmul/layer=openmp,n=128,pairs=477/variant=task-level,tasks=2,blas_threads=1";
    let once_id =
        "task-level/matmul/layer=openmp,n=256,pairs=60/variant=serial,tasks=1,blas_threads=1";
    with_runs(&tree.join("parcost/task-level.openmp.json"), |id, v| {
        if id.is_empty() {
            let cal = |c: f64| serde_json::json!({"threads": 2, "single_rate": 1.0, "parallel_rate": c, "capacity": c});
            v["runs"] = serde_json::json!({
                latest.to_string(): {"started_ms": latest, "quick": true, "noise": {
                    "before": cal(1.95), "after": cal(1.4), "wall_s": 30.0,
                    "steal": 0.01, "foreign_load": 0.25}},
                older.to_string(): {"started_ms": older, "quick": false}
            });
        } else {
            v["run"] = (if id == old_id { older } else { latest }).into();
            v["sampled"] = (id != once_id).into();
        }
    });
    let out = temp("stale-out");
    let o = report(&[
        "--criterion",
        tree.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = summary(&out);
    let row = |id: &str| {
        s["results"]
            .as_array()
            .expect("results")
            .iter()
            .find(|r| r["full_id"] == id)
            .cloned()
    };
    assert!(row(old_id).is_none(), "an earlier run's result is left out");
    let once = row(once_id).expect("the latest run's single run");
    assert!(
        once.get("time_ns").is_none() && once["single_run_ns"].as_f64().is_some(),
        "over budget in the latest run: Criterion's older estimate is not used: {once}"
    );
    assert!(text(&o.stderr).contains("left out 1 results of earlier runs"));
    let html = std::fs::read_to_string(out.join("index.html")).expect("html");
    assert!(html.contains("Earlier runs left out") && html.contains(old_id));
    let noise = s["machine"]["noise"].as_array().expect("noise");
    let n = noise
        .iter()
        .find(|n| n["suite"] == "task-level" && n["layer"] == "openmp")
        .expect("the openmp run's noise");
    assert_eq!(n["flagged"], true);
    assert_eq!(
        n["rerun"],
        "cargo xtask bench --suite task-level --layer openmp"
    );
    assert!(html.contains("cargo xtask bench --suite task-level --layer openmp"));
    let _ = std::fs::remove_dir_all(tree);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn without_a_sidecar_no_finding_pretends_p_is_one() {
    let tree = temp("nosidecar-tree");
    copy_tree(&fixtures().join("partial"), &tree);
    std::fs::remove_dir_all(tree.join("parcost")).expect("remove the sidecars");
    let out = temp("nosidecar-out");
    let o = report(&[
        "--criterion",
        tree.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no parcost sidecar"),
        "{}",
        text(&o.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["findings"].as_array().map(Vec::len), Some(0));
    assert_eq!(s["recommendations"].as_array().map(Vec::len), Some(0));
    let _ = std::fs::remove_dir_all(tree);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn two_runs_answers_are_compared_and_counted() {
    let first = temp("answers-first");
    let o = run_fixture("complete", &first, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let other = first.join("summary.json");
    // The same results against themselves: every answer agrees.
    let out = temp("answers-second");
    let o = run_fixture(
        "complete",
        &out,
        &["--compare-answers", other.to_str().expect("utf-8")],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let said = text(&o.stdout);
    let line = said
        .lines()
        .find(|l| l.starts_with("Answers against"))
        .expect("an agreement line");
    assert!(
        line.contains("(100%)") && line.contains("0 here only, 0 there only"),
        "{line}"
    );
    // A missing file: one line, and no report half-written over the old one.
    let o = run_fixture(
        "complete",
        &out,
        &["--compare-answers", "/nonexistent/summary.json"],
    );
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/summary.json"), "{err}");
    let _ = std::fs::remove_dir_all(first);
    let _ = std::fs::remove_dir_all(out);
}
