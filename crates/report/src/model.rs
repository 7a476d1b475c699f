//! The one comparison every piece of advice rests on: a [`Ratio`] of two times with its
//! interval, judged by one [`Rule`] (which interval, and the practical margin) into a
//! [`Separation`]; and [`Advice`], whose `Recommend` variant can only hold a [`Separated`]
//! comparison, so advice that outruns its evidence cannot be represented.
//!
//! Every "faster", "slower", "seen" and "recommended" in the report comes from here: nothing
//! else compares an interval with 1.

use serde::{Deserialize, Serialize};

use crate::results::{Estimate, Rounds};

/// A ratio of two times with its 95% interval. Between rounds (both measured in at least
/// [`MIN_ROUNDS`] of the same rounds, each a fresh process): the mean of each round's log ratio
/// and a t-interval from the round-to-round spread of the two times' groups, which holds from
/// run to run ([`Ratio::of`]). Otherwise the interval that holds
/// for every pair of values inside the two within-run intervals (`[lo_a / hi_b, hi_a / lo_b]`:
/// conservative). Without intervals (a variant run once) `lo` and `hi` are absent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub estimate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<f64>,
    /// The rounds paired for the interval; 0: a within-run interval (or none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rounds: u32,
    /// The candidate's runs spread beyond the margin and so does its ratio to the other's: the
    /// comparison carries no advice. Only a user's program ([`Ratio::of_paired_runs`]) is
    /// judged so; the suites' [`Ratio::of`] never sets it (a spread widens its interval).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unstable: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Rounds two times must share for a between-round interval.
pub const MIN_ROUNDS: usize = 3;

/// The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1; 1.96 beyond 30).
pub fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    T.get(df.max(1) - 1).copied().unwrap_or(1.96)
}

/// Mean and sample standard deviation of `xs` (at least two).
fn mean_sd(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.len() < 2 {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((mean, var.sqrt()))
}

/// The logarithms of a time's rounds' figures.
fn logs(t: &Estimate) -> Vec<f64> {
    t.rounds.iter().map(|(_, v)| v.ln()).collect()
}

/// How far a time's rounds spread: the standard deviation of their logarithms (about the
/// relative spread of one round around the time), from at least [`MIN_ROUNDS`] rounds.
pub fn spread(t: &Estimate) -> Option<f64> {
    let logs = logs(t);
    (logs.len() >= MIN_ROUNDS).then(|| mean_sd(&logs).map(|(_, sd)| sd))?
}

/// The between-round spread of a group of times measured in the same processes (one suite's
/// run under one layer and kernel, each round a fresh process): the standard deviation of
/// their logarithms around each time's own mean, pooled over the group's times other than the
/// one it is given to (results::pool_by_step), and its degrees of freedom.
///
/// Why pooled: from three rounds one time's spread is known only within a factor of about 6
/// (two full runs here disagreed on "wider than the margin" for 103 of 285 variants, and the
/// correlation of one variant's spread between the two runs was 0.37), while a group's pooled
/// spread has tens of degrees of freedom and moved by less than 1.5x between them. A time
/// that spreads wider than its group beyond doubt keeps its own spread ([`wider_than_group`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pooled {
    pub sd: f64,
    pub df: u32,
}

/// The pooled spread of `times` (those measured in at least [`MIN_ROUNDS`] rounds), leaving
/// out the ones wider than the pool of all of them; `None` without any.
pub fn pool(times: &[Estimate]) -> Option<Pooled> {
    let of = |keep: &dyn Fn(&Estimate) -> bool| -> Option<Pooled> {
        let (mut ss, mut df) = (0.0, 0u32);
        for t in times.iter().filter(|t| keep(t)) {
            let logs = logs(t);
            let Some((_, sd)) = mean_sd(&logs).filter(|_| logs.len() >= MIN_ROUNDS) else {
                continue;
            };
            let k = logs.len() as u32 - 1;
            ss += sd * sd * f64::from(k);
            df += k;
        }
        (df > 0).then(|| Pooled {
            sd: (ss / f64::from(df)).sqrt(),
            df,
        })
    };
    let all = of(&|_| true)?;
    of(&|t| {
        !wider_than_group(&Estimate {
            pooled: Some(all),
            ..*t
        })
    })
    .or(Some(all))
}

/// The `p` quantile of chi-square with `k` degrees of freedom (Wilson and Hilferty's cube,
/// within 1% from k = 2): `z` is the standard normal quantile of `p`.
fn chi2_quantile(k: f64, z: f64) -> f64 {
    let c = 2.0 / (9.0 * k);
    k * (1.0 - c + z * c.sqrt()).powi(3)
}

