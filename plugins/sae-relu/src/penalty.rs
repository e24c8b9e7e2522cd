//! The standard SAE's activation rule and sparsity penalty, as plain functions over one row's sparse code.
//!
//! ```text
//! pre = (x - b_dec) · W_enc + b_enc
//! z   = ReLU(pre)                                   sparse: only the positive entries are kept
//! P   = λ_t · Σ_i z_i · w_i                         per row, averaged over the batch
//! ```
//!
//! `w_i` is the decoder row norm `‖W_dec,i‖` in the default variant: Anthropic's April 2024 update ("Circuits
//! Updates — April 2024", "Training Sparse Autoencoders") weights each latent's L1 term by its decoder norm, so the
//! penalty cannot be dodged by shrinking `z` and growing `W_dec`, and the decoder needs no renormalisation. SAELens's
//! `standard` training SAE computes the same (`(feature_acts * W_dec.norm(dim=1)).norm(p=1, dim=-1)`, mean over the
//! batch). In the `unit_norm` variant `w_i = 1` (plain L1) and the decoder rows are renormalised to unit norm after
//! every step, the older recipe (Bricken et al. 2023, "Towards Monosemanticity").
//!
//! Gradients (for `z_i > 0`; the ReLU passes nothing where `z_i = 0`):
//!
//! ```text
//! ∂P/∂z_i      = λ_t · w_i
//! ∂P/∂W_dec,i  = λ_t · z_i · W_dec,i / ‖W_dec,i‖      (norm-weighted variant only; summed over rows, / B)
//! ```

/// Which weight each latent's L1 term carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// `w_i = ‖W_dec,i‖`, decoder rows free (SAELens `standard`, Anthropic April 2024).
    DecoderNorm,
    /// `w_i = 1`, decoder rows renormalised to unit norm after every step.
    UnitNorm,
}

impl Weighting {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Weighting::DecoderNorm => "decoder_norm",
            Weighting::UnitNorm => "unit_norm",
        }
    }
}

/// λ for the step that has `steps_done` steps before it: a linear warm-up from 0 over `warmup_steps` steps, then
/// `lambda`. This is SAELens's coefficient schedule (`CoefficientScheduler`: starts at 0.0 when warm-up is on, rises
/// by `final / warm_up_steps` per step); `warmup_steps = 0` is `lambda` from the first step.
pub fn lambda_at(lambda: f64, warmup_steps: u64, steps_done: u64) -> f64 {
    if warmup_steps == 0 || steps_done >= warmup_steps {
        lambda
    } else {
        lambda * steps_done as f64 / warmup_steps as f64
    }
}

/// The ReLU's sparse code of one row: appends the indices and values of the positive entries of `pre`, in
/// increasing index order (so the decode that sums them runs in a fixed order).
pub fn relu_row(pre: &[f32], idx: &mut Vec<u32>, val: &mut Vec<f32>) {
    for (j, &p) in pre.iter().enumerate() {
        if p > 0.0 {
            idx.push(j as u32);
            val.push(p);
        }
    }
}

/// Per-latent weights `w_i` for `weighting`, from the decoder `[d_sae, d_in]`.
pub fn latent_weights(weighting: Weighting, w_dec: &[f32], d_in: usize) -> Vec<f32> {
    match weighting {
        Weighting::DecoderNorm => row_norms(w_dec, d_in),
        Weighting::UnitNorm => vec![1.0; w_dec.len() / d_in.max(1)],
    }
}

/// Euclidean norm of each `d_in`-wide row of `m`, accumulated in f64.
pub fn row_norms(m: &[f32], d_in: usize) -> Vec<f32> {
    m.chunks_exact(d_in)
        .map(|r| {
            r.iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt() as f32
        })
        .collect()
}

/// The penalty of one row, `λ Σ_i z_i w_i`, in f64.
pub fn row_penalty(idx: &[u32], val: &[f32], weights: &[f32], lambda: f64) -> f64 {
    let s: f64 = idx
        .iter()
        .zip(val)
        .map(|(&j, &z)| f64::from(z) * f64::from(weights[j as usize]))
        .sum();
    lambda * s
}

/// Adds `scale · ∂P/∂z_i = scale · λ w_i` to `dz` (aligned with the row's `idx`). `scale` is the batch mean's
/// `1/B`.
pub fn add_penalty_dz(idx: &[u32], weights: &[f32], lambda: f64, scale: f64, dz: &mut [f32]) {
    for (d, &j) in dz.iter_mut().zip(idx) {
        *d += (scale * lambda * f64::from(weights[j as usize])) as f32;
    }
}

