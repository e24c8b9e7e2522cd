//! The ONE definition of the reconstruction and sparsity metrics used across husai. Everything
//! else in the project calls these; change a definition here and only here.
//!
//! All sums are accumulated in f64, row by row in order (deterministic).
//!
//! - **MSE**: mean over all elements of the squared error, `sum((x - x_hat)^2) / (rows * d)`.
//! - **Loss per row** (what the trainer minimises, as the PyTorch reference does): the sum over
//!   the `d` columns of the squared error, averaged over rows = `MSE * d`.
//! - **FVU** (fraction of variance unexplained): `sum((x - x_hat)^2) / sum((x - mean)^2)`, where
//!   `mean` is the per-column mean of the *evaluated rows themselves* (not of the training set).
//!   0 is a perfect reconstruction; 1 is no better than predicting the column means.
//! - **L0**: mean number of nonzero latents per row.
//! - **Dead fraction**: share of latents that fired (were nonzero) in none of the evaluated rows.

use crate::error::{KernelError, check_len};
use crate::topk::SparseCode;

use serde::{Deserialize, Serialize};

/// Metrics of a model on a set of rows (the definitions above), as the engine's evaluation reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Rows evaluated.
    pub rows: usize,
    /// MSE, FVU and per-row loss.
    pub reconstruction: Reconstruction,
    /// Mean nonzeros per row.
    pub l0: f64,
    /// Share of latents that fired on none of the rows.
    pub dead_fraction: f64,
    /// Family figures (`l0_train_rule` where the training rule differs, threshold statistics, ...), in the
    /// family's order; empty for TopK.
    #[serde(default)]
    pub figures: Vec<(String, f64)>,
}

/// Reconstruction metrics of a set of rows.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reconstruction {
    /// Mean squared error per element.
    pub mse: f64,
    /// Fraction of variance unexplained (per-column means of the evaluated rows).
    pub fvu: f64,
    /// Sum over columns of the squared error, averaged over rows (the training loss).
    pub loss_per_row: f64,
}

/// Squared-error totals accumulated over batches of rows, so a large evaluation can stream.
/// The FVU denominator uses the exact two-pass-free identity
/// `sum((x - mean)^2) = sum(x^2) - rows * mean^2` per column, accumulated in f64.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconstructionAccumulator {
    d: usize,
    rows: usize,
    sq_err: f64,
    col_sum: Vec<f64>,
    col_sq_sum: Vec<f64>,
}

impl ReconstructionAccumulator {
    /// An empty accumulator for rows of width `d`.
    pub fn new(d: usize) -> Self {
        Self {
            d,
            rows: 0,
            sq_err: 0.0,
            col_sum: vec![0.0; d],
            col_sq_sum: vec![0.0; d],
        }
    }

    /// Adds a batch: `x` and `x_hat` are row-major `[rows, d]`.
    pub fn add(&mut self, x: &[f32], x_hat: &[f32]) -> Result<(), KernelError> {
        let d = self.d.max(1);
        let rows = x.len() / d;
        check_len("x", x.len(), rows, self.d)?;
        check_len("x_hat", x_hat.len(), rows, self.d)?;
        for (xr, hr) in x.chunks_exact(d).zip(x_hat.chunks_exact(d)) {
            for c in 0..self.d {
                let (a, b) = (xr[c] as f64, hr[c] as f64);
                self.sq_err += (a - b) * (a - b);
                self.col_sum[c] += a;
                self.col_sq_sum[c] += a * a;
            }
        }
        self.rows += rows;
        Ok(())
    }

    /// Rows seen so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The metrics. With zero rows every field is NaN; with zero variance FVU is +inf (or NaN
    /// when the error is also zero), which callers should treat as "undefined".
    pub fn finish(&self) -> Reconstruction {
        let n = self.rows as f64;
        let var: f64 = self
            .col_sum
            .iter()
            .zip(&self.col_sq_sum)
            .map(|(s, s2)| (s2 - s * s / n).max(0.0))
            .sum();
        Reconstruction {
            mse: self.sq_err / (n * self.d as f64),
            fvu: self.sq_err / var,
            loss_per_row: self.sq_err / n,
        }
    }
}

/// Metrics of one `[rows, d]` reconstruction (see the module doc for the definitions).
pub fn reconstruction(x: &[f32], x_hat: &[f32], d: usize) -> Result<Reconstruction, KernelError> {
    let mut acc = ReconstructionAccumulator::new(d);
    acc.add(x, x_hat)?;
    Ok(acc.finish())
}

/// Mean nonzeros per row of a sparse code (NaN for zero rows).
pub fn l0(code: &SparseCode) -> f64 {
    code.total_nnz() as f64 / code.rows() as f64
}

/// Adds one to `counts[j]` for every nonzero of latent `j` in `code`. `counts.len()` is d_sae.
pub fn count_fires(code: &SparseCode, counts: &mut [u64]) {
    for r in 0..code.rows() {
        for &j in code.row(r).0 {
            counts[j as usize] += 1;
        }
    }
}

/// Fraction of latents with a zero fire count (NaN for an empty slice).
pub fn dead_fraction(fire_counts: &[u64]) -> f64 {
    fire_counts.iter().filter(|&&c| c == 0).count() as f64 / fire_counts.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_on_a_hand_computed_example() {
        // x columns: [1, 3] (mean 2, ss 2) and [0, 4] (mean 2, ss 8): total variance 10.
        let x = [1.0f32, 0.0, 3.0, 4.0];
        let xh = [1.0f32, 1.0, 2.0, 4.0]; // errors 0, -1, 1, 0: sq err 2
        let r = reconstruction(&x, &xh, 2).unwrap();
        assert_eq!(r.mse, 0.5);
        assert_eq!(r.fvu, 0.2);
        assert_eq!(r.loss_per_row, 1.0);
        // Streaming in two batches gives the same numbers.
        let mut acc = ReconstructionAccumulator::new(2);
        acc.add(&x[..2], &xh[..2]).unwrap();
        acc.add(&x[2..], &xh[2..]).unwrap();
        assert_eq!(acc.finish(), r);
    }

    #[test]
    fn l0_and_dead_fraction() {
        let mut code = SparseCode::new(2, 2);
        {
            use rayon::prelude::*;
            code.chunks_mut(1)
                .enumerate()
                .for_each(|(r, ((idx, val), nnz))| {
                    nnz[0] = crate::topk::select_row(
                        &[0.5, 0.0, 0.2 - r as f32],
                        &[0.0; 3],
                        None,
                        2,
                        idx,
                        val,
                    ) as u32;
                });
        }
        assert_eq!(l0(&code), 1.5);
        let mut counts = vec![0u64; 4];
        count_fires(&code, &mut counts);
        assert_eq!(counts, vec![2, 0, 1, 0]);
        assert_eq!(dead_fraction(&counts), 0.5);
    }

    #[test]
    fn mismatched_lengths_name_the_buffer() {
        let e = reconstruction(&[0.0; 4], &[0.0; 3], 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x_hat: expected 4 f32 values ([2, 2] row-major) but got 3; pass a buffer of exactly that length"
        );
        let e = reconstruction(&[0.0; 3], &[0.0; 3], 2).unwrap_err();
        assert!(e.to_string().starts_with("x: expected 2 f32 values"), "{e}");
    }
}