/// A time's own spread and its degrees of freedom, from at least [`MIN_ROUNDS`] rounds.
fn own_spread(t: &Estimate) -> Option<(f64, f64)> {
    let logs = logs(t);
    let (_, sd) = mean_sd(&logs).filter(|_| logs.len() >= MIN_ROUNDS)?;
    Some((sd, (logs.len() - 1) as f64))
}

/// Whether a time's rounds spread wider than its group's ([`Pooled`], of the group's other
/// times) beyond doubt: an F-test at 99% against the pool, taken as known. Without a group,
/// every time is its own.
pub fn wider_than_group(t: &Estimate) -> bool {
    let Some((sd, df)) = own_spread(t) else {
        return false;
    };
    t.pooled
        .is_none_or(|p| sd * sd > p.sd * p.sd * chi2_quantile(df, 2.326) / df)
}

/// Whether a time's rounds spread wider than the practical margin *and* wider than its
/// group's, both beyond doubt (the low end of its spread's 95% interval above the margin;
/// [`wider_than_group`]): a time that behaves unlike the times measured beside it (bimodal, or
/// disturbed in one round). It is named in the report, and its own spread sets the intervals it
/// is in (which alone decide whether it is recommended). A group that is noisy as a whole gets
/// wide intervals too.
pub fn unstable(t: &Estimate) -> bool {
    own_spread(t).is_some_and(|(sd, df)| low_end_beyond_margin(sd, df)) && wider_than_group(t)
}

/// Whether a spread `sd` of `df` degrees of freedom is wider than the margin beyond doubt: the
/// low end of its 95% interval.
fn low_end_beyond_margin(sd: f64, df: f64) -> bool {
    sd * (df / chi2_quantile(df, 1.96)).sqrt() > MARGIN
}

/// Whether logarithms (of at least [`MIN_ROUNDS`] rounds) spread wider than the margin beyond
/// doubt.
fn spread_beyond_margin(logs: &[f64]) -> bool {
    logs.len() >= MIN_ROUNDS
        && mean_sd(logs).is_some_and(|(_, sd)| low_end_beyond_margin(sd, (logs.len() - 1) as f64))
}

/// The variance of a time's logarithm in one round, its degrees of freedom, and whether it is
/// its group's: the pooled spread, or its own when it is wider than its group's (or it has no
/// group).
fn round_variance(t: &Estimate) -> Option<(f64, f64, bool)> {
    match t.pooled {
        Some(p) if !wider_than_group(t) => Some((p.sd * p.sd, f64::from(p.df), true)),
        _ => own_spread(t).map(|(sd, df)| (sd * sd, df, false)),
    }
}

/// A time from its rounds' figures (ns): their geometric mean and the t-interval of their
/// logarithms, each round kept; `None` below [`MIN_ROUNDS`].
pub fn between_rounds(rounds: Rounds) -> Option<Estimate> {
    let logs: Vec<f64> = rounds.iter().map(|(_, v)| v.ln()).collect();
    let (estimate, lower, upper) = t_interval_of_logs(&logs)?;
    Some(Estimate {
        estimate,
        lower,
        upper,
        rounds,
        pooled: None,
    })
}

/// The geometric mean of `exp(logs)` and its 95% t-interval, from at least [`MIN_ROUNDS`].
fn t_interval_of_logs(logs: &[f64]) -> Option<(f64, f64, f64)> {
    if logs.len() < MIN_ROUNDS {
        return None;
    }
    let (mean, sd) = mean_sd(logs)?;
    let half = t_975(logs.len() - 1) * sd / (logs.len() as f64).sqrt();
    Some((mean.exp(), (mean - half).exp(), (mean + half).exp()))
}

