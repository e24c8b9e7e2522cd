//! Joint score, Pareto front and ranking (reference §2.4, §2.6, §2.7).
//!
//! The score is a weighted sum of min-max normalised metrics, so it is relative to the population it is computed
//! over (W12); the ranges used are returned and recorded with every selection.

use std::cmp::Ordering;

use super::rows::{MetricKey, Metrics, SourceKind};

/// Weights of the three scored metrics. Upstream's defaults (0.5 / 0.5 / 0.1) are not normalised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub saebench: f64,
    pub cebench_delta: f64,
    pub train_ev: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            saebench: 0.5,
            cebench_delta: 0.5,
            train_ev: 0.1,
        }
    }
}

/// Min and max of one metric over the population (present, non-NaN values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub lo: f64,
    pub hi: f64,
}

/// The ranges of the three scored metrics; `None` when no candidate has the metric.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Normalization {
    pub saebench: Option<Range>,
    pub cebench_delta: Option<Range>,
    pub train_ev: Option<Range>,
}

/// One candidate's score and the normalised components that made it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub joint: f64,
    pub saebench_norm: Option<f64>,
    pub cebench_delta_norm: Option<f64>,
    pub train_ev_norm: Option<f64>,
}

fn range_of(values: impl Iterator<Item = Option<f64>>) -> Option<Range> {
    let mut range: Option<Range> = None;
    for v in values.flatten().filter(|v| !v.is_nan()) {
        range = Some(match range {
            None => Range { lo: v, hi: v },
            Some(r) => Range {
                lo: r.lo.min(v),
                hi: r.hi.max(v),
            },
        });
    }
    range
}

fn normalize(value: Option<f64>, range: Option<Range>) -> Option<f64> {
    let v = value.filter(|v| !v.is_nan())?;
    let r = range?;
    Some(if r.hi <= r.lo {
        0.5
    } else {
        (v - r.lo) / (r.hi - r.lo)
    })
}

/// Scores every candidate: `0.0 + w_sae·norm_sae + w_ce·norm_ce + w_ev·norm_ev`, added in that order and only for
/// the terms a candidate has. `norm = (v − lo)/(hi − lo)`, or 0.5 for everyone when `hi ≤ lo`. A range is taken
/// over the candidates that have the metric, so a missing (or not applicable) metric neither widens a range nor
/// counts as 0.5: its term is simply absent. A husai run therefore has no CE-Bench term: among husai candidates
/// alone every score lacks the same term and the order is that of the SAEBench analogue and train EV; next to
/// upstream candidates its score is up to `w_ce` lower than theirs, so compare such mixed rankings on the front
/// (the shared axes) first, as [`rank`] does.
pub fn score(metrics: &[Metrics], weights: Weights) -> (Vec<Score>, Normalization) {
    let normalization = Normalization {
        saebench: range_of(metrics.iter().map(|m| m.saebench_delta)),
        cebench_delta: range_of(metrics.iter().map(|m| m.cebench_interp_delta_vs_baseline)),
        train_ev: range_of(metrics.iter().map(|m| m.train_explained_variance)),
    };
    let scores = metrics
        .iter()
        .map(|m| {
            let saebench_norm = normalize(m.saebench_delta, normalization.saebench);
            let cebench_delta_norm = normalize(
                m.cebench_interp_delta_vs_baseline,
                normalization.cebench_delta,
            );
            let train_ev_norm = normalize(m.train_explained_variance, normalization.train_ev);
            let mut joint = 0.0;
            if let Some(n) = saebench_norm {
                joint += weights.saebench * n;
            }
            if let Some(n) = cebench_delta_norm {
                joint += weights.cebench_delta * n;
            }
            if let Some(n) = train_ev_norm {
                joint += weights.train_ev * n;
            }
            Score {
                joint,
                saebench_norm,
                cebench_delta_norm,
                train_ev_norm,
            }
        })
        .collect();
    (scores, normalization)
}

