//! The small statistics this eval needs beside `husai_stats`: means and empirical quantiles of a random null. The
//! seed-level interval of a difference is `husai_stats::two_sample_bootstrap_t` (the unit resampled is the trained
//! seed, never a pair or a latent, reference upstream-stress-evals.md §3.6 K5; see `comparison` in lib.rs).

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
}