impl Ratio {
    /// `a / b`, each a time with its interval. Both measured in at least [`MIN_ROUNDS`] of the
    /// same rounds: the mean of the paired log ratios, its t-interval from the two times'
    /// round-to-round variances (each its group's [`Pooled`] spread, or its own when unstable
    /// or in no group); else the interval that holds for every pair of values inside the two
    /// intervals. `b` is the candidate.
    pub fn of(a: &Estimate, b: &Estimate) -> Self {
        let logs: Vec<f64> = a
            .rounds
            .paired(&b.rounds)
            .map(|(x, y)| (x / y).ln())
            .collect();
        let n = logs.len();
        // No veto of its own: a candidate whose rounds spread wide is named in the stability
        // section ([`unstable`]), and its spread is in this interval (its own where it is
        // wider than its group's). A veto was a second test on a spread known from three to
        // eight rounds: it fell one way in one full run and the other in the next for 5 of
        // the 9 recommendations two full runs disagreed on (70 of 79 agreed; 76 without it).
        let unstable = false;
        if n >= MIN_ROUNDS && a.pooled.is_some() && b.pooled.is_some() {
            // Each time's round-to-round variance from its group (Welch's degrees of
            // freedom): not the three paired logarithms' own, which swing from run to run.
            if let Some(((va, da, pa), (vb, db, pb))) = round_variance(a).zip(round_variance(b)) {
                let mean = logs.iter().sum::<f64>() / n as f64;
                // Two pooled variances of one suite run share most of their data: Welch would
                // count it twice. The smaller count is the safe one.
                let df = if pa && pb {
                    da.min(db)
                } else {
                    (va + vb).powi(2) / (va * va / da + vb * vb / db)
                };
                let half = t_975(df.floor().max(1.0) as usize) * ((va + vb) / n as f64).sqrt();
                return Self {
                    estimate: mean.exp(),
                    lower: Some((mean - half).exp()),
                    upper: Some((mean + half).exp()),
                    rounds: n as u32,
                    unstable,
                };
            }
        }
        if let Some((estimate, lower, upper)) = t_interval_of_logs(&logs) {
            return Self {
                estimate,
                lower: Some(lower),
                upper: Some(upper),
                rounds: n as u32,
                unstable,
            };
        }
        Self {
            estimate: a.estimate / b.estimate,
            lower: Some(a.lower / b.upper),
            upper: Some(a.upper / b.lower),
            rounds: 0,
            unstable,
        }
    }

    /// `a / b` of two configurations' runs interleaved by round (run `i` of each in the same
    /// round, each a process of its own): the geometric mean of the paired ratios and their
    /// t-interval, an interval between runs. Only the candidate `b` can be unstable: its own
    /// runs *and* the paired ratios spread beyond the margin beyond doubt (an oversubscribed
    /// program as it is spreads widely; that widens the interval, it takes no advice away).
    /// Unlike the suites' [`Ratio::of`], a user's program keeps this veto: its runs are whole
    /// programs, few, and not pooled with any others. `cargo xtask try` judges a user's program
    /// by it.
    pub fn of_paired_runs(a: &[f64], b: &[f64]) -> Self {
        let logs: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x / y).ln()).collect();
        let own: Vec<f64> = b.iter().take(logs.len()).map(|y| y.ln()).collect();
        match t_interval_of_logs(&logs) {
            Some((estimate, lower, upper)) => Self {
                estimate,
                lower: Some(lower),
                upper: Some(upper),
                rounds: logs.len() as u32,
                unstable: spread_beyond_margin(&own) && spread_beyond_margin(&logs),
            },
            None => Self::once(
                a.first().copied().unwrap_or(f64::NAN),
                b.first().copied().unwrap_or(f64::NAN),
            ),
        }
    }

    /// A ratio with a within-run interval.
    pub fn within(estimate: f64, lower: f64, upper: f64) -> Self {
        Self {
            estimate,
            lower: Some(lower),
            upper: Some(upper),
            rounds: 0,
            unstable: false,
        }
    }

    /// `a / b` of two single values: an estimate with no interval, judged [`Separation::Unknown`].
    pub fn once(a: f64, b: f64) -> Self {
        Self {
            estimate: a / b,
            lower: None,
            upper: None,
            rounds: 0,
            unstable: false,
        }
    }

    /// A ratio from an estimate that already carries its interval (a share of a peak).
    pub fn from_estimate(e: Estimate) -> Self {
        Self {
            estimate: e.estimate,
            lower: Some(e.lower),
            upper: Some(e.upper),
            rounds: 0,
            unstable: false,
        }
    }

    /// The interval, when there is one.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.lower.zip(self.upper)
    }

    /// Half the interval's width in logarithms (about 1.96 standard errors of the log ratio),
    /// when there is one.
    pub fn log_half_width(&self) -> Option<f64> {
        self.interval().map(|(lo, hi)| (hi / lo).ln() / 2.0)
    }

    /// The ratio as an estimate with its interval (for the export), when it has one.
    pub fn as_estimate(&self) -> Option<Estimate> {
        let (lower, upper) = self.interval()?;
        Some(Estimate {
            estimate: self.estimate,
            lower,
            upper,
            rounds: Default::default(),
            pooled: None,
        })
    }

    /// `b / a`.
    pub fn inverse(&self) -> Self {
        Self {
            estimate: 1.0 / self.estimate,
            lower: self.upper.map(|u| 1.0 / u),
            upper: self.lower.map(|l| 1.0 / l),
            ..*self
        }
    }

    /// Whether the estimate alone lies beyond `1 + margin` of `rule` (a step short of
    /// [`Separation::Above`], which needs the whole interval there).
    pub fn estimate_beyond_margin(&self, rule: Rule) -> bool {
        self.estimate > 1.0 + rule.margin
    }

    /// Whether the interval is one that holds between runs.
    pub fn between_rounds(&self) -> bool {
        self.rounds as usize >= MIN_ROUNDS
    }

    /// Where this ratio lies against 1 by `rule`: unknown without an interval, or under a rule
    /// of between-round intervals with a within-run one.
    pub fn separation(&self, rule: Rule) -> Separation {
        let Some((lo, hi)) = self.interval() else {
            return Separation::Unknown;
        };
        if rule.interval == IntervalKind::BetweenRounds && (!self.between_rounds() || self.unstable)
        {
            return Separation::Unknown;
        }
        let m = 1.0 + rule.margin;
        if lo > m {
            Separation::Above
        } else if hi < 1.0 / m {
            Separation::Below
        } else if lo >= 1.0 / m && hi <= m {
            Separation::Equivalent
        } else {
            Separation::Overlap
        }
    }

    /// `1.52x (1.40 to 1.66)`, or `1.52x (one run)`; one decimal from 10x on.
    pub fn words(&self) -> String {
        let digits = if self.estimate < 10.0 { 2 } else { 1 };
        match self.interval() {
            Some((lo, hi)) if self.between_rounds() => format!(
                "{:.digits$}x ({lo:.digits$} to {hi:.digits$}, {} rounds)",
                self.estimate, self.rounds
            ),
            Some((lo, hi)) => format!(
                "{:.digits$}x ({lo:.digits$} to {hi:.digits$})",
                self.estimate
            ),
            None => format!("{:.digits$}x (one run, no interval)", self.estimate),
        }
    }
}

