//! Decoder-bias initialisation from training rows: zeros, the column mean, or the geometric median.
//!
//! The geometric median (the point minimising the sum of Euclidean distances to the rows) is computed with
//! Weiszfeld's algorithm (Weiszfeld 1937; the fixed-point iteration `y <- Σ w_i x_i / Σ w_i`, `w_i = 1/||x_i - y||`),
//! started at the mean and run for at most [`GEOMETRIC_MEDIAN_MAX_ITER`] iterations, stopping early once an
//! iteration moves `y` by less than [`GEOMETRIC_MEDIAN_TOL`] times `max(1, ||y||)`. A row closer than 1e-12 to
//! `y` gets weight 1e12 (the usual guard against division by zero). All sums are f64 over fixed chunks of rows
//! combined in chunk order, so the result does not depend on the thread count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{KernelError, check_len};

/// Most Weiszfeld iterations (SAELens's `compute_geometric_median` used `maxiter=100` where it offered this
/// initialisation).
pub const GEOMETRIC_MEDIAN_MAX_ITER: usize = 100;
/// Relative move below which the iteration stops early.
pub const GEOMETRIC_MEDIAN_TOL: f64 = 1e-7;
/// Rows per parallel task (fixed: determines the summation order).
const CHUNK: usize = 1024;

/// How `b_dec` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BDecInit {
    /// All zeros.
    #[default]
    Zeros,
    /// The per-column mean of the training rows.
    Mean,
    /// The geometric median of the training rows (see the module documentation).
    GeometricMedian,
}

impl BDecInit {
    /// The config spelling (`"zeros"`, `"mean"`, `"geometric_median"`).
    pub fn as_str(self) -> &'static str {
        match self {
            BDecInit::Zeros => "zeros",
            BDecInit::Mean => "mean",
            BDecInit::GeometricMedian => "geometric_median",
        }
    }
}

/// The initial `b_dec` for rows `x` (`[rows, d_in]` row-major, at least one row).
pub fn initial_b_dec(method: BDecInit, x: &[f32], d_in: usize) -> Result<Vec<f32>, KernelError> {
    let rows = x.len().checked_div(d_in).unwrap_or(0);
    check_len("b_dec_init rows", x.len(), rows, d_in)?;
    if rows == 0 {
        return Err(KernelError::Mismatch {
            what: "b_dec_init".into(),
            detail: "no training rows to initialise b_dec from".into(),
        });
    }
    Ok(match method {
        BDecInit::Zeros => vec![0.0; d_in],
        BDecInit::Mean => to_f32(&weighted_sum(x, d_in, None).0, rows as f64),
        BDecInit::GeometricMedian => geometric_median(x, d_in),
    })
}

fn to_f32(sum: &[f64], total: f64) -> Vec<f32> {
    sum.iter().map(|&s| (s / total) as f32).collect()
}

/// `(Σ_i w_i x_i, Σ_i w_i)` with `w_i = 1/max(||x_i - y||, 1e-12)` when `y` is given, else `w_i = 1`.
fn weighted_sum(x: &[f32], d_in: usize, y: Option<&[f64]>) -> (Vec<f64>, f64) {
    let parts: Vec<(Vec<f64>, f64)> = x
        .par_chunks(d_in * CHUNK)
        .map(|block| {
            let mut s = vec![0f64; d_in];
            let mut wsum = 0f64;
            for row in block.chunks_exact(d_in) {
                let w = match y {
                    None => 1.0,
                    Some(y) => {
                        let d2: f64 = row
                            .iter()
                            .zip(y)
                            .map(|(&a, &b)| (a as f64 - b) * (a as f64 - b))
                            .sum();
                        1.0 / d2.sqrt().max(1e-12)
                    }
                };
                for (o, &a) in s.iter_mut().zip(row) {
                    *o += w * a as f64;
                }
                wsum += w;
            }
            (s, wsum)
        })
        .collect();
    let mut total = vec![0f64; d_in];
    let mut wtotal = 0f64;
    for (s, w) in parts {
        for (o, v) in total.iter_mut().zip(s) {
            *o += v;
        }
        wtotal += w;
    }
    (total, wtotal)
}

fn geometric_median(x: &[f32], d_in: usize) -> Vec<f32> {
    let rows = (x.len() / d_in) as f64;
    let mut y: Vec<f64> = weighted_sum(x, d_in, None)
        .0
        .iter()
        .map(|s| s / rows)
        .collect();
    for _ in 0..GEOMETRIC_MEDIAN_MAX_ITER {
        let (s, w) = weighted_sum(x, d_in, Some(&y));
        let next: Vec<f64> = s.iter().map(|v| v / w).collect();
        let moved: f64 = next
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = next.iter().map(|v| v * v).sum::<f64>().sqrt();
        y = next;
        if moved < GEOMETRIC_MEDIAN_TOL * norm.max(1.0) {
            break;
        }
    }
    y.iter().map(|&v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_median_are_what_they_say() {
        // Three points on a line plus one far outlier: the mean is dragged, the median is not.
        let x = [0.0f32, 0.0, 1.0, 0.0, 2.0, 0.0, 100.0, 0.0];
        assert_eq!(initial_b_dec(BDecInit::Zeros, &x, 2).unwrap(), [0.0, 0.0]);
        assert_eq!(initial_b_dec(BDecInit::Mean, &x, 2).unwrap(), [25.75, 0.0]);
        let m = initial_b_dec(BDecInit::GeometricMedian, &x, 2).unwrap();
        // Any point in [1, 2] on the line minimises the distance sum of these four collinear points.
        assert!((1.0..=2.0).contains(&m[0]) && m[1].abs() < 1e-6, "{m:?}");
        // A symmetric cloud: the median is its centre.
        let y: Vec<f32> = [
            [1.0, 1.0],
            [-1.0, 1.0],
            [1.0, -1.0],
            [-1.0, -1.0],
            [0.0, 0.0],
        ]
        .iter()
        .flat_map(|r| r.iter().map(|v| v + 3.0))
        .collect();
        let m = initial_b_dec(BDecInit::GeometricMedian, &y, 2).unwrap();
        assert!(
            (m[0] - 3.0).abs() < 1e-5 && (m[1] - 3.0).abs() < 1e-5,
            "{m:?}"
        );
    }

    #[test]
    fn the_median_does_not_depend_on_the_thread_count() {
        let mut r = crate::rng::SplitMix64::new(5);
        let x: Vec<f32> = (0..5000 * 7).map(|_| r.normal() as f32).collect();
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| initial_b_dec(BDecInit::GeometricMedian, &x, 7).unwrap())
        };
        let one = run(1);
        assert_eq!(one, run(3));
        assert!(one.iter().all(|v| v.abs() < 0.1), "{one:?}");
    }

    #[test]
    fn no_rows_is_an_error() {
        let e = initial_b_dec(BDecInit::Mean, &[], 3).unwrap_err();
        assert!(e.to_string().contains("no training rows"), "{e}");
    }
}