/// What a candidate's evidence consists of. It decides which metrics make the candidate complete and which delta
/// axes its Pareto comparisons use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Upstream's results files: a SAEBench and a CE-Bench delta, the two axes of the front (train EV is scored
    /// when present, never required).
    External,
    /// husai's own runs ([`super::husai`]): the ood-stress SAEBench analogue, the one delta axis, and the held-out
    /// explained variance. CE-Bench does not apply: husai has no CE-Bench producer, so its absence is not a
    /// missing measurement and does not make the candidate incomplete.
    Husai,
}

impl Evidence {
    /// The evidence of a row from `source`.
    pub fn of_source(source: SourceKind) -> Evidence {
        match source {
            SourceKind::Husai => Evidence::Husai,
            _ => Evidence::External,
        }
    }

    /// The evidence of a candidate made of rows from `sources`: husai's only when every row is a husai run.
    pub fn of_sources(sources: &[SourceKind]) -> Evidence {
        if !sources.is_empty() && sources.iter().all(|s| *s == SourceKind::Husai) {
            Evidence::Husai
        } else {
            Evidence::External
        }
    }

    /// The metrics a complete row or candidate has (finite, in strict mode).
    pub fn required(self) -> &'static [MetricKey] {
        match self {
            Evidence::External => &[MetricKey::SaebenchDelta, MetricKey::CebenchDelta],
            Evidence::Husai => &[MetricKey::SaebenchDelta, MetricKey::TrainExplainedVariance],
        }
    }

    /// The delta axes of the Pareto front this evidence has.
    pub fn pareto_axes(self) -> &'static [MetricKey] {
        match self {
            Evidence::External => &[MetricKey::SaebenchDelta, MetricKey::CebenchDelta],
            Evidence::Husai => &[MetricKey::SaebenchDelta],
        }
    }

    /// The metrics that do not apply to this evidence (recorded as such, not as missing).
    pub fn not_applicable(self) -> &'static [MetricKey] {
        match self {
            Evidence::External => &[],
            Evidence::Husai => &[
                MetricKey::CebenchDelta,
                MetricKey::CebenchInterpretabilityMax,
            ],
        }
    }
}

/// Upstream's dominance: both deltas present on both, `a ≥ b` on each, strictly better on one. NaN compares false,
/// so a NaN candidate neither dominates nor is dominated.
fn dominates(a: &Metrics, b: &Metrics) -> bool {
    dominates_on(a, b, Evidence::External.pareto_axes())
}

/// `a` dominates `b` on `axes`: both have every axis, `a ≥ b` on each, strictly better on one. NaN compares false.
fn dominates_on(a: &Metrics, b: &Metrics, axes: &[MetricKey]) -> bool {
    let mut strictly = false;
    for &axis in axes {
        let (Some(x), Some(y)) = (a.get(axis), b.get(axis)) else {
            return false;
        };
        match x.partial_cmp(&y) {
            Some(Ordering::Greater) => strictly = true,
            Some(Ordering::Equal) => {}
            Some(Ordering::Less) | None => return false,
        }
    }
    strictly
}

/// Every metric `evidence` requires is present and finite: the only candidates strict mode admits to the Pareto
/// front. For upstream's evidence that is both deltas; for a husai run the SAEBench analogue and the train EV
/// (CE-Bench does not apply).
pub fn is_complete(m: &Metrics, evidence: Evidence) -> bool {
    evidence
        .required()
        .iter()
        .all(|k| matches!(m.get(*k), Some(v) if v.is_finite()))
}

/// Upstream's front: every candidate no other candidate dominates. A candidate missing a delta can be neither
/// dominated nor dominating, so it is always on this front (W13).
pub fn pareto_parity(metrics: &[Metrics]) -> Vec<bool> {
    (0..metrics.len())
        .map(|i| !(0..metrics.len()).any(|j| j != i && dominates(&metrics[j], &metrics[i])))
        .collect()
}

