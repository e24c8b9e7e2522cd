//! The small statistics this eval needs: a seed-level percentile bootstrap of a difference of means, and empirical
//! quantiles of a random null.
//!
//! Seed level (reference upstream-stress-evals.md §3.6 K5): the unit that is resampled is the trained seed (one value
//! per SAE seed or per model seed), never a pair or a latent; the random side (many independent draws) is resampled
//! alongside. The percentile bootstrap undercovers at very small n (about 84 % nominal-95 % coverage at n = 5, issue
//! #11 item 6), so the summary names the method and n, and the parts that use it require at least 5 seeds.

use husai_kernels::rng::SplitMix64;

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub level: f64,
    pub lower: f64,
    pub upper: f64,
}

pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The `q` quantile of `v` (linear interpolation between order statistics, numpy's default).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Central `level` interval of the empirical distribution of `v`.
pub fn empirical(v: &[f64], level: f64) -> Interval {
    let a = (1.0 - level) / 2.0;
    Interval {
        level,
        lower: quantile(v, a),
        upper: quantile(v, 1.0 - a),
    }
}

/// Percentile bootstrap of mean(trained) − mean(random): each replicate draws the trained seeds with replacement and
/// the random draws with replacement.
pub fn difference(trained: &[f64], random: &[f64], level: f64, reps: usize, seed: u64) -> Interval {
    let mut rng = SplitMix64::new(seed);
    let resample = |v: &[f64], rng: &mut SplitMix64| {
        (0..v.len())
            .map(|_| v[rng.below(v.len() as u64) as usize])
            .sum::<f64>()
            / v.len() as f64
    };
    let reps: Vec<f64> = (0..reps)
        .map(|_| resample(trained, &mut rng) - resample(random, &mut rng))
        .collect();
    empirical(&reps, level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [3.0, 1.0, 2.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert!((quantile(&v, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile(&v, 0.25) - 1.75).abs() < 1e-12);
    }

    #[test]
    fn the_difference_interval_covers_the_point_and_is_seeded() {
        let t = [0.9, 0.92, 0.88, 0.91, 0.93];
        let r: Vec<f64> = (0..200).map(|i| 0.28 + 0.001 * (i % 7) as f64).collect();
        let a = difference(&t, &r, 0.95, 2000, 1);
        let point = mean(&t) - mean(&r);
        assert!(a.lower < point && point < a.upper, "{a:?}");
        assert!(a.lower > 0.55 && a.upper < 0.7, "{a:?}");
        assert_eq!(a, difference(&t, &r, 0.95, 2000, 1));
        // With n = 1 the trained side has no spread: the interval is the random side's.
        let one = difference(&[0.5], &r, 0.95, 500, 2);
        assert!(one.upper - one.lower < 0.01);
    }
}
