//! The probes: an L2-regularised logistic regression (fit by Newton's method), the AUC by the rank formula, and the
//! ranking of SAE latents that picks a k-sparse probe's latents (as sae-probes does, reference §2.3 step 3: each
//! latent divided by its mean non-zero activation on the training rows, ranked by the absolute difference of the
//! class means).

/// A fitted logistic regression on standardised features: `P(y = 1 | x) = σ(b + Σ_j w_j (x_j − μ_j) / s_j)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub w: Vec<f64>,
    pub b: f64,
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The penalised mean log-loss `(1/n) Σ_r [log(1 + e^{z_r}) − y_r z_r] + (λ/2) ||w||²` of `w` (bias `w[p]`,
/// unpenalised) on standardised rows `x` (`[n, p]`), and its gradient.
pub fn loss_and_grad(x: &[f64], y: &[bool], p: usize, w: &[f64], lambda: f64) -> (f64, Vec<f64>) {
    let n = y.len();
    let mut g = vec![0f64; p + 1];
    let mut loss = 0f64;
    for (row, &label) in x.chunks_exact(p).zip(y) {
        let z = w[p] + row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
        let t = f64::from(u8::from(label));
        // log(1 + e^z) without overflow.
        loss += z.max(0.0) + (-z.abs()).exp().ln_1p() - t * z;
        let r = sigmoid(z) - t;
        for (gj, &xj) in g.iter_mut().zip(row) {
            *gj += r * xj;
        }
        g[p] += r;
    }
    let inv = 1.0 / n as f64;
    g.iter_mut().for_each(|v| *v *= inv);
    loss *= inv;
    for j in 0..p {
        loss += 0.5 * lambda * w[j] * w[j];
        g[j] += lambda * w[j];
    }
    (loss, g)
}

/// Solves `a x = b` for the symmetric positive definite `a` (`[m, m]`) by Cholesky.
fn cholesky_solve(mut a: Vec<f64>, mut b: Vec<f64>, m: usize) -> Option<Vec<f64>> {
    for j in 0..m {
        let mut d = a[j * m + j];
        for k in 0..j {
            d -= a[j * m + k] * a[j * m + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * m + j] = d;
        for i in j + 1..m {
            let mut s = a[i * m + j];
            for k in 0..j {
                s -= a[i * m + k] * a[j * m + k];
            }
            a[i * m + j] = s / d;
        }
    }
    for i in 0..m {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * m + k] * b[k];
        }
        b[i] = s / a[i * m + i];
    }
    for i in (0..m).rev() {
        let mut s = b[i];
        for k in i + 1..m {
            s -= a[k * m + i] * b[k];
        }
        b[i] = s / a[i * m + i];
    }
    Some(b)
}

/// Fits the regression to rows `x` (`[n, p]`, raw) and labels `y` with penalty `lambda` on the standardised
/// weights: Newton steps on the (strictly convex) penalised loss, halved while they do not lower it, until the
/// step is below 1e-9 or after 50 steps.
pub fn fit(x: &[f64], y: &[bool], p: usize, lambda: f64) -> Logistic {
    let n = y.len();
    let mut mean = vec![0f64; p];
    for row in x.chunks_exact(p) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut scale = vec![0f64; p];
    for row in x.chunks_exact(p) {
        for ((s, v), m) in scale.iter_mut().zip(row).zip(&mean) {
            *s += (v - m) * (v - m);
        }
    }
    // A constant feature keeps scale 1 (it standardises to 0 and carries no weight).
    scale.iter_mut().for_each(|s| {
        *s = if *s > 0.0 {
            (*s / n as f64).sqrt()
        } else {
            1.0
        }
    });
    let xs: Vec<f64> = x
        .chunks_exact(p)
        .flat_map(|row| {
            row.iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((v, m), s)| (v - m) / s)
        })
        .collect();
    let m = p + 1;
    let mut w = vec![0f64; m];
    let (mut loss, mut g) = loss_and_grad(&xs, y, p, &w, lambda);
    for _ in 0..50 {
        let mut h = vec![0f64; m * m];
        for row in xs.chunks_exact(p) {
            let z = w[p] + row.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
            let q = sigmoid(z);
            let s = q * (1.0 - q) / n as f64;
            for i in 0..m {
                let xi = if i < p { row[i] } else { 1.0 };
                for j in 0..=i {
                    let xj = if j < p { row[j] } else { 1.0 };
                    h[i * m + j] += s * xi * xj;
                }
            }
        }
        for i in 0..m {
            for j in 0..i {
                h[j * m + i] = h[i * m + j];
            }
            if i < p {
                h[i * m + i] += lambda;
            }
        }
        // A tiny ridge on the bias too, so a separable class balance cannot make the system singular.
        h[p * m + p] += 1e-12;
        let Some(step) = cholesky_solve(h, g.clone(), m) else {
            break;
        };
        let mut t = 1.0;
        let mut improved = false;
        for _ in 0..30 {
            let trial: Vec<f64> = w.iter().zip(&step).map(|(a, d)| a - t * d).collect();
            let (l, gr) = loss_and_grad(&xs, y, p, &trial, lambda);
            if l <= loss {
                w = trial;
                (loss, g) = (l, gr);
                improved = true;
                break;
            }
            t *= 0.5;
        }
        let size = step.iter().map(|d| d * d).sum::<f64>().sqrt() * t;
        if !improved || size < 1e-9 {
            break;
        }
    }
    let b = w[p];
    w.truncate(p);
    Logistic { mean, scale, w, b }
}

