//! Mann–Whitney U: the reference values (`upstream-stress-evals.md` §0.4 and §7) and the bad-input paths.

use husai_stats::mann_whitney_greater;
use husai_stats::rank::{asymptotic_p, exact_p};

/// Two samples of 10 with U = 82 (x beats y in 82 of the 100 pairs, no ties).
fn u82() -> (Vec<f64>, Vec<f64>) {
    // y occupies ranks 1..=10 shifted so that exactly 18 (x, y) pairs have y > x.
    let y: Vec<f64> = (0..10).map(|i| i as f64).collect();
    // x: eight values above every y, and two values each below nine y values (2 × 9 = 18 losses).
    let mut x: Vec<f64> = (0..8).map(|i| 100.0 + i as f64).collect();
    x.extend([0.5, 0.6]);
    (x, y)
}

#[test]
fn reference_p_values_for_10_vs_10() {
    let (x, y) = u82();
    let r = mann_whitney_greater(&x, &y).unwrap();
    assert_eq!(r.u, 82.0);
    assert!(!r.ties);
    assert!(
        (r.p_asymptotic - 0.0086287).abs() < 1e-6,
        "{}",
        r.p_asymptotic
    );
    let exact = r.p_exact.unwrap();
    assert!((exact - 0.0073448).abs() < 1e-6, "{exact}");
    assert_eq!((r.p_value(), r.method()), (exact, "exact"));
    // The other reference values of the asymptotic formula.
    assert!((asymptotic_p(98.0, 10, 10, 0.0) - 1.649e-4).abs() < 1e-7);
    assert!((asymptotic_p(100.0, 10, 10, 0.0) - 9.13e-5).abs() < 1e-7);
}

#[test]
fn exact_distribution_matches_enumeration() {
    // 3 vs 2: the C(5, 2) = 10 arrangements give U = 0,1,2,2,3,3,4,4,5,6; P(U ≥ 4) = 4/10.
    assert!((exact_p(4, 3, 2) - 0.4).abs() < 1e-15);
    assert_eq!(exact_p(0, 3, 2), 1.0);
    assert!((exact_p(6, 3, 2) - 0.1).abs() < 1e-15);
    // Symmetric: P(U ≥ u) = P(U ≤ n1 n2 − u).
    let (p, q) = (exact_p(70, 10, 12), 1.0 - exact_p(51, 10, 12));
    assert!((p - q).abs() < 1e-12, "{p} vs {q}");
}

#[test]
fn ties_use_the_asymptotic_p_and_bad_inputs_are_errors() {
    let r = mann_whitney_greater(&[1.0, 2.0, 3.0], &[2.0, 0.0]).unwrap();
    assert_eq!(r.u, 4.5);
    assert!(r.ties && r.p_exact.is_none());
    assert_eq!(r.method(), "asymptotic");
    let err = mann_whitney_greater(&[], &[1.0]).unwrap_err().to_string();
    assert_eq!(err, "Mann-Whitney x needs at least 1 value(s), got 0");
    let err = mann_whitney_greater(&[1.0], &[f64::NAN])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Mann-Whitney y got a non-finite value"),
        "{err}"
    );
}
