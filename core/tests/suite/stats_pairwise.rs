//! Pairwise statistics over seeds (PWMCC-like): resample seeds, not pairs, and bound differences directly.

use husai_core::stats::{
    BootstrapSpec, PairwiseMatrix, SeedDesign, StatsError, pairwise_difference_bootstrap,
    pairwise_seed_bootstrap, seed_bootstrap_mean,
};

fn all_pairs(n: usize, value: impl Fn(usize, usize) -> f64) -> Vec<(usize, usize, f64)> {
    (0..n)
        .flat_map(|i| ((i + 1)..n).map(move |j| (i, j)))
        .map(|(i, j)| (i, j, value(i, j)))
        .collect()
}

const SPEC: BootstrapSpec = BootstrapSpec {
    resamples: 4000,
    seed: 11,
};

#[test]
fn matrix_checks_its_pairs() {
    let err = PairwiseMatrix::from_pairs(2, &[(0, 1, 0.5)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pairwise seed bootstrap (seeds) needs at least 3 value(s), got 2"
    );
    let err = PairwiseMatrix::from_pairs(3, &[(0, 1, 0.5), (0, 2, 0.5)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pairwise statistics: 3 seeds need all 3 pairs, got 2"
    );
    let err = PairwiseMatrix::from_pairs(3, &[(0, 1, 0.5), (1, 0, 0.5), (0, 2, 0.5)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pairwise statistics: pair (1, 0) is given twice"
    );
    let err = PairwiseMatrix::from_pairs(3, &[(0, 0, 0.5)]).unwrap_err();
    assert!(
        err.to_string()
            .contains("pair (0, 0) is not two distinct seeds among 0..3")
    );
    let err =
        PairwiseMatrix::from_pairs(3, &[(0, 1, f64::NAN), (0, 2, 0.1), (1, 2, 0.1)]).unwrap_err();
    assert!(matches!(err, StatsError::NonFinite { .. }));
    let m = PairwiseMatrix::from_pairs(3, &[(0, 1, 0.1), (0, 2, 0.2), (1, 2, 0.6)]).unwrap();
    assert!((m.mean() - 0.3).abs() < 1e-15);
    assert_eq!(m.seeds(), 3);
}

#[test]
fn seed_resampling_is_wider_than_treating_pairs_as_independent() {
    // Seed 0 is an outlier: every pair that involves it is high. Its 4 pairs are one seed's worth of
    // evidence, not four independent observations.
    let n = 5;
    let pairs = all_pairs(n, |i, _| if i == 0 { 1.0 } else { 0.0 });
    let m = PairwiseMatrix::from_pairs(n, &pairs).unwrap();
    let by_seed = pairwise_seed_bootstrap(&m, 0.95, SPEC).unwrap();
    let values: Vec<f64> = pairs.iter().map(|p| p.2).collect();
    let by_pair = seed_bootstrap_mean(&values, 0.95, SPEC).unwrap();
    assert_eq!(by_seed.estimate, 0.4);
    assert_eq!(
        by_seed.low, 0.0,
        "a resample without seed 0 has no high pair at all"
    );
    assert!(
        by_seed.high - by_seed.low > (by_pair.high - by_pair.low) * 1.2,
        "{by_seed:?} vs {by_pair:?}"
    );
    assert_eq!(
        by_seed,
        pairwise_seed_bootstrap(&m, 0.95, SPEC).unwrap(),
        "deterministic"
    );
}

#[test]
fn differences_are_bounded_directly() {
    let trained = PairwiseMatrix::from_pairs(4, &all_pairs(4, |_, _| 0.3)).unwrap();
    let random = PairwiseMatrix::from_pairs(5, &all_pairs(5, |_, _| 0.1)).unwrap();
    let d = pairwise_difference_bootstrap(&trained, &random, SeedDesign::Independent, 0.95, SPEC)
        .unwrap();
    assert!(
        (d.low - 0.2).abs() < 1e-12 && (d.high - 0.2).abs() < 1e-12,
        "{d:?}"
    );
    let err = pairwise_difference_bootstrap(&trained, &random, SeedDesign::Paired, 0.95, SPEC)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "a paired comparison needs the same seeds on both sides, got 4 and 5 seeds"
    );
    // Paired: a treatment that adds 0.05 to every pair of a noisy matrix is detected exactly.
    let base = all_pairs(5, |i, j| ((i * 7 + j * 3) % 5) as f64 / 10.0);
    let treated: Vec<(usize, usize, f64)> =
        base.iter().map(|&(i, j, v)| (i, j, v + 0.05)).collect();
    let (b, t) = (
        PairwiseMatrix::from_pairs(5, &base).unwrap(),
        PairwiseMatrix::from_pairs(5, &treated).unwrap(),
    );
    let d = pairwise_difference_bootstrap(&t, &b, SeedDesign::Paired, 0.95, SPEC).unwrap();
    assert!(
        (d.low - 0.05).abs() < 1e-12 && (d.high - 0.05).abs() < 1e-12,
        "{d:?}"
    );
    let d = pairwise_difference_bootstrap(&t, &b, SeedDesign::Independent, 0.95, SPEC).unwrap();
    assert!(
        d.low < 0.05 && d.high > 0.05 && d.high - d.low > 0.05,
        "independent draws add the seed noise back"
    );
}