impl Logistic {
    /// The decision value (log-odds) of each row of `x` (`[n, p]`, raw).
    pub fn decision(&self, x: &[f64]) -> Vec<f64> {
        let p = self.w.len();
        x.chunks_exact(p)
            .map(|row| {
                self.b
                    + row
                        .iter()
                        .zip(&self.mean)
                        .zip(&self.scale)
                        .zip(&self.w)
                        .map(|(((v, m), s), w)| w * (v - m) / s)
                        .sum::<f64>()
            })
            .collect()
    }
}

/// The AUC of `score` for labels `y`: `(R₁ − n₁(n₁ + 1)/2) / (n₁ n₀)`, `R₁` the sum of the positives' ranks (ties
/// share their mean rank), i.e. the Mann–Whitney U of the positives over `n₁ n₀`. `None` without both classes.
pub fn auc(score: &[f64], y: &[bool]) -> Option<f64> {
    let n1 = y.iter().filter(|&&v| v).count();
    let n0 = y.len() - n1;
    if n1 == 0 || n0 == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && score[order[j + 1]] == score[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&r| y[r]).count() as f64 * mid;
        i = j + 1;
    }
    Some((rank_sum - (n1 * (n1 + 1)) as f64 / 2.0) / (n1 as f64 * n0 as f64))
}

/// The latents (columns of `z`, `[n, m]`) a k-sparse probe uses, best first: each divided by its mean non-zero
/// value on these rows, ranked by `|mean over positives − mean over negatives|` (ties to the lower index); latents
/// that never fire rank last.
pub fn rank_latents(z: &[f64], y: &[bool], m: usize) -> Vec<usize> {
    let (mut pos, mut neg, mut nz_sum, mut nz_n) =
        (vec![0f64; m], vec![0f64; m], vec![0f64; m], vec![0usize; m]);
    let (n1, n0) = (
        y.iter().filter(|&&v| v).count().max(1) as f64,
        y.iter().filter(|&&v| !v).count().max(1) as f64,
    );
    for (row, &label) in z.chunks_exact(m).zip(y) {
        for (j, &v) in row.iter().enumerate() {
            if label {
                pos[j] += v;
            } else {
                neg[j] += v;
            }
            if v != 0.0 {
                nz_sum[j] += v;
                nz_n[j] += 1;
            }
        }
    }
    let score: Vec<f64> = (0..m)
        .map(|j| {
            if nz_n[j] == 0 {
                return -1.0;
            }
            let norm = (nz_sum[j] / nz_n[j] as f64).abs().max(1e-12);
            ((pos[j] / n1 - neg[j] / n0) / norm).abs()
        })
        .collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    order
}

