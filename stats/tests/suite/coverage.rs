//! Seeded coverage simulations for every interval method the selector and the gate offer: the Student-t interval
//! (select's default), the studentized seed bootstrap (`select --lcb-method bootstrap`, and the selector's paired
//! runner-up difference), and the seed-level pairwise difference bootstrap (the `random_model` gate's interval, and in its paired design the
//! transcoder gate's).
//! Each draws data with a known true mean from a fixed seed, builds the 95 % interval many times, and checks how
//! often it covers the truth. The percentile bootstrap of a mean is simulated too, to show why it is not offered.
//!
//! Monte-Carlo error: with R replications the standard error of a coverage near 0.95 is √(0.95·0.05/R), 0.0049 at
//! R = 2000; the bands below are about three of those wide.

use husai_stats::{
    BootstrapSpec, MIN_BOOTSTRAP_T_SEEDS, PairwiseMatrix, SeedDesign, SplitMix64,
    pairwise_difference_bootstrap, pairwise_difference_bootstrap_t, pairwise_vs_values_bootstrap_t,
    seed_bootstrap_mean, seed_bootstrap_t_mean, t_interval, two_sample_bootstrap_t,
};

/// A standard normal draw (Box–Muller on two SplitMix64 uniforms in (0, 1)).
fn normal(rng: &mut SplitMix64) -> f64 {
    let u = |rng: &mut SplitMix64| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (a, b) = (u(rng), u(rng));
    (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
}

/// Coverage of `interval` for the mean of `n` normal(μ = 0.3, σ = 0.01) values over `reps` replications.
fn coverage_of_mean(
    n: usize,
    reps: u32,
    seed: u64,
    interval: impl Fn(&[f64], u64) -> (f64, f64),
) -> f64 {
    let mut rng = SplitMix64::new(seed);
    let truth = 0.3;
    let mut covered = 0;
    for r in 0..reps {
        let values: Vec<f64> = (0..n).map(|_| truth + 0.01 * normal(&mut rng)).collect();
        let (low, high) = interval(&values, u64::from(r) + 1);
        if low <= truth && truth <= high {
            covered += 1;
        }
    }
    f64::from(covered) / f64::from(reps)
}

fn spec(resamples: u32, seed: u64) -> BootstrapSpec {
    BootstrapSpec { resamples, seed }
}

#[test]
fn student_t_interval_covers_at_its_nominal_level_from_two_seeds() {
    for n in [2, 3, 5, 10] {
        let c = coverage_of_mean(n, 4000, 11 + n as u64, |v, _| {
            let i = t_interval(v, 0.95).unwrap();
            (i.low, i.high)
        });
        assert!(
            (0.935..=0.965).contains(&c),
            "t interval, n = {n}: coverage {c}"
        );
    }
}

#[test]
fn percentile_bootstrap_undercovers_at_small_n_which_is_why_it_is_not_offered() {
    let mut seen = Vec::new();
    for n in [2, 3, 5] {
        let c = coverage_of_mean(n, 2000, 21 + n as u64, |v, s| {
            let i = seed_bootstrap_mean(v, 0.95, spec(1000, s)).unwrap();
            (i.low, i.high)
        });
        seen.push(c);
    }
    // The reference's simulation: about 50 %, 74 % and 84 %.
    assert!((0.46..=0.54).contains(&seen[0]), "{seen:?}");
    assert!((0.70..=0.78).contains(&seen[1]), "{seen:?}");
    assert!((0.80..=0.88).contains(&seen[2]), "{seen:?}");
}

#[test]
fn studentized_bootstrap_covers_close_to_nominal_from_its_minimum_seed_count() {
    assert_eq!(MIN_BOOTSTRAP_T_SEEDS, 5);
    for n in [5, 8, 12] {
        let c = coverage_of_mean(n, 2000, 31 + n as u64, |v, s| {
            let i = seed_bootstrap_t_mean(v, 0.95, spec(1000, s)).unwrap();
            (i.low, i.high)
        });
        assert!(
            (0.93..=0.975).contains(&c),
            "bootstrap-t, n = {n}: coverage {c}"
        );
    }
    // Below the minimum it refuses, naming the alternative.
    let err = seed_bootstrap_t_mean(&[0.1, 0.2, 0.3, 0.4], 0.95, BootstrapSpec::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs at least 5 value(s), got 4"), "{err}");
    assert!(err.contains("use the Student-t interval"), "{err}");
}

/// A pairwise statistic between `n` seeds with seed effects: `v_ij = μ + a_i + a_j + e_ij` (a ~ N(0, σ_a²),
/// e ~ N(0, σ_e²)), whose expected pairwise mean is μ. This is the dependence PWMCC across SAE seeds has: a seed
/// that trained to an unusual dictionary is unusual in every pair it is in.
fn seed_effect_matrix(rng: &mut SplitMix64, n: usize, mu: f64, sa: f64, se: f64) -> PairwiseMatrix {
    let a: Vec<f64> = (0..n).map(|_| sa * normal(rng)).collect();
    let mut pairs = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            pairs.push((i, j, mu + a[i] + a[j] + se * normal(rng)));
        }
    }
    PairwiseMatrix::from_pairs(n, &pairs).unwrap()
}