/// Strict front: complete candidates that no complete candidate dominates on the delta axes both have (a husai
/// candidate and an upstream one share the SAEBench axis only; two upstream ones share both). Incomplete
/// candidates are never on it. `evidence[i]` is candidate `i`'s.
pub fn pareto_strict(metrics: &[Metrics], evidence: &[Evidence]) -> Vec<bool> {
    debug_assert_eq!(metrics.len(), evidence.len());
    let shared = |a: Evidence, b: Evidence| -> Vec<MetricKey> {
        a.pareto_axes()
            .iter()
            .copied()
            .filter(|k| b.pareto_axes().contains(k))
            .collect()
    };
    (0..metrics.len())
        .map(|i| {
            is_complete(&metrics[i], evidence[i])
                && !(0..metrics.len()).any(|j| {
                    j != i
                        && is_complete(&metrics[j], evidence[j])
                        && dominates_on(&metrics[j], &metrics[i], &shared(evidence[j], evidence[i]))
                })
        })
        .collect()
}

/// Upstream's `finite_or_default`: the value when it is a finite number, else the default (14b6c59 and later; an
/// exact 0.0 is a value).
pub fn finite_or_default(value: Option<f64>, default: f64) -> f64 {
    match value {
        Some(v) if v.is_finite() => v,
        _ => default,
    }
}

/// What the ranking compares, per candidate.
#[derive(Debug, Clone)]
pub struct RankKey {
    pub is_pareto: bool,
    pub joint_score: f64,
    pub saebench_delta: Option<f64>,
    pub cebench_delta: Option<f64>,
    /// Strict mode's final, input-order-independent keys (condition, then configuration hash), compared
    /// ascending. Parity leaves them empty, so full ties keep population order as upstream's stable sort does.
    pub identity: (String, String),
}

fn desc(a: f64, b: f64) -> Ordering {
    b.partial_cmp(&a).unwrap_or(Ordering::Equal)
}