/// Which interval a comparison is judged by, and the practical margin beyond it.
///
/// The margin: a ratio counts as a difference only when its whole interval lies beyond
/// `1 + margin` (or below its inverse); an interval wholly inside the margin is "equivalent
/// here", and one that straddles it decides nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The practical margin, as a fraction (0.05: 5%).
    pub margin: f64,
    pub interval: IntervalKind,
}

/// Where the interval of a comparison comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntervalKind {
    /// Criterion's 95% interval of one process's samples (or the harness's runs of one round):
    /// a between-round interval is used where there is one.
    WithinRun,
    /// The spread of independent rounds, each a fresh process (holds between runs).
    BetweenRounds,
}

/// The practical margin of the report: below 5%, two configurations are equivalent here.
pub const MARGIN: f64 = 0.05;

impl Rule {
    /// The rule the report's findings and figures judge by: the best interval there is.
    pub const REPORT: Rule = Rule {
        margin: MARGIN,
        interval: IntervalKind::WithinRun,
    };

    /// The rule of advice (recommendations and every setting): only an interval that holds
    /// between runs, beyond the margin (and, for a user's program, a candidate not unstable).
    pub const ADVICE: Rule = Rule {
        margin: MARGIN,
        interval: IntervalKind::BetweenRounds,
    };
}

/// A ratio against 1 under a [`Rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Separation {
    /// The whole interval lies above `1 + margin`.
    Above,
    /// The whole interval lies below `1 / (1 + margin)`.
    Below,
    /// The whole interval lies within the margin: equal for practical purposes.
    Equivalent,
    /// The interval straddles the margin: undecided.
    Overlap,
    /// No interval (a variant run once): nothing can be decided.
    Unknown,
}

impl Separation {
    /// Whether the ratio differs from 1 beyond its interval and the margin.
    pub fn separated(self) -> bool {
        matches!(self, Self::Above | Self::Below)
    }
}

/// One configuration measured against another: `ratio` is `against`'s time over
/// `subject`'s, so above 1 the subject was faster.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison<C> {
    pub subject: C,
    pub against: C,
    pub ratio: Ratio,
}

impl<C> Comparison<C> {
    /// How the subject stands against `against` under `rule`.
    pub fn separation(&self, rule: Rule) -> Separation {
        self.ratio.separation(rule)
    }

    /// The comparison as evidence that the subject was faster, or why it is not.
    pub fn faster(self, rule: Rule) -> Result<Separated<C>, Stands> {
        if rule.interval == IntervalKind::BetweenRounds && self.ratio.interval().is_some() {
            if !self.ratio.between_rounds() {
                return Err(Stands::FewRounds(self.ratio));
            }
            if self.ratio.unstable {
                return Err(Stands::Unstable(self.ratio));
            }
        }
        match self.separation(rule) {
            Separation::Above => Ok(Separated {
                comparison: self,
                rule,
            }),
            Separation::Below => Err(Stands::Slower(self.ratio)),
            Separation::Equivalent => Err(Stands::Equivalent(self.ratio)),
            Separation::Overlap => Err(Stands::Overlap(self.ratio)),
            Separation::Unknown => Err(Stands::RanOnce),
        }
    }
}