/// Adds the norm-weighted penalty's decoder gradient to `g_w_dec` (`[d_sae, d_in]`): for each latent,
/// `λ · s_i · W_dec,i / ‖W_dec,i‖` with `s_i = (1/B) Σ_rows z_i` (`z_sum` holds `Σ_rows z_i`). Latents with a zero
/// row norm get nothing (the norm has no gradient there).
pub fn add_norm_grad(
    z_sum: &[f64],
    w_dec: &[f32],
    norms: &[f32],
    d_in: usize,
    lambda: f64,
    scale: f64,
    g_w_dec: &mut [f32],
) {
    for (j, (g, w)) in g_w_dec
        .chunks_exact_mut(d_in)
        .zip(w_dec.chunks_exact(d_in))
        .enumerate()
    {
        if z_sum[j] == 0.0 || norms[j] == 0.0 {
            continue;
        }
        let c = lambda * scale * z_sum[j] / f64::from(norms[j]);
        for (gv, &wv) in g.iter_mut().zip(w) {
            *gv += (c * f64::from(wv)) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_is_linear_from_zero_as_saelens_schedules_it() {
        assert_eq!(lambda_at(2.0, 0, 0), 2.0);
        assert_eq!(lambda_at(2.0, 4, 0), 0.0);
        assert_eq!(lambda_at(2.0, 4, 1), 0.5);
        assert_eq!(lambda_at(2.0, 4, 3), 1.5);
        assert_eq!(lambda_at(2.0, 4, 4), 2.0);
        assert_eq!(lambda_at(2.0, 4, 100), 2.0);
    }

    #[test]
    fn relu_keeps_only_positive_entries_in_index_order() {
        let (mut idx, mut val) = (vec![], vec![]);
        relu_row(&[0.5, -1.0, 0.0, 2.0, -0.0, 1e-30], &mut idx, &mut val);
        assert_eq!(idx, [0, 3, 5]);
        assert_eq!(val, [0.5, 2.0, 1e-30]);
    }

    /// The penalty's gradients against central differences of the penalty itself, in f64 arithmetic on a tiny
    /// case: ∂/∂z and ∂/∂W_dec of λ Σ z_i ‖W_dec,i‖.
    #[test]
    fn penalty_gradients_match_finite_differences() {
        let d_in = 3;
        let w_dec = [0.3f32, -0.4, 1.2, 0.0, 0.5, 0.5, -2.0, 0.1, 0.7];
        let idx = [0u32, 2];
        let val = [0.8f32, 1.5];
        let lambda = 0.7;
        let p = |w: &[f32], v: &[f32]| row_penalty(&idx, v, &row_norms(w, d_in), lambda);
        let norms = row_norms(&w_dec, d_in);
        let mut dz = vec![0.0f32; 2];
        add_penalty_dz(&idx, &norms, lambda, 1.0, &mut dz);
        let h = 1e-3f32;
        for i in 0..2 {
            let (mut up, mut dn) = (val, val);
            up[i] += h;
            dn[i] -= h;
            let fd = (p(&w_dec, &up) - p(&w_dec, &dn)) / (2.0 * f64::from(h));
            assert!(
                (fd - f64::from(dz[i])).abs() < 1e-3 * fd.abs().max(1.0),
                "dz[{i}]: {fd} vs {}",
                dz[i]
            );
        }
        let mut z_sum = vec![0.0f64; 3];
        for (&j, &z) in idx.iter().zip(&val) {
            z_sum[j as usize] += f64::from(z);
        }
        let mut g = vec![0.0f32; 9];
        add_norm_grad(&z_sum, &w_dec, &norms, d_in, lambda, 1.0, &mut g);
        for e in 0..9 {
            let (mut up, mut dn) = (w_dec, w_dec);
            up[e] += h;
            dn[e] -= h;
            let fd = (p(&up, &val) - p(&dn, &val)) / (2.0 * f64::from(h));
            assert!(
                (fd - f64::from(g[e])).abs() < 2e-3,
                "g_w_dec[{e}]: {fd} vs {}",
                g[e]
            );
        }
        assert_eq!(
            &g[3..6],
            [0.0; 3],
            "latent 1 did not fire: no norm gradient"
        );
    }

    #[test]
    fn unit_norm_weights_are_one() {
        assert_eq!(
            latent_weights(Weighting::UnitNorm, &[3.0, 4.0, 0.0, 1.0], 2),
            [1.0, 1.0]
        );
        assert_eq!(
            latent_weights(Weighting::DecoderNorm, &[3.0, 4.0, 0.0, 1.0], 2),
            [5.0, 1.0]
        );
    }
}
