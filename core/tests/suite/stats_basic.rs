//! Statistics: parity with Python's `math.fsum` / `statistics.fmean` / `statistics.stdev`
//! (expected values printed by CPython 3.11), Student-t quantiles against closed forms and
//! published tables, and the deterministic bootstrap.

use husai_core::stats::{
    BootstrapSpec, SplitMix64, StatsError, fsum, mean, paired_bootstrap_difference,
    paired_t_difference, sample_sd, seed_bootstrap_mean, student_t_quantile, t_interval,
    z196_interval_parity,
};

/// topk SAEBench deltas of the five seeds in cycle3_queue_final's frontier results.
const TOPK_SAEBENCH: [f64; 5] = [
    -0.04525995743561939,
    -0.03260442057084412,
    -0.041807613913057096,
    -0.04274279129189251,
    -0.04054921811706025,
];

#[test]
fn fsum_matches_cpython() {
    assert_eq!(fsum(&[0.1; 10]), 1.0);
    assert_eq!(fsum(&[1e100, 1.0, -1e100, 1e-100]), 1.0);
    assert_eq!(fsum(&TOPK_SAEBENCH), -0.20296400132847336);
    assert_eq!(
        fsum(&[1.0, 1.0 + f64::EPSILON, 1.0 + 2.0 * f64::EPSILON]),
        3.000000000000001
    );
    assert_eq!(fsum(&[3e-310, 5e-310, 1e-300]), 1.0000000008e-300);
    assert_eq!(fsum(&[]), 0.0);
    // Naive left-to-right summation gets the first two wrong; fsum must not.
    assert_ne!([0.1_f64; 10].iter().sum::<f64>(), 1.0);
}