/// A comparison whose subject was faster than what it was measured against, beyond the
/// interval and the margin of its rule. Only [`Comparison::faster`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct Separated<C> {
    comparison: Comparison<C>,
    rule: Rule,
}

impl<C> Separated<C> {
    pub fn comparison(&self) -> &Comparison<C> {
        &self.comparison
    }

    pub fn subject(&self) -> &C {
        &self.comparison.subject
    }

    pub fn ratio(&self) -> Ratio {
        self.comparison.ratio
    }

    pub fn rule(&self) -> Rule {
        self.rule
    }
}

/// Why the default stands (or nothing is said).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "kebab-case")]
pub enum Stands {
    /// The fastest measured is the default itself.
    FastestIsDefault,
    /// The fastest's interval and the default's overlap (beyond the margin).
    Overlap(Ratio),
    /// Within the practical margin of the default.
    Equivalent(Ratio),
    /// Slower than the default (a comparison asked the other way).
    Slower(Ratio),
    /// The default (or the fastest) ran once: no interval to judge by.
    RanOnce,
    /// No default was measured: nothing to recommend against.
    NoDefault,
    /// One configuration only (the serial layer): nothing to choose.
    SingleConfiguration,
    /// The suite ran on a noisy machine: its figures carry no advice.
    NoisySuite,
    /// Measured in fewer than [`MIN_ROUNDS`] of the same rounds: no interval that holds between
    /// runs.
    FewRounds(Ratio),
    /// One of the two spread between its rounds wider than the margin.
    Unstable(Ratio),
    /// The default (or the fastest) was stopped as hopeless: only a bound is known.
    Censored,
}

/// What to do about one workload: recommend a configuration over the default (only with a
/// separated comparison), or keep the default and say why.
#[derive(Debug, Clone, PartialEq)]
pub enum Advice<C> {
    Recommend(Separated<C>),
    Keep { default: Option<C>, why: Stands },
}

impl<C: PartialEq + Clone> Advice<C> {
    /// The one recommendation rule: `fastest` over `default` (each with its time), under
    /// `rule`. `noisy`: the suite's run was flagged, so nothing is recommended from it.
    pub fn judge(
        fastest: (C, Option<Estimate>),
        default: Option<(C, Option<Estimate>)>,
        configurations: usize,
        noisy: bool,
        rule: Rule,
    ) -> Self {
        let Some((default, default_time)) = default else {
            return Self::Keep {
                default: None,
                why: if configurations <= 1 {
                    Stands::SingleConfiguration
                } else {
                    Stands::NoDefault
                },
            };
        };
        if configurations <= 1 {
            return Self::Keep {
                default: Some(default),
                why: Stands::SingleConfiguration,
            };
        }
        if fastest.0 == default {
            return Self::Keep {
                default: Some(default),
                why: Stands::FastestIsDefault,
            };
        }
        let ratio = match (default_time, fastest.1) {
            (Some(d), Some(f)) => Ratio::of(&d, &f),
            _ => {
                return Self::Keep {
                    default: Some(default),
                    why: Stands::RanOnce,
                };
            }
        };
        let comparison = Comparison {
            subject: fastest.0,
            against: default.clone(),
            ratio,
        };
        match comparison.faster(rule) {
            Ok(_) if noisy => Self::Keep {
                default: Some(default),
                why: Stands::NoisySuite,
            },
            Ok(s) => Self::Recommend(s),
            Err(why) => Self::Keep {
                default: Some(default),
                why,
            },
        }
    }

    /// The configuration to use: the recommended one, else the default.
    pub fn choice(&self) -> Option<&C> {
        match self {
            Self::Recommend(s) => Some(s.subject()),
            Self::Keep { default, .. } => default.as_ref(),
        }
    }

    pub fn recommended(&self) -> Option<&Separated<C>> {
        match self {
            Self::Recommend(s) => Some(s),
            Self::Keep { .. } => None,
        }
    }
}

/// What a recommendation says, for the export: `recommend`, or why the default stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "advice", rename_all = "kebab-case")]
pub enum AdviceKind {
    Recommend,
    Keep(Stands),
}

impl AdviceKind {
    /// Whether the answer was decided: a recommendation, or the default standing on the
    /// evidence ([`Stands::decided`]).
    pub fn decided(&self) -> bool {
        match self {
            Self::Recommend => true,
            Self::Keep(why) => why.decided(),
        }
    }
}

impl<C> From<&Advice<C>> for AdviceKind {
    fn from(a: &Advice<C>) -> Self {
        match a {
            Advice::Recommend(_) => Self::Recommend,
            Advice::Keep { why, .. } => Self::Keep(*why),
        }
    }
}