/// Indices of `keys` in rank order: descending on (is_pareto, joint_score, SAEBench delta, CE-Bench delta) with
/// missing or non-finite deltas as −∞, then ascending on `identity`. The sort is stable.
pub fn rank(keys: &[RankKey]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (&keys[i], &keys[j]);
        b.is_pareto
            .cmp(&a.is_pareto)
            .then_with(|| desc(a.joint_score, b.joint_score))
            .then_with(|| {
                desc(
                    finite_or_default(a.saebench_delta, f64::NEG_INFINITY),
                    finite_or_default(b.saebench_delta, f64::NEG_INFINITY),
                )
            })
            .then_with(|| {
                desc(
                    finite_or_default(a.cebench_delta, f64::NEG_INFINITY),
                    finite_or_default(b.cebench_delta, f64::NEG_INFINITY),
                )
            })
            .then_with(|| a.identity.cmp(&b.identity))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(sae: Option<f64>, ce: Option<f64>, ev: Option<f64>) -> Metrics {
        Metrics {
            saebench_delta: sae,
            cebench_interp_delta_vs_baseline: ce,
            cebench_interpretability_max: None,
            train_explained_variance: ev,
        }
    }

    #[test]
    fn finite_or_default_port() {
        // Upstream unit test §2.9 item 7.
        assert_eq!(finite_or_default(Some(0.0), f64::NEG_INFINITY), 0.0);
        assert_eq!(finite_or_default(Some(f64::NAN), -5.0), -5.0);
        assert_eq!(finite_or_default(None, -5.0), -5.0);
        assert_eq!(finite_or_default(Some(f64::INFINITY), -5.0), -5.0);
    }

    #[test]
    fn equal_values_normalise_to_one_half_and_missing_terms_are_skipped() {
        let (scores, norm) = score(
            &[m(Some(1.0), None, Some(0.5)), m(Some(1.0), Some(2.0), None)],
            Weights::default(),
        );
        assert_eq!(norm.saebench, Some(Range { lo: 1.0, hi: 1.0 }));
        assert_eq!(scores[0].joint, 0.5 * 0.5 + 0.1 * 0.5);
        assert_eq!(scores[1].joint, 0.5 * 0.5 + 0.5 * 0.5);
        assert_eq!(scores[0].cebench_delta_norm, None);
    }

    #[test]
    fn fronts_differ_on_incomplete_rows() {
        let metrics = [
            m(Some(1.0), Some(1.0), None),
            m(Some(0.0), Some(0.0), None),
            m(None, Some(5.0), None),
            m(Some(f64::NAN), Some(0.5), None),
        ];
        assert_eq!(pareto_parity(&metrics), vec![true, false, true, true]);
        assert_eq!(
            pareto_strict(&metrics, &[Evidence::External; 4]),
            vec![true, false, false, false]
        );
    }

    #[test]
    fn husai_candidates_are_complete_without_cebench_and_compared_on_the_shared_axis() {
        use Evidence::{External, Husai};
        // A husai run has the SAEBench analogue and train EV, and no CE-Bench delta: complete.
        assert!(is_complete(&m(Some(0.01), None, Some(0.7)), Husai));
        assert!(!is_complete(&m(Some(0.01), None, Some(0.7)), External));
        // Without its ood-stress eval (no SAEBench analogue), or without a held-out EV, it is not.
        assert!(!is_complete(&m(None, None, Some(0.7)), Husai));
        assert!(!is_complete(&m(Some(0.01), None, None), Husai));
        assert!(!is_complete(
            &m(Some(f64::INFINITY), None, Some(0.7)),
            Husai
        ));

        // Among husai candidates the front is the best SAEBench analogue (ties all stay on it); train EV is not an
        // axis, and an incomplete candidate is never on the front.
        let husai = [
            m(Some(0.02), None, Some(0.5)),
            m(Some(0.03), None, Some(0.4)),
            m(Some(0.03), None, Some(0.9)),
            m(None, None, Some(0.99)),
        ];
        assert_eq!(
            pareto_strict(&husai, &[Husai; 4]),
            vec![false, true, true, false]
        );

        // Mixed: a husai candidate and an upstream one share the SAEBench axis only.
        let mixed = [
            m(Some(0.05), None, Some(0.8)),  // husai, best SAEBench delta
            m(Some(0.04), Some(9.0), None),  // upstream, dominated by it on the shared axis
            m(Some(0.06), Some(-1.0), None), // upstream, dominates the husai one on SAEBench
            m(Some(0.01), Some(10.0), None), // upstream, on the upstream front on CE-Bench, dominated on SAEBench
        ];
        assert_eq!(
            pareto_strict(&mixed, &[Husai, External, External, External]),
            vec![false, false, true, false]
        );
        let mixed = [
            m(Some(0.05), None, Some(0.8)),
            m(Some(0.04), Some(9.0), None),
        ];
        assert_eq!(pareto_strict(&mixed, &[Husai, External]), vec![true, false]);
    }

    #[test]
    fn a_missing_cebench_term_is_absent_from_the_joint_score_not_counted_as_a_value() {
        // Two husai candidates: no CE-Bench range at all, so no CE-Bench term; the score is the SAEBench and EV
        // terms alone.
        let (scores, norm) = score(
            &[
                m(Some(0.01), None, Some(0.5)),
                m(Some(0.03), None, Some(0.7)),
            ],
            Weights::default(),
        );
        assert_eq!(norm.cebench_delta, None);
        assert_eq!(scores[0].joint, 0.0);
        assert_eq!(scores[1].joint, 0.5 + 0.1);
        assert_eq!(scores[1].cebench_delta_norm, None);
    }

    #[test]
    fn rank_puts_front_first_then_score_then_identity() {
        let key = |p: bool, s: f64, id: &str| RankKey {
            is_pareto: p,
            joint_score: s,
            saebench_delta: None,
            cebench_delta: None,
            identity: (id.to_string(), String::new()),
        };
        let keys = [
            key(false, 0.9, "a"),
            key(true, 0.5, "c"),
            key(true, 0.5, "b"),
            key(true, 0.6, "d"),
        ];
        assert_eq!(rank(&keys), vec![3, 2, 1, 0]);
    }
}
