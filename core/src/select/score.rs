//! Joint score, Pareto front and ranking (reference §2.4, §2.6, §2.7).
//!
//! The score is a weighted sum of min-max normalised metrics, so it is relative to the population it is computed
//! over (W12); the ranges used are returned and recorded with every selection.

use std::cmp::Ordering;

use super::rows::Metrics;

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
/// the terms a candidate has. `norm = (v − lo)/(hi − lo)`, or 0.5 for everyone when `hi ≤ lo`.
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

/// `a` dominates `b`: both deltas present on both, `a ≥ b` on each, strictly better on one. NaN compares false,
/// so a NaN candidate neither dominates nor is dominated.
fn dominates(a: &Metrics, b: &Metrics) -> bool {
    let (Some(a_sae), Some(a_ce), Some(b_sae), Some(b_ce)) = (
        a.saebench_delta,
        a.cebench_interp_delta_vs_baseline,
        b.saebench_delta,
        b.cebench_interp_delta_vs_baseline,
    ) else {
        return false;
    };
    a_sae >= b_sae && a_ce >= b_ce && (a_sae > b_sae || a_ce > b_ce)
}

/// Both deltas present and finite: the only candidates strict mode admits to the Pareto front.
pub fn is_complete(m: &Metrics) -> bool {
    matches!(m.saebench_delta, Some(v) if v.is_finite())
        && matches!(m.cebench_interp_delta_vs_baseline, Some(v) if v.is_finite())
}

/// Upstream's front: every candidate no other candidate dominates. A candidate missing a delta can be neither
/// dominated nor dominating, so it is always on this front (W13).
pub fn pareto_parity(metrics: &[Metrics]) -> Vec<bool> {
    (0..metrics.len())
        .map(|i| !(0..metrics.len()).any(|j| j != i && dominates(&metrics[j], &metrics[i])))
        .collect()
}

/// Strict front: complete candidates that no complete candidate dominates. Incomplete candidates are never on it.
pub fn pareto_strict(metrics: &[Metrics]) -> Vec<bool> {
    (0..metrics.len())
        .map(|i| {
            is_complete(&metrics[i])
                && !(0..metrics.len()).any(|j| {
                    j != i && is_complete(&metrics[j]) && dominates(&metrics[j], &metrics[i])
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
        assert_eq!(pareto_strict(&metrics), vec![true, false, false, false]);
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