impl Stands {
    /// Whether the default stands on the evidence (the default the fastest by its estimate,
    /// the alternative within the margin or slower, nothing to choose) rather than for want of
    /// it (an interval across the margin, too few rounds, a run once, a spread too wide, a
    /// bound, a noisy suite, no default measured): a run that decides where another could not
    /// is short of evidence, not contradicted.
    pub fn decided(&self) -> bool {
        matches!(
            self,
            Self::FastestIsDefault
                | Self::Equivalent(_)
                | Self::Slower(_)
                | Self::SingleConfiguration
        )
    }

    /// Why the default stands, in a few words.
    pub fn words(&self) -> String {
        match self {
            Self::FastestIsDefault => "the default was the fastest".into(),
            Self::Overlap(r) => format!("the fastest did not separate from it: {}", r.words()),
            Self::Equivalent(r) => format!(
                "the fastest was within the {:.0}% margin: {}",
                100.0 * MARGIN,
                r.words()
            ),
            Self::Slower(r) => format!("the alternative was slower: {}", r.words()),
            Self::RanOnce => "a variant ran once, so there is no interval to judge by".into(),
            Self::NoDefault => "the default was not measured".into(),
            Self::SingleConfiguration => "one configuration only: nothing to choose".into(),
            Self::NoisySuite => "the suite ran on a noisy machine: rerun it before acting".into(),
            Self::FewRounds(r) => format!(
                "measured in fewer than {MIN_ROUNDS} rounds, so no interval holds between runs: {}",
                r.words()
            ),
            Self::Unstable(r) => format!(
                "its rounds spread wider than the {:.0}% margin: {}",
                100.0 * MARGIN,
                r.words()
            ),
            Self::Censored => "a variant was stopped as hopeless: only a bound is known".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(e: f64, half: f64) -> Estimate {
        Estimate {
            estimate: e,
            lower: e - half,
            upper: e + half,
            rounds: Default::default(),
            pooled: None,
        }
    }

    #[test]
    fn ratios_carry_conservative_intervals() {
        let r = Ratio::of(&est(10.0, 1.0), &est(2.0, 0.5));
        assert_eq!(r.estimate, 5.0);
        let (lo, hi) = r.interval().expect("an interval");
        assert!((lo - 9.0 / 2.5).abs() < 1e-12 && (hi - 11.0 / 1.5).abs() < 1e-12);
        assert_eq!(
            Ratio::once(4.0, 2.0).separation(Rule::REPORT),
            Separation::Unknown
        );
    }

    #[test]
    fn separation_needs_the_interval_beyond_the_margin() {
        let rule = Rule::REPORT;
        // Separated from 1 but not from the margin: 1.02 to 1.04 is equivalent here.
        let near = Ratio::within(1.03, 1.02, 1.04);
        assert_eq!(near.separation(rule), Separation::Equivalent);
        // Straddling the margin: undecided.
        let straddle = Ratio::within(1.06, 1.03, 1.09);
        assert_eq!(straddle.separation(rule), Separation::Overlap);
        let clear = Ratio::within(1.2, 1.1, 1.3);
        assert_eq!(clear.separation(rule), Separation::Above);
        assert_eq!(clear.inverse().separation(rule), Separation::Below);
        // Without the margin the near-tie would separate.
        let bare = Rule {
            margin: 0.0,
            ..rule
        };
        assert_eq!(near.separation(bare), Separation::Above);
    }

    fn judge(f: (u8, Option<Estimate>), d: Option<(u8, Option<Estimate>)>, n: usize) -> Advice<u8> {
        Advice::judge(f, d, n, false, Rule::REPORT)
    }

    /// Advice's rule: the fastest (1) against the default (0), each measured in rounds.
    fn advise(fastest: Estimate, default: Estimate) -> Advice<u8> {
        Advice::judge(
            (1, Some(fastest)),
            Some((0, Some(default))),
            2,
            false,
            Rule::ADVICE,
        )
    }

    #[test]
    fn advice_needs_between_round_intervals_beyond_the_margin() {
        let rounds = Estimate::in_rounds;
        // Clearly apart in every round: recommended, the interval a paired one of 3 rounds.
        let clear = advise(rounds(50.0, 1.0, 1), rounds(100.0, 1.0, 0));
        let s = clear.recommended().expect("separated between rounds");
        assert_eq!(s.ratio().rounds, 3);
        // 5% apart, but the rounds overlap: no recommendation.
        let overlap = advise(rounds(95.0, 4.0, 1), rounds(100.0, 4.0, 0));
        assert!(
            matches!(
                overlap,
                Advice::Keep {
                    why: Stands::Overlap(_),
                    ..
                }
            ),
            "{overlap:?}"
        );
        // 3% apart in every round: within the margin, equivalent here.
        let near = advise(rounds(97.0, 0.3, 1), rounds(100.0, 0.3, 0));
        assert!(
            matches!(
                near,
                Advice::Keep {
                    why: Stands::Equivalent(_),
                    ..
                }
            ),
            "{near:?}"
        );
        // Apart only by one process's samples (no rounds): no advice, whatever the ratio.
        let one_run = advise(est(50.0, 1.0), est(100.0, 1.0));
        assert!(
            matches!(
                one_run,
                Advice::Keep {
                    why: Stands::FewRounds(_),
                    ..
                }
            ),
            "{one_run:?}"
        );
        // The candidate's rounds spread wider than the margin: no veto of its own, its spread
        // is in the interval, which here still clears the margin (2x apart)...
        let spread = advise(rounds(50.0, 15.0, 1), rounds(100.0, 1.0, 0));
        assert!(spread.recommended().is_some(), "{spread:?}");
        // ...and here, 1.25x apart, does not: the default stands on the overlap.
        let spread = advise(rounds(80.0, 25.0, 1), rounds(100.0, 1.0, 0));
        assert!(
            matches!(
                spread,
                Advice::Keep {
                    why: Stands::Overlap(_),
                    ..
                }
            ),
            "{spread:?}"
        );
        // The candidate spread as wide, its rounds moving with the default's (one round slowed
        // both, seen in a full run here): paired by round, 2x in every round, recommended.
        let together = advise(rounds(50.0, 15.0, 0), rounds(100.0, 30.0, 0));
        assert!(together.recommended().is_some(), "{together:?}");
        // The default's rounds spread that wide: its own spread widens the interval, which
        // then overlaps 1.25x.
        let wide_default = advise(rounds(80.0, 1.0, 1), rounds(100.0, 30.0, 0));
        assert!(
            matches!(
                wide_default,
                Advice::Keep {
                    why: Stands::Overlap(_),
                    ..
                }
            ),
            "{wide_default:?}"
        );
        // The findings' rule still reads the within-run interval as evidence.
        assert_eq!(
            Ratio::of(&est(100.0, 1.0), &est(50.0, 1.0)).separation(Rule::REPORT),
            Separation::Above
        );
    }

    #[test]
    fn the_groups_pooled_spread_sets_the_interval_and_only_a_time_unlike_its_group_is_unstable() {
        let in_group = |e: Estimate, sd: f64| Estimate {
            pooled: Some(Pooled { sd, df: 40 }),
            ..e
        };
        // 8% apart in each of three rounds, the two moving together: the three paired ratios
        // alone make a tight interval; the group's 5% spread between rounds does not.
        let (a, b) = (
            Estimate::in_rounds(108.0, 6.0, 0),
            Estimate::in_rounds(100.0, 5.5, 0),
        );
        let paired = Ratio::of(&a, &b);
        assert_eq!(
            paired.separation(Rule::ADVICE),
            Separation::Above,
            "{paired:?}"
        );
        let pooled = Ratio::of(&in_group(a, 0.05), &in_group(b, 0.05));
        assert_eq!(pooled.rounds, 3);
        assert_eq!(
            pooled.separation(Rule::ADVICE),
            Separation::Overlap,
            "{pooled:?}"
        );
        // 2x apart in a quiet group: separated.
        let far = Ratio::of(
            &in_group(Estimate::in_rounds(200.0, 6.0, 1), 0.03),
            &in_group(b, 0.03),
        );
        assert_eq!(far.separation(Rule::ADVICE), Separation::Above, "{far:?}");
        // A time spreading 12% in a group that spreads 12% is not unstable; the same time in a
        // group of 2% is, and so is it without a group; 8% is not beyond doubt above the margin
        // from three rounds.
        let spread12 = Estimate::in_rounds(100.0, 30.0, 2);
        let sd = spread(&spread12).expect("three rounds");
        assert!(sd > 0.11 && sd < 0.13, "{sd}");
        assert!(!unstable(&in_group(spread12, 0.12)));
        assert!(unstable(&in_group(spread12, 0.02)));
        assert!(unstable(&spread12));
        assert!(!unstable(&in_group(
            Estimate::in_rounds(100.0, 20.0, 2),
            0.01
        )));
        // That 8% time in a group of 1% is not unstable (not beyond doubt over the margin), but
        // wider than its group: its own spread, not the group's, sets its intervals, and 1.15x
        // does not separate.
        let wide = in_group(Estimate::in_rounds(115.0, 23.0, 2), 0.01);
        assert!(wider_than_group(&wide) && !unstable(&wide));
        let quiet = in_group(Estimate::in_rounds(100.0, 1.0, 0), 0.01);
        let r = Ratio::of(&wide, &quiet);
        assert_eq!(r.separation(Rule::ADVICE), Separation::Overlap, "{r:?}");
        // The pool leaves out the time unlike its group.
        let quiet: Vec<Estimate> = (0..6)
            .map(|k| Estimate::in_rounds(100.0 + k as f64, 2.5, k))
            .chain([Estimate::in_rounds(100.0, 80.0, 2)])
            .collect();
        let p = pool(&quiet).expect("a pool");
        assert!(p.sd < 0.03 && p.df == 12, "{p:?}");
    }

    #[test]
    fn rounds_pair_by_round_and_their_interval_holds_between_runs() {
        // Two times that move together round by round (a slow round slows both): the paired
        // ratio is tight, the two times' own intervals are not.
        let mut a = Rounds::default();
        let mut b = Rounds::default();
        for (k, (x, y)) in [(100.0, 50.0), (120.0, 60.0), (90.0, 45.0)]
            .into_iter()
            .enumerate()
        {
            a.set(k as u32 + 1, x);
            b.set(k as u32 + 1, y);
        }
        let (a, b) = (
            between_rounds(a).expect("3 rounds"),
            between_rounds(b).expect("3 rounds"),
        );
        assert!(a.upper / a.lower > 1.3, "{a:?}");
        let r = Ratio::of(&a, &b);
        assert!(
            (r.estimate - 2.0).abs() < 1e-9 && r.between_rounds(),
            "{r:?}"
        );
        assert!(
            r.upper.zip(r.lower).is_some_and(|(h, l)| h - l < 1e-9),
            "{r:?}"
        );
        // Fewer than three shared rounds: no between-round interval.
        let mut two = Rounds::default();
        two.set(1, 100.0);
        two.set(2, 100.0);
        assert!(between_rounds(two).is_none());
        assert_eq!(t_975(2), 4.303);
    }

    #[test]
    fn only_a_separated_comparison_is_recommended() {
        // Overlapping intervals: the default stands.
        let a = judge(
            (1, Some(est(88.0, 8.0))),
            Some((0, Some(est(100.0, 8.0)))),
            2,
        );
        assert!(
            matches!(
                a,
                Advice::Keep {
                    why: Stands::Overlap(_),
                    ..
                }
            ),
            "{a:?}"
        );
        assert_eq!(a.choice(), Some(&0));
        // Within the margin, however tight: the default stands.
        let a = judge(
            (1, Some(est(97.0, 0.1))),
            Some((0, Some(est(100.0, 0.1)))),
            2,
        );
        assert!(
            matches!(
                a,
                Advice::Keep {
                    why: Stands::Equivalent(_),
                    ..
                }
            ),
            "{a:?}"
        );
        // A default that ran once: no interval, no recommendation.
        let a = judge((1, Some(est(50.0, 1.0))), Some((0, None)), 2);
        assert!(
            matches!(
                a,
                Advice::Keep {
                    why: Stands::RanOnce,
                    ..
                }
            ),
            "{a:?}"
        );
        // No default measured: nothing is recommended, and no choice is made for the user.
        let a = judge((1, Some(est(50.0, 1.0))), None, 2);
        assert!(
            matches!(
                a,
                Advice::Keep {
                    why: Stands::NoDefault,
                    default: None
                }
            ),
            "{a:?}"
        );
        assert_eq!(a.choice(), None);
        // One configuration: nothing to choose.
        let a = judge(
            (0, Some(est(50.0, 1.0))),
            Some((0, Some(est(50.0, 1.0)))),
            1,
        );
        assert!(
            matches!(
                a,
                Advice::Keep {
                    why: Stands::SingleConfiguration,
                    ..
                }
            ),
            "{a:?}"
        );
        // A noisy suite: even a clear win is not advice.
        let a = Advice::judge(
            (1, Some(est(50.0, 1.0))),
            Some((0, Some(est(100.0, 1.0)))),
            2,
            true,
            Rule::REPORT,
        );
        assert!(
            matches!(
                a,
                Advice::Keep {
                    why: Stands::NoisySuite,
                    ..
                }
            ),
            "{a:?}"
        );
        // Clearly faster: recommended, and the recommendation carries its comparison.
        let a = judge(
            (1, Some(est(50.0, 1.0))),
            Some((0, Some(est(100.0, 1.0)))),
            2,
        );
        let s = a.recommended().expect("recommended");
        assert_eq!(*s.subject(), 1);
        assert!(s.ratio().lower.is_some_and(|l| l > 1.0 + MARGIN));
    }
}
