//! PWMCC: the invariants of its definition (property tests) and the random-decoder baselines of the reference
//! (`upstream-stress-evals.md` §0.3 and §7).

use husai_stats::{Dictionary, SplitMix64, chance_normalised, pwmcc};
use proptest::prelude::*;

fn gaussian(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let u = |rng: &mut SplitMix64| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (0..len)
        .map(|_| {
            let (a, b) = (u(&mut rng), u(&mut rng));
            ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
        })
        .collect()
}

fn score(a: &[f32], b: &[f32], rows_a: usize, rows_b: usize, dim: usize) -> f64 {
    pwmcc(
        &Dictionary::new(a, rows_a, dim).unwrap(),
        &Dictionary::new(b, rows_b, dim).unwrap(),
    )
    .unwrap()
}

/// Permutes the rows of a row-major matrix and flips the sign of some of them.
fn permute_and_flip(m: &[f32], dim: usize, perm: &[usize], flips: &[bool]) -> Vec<f32> {
    let mut out = Vec::with_capacity(m.len());
    for (&r, &flip) in perm.iter().zip(flips) {
        let sign = if flip { -1.0 } else { 1.0 };
        out.extend(m[r * dim..(r + 1) * dim].iter().map(|v| sign * v));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn symmetric_one_on_itself_and_invariant_to_latent_order_and_sign(
        seed in 0u64..1_000_000,
        rows_a in 1usize..24,
        rows_b in 1usize..24,
        dim in 1usize..20,
        shuffle in any::<u64>(),
    ) {
        let a = gaussian(seed, rows_a * dim);
        let b = gaussian(seed + 1, rows_b * dim);
        let ab = score(&a, &b, rows_a, rows_b, dim);
        let ba = score(&b, &a, rows_b, rows_a, dim);
        prop_assert!((ab - ba).abs() < 1e-12, "{ab} vs {ba}");
        prop_assert!((0.0..=1.0).contains(&ab));
        let aa = score(&a, &a, rows_a, rows_a, dim);
        prop_assert!((aa - 1.0).abs() < 1e-6, "PWMCC(A, A) = {aa}");
        // A random permutation of B's latents with random signs.
        let mut rng = SplitMix64::new(shuffle);
        let mut perm: Vec<usize> = (0..rows_b).collect();
        for i in (1..rows_b).rev() {
            perm.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let flips: Vec<bool> = (0..rows_b).map(|_| rng.next_u64() & 1 == 1).collect();
        let b2 = permute_and_flip(&b, dim, &perm, &flips);
        let ab2 = score(&a, &b2, rows_a, rows_b, dim);
        prop_assert!((ab - ab2).abs() < 1e-6, "{ab} vs permuted/flipped {ab2}");
        // Scaling a latent does not change it either (directions, not norms).
        let scaled: Vec<f32> = b.iter().map(|v| 3.5 * v).collect();
        prop_assert!((ab - score(&a, &scaled, rows_a, rows_b, dim)).abs() < 1e-6);
    }
}

fn random_baseline(rows: usize, dim: usize, reps: u64) -> (f64, f64) {
    let values: Vec<f64> = (0..reps)
        .map(|r| {
            let a = gaussian(1000 + 2 * r, rows * dim);
            let b = gaussian(1001 + 2 * r, rows * dim);
            score(&a, &b, rows, rows, dim)
        })
        .collect();
    let s = husai_stats::summarize(&values).unwrap();
    (s.mean, s.sd)
}

#[test]
fn gaussian_decoders_match_the_reference_random_baselines() {
    // d = 128, m = 1024: 0.2985 ± 0.0011 (20 reps); d = 128, m = 128: 0.2481 ± 0.0027.
    let (mean, sd) = random_baseline(1024, 128, 20);
    assert!((mean - 0.2985).abs() < 0.0008, "128x1024: mean {mean}");
    assert!((0.0005..0.002).contains(&sd), "128x1024: sd {sd}");
    let (mean, sd) = random_baseline(128, 128, 20);
    assert!((mean - 0.2481).abs() < 0.002, "128x128: mean {mean}");
    assert!((0.0012..0.005).contains(&sd), "128x128: sd {sd}");
}

#[test]
fn bad_shapes_and_zero_latents_are_errors() {
    let err = Dictionary::new(&[1.0; 5], 2, 3).unwrap_err().to_string();
    assert_eq!(err, "a 2 x 3 dictionary needs 6 values, got 5");
    let a = [1.0f32, 0.0, 0.0, 0.0];
    let b = [1.0f32, 0.0, 0.0];
    let err = pwmcc(
        &Dictionary::new(&a, 2, 2).unwrap(),
        &Dictionary::new(&b, 1, 3).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "PWMCC compares dictionaries of one dimension, got 2 and 3"
    );
    let err = pwmcc(
        &Dictionary::new(&a, 2, 2).unwrap(),
        &Dictionary::new(&a, 2, 2).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("row 1 of the first dictionary is zero"),
        "{err}"
    );
    let err = Dictionary::new(&[f32::NAN], 1, 1).unwrap_err().to_string();
    assert!(err.contains("non-finite"), "{err}");
}

#[test]
fn chance_normalised_effect() {
    // Upstream's Run 30: trained 0.300059 against random 0.298829.
    let e = chance_normalised(0.300059, 0.298829).unwrap();
    assert!((e - 0.001_754_2).abs() < 1e-6, "{e}");
    assert_eq!(chance_normalised(0.5, 0.5).unwrap(), 0.0);
    assert_eq!(chance_normalised(1.0, 0.25).unwrap(), 1.0);
    let err = chance_normalised(0.5, 1.0).unwrap_err().to_string();
    assert!(err.contains("needs chance < 1"), "{err}");
}