#[test]
fn fsum_specials() {
    assert!(fsum(&[1.0, f64::NAN]).is_nan());
    assert!(fsum(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
    assert_eq!(fsum(&[1.0, f64::INFINITY]), f64::INFINITY);
    assert_eq!(fsum(&[f64::MAX, f64::MAX]), f64::INFINITY);
}

#[test]
fn mean_and_sd_match_cpython_bit_for_bit() {
    assert_eq!(mean(&TOPK_SAEBENCH).unwrap(), -0.04059280026569467);
    assert_eq!(sample_sd(&TOPK_SAEBENCH).unwrap(), 0.004787919673827799);
    assert_eq!(sample_sd(&[0.1; 10]).unwrap(), 0.0);
    assert_eq!(
        sample_sd(&[1e100, 1.0, -1e100, 1e-100]).unwrap(),
        8.164965809277261e+99
    );
    assert_eq!(
        sample_sd(&[1.0, 1.0 + f64::EPSILON, 1.0 + 2.0 * f64::EPSILON]).unwrap(),
        2.220446049250313e-16
    );
    assert_eq!(
        sample_sd(&[3e-310, 5e-310, 1e-300]).unwrap(),
        5.773502689586857e-301
    );
    let spread = [
        -25588.02884476004,
        5.11431512516514e-06,
        1.112914852545535,
        5446.590190449835,
        1.1119173809863208e-05,
        4.2414668412593616e-05,
        -3.4796746999792674e-05,
    ];
    assert_eq!(fsum(&spread), -20140.32571560625);
    assert_eq!(sample_sd(&spread).unwrap(), 10218.162218022075);
}

#[test]
fn parity_interval_reproduces_upstream_topk_lcb() {
    // selected_candidate.json (cycle4 selector): saebench_delta_ci95_low of group topk.
    let interval = z196_interval_parity(&TOPK_SAEBENCH).unwrap();
    assert_eq!(interval.low, -0.04478959689939781);
    assert_eq!(interval.high, -0.03639600363199154);
    let single = z196_interval_parity(&[0.25]).unwrap();
    assert_eq!((single.low, single.high, single.n), (0.25, 0.25, 1));
}

#[test]
fn student_t_quantiles() {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
    // Closed forms: df=1 is Cauchy, df=2 has t = (2p-1)/sqrt(2p(1-p)); for odd df the CDF is a
    // finite trigonometric series (df=3: 1/2 + (u/(1+u²) + atan u)/π with u = t/√3), solved for
    // 0.975 by bisection in Python.
    for (df, expected) in [
        (1.0, 12.706204736174696),
        (2.0, 4.302652729749464),
        (3.0, 3.182446305283706),
        (9.0, 2.262157162798205),
    ] {
        let t = student_t_quantile(0.975, df).unwrap();
        assert!(close(t, expected), "df {df}: {t} vs {expected}");
    }
    // Published table values (4 and 30 degrees of freedom, 97.5%).
    for (df, expected) in [(4.0, 2.776445105197799), (30.0, 2.042272456301238)] {
        let t = student_t_quantile(0.975, df).unwrap();
        assert!((t - expected).abs() < 1e-9, "df {df}: {t} vs {expected}");
    }
    // Large df approaches the normal quantile 1.959963984540054.
    let t = student_t_quantile(0.975, 1e7).unwrap();
    assert!((t - 1.959963984540054).abs() < 1e-6, "{t}");
    assert_eq!(student_t_quantile(0.5, 3.0).unwrap(), 0.0);
    assert_eq!(
        student_t_quantile(0.975, 0.0),
        Err(StatsError::BadDegreesOfFreedom(0.0))
    );
    assert_eq!(
        student_t_quantile(1.0, 3.0),
        Err(StatsError::BadConfidence(1.0))
    );
}

#[test]
fn t_interval_is_wider_than_z_for_small_n() {
    let values = [-0.005, -0.095];
    let t = t_interval(&values, 0.95).unwrap();
    let z = z196_interval_parity(&values).unwrap();
    assert_eq!(t.estimate, z.estimate);
    // half widths: t_{0.975,1} = 12.706 vs 1.96; sd = 0.0636396..., sqrt(2)
    let sd = sample_sd(&values).unwrap();
    let expected_half = 12.706204736174696 * sd / 2f64.sqrt();
    assert!((t.estimate - t.low - expected_half).abs() < 1e-12);
    assert!(t.low < z.low - 0.4, "t {} vs z {}", t.low, z.low);
    let err = t_interval(&[1.0], 0.95).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Student-t interval needs at least 2 value(s), got 1"
    );
    let err = t_interval(&[1.0, f64::NAN], 0.95).unwrap_err();
    assert!(err.to_string().contains("non-finite value (NaN)"), "{err}");
}

#[test]
fn splitmix64_reference_vectors() {
    let mut rng = SplitMix64::new(0);
    assert_eq!(rng.next_u64(), 0xe220a8397b1dcdaf);
    assert_eq!(rng.next_u64(), 0x6e789e6aa1b965f4);
    let mut rng = SplitMix64::new(1234567);
    assert_eq!(rng.next_u64(), 6457827717110365317);
    assert_eq!(rng.next_u64(), 3203168211198807973);
    assert_eq!(rng.next_u64(), 9817491932198370423);
    let mut rng = SplitMix64::new(9);
    let mut counts = [0u32; 3];
    for _ in 0..30_000 {
        counts[rng.below(3) as usize] += 1;
    }
    assert!(
        counts.iter().all(|&c| (9_500..10_500).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn seed_bootstrap_is_deterministic_and_sane() {
    let spec = BootstrapSpec {
        resamples: 2_000,
        seed: 17,
    };
    let a = seed_bootstrap_mean(&TOPK_SAEBENCH, 0.95, spec).unwrap();
    let b = seed_bootstrap_mean(&TOPK_SAEBENCH, 0.95, spec).unwrap();
    assert_eq!(a, b);
    let other =
        seed_bootstrap_mean(&TOPK_SAEBENCH, 0.95, BootstrapSpec { seed: 18, ..spec }).unwrap();
    assert_ne!(a, other);
    assert_eq!(a.estimate, -0.04059280026569467);
    let min = TOPK_SAEBENCH.iter().copied().fold(f64::INFINITY, f64::min);
    let max = TOPK_SAEBENCH
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(min <= a.low && a.low < a.estimate && a.estimate < a.high && a.high <= max);
    let constant = seed_bootstrap_mean(&[2.5; 4], 0.95, spec).unwrap();
    assert_eq!((constant.low, constant.high), (2.5, 2.5));
    assert_eq!(
        seed_bootstrap_mean(
            &[1.0, 2.0],
            0.95,
            BootstrapSpec {
                resamples: 0,
                seed: 1
            }
        ),
        Err(StatsError::NoResamples)
    );
}

#[test]
fn paired_resample_bounds_the_difference_itself() {
    // Method A beats B by exactly 0.01 on every seed, while seeds vary a lot. The paired
    // interval is exactly [0.01, 0.01]; bounds computed per method overlap heavily.
    let b = [0.10, 0.30, 0.55, 0.20, 0.80];
    let pairs: Vec<(f64, f64)> = b.iter().map(|&x| (x + 0.01, x)).collect();
    let spec = BootstrapSpec::default();
    let diff = paired_bootstrap_difference(&pairs, 0.95, spec).unwrap();
    assert!(
        (diff.low - 0.01).abs() < 1e-12 && (diff.high - 0.01).abs() < 1e-12,
        "{diff:?}"
    );
    let a_values: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let a_ci = t_interval(&a_values, 0.95).unwrap();
    let b_ci = t_interval(&b, 0.95).unwrap();
    assert!(
        a_ci.low < b_ci.high,
        "per-method bounds cannot separate the methods"
    );
    let t_diff = paired_t_difference(&pairs, 0.95).unwrap();
    assert!((t_diff.estimate - 0.01).abs() < 1e-12 && t_diff.high - t_diff.low < 1e-12);
}