/// Columns `cols` of `z` (`[n, m]`), as a `[n, cols.len()]` matrix.
pub fn columns(z: &[f64], m: usize, cols: &[usize]) -> Vec<f64> {
    z.chunks_exact(m)
        .flat_map(|row| cols.iter().map(move |&c| row[c]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use husai_kernels::rng::SplitMix64;

    #[test]
    fn the_auc_is_the_rank_formula_with_midranks() {
        let y = [true, false, true, false, true];
        assert_eq!(auc(&[0.9, 0.1, 0.8, 0.2, 0.7], &y), Some(1.0));
        assert_eq!(auc(&[0.1, 0.9, 0.2, 0.8, 0.3], &y), Some(0.0));
        // One positive ties with one negative: that pair counts one half, so 5.5 of 6 pairs.
        assert_eq!(auc(&[0.9, 0.5, 0.5, 0.1, 0.7], &y), Some(5.5 / 6.0));
        assert_eq!(auc(&[1.0; 5], &y), Some(0.5));
        assert_eq!(auc(&[0.3, 0.4], &[true, true]), None);
    }

    #[test]
    fn the_logistic_gradient_matches_finite_differences() {
        let mut g = SplitMix64::new(3);
        let (n, p) = (40, 4);
        let x: Vec<f64> = (0..n * p).map(|_| g.normal()).collect();
        let y: Vec<bool> = (0..n).map(|_| g.uniform_f64() < 0.4).collect();
        let w: Vec<f64> = (0..=p).map(|_| 0.5 * g.normal()).collect();
        let (_, grad) = loss_and_grad(&x, &y, p, &w, 0.3);
        for i in 0..=p {
            let h = 1e-6;
            let (mut up, mut down) = (w.clone(), w.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (loss_and_grad(&x, &y, p, &up, 0.3).0
                - loss_and_grad(&x, &y, p, &down, 0.3).0)
                / (2.0 * h);
            assert!((fd - grad[i]).abs() < 1e-7, "{i}: {fd} vs {}", grad[i]);
        }
    }

    #[test]
    fn the_fit_is_the_penalised_optimum_and_separates_a_planted_direction() {
        let mut g = SplitMix64::new(8);
        let (n, p) = (400, 6);
        let x: Vec<f64> = (0..n * p).map(|_| 3.0 + 2.0 * g.normal()).collect();
        let y: Vec<bool> = x
            .chunks_exact(p)
            .map(|r| (r[1] - 3.0) - 0.5 * (r[4] - 3.0) + 0.5 * g.normal() > 0.0)
            .collect();
        let fit = fit(&x, &y, p, 1e-3);
        // At the optimum the gradient of the penalised loss (in standardised space) vanishes.
        let xs: Vec<f64> = x
            .chunks_exact(p)
            .flat_map(|r| {
                r.iter()
                    .zip(&fit.mean)
                    .zip(&fit.scale)
                    .map(|((v, m), s)| (v - m) / s)
            })
            .collect();
        let mut w = fit.w.clone();
        w.push(fit.b);
        let (_, grad) = loss_and_grad(&xs, &y, p, &w, 1e-3);
        assert!(grad.iter().all(|v| v.abs() < 1e-7), "{grad:?}");
        assert!(fit.w[1] > 1.0 && fit.w[4] < -0.4, "{:?}", fit.w);
        assert!(auc(&fit.decision(&x), &y).unwrap() > 0.95);
    }

    #[test]
    fn latents_rank_by_normalised_class_mean_difference_and_dead_ones_last() {
        // Latent 0 fires equally in both classes; latent 1 fires only for positives (at a large scale); latent 2
        // fires for positives at a small scale, so its normalised difference is the same as latent 1's; latent 3
        // never fires.
        let y = [true, true, false, false];
        let z = [
            1.0, 100.0, 0.01, 0.0, //
            1.0, 100.0, 0.01, 0.0, //
            1.0, 0.0, 0.0, 0.0, //
            1.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(rank_latents(&z, &y, 4), [1, 2, 0, 3]);
        assert_eq!(
            columns(&z, 4, &[2, 0]),
            [0.01, 1.0, 0.01, 1.0, 0.0, 1.0, 0.0, 1.0]
        );
    }
}