fn pairwise_difference_coverage(
    trained: usize,
    random: usize,
    reps: u32,
    seed: u64,
    studentized: bool,
) -> f64 {
    let mut rng = SplitMix64::new(seed);
    let (mu_t, mu_r) = (0.3012, 0.2985);
    let mut covered = 0;
    for r in 0..reps {
        let t = seed_effect_matrix(&mut rng, trained, mu_t, 0.0010, 0.0006);
        let q = seed_effect_matrix(&mut rng, random, mu_r, 0.0006, 0.0008);
        let method = if studentized {
            pairwise_difference_bootstrap_t
        } else {
            pairwise_difference_bootstrap
        };
        let i = method(
            &t,
            &q,
            SeedDesign::Independent,
            0.95,
            spec(1000, u64::from(r) + 7),
        )
        .unwrap();
        if i.low <= mu_t - mu_r && mu_t - mu_r <= i.high {
            covered += 1;
        }
    }
    f64::from(covered) / f64::from(reps)
}

#[test]
fn seed_level_pairwise_difference_covers_close_to_nominal_at_the_gate_sizes() {
    // The evaluation draws 21 random decoders (210 pairs); the interval (and the gate) needs at least 8 trained
    // seeds. At 5 it covers only about 0.91, which is why MIN_PAIRWISE_T_SEEDS is 8.
    assert_eq!(husai_stats::MIN_PAIRWISE_T_SEEDS, 8);
    for trained in [8, 12] {
        let c = pairwise_difference_coverage(trained, 21, 600, 41 + trained as u64, true);
        assert!(
            (0.925..=0.975).contains(&c),
            "studentized pairwise difference, {trained} trained seeds: coverage {c}"
        );
    }
    // Its percentile counterpart (kept for the lambda-difference claim, which records its method) undercovers here.
    let c = pairwise_difference_coverage(8, 21, 600, 49, false);
    assert!(
        c < 0.91,
        "percentile pairwise difference, 8 trained seeds: coverage {c}"
    );
}

