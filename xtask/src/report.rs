//! `cargo xtask report`: the `report` crate writes the report; this prints what it says. It
//! builds `parcost-probe` first (the bench profile, as `cargo xtask bench` builds the suites, so
//! after a bench it is already there): the report tries every setting it prints against it.

use crate::flags;

impl flags::Report {
    pub fn run(&self) -> anyhow::Result<()> {
        let opts = report::Options {
            criterion_dir: self
                .criterion
                .clone()
                .unwrap_or_else(parcost::meta::criterion_dir),
            out_dir: self
                .out
                .clone()
                .unwrap_or_else(|| crate::workspace_root().join("reports")),
            compare: self.compare.clone(),
            baseline: self.baseline.clone(),
            probe: probe(),
            runs: if self.mix_runs {
                report::results::Runs::Mixed
            } else {
                report::results::Runs::Newest
            },
        };
        // Read before writing: a bad file stops the task with the old report untouched.
        let answers = self
            .compare_answers
            .as_ref()
            .map(|path| report::summary::read_other(path).map(|s| (path, s)))
            .transpose()?;
        let written = report::write(&opts)?;
        for w in &written.warnings {
            eprintln!("warning: {w}");
        }
        print!("{}", report::terminal::render(&written.summary));
        if let Some((path, other)) = answers {
            print!(
                "{}",
                report::answers::render(
                    &report::answers::compare(&written.summary, &other),
                    &path.display().to_string()
                )
            );
        }
        println!(
            "report: {} ({} results, {} left out, {:.2} s)",
            written.index.display(),
            written.summary.results.len(),
            written.left_out,
            written.took.as_secs_f64()
        );
        Ok(())
    }
}

/// `parcost-probe`, built; without it (no OpenBLAS, a failed build) one line says why and the
/// report shows no settings to copy.
fn probe() -> Option<std::path::PathBuf> {
    match report::settings::build_probe("bench") {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!(
                "warning: {e}; the report cannot try the settings it prints, so it shows none"
            );
            None
        }
    }
}

/// The report of the results under Criterion's default folder, into `reports/`.
pub fn default_report() -> anyhow::Result<()> {
    flags::Report {
        out: None,
        criterion: None,
        compare: None,
        baseline: None,
        compare_answers: None,
        mix_runs: false,
    }
    .run()
}
