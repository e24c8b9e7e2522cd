//! PWMCC, the pairwise mean maximum cosine similarity between two dictionaries (the reproducibility measure of
//! upstream HUSAI's phase 4a and transcoder evaluations; reference `upstream-stress-evals.md` §0.3).
//!
//! A dictionary here is a decoder with one latent per row: `m` rows of length `d`, row-major, which is the layout of
//! a SAELens `W_dec` (`[d_sae, d_in]`). With every row normalised to unit length and `C = |Â B̂ᵀ|` (m × m'),
//!
//! `PWMCC(A, B) = ½ (mean_i max_j C_ij + mean_j max_i C_ij)`.
//!
//! Averaging both directions makes it symmetric; the absolute value makes it invariant to each latent's sign, and
//! the max makes it invariant to the order of latents. PWMCC(A, A) = 1. A row of zero norm (a latent that never
//! trained) is a statistic error rather than a silent 0 or NaN: upstream clamped the norm at 1e-12 and let such a
//! row contribute similarity 0, which quietly lowers the score.

use crate::StatsError;

/// One dictionary: `rows` latents of dimension `dim`, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Dictionary<'a> {
    pub values: &'a [f32],
    pub rows: usize,
    pub dim: usize,
}

impl<'a> Dictionary<'a> {
    /// Checks the shape and finiteness.
    pub fn new(values: &'a [f32], rows: usize, dim: usize) -> Result<Self, StatsError> {
        if rows == 0 || dim == 0 || values.len() != rows * dim {
            return Err(StatsError::BadShape(format!(
                "a {rows} x {dim} dictionary needs {} values, got {}",
                rows * dim,
                values.len()
            )));
        }
        if let Some(&v) = values.iter().find(|v| !v.is_finite()) {
            return Err(StatsError::NonFinite {
                what: "dictionary",
                value: f64::from(v),
            });
        }
        Ok(Dictionary { values, rows, dim })
    }
}

/// The rows scaled to unit L2 norm (norms accumulated in f64).
fn unit_rows(dict: &Dictionary<'_>, which: &'static str) -> Result<Vec<f32>, StatsError> {
    let mut out = Vec::with_capacity(dict.values.len());
    for (r, row) in dict.values.chunks_exact(dict.dim).enumerate() {
        let norm = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            return Err(StatsError::BadShape(format!(
                "row {r} of the {which} dictionary is zero; a latent with no direction has no cosine similarity"
            )));
        }
        out.extend(row.iter().map(|&v| (f64::from(v) / norm) as f32));
    }
    Ok(out)
}

/// Dot product with eight independent f32 accumulators (vectorises; the sum of products of unit vectors is far
/// from the f32 error that matters at the 1e-6 level of PWMCC).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// PWMCC between two dictionaries of the same dimension (they may have different numbers of latents).
pub fn pwmcc(a: &Dictionary<'_>, b: &Dictionary<'_>) -> Result<f64, StatsError> {
    if a.dim != b.dim {
        return Err(StatsError::BadShape(format!(
            "PWMCC compares dictionaries of one dimension, got {} and {}",
            a.dim, b.dim
        )));
    }
    let (ua, ub) = (unit_rows(a, "first")?, unit_rows(b, "second")?);
    let d = a.dim;
    let mut best_b = vec![0.0f32; b.rows];
    let mut sum_a = 0.0f64;
    for ra in ua.chunks_exact(d) {
        let mut best = 0.0f32;
        for (j, rb) in ub.chunks_exact(d).enumerate() {
            let c = dot(ra, rb).abs();
            best = best.max(c);
            best_b[j] = best_b[j].max(c);
        }
        sum_a += f64::from(best.min(1.0));
    }
    let sum_b: f64 = best_b.iter().map(|&c| f64::from(c.min(1.0))).sum();
    Ok(0.5 * (sum_a / a.rows as f64 + sum_b / b.rows as f64))
}

/// The chance-normalised effect `(x − chance) / (1 − chance)`: the share of the distance from chance to a perfect
/// score that `x` covers (0 at chance, 1 at a perfect match). Needs chance < 1.
pub fn chance_normalised(x: f64, chance: f64) -> Result<f64, StatsError> {
    if !x.is_finite() || !chance.is_finite() {
        return Err(StatsError::NonFinite {
            what: "chance-normalised effect",
            value: if x.is_finite() { chance } else { x },
        });
    }
    if chance >= 1.0 {
        return Err(StatsError::BadShape(format!(
            "a chance level of {chance} leaves no room above chance; the chance-normalised effect needs chance < 1"
        )));
    }
    Ok((x - chance) / (1.0 - chance))
}