#[test]
fn studentized_pairwise_difference_refuses_fewer_than_eight_seeds() {
    let mut rng = SplitMix64::new(3);
    let t = seed_effect_matrix(&mut rng, 5, 0.3, 0.001, 0.001);
    let q = seed_effect_matrix(&mut rng, 21, 0.29, 0.001, 0.001);
    let err = pairwise_difference_bootstrap_t(
        &t,
        &q,
        SeedDesign::Independent,
        0.95,
        BootstrapSpec::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("needs at least 8 value(s), got 5"), "{err}");
    let err = seed_bootstrap_t_mean(
        &[1.0; 6],
        0.95,
        BootstrapSpec {
            resamples: 10,
            seed: 1 << 53,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("above 2^53 - 1"), "{err}");
    assert!(BootstrapSpec::default().seed <= husai_stats::MAX_SEED);
}

/// The trained-vs-random design: pairwise PWMCC with seed effects over 8 seeds, `v_ij = μ_t + a_i + a_j + e_ij`,
/// against 100 independent random-pair values; the true difference is known. With 1000 replications the
/// Monte-Carlo standard error of a coverage of 0.95 is 0.0069, so the band is about three of them wide.
#[test]
fn pairwise_against_independent_values_covers_close_to_nominal_from_eight_seeds() {
    let mut rng = SplitMix64::new(2026);
    let (mu_t, mu_r) = (0.3012, 0.2985);
    let reps: u64 = 1000;
    let mut covered = 0;
    for r in 0..reps {
        let t = seed_effect_matrix(&mut rng, 8, mu_t, 0.0010, 0.0006);
        let random: Vec<f64> = (0..100).map(|_| mu_r + 0.0011 * normal(&mut rng)).collect();
        let i = pairwise_vs_values_bootstrap_t(&t, &random, 0.95, spec(1000, r + 1)).unwrap();
        if i.low <= mu_t - mu_r && mu_t - mu_r <= i.high {
            covered += 1;
        }
    }
    let c = covered as f64 / reps as f64;
    assert!((0.93..=0.975).contains(&c), "coverage {c}");
}

#[test]
fn pairwise_against_independent_values_refuses_too_few_seeds_values_and_bad_levels() {
    let mut rng = SplitMix64::new(4);
    let five = seed_effect_matrix(&mut rng, 5, 0.3, 0.001, 0.001);
    let eight = seed_effect_matrix(&mut rng, 8, 0.3, 0.001, 0.001);
    let e = pairwise_vs_values_bootstrap_t(&five, &[0.2, 0.21], 0.95, spec(100, 1)).unwrap_err();
    assert!(
        e.to_string().contains("needs at least 8 value(s), got 5"),
        "{e}"
    );
    let e = pairwise_vs_values_bootstrap_t(&eight, &[0.2], 0.95, spec(100, 1)).unwrap_err();
    assert!(
        e.to_string()
            .contains("(independent values) needs at least 2 value(s), got 1"),
        "{e}"
    );
    let e = pairwise_vs_values_bootstrap_t(&eight, &[0.2, 0.21], 1.5, spec(100, 1)).unwrap_err();
    assert!(e.to_string().contains("strictly between 0 and 1"), "{e}");
}

/// The known-circuit design: 5 trained seeds (one value each, the eval's minimum) against 200 random draws, with a
/// known difference. 2000 replications: Monte-Carlo standard error 0.0049.
#[test]
fn two_sample_bootstrap_t_covers_close_to_nominal_from_five_seeds() {
    let mut rng = SplitMix64::new(2027);
    let (mu_a, mu_b) = (0.56, 0.27);
    let reps: u64 = 2000;
    let mut covered = 0;
    for r in 0..reps {
        let a: Vec<f64> = (0..5).map(|_| mu_a + 0.01 * normal(&mut rng)).collect();
        let b: Vec<f64> = (0..200).map(|_| mu_b + 0.02 * normal(&mut rng)).collect();
        let i = two_sample_bootstrap_t(&a, &b, 0.95, spec(1000, r + 1)).unwrap();
        if i.low <= mu_a - mu_b && mu_a - mu_b <= i.high {
            covered += 1;
        }
    }
    let c = covered as f64 / reps as f64;
    assert!((0.93..=0.97).contains(&c), "coverage {c}");
}

#[test]
fn two_sample_bootstrap_t_refuses_small_samples_and_gives_the_point_without_spread() {
    let e = two_sample_bootstrap_t(&[1.0; 4], &[0.0, 0.1], 0.95, spec(100, 1)).unwrap_err();
    assert!(
        e.to_string()
            .contains("(seeds of the first sample) needs at least 5 value(s), got 4"),
        "{e}"
    );
    let e = two_sample_bootstrap_t(&[1.0; 5], &[0.0], 0.95, spec(100, 1)).unwrap_err();
    assert!(
        e.to_string()
            .contains("(values of the second sample) needs at least 2 value(s), got 1"),
        "{e}"
    );
    let i = two_sample_bootstrap_t(&[1.0; 5], &[0.0; 200], 0.95, spec(100, 1)).unwrap();
    assert_eq!((i.estimate, i.low, i.high), (1.0, 1.0, 1.0));
}

/// The transcoder-stress design: at each of `n` seeds a transcoder and an SAE share the initialisation and the batch
/// order, so a seed's effect on the two PWMCC matrices is correlated (ρ = 0.6 here): `tc_ij = μ_t + a_i + a_j + e`,
/// `sae_ij = μ_s + b_i + b_j + e'`, `b = ρ a + √(1−ρ²) c`. The paired interval of `mean(tc) − mean(sae)` draws one set
/// of seeds for both sides; its coverage of `μ_t − μ_s` is checked here.
fn paired_pairwise_coverage(n: usize, reps: u32, seed: u64, studentized: bool) -> f64 {
    let mut rng = SplitMix64::new(seed);
    let (mu_t, mu_s, rho) = (0.2683, 0.2706, 0.6);
    let mut covered = 0;
    for r in 0..reps {
        let a: Vec<f64> = (0..n).map(|_| 0.002 * normal(&mut rng)).collect();
        let b: Vec<f64> = a
            .iter()
            .map(|&ai| rho * ai + (1.0 - rho * rho).sqrt() * 0.002 * normal(&mut rng))
            .collect();
        let (mut tc, mut sae) = (Vec::new(), Vec::new());
        for i in 0..n {
            for j in i + 1..n {
                tc.push((i, j, mu_t + a[i] + a[j] + 0.001 * normal(&mut rng)));
                sae.push((i, j, mu_s + b[i] + b[j] + 0.001 * normal(&mut rng)));
            }
        }
        let tc = PairwiseMatrix::from_pairs(n, &tc).unwrap();
        let sae = PairwiseMatrix::from_pairs(n, &sae).unwrap();
        let method = if studentized {
            pairwise_difference_bootstrap_t
        } else {
            pairwise_difference_bootstrap
        };
        let i = method(
            &tc,
            &sae,
            SeedDesign::Paired,
            0.95,
            spec(1000, u64::from(r) + 3),
        )
        .unwrap();
        if i.low <= mu_t - mu_s && mu_t - mu_s <= i.high {
            covered += 1;
        }
    }
    f64::from(covered) / f64::from(reps)
}

#[test]
fn paired_pairwise_difference_covers_close_to_nominal_from_the_gate_seed_count() {
    // The transcoder gate reads the studentized paired interval of the confirmation, from 8 seeds.
    for n in [8, 12] {
        let c = paired_pairwise_coverage(n, 600, 77 + n as u64, true);
        assert!(
            (0.925..=0.975).contains(&c),
            "studentized paired pairwise difference, {n} seeds: coverage {c}"
        );
    }
    // The percentile version the sweep reports for 5 to 7 selection seeds (never gated) undercovers at 5.
    let c = paired_pairwise_coverage(5, 600, 91, false);
    assert!(
        c < 0.925,
        "percentile paired pairwise difference, 5 seeds: coverage {c}"
    );
}
