//! `summary.json` and `summary.csv`: the report's machine-readable export (the DESIGN.md schema).

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::facts::{
    Finding, KernelTrialOut, Limits, MachineOut, NoiseOut, OpenBlasOut, Recommendation, Row,
    Throughput, iso8601, machine_out,
};

/// Bumped on any change of the fields below. 2: `openblas.core` is the library's own choice,
/// `openblas.kernel` the one the suites ran; `cpu_features`, `peak`, `kernel_trials` and
/// `noise` added; recommendations carry intervals, `seen`, `fastest` and `default`. 3:
/// recommendations say `advice` (`recommend`, or `keep` with `why`) instead of `seen`; the
/// verdict's lines carry their `support` and its settings are typed, each with its trial. 4:
/// times measured in rounds carry `rounds` (each round's figure), rows stopped as hopeless
/// `at_least_ns` (a bound, no time), ratios the `rounds` they paired and `unstable`; noise
/// says `rounds` and `noisy_rounds`; `stability` per suite. 5: times carry their run's `pooled`
/// spread, stability its `pooled` spreads by run; rows `busy_threads` (the threads that really
/// ran) and `threads_above_set`, the cells where more ran than were set.
pub const SCHEMA: u32 = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub schema: u32,
    pub machine: MachineOut,
    pub results: Vec<Row>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub recommendations: Vec<Recommendation>,
    /// What to set on this machine, first on the page and in the terminal.
    #[serde(default)]
    pub verdict: crate::verdict::Verdict,
    /// How far each suite's variants spread between rounds, and the unstable ones.
    #[serde(default)]
    pub stability: Vec<crate::rounds::Stability>,
    /// The cells under an OpenBLAS layer where more threads ran than were set.
    #[serde(default)]
    pub threads_above_set: Vec<crate::facts::ThreadsSeen>,
}

/// The rows as CSV: one line a measured variant.
pub fn csv(summary: &Summary) -> String {
    let mut out = String::from(
        "suite,workload,params,full_id,time_ns,time_lower_ns,time_upper_ns,single_run_ns,at_least_ns,rounds,throughput,throughput_unit,cpu_per_wall,context_switches,busy_threads\n",
    );
    let opt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    for r in &summary.results {
        let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let fields = [
            r.suite.clone(),
            r.workload.clone(),
            params.join(";"),
            r.full_id.clone(),
            opt(r.time_ns.map(|t| t.estimate)),
            opt(r.time_ns.map(|t| t.lower)),
            opt(r.time_ns.map(|t| t.upper)),
            opt(r.single_run_ns),
            opt(r.at_least_ns),
            r.time_ns
                .map(|t| {
                    t.rounds
                        .iter()
                        .map(|(_, v)| format!("{v}"))
                        .collect::<Vec<_>>()
                        .join(";")
                })
                .unwrap_or_default(),
            opt(r.throughput.as_ref().map(|t| t.estimate)),
            r.throughput
                .as_ref()
                .map(|t| t.unit.clone())
                .unwrap_or_default(),
            opt(r.cpu_per_wall),
            r.context_switches
                .map(|c| c.to_string())
                .unwrap_or_default(),
            r.busy_threads.map(|c| c.to_string()).unwrap_or_default(),
        ];
        let quoted: Vec<String> = fields
            .iter()
            .map(|f| {
                if f.contains([',', '"', '\n']) {
                    format!("\"{}\"", f.replace('"', "\"\""))
                } else {
                    f.clone()
                }
            })
            .collect();
        out.push_str(&quoted.join(","));
        out.push('\n');
    }
    out
}

/// Reads a `summary.json` (another run's for `--compare`, the verdict's settings for `cargo xtask try`).
pub fn read_other(path: &Path) -> anyhow::Result<Summary> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", path.display()))?;
    let schema = value.get("schema").and_then(serde_json::Value::as_u64);
    anyhow::ensure!(
        schema == Some(u64::from(SCHEMA)),
        "{} has summary schema {}, this parcost reads schema {SCHEMA} (rerun `cargo xtask report`)",
        path.display(),
        schema.map_or_else(|| "none".to_owned(), |s| s.to_string())
    );
    serde_json::from_value(value)
        .map_err(|e| anyhow::anyhow!("{} is not a parcost summary: {e}", path.display()))
}
