//! Rounds: which variants the rounds after the first measure again (the contenders: where the
//! answer is decided), and how far each variant's rounds spread (the stability the report
//! shows). Computed from what the suites wrote, like every analysis here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use parcost::id::{self, key};

use crate::facts::Row;
use crate::model::{MARGIN, spread};

/// A variant within this factor of the best of its instance after the first round is measured
/// again in every round: the fastest few, between which the answer is decided. The rest are
/// figures of one round (information, never advice).
pub const CONTENDER_FACTOR: f64 = 1.5;

/// The variants of run `run` (its key) under `criterion_dir` that the rounds after the first
/// measure: in each instance (and across its layers and kernels), those within
/// [`CONTENDER_FACTOR`] of the best, and every default ([`id::is_default`]); never one stopped
/// as hopeless.
pub fn contenders(criterion_dir: &Path, run: u64, logical_cores: usize) -> Vec<String> {
    let loaded = crate::results::load(criterion_dir, "new");
    let current: Vec<(id::ParsedId, f64, String)> = loaded
        .measurements
        .iter()
        .filter(|m| m.usage.is_some_and(|u| u.run == Some(run)))
        .filter_map(|m| {
            let parsed = id::parse(&m.full_id).ok()?;
            Some((parsed, m.typical_ns()?, m.full_id.clone()))
        })
        .collect();
    let mut best: BTreeMap<String, f64> = BTreeMap::new();
    let groupings: [&[&str]; 2] = [&[], &[key::LAYER, key::KERNEL]];
    for (parsed, t, _) in &current {
        for without in groupings {
            let b = best.entry(id::instance(parsed, without)).or_insert(*t);
            *b = b.min(*t);
        }
    }
    let mut out = BTreeSet::new();
    for (parsed, t, full_id) in &current {
        let near = groupings.iter().any(|without| {
            best.get(&id::instance(parsed, without))
                .is_some_and(|b| *t <= CONTENDER_FACTOR * b)
        });
        if near || id::is_default(parsed, logical_cores) {
            out.insert(full_id.clone());
        }
    }
    out.into_iter().collect()
}

/// One variant's rounds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spread {
    pub full_id: String,
    /// Each round's figure, ns, by round.
    pub rounds: Vec<(u32, f64)>,
    /// The standard deviation of their logarithms ([`crate::model::spread`]).
    pub spread: f64,
}

impl Spread {
    /// Wider than the practical margin: no advice rests on it.
    pub fn unstable(&self) -> bool {
        self.spread > MARGIN
    }

    /// The largest round over the smallest.
    pub fn range(&self) -> f64 {
        let (lo, hi) = self
            .rounds
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), (_, v)| {
                (lo.min(*v), hi.max(*v))
            });
        hi / lo
    }
}

/// A suite's stability: how many variants were measured in enough rounds, their median spread,
/// and the unstable ones, widest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stability {
    pub suite: String,
    pub measured: usize,
    pub median_spread: f64,
    pub unstable: Vec<Spread>,
}

/// The stability of each suite's variants measured in at least [`crate::model::MIN_ROUNDS`] rounds.
pub fn stability(rows: &[Row]) -> Vec<Stability> {
    let mut by_suite: BTreeMap<&str, Vec<Spread>> = BTreeMap::new();
    for r in rows {
        let Some(t) = r.time_ns else { continue };
        let Some(s) = spread(&t) else { continue };
        by_suite.entry(&r.suite).or_default().push(Spread {
            full_id: r.full_id.clone(),
            rounds: t.rounds.iter().collect(),
            spread: s,
        });
    }
    let order = |s: &str| id::SUITES.iter().position(|i| i.name == s);
    let mut out: Vec<Stability> = by_suite
        .into_iter()
        .map(|(suite, mut spreads)| {
            spreads.sort_by(|a, b| a.spread.total_cmp(&b.spread));
            let median_spread = spreads[spreads.len() / 2].spread;
            let measured = spreads.len();
            let mut unstable: Vec<Spread> = spreads.into_iter().filter(Spread::unstable).collect();
            unstable.reverse();
            Stability {
                suite: suite.to_owned(),
                measured,
                median_spread,
                unstable,
            }
        })
        .collect();
    out.sort_by_key(|s| order(&s.suite));
    out
}
