//! The Mann–Whitney U test, one-sided (`x` tends to exceed `y`), reported by the trained-vs-random evaluation.
//!
//! `U = #{(i, j): x_i > y_j} + ½ #{(i, j): x_i = y_j}` (Mann & Whitney 1947). Two p-values:
//!
//! * **exact**: P(U ≥ u) under the null, from the exact permutation distribution of U. The number of arrangements
//!   with a given U is a coefficient of the Gaussian binomial `[n₁+n₂ choose n₁]_q = ∏ᵢ (1 − q^{n₂+i}) / (1 − qⁱ)`,
//!   computed here in exact integer arithmetic. Only defined without ties, and computed for n₁ + n₂ ≤ 120.
//! * **asymptotic**: the normal approximation with continuity correction and tie correction,
//!   `z = (U − n₁n₂/2 − ½) / σ`, `σ² = n₁n₂/12 · ((n+1) − Σ(t³ − t)/(n(n − 1)))`, p = P(Z > z), which is what
//!   `scipy.stats.mannwhitneyu(..., alternative="greater")` returns under `method="asymptotic"`.
//!
//! [`MannWhitney::p_value`] is the exact p whenever it exists and the asymptotic one otherwise.
//!
//! Caution: the test assumes independent observations. Pairwise statistics over seeds (PWMCC between every two
//! seeds) share seeds and are not independent, so this p-value is anti-conservative for them; husai reports it
//! and gates on the seed-level bootstrap instead (reference §4.6 P1).

use crate::StatsError;
use crate::normal::normal_upper_tail;

/// The largest n₁ + n₂ for which the exact distribution is computed (its counts fit an i128 comfortably).
pub const EXACT_MAX_TOTAL: usize = 120;

/// The result of a one-sided Mann–Whitney U test of "x > y".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    pub u: f64,
    pub n_x: usize,
    pub n_y: usize,
    /// Whether any value of x equals any other value of the pooled sample.
    pub ties: bool,
    /// Exact P(U ≥ u); `None` with ties or when n₁ + n₂ > [`EXACT_MAX_TOTAL`].
    pub p_exact: Option<f64>,
    /// Normal approximation with continuity and tie correction.
    pub p_asymptotic: f64,
}

impl MannWhitney {
    /// The exact p where it exists, else the asymptotic one.
    pub fn p_value(&self) -> f64 {
        self.p_exact.unwrap_or(self.p_asymptotic)
    }

    /// `"exact"` or `"asymptotic"`: which p [`Self::p_value`] is.
    pub fn method(&self) -> &'static str {
        if self.p_exact.is_some() {
            "exact"
        } else {
            "asymptotic"
        }
    }
}

/// One-sided Mann–Whitney U test that `x` is stochastically greater than `y`.
pub fn mann_whitney_greater(x: &[f64], y: &[f64]) -> Result<MannWhitney, StatsError> {
    for (what, v) in [("Mann-Whitney x", x), ("Mann-Whitney y", y)] {
        if v.is_empty() {
            return Err(StatsError::TooFewValues {
                what,
                needed: 1,
                got: 0,
            });
        }
        if let Some(&value) = v.iter().find(|v| !v.is_finite()) {
            return Err(StatsError::NonFinite { what, value });
        }
    }
    let mut u = 0.0;
    for &a in x {
        for &b in y {
            if a > b {
                u += 1.0;
            } else if a == b {
                u += 0.5;
            }
        }
    }
    let mut pooled: Vec<f64> = x.iter().chain(y).copied().collect();
    pooled.sort_by(f64::total_cmp);
    let mut tie_sum = 0.0;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i + 1;
        while j < pooled.len() && pooled[j] == pooled[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        tie_sum += t * t * t - t;
        i = j;
    }
    let ties = tie_sum > 0.0;
    let p_asymptotic = asymptotic_p(u, x.len(), y.len(), tie_sum);
    let p_exact = if ties || x.len() + y.len() > EXACT_MAX_TOTAL {
        None
    } else {
        Some(exact_p(u as u64, x.len(), y.len()))
    };
    Ok(MannWhitney {
        u,
        n_x: x.len(),
        n_y: y.len(),
        ties,
        p_exact,
        p_asymptotic,
    })
}

/// P(U ≥ u) from the normal approximation (continuity correction ½ towards the mean, tie-corrected variance).
pub fn asymptotic_p(u: f64, n_x: usize, n_y: usize, tie_sum: f64) -> f64 {
    let (n1, n2) = (n_x as f64, n_y as f64);
    let n = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_sum / (n * (n - 1.0)));
    if variance <= 0.0 {
        // Every value tied: U is always n1·n2/2 and the test has nothing to say.
        return 1.0;
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / variance.sqrt();
    normal_upper_tail(z)
}

/// The exact P(U ≥ u) without ties: the share of the C(n₁+n₂, n₁) arrangements whose U is at least u.
pub fn exact_p(u: u64, n_x: usize, n_y: usize) -> f64 {
    let max_u = n_x * n_y;
    // Coefficients of ∏_{i=1}^{n_x} (1 − q^{n_y+i}) / (1 − q^i). After step i the product is the Gaussian binomial
    // [n_y+i choose i]_q, a polynomial with coefficients at most C(n_y+i, i), so interleaving the multiplication by
    // each numerator factor with the division by its denominator factor keeps every intermediate small and exact.
    let mut c = vec![0i128; max_u + 1];
    c[0] = 1;
    for i in 1..=n_x {
        let shift = n_y + i;
        for k in (shift..=max_u).rev() {
            c[k] -= c[k - shift];
        }
        for k in i..=max_u {
            c[k] += c[k - i];
        }
    }
    let total: i128 = c.iter().sum();
    let at_least: i128 = c.iter().skip(u.min(max_u as u64 + 1) as usize).sum();
    at_least as f64 / total as f64
}
