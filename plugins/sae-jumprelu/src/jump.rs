//! JumpReLU's activation rule, its straight-through pseudo-derivatives and its sparsity penalties, as plain
//! functions (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU Sparse
//! Autoencoders", §3 and §4; the numbered equations below are theirs).
//!
//! ```text
//! h   = (x - b_dec) · W_enc + b_enc                       pre-activation
//! θ_i >= 0                                                learned per latent (directly, or as exp(t_i))
//! z_i = h_i · H(h_i - θ_i)                                JumpReLU (eq. 4); H(u) = 1{u > 0}
//! ```
//!
//! `z` is not differentiable in θ (and `H(h - θ)` has derivative zero almost everywhere), so the paper replaces the
//! derivative with a kernel-density estimate of the expected loss's derivative, with the rectangle kernel
//! `K(u) = 1{|u| < 1/2}` and bandwidth ε (eqs. 11 and 12):
//!
//! ```text
//! ∂z_i/∂θ_i          := -(θ_i / ε) · K((h_i - θ_i) / ε)
//! ∂H(h_i - θ_i)/∂θ_i := -(1 / ε)   · K((h_i - θ_i) / ε)
//! ∂z_i/∂h_i          =  H(h_i - θ_i)                      (no straight-through estimate into h)
//! ∂L/∂t_i            =  θ_i · ∂L/∂θ_i                     (when trained as t = log θ)
//! ```
//!
//! So a latent with `z_i = 0` whose pre-activation lies within ε/2 of its threshold still needs `∂L/∂z_i` (a
//! "gradient slot"); [`jump_row`] lists those entries beside the active ones.
//!
//! Sparsity penalties (per row, averaged over the batch), [`Sparsity`]:
//!
//! - `step`: `λ · Σ_i H(h_i - θ_i)`, the L0 norm (eq. 9); it reaches θ only through the second pseudo-derivative
//!   above and gives `h` and the decoder nothing. SAELens's `jumprelu_sparsity_loss_mode = "step"`.
//! - `tanh`: `λ · Σ_i tanh(c · z_i · ‖W_dec,i‖)`, the smooth L0 surrogate of Anthropic's JumpReLU training setup
//!   (Transformer Circuits updates, 2025) as SAELens (6.11 and later) implements it: its `"tanh"` mode with
//!   `jumprelu_tanh_scale = c` (default 4). It is a function of `z`, so it reaches θ through `∂z/∂θ` and also reaches `h` and the decoder norms.
//!
//! Threshold and bandwidth defaults are SAELens 6's (`JumpReLUTrainingSAEConfig`): `jumprelu_init_threshold =
//! 0.01`, `jumprelu_bandwidth = 0.05`, with `b_enc = 0` and the threshold trained as itself, projected onto θ >= 0
//! after every update (SAELens 6; `crate::family::ThresholdParam`), and saved as `threshold`.

/// The sparsity penalty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sparsity {
    /// `λ Σ H(h - θ)`.
    Step,
    /// `λ Σ tanh(scale · z · ‖W_dec,i‖)`.
    Tanh {
        /// `c` above.
        scale: f64,
    },
}

impl Sparsity {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Sparsity::Step => "step",
            Sparsity::Tanh { .. } => "tanh",
        }
    }
}

/// The rectangle kernel `K(u) = 1{-1/2 < u < 1/2}` (both ends open, as SAELens's `rectangle`).
pub fn rectangle(u: f64) -> f64 {
    if u > -0.5 && u < 0.5 { 1.0 } else { 0.0 }
}

/// `K((h - θ) / ε)`.
pub fn in_band(h: f32, theta: f32, eps: f32) -> bool {
    rectangle((f64::from(h) - f64::from(theta)) / f64::from(eps)) != 0.0
}

/// `z`'s pseudo-derivative in θ, `-(θ/ε) K((h - θ)/ε)`.
pub fn dz_dtheta(h: f32, theta: f32, eps: f32) -> f64 {
    let (h, t, e) = (f64::from(h), f64::from(theta), f64::from(eps));
    -(t / e) * rectangle((h - t) / e)
}

/// The step's pseudo-derivative in θ, `-(1/ε) K((h - θ)/ε)`.
pub fn dstep_dtheta(h: f32, theta: f32, eps: f32) -> f64 {
    let (h, t, e) = (f64::from(h), f64::from(theta), f64::from(eps));
    -(1.0 / e) * rectangle((h - t) / e)
}

/// One row's entries: every latent that is active (`h > θ`, value `z = h`) or in the band `|h - θ| < ε/2` (value
/// `z`, which is 0 when it is not active), in increasing index order. An entry's value is non-zero exactly when it is
/// active, because θ > 0.
pub fn jump_row(pre: &[f32], theta: &[f32], eps: f32, idx: &mut Vec<u32>, val: &mut Vec<f32>) {
    for (j, (&h, &t)) in pre.iter().zip(theta).enumerate() {
        let active = h > t;
        if active || in_band(h, t, eps) {
            idx.push(j as u32);
            val.push(if active { h } else { 0.0 });
        }
    }
}

impl Sparsity {
    /// One entry's penalty (`z` its value, `norm` its decoder row norm) without λ, with its derivatives in `z` and
    /// in the norm: for tanh, `(tanh u, c ‖W_dec,i‖ sech² u, c z sech² u)` with `u = c z ‖W_dec,i‖` (one tanh);
    /// for the step, `(1{z ≠ 0}, 0, 0)` (the step reaches θ directly instead, [`Sparsity::dtheta`]).
    pub fn terms(self, z: f32, norm: f32) -> (f64, f64, f64) {
        match self {
            Sparsity::Step => (f64::from(u8::from(z != 0.0)), 0.0, 0.0),
            Sparsity::Tanh { scale } => {
                let (z, n) = (f64::from(z), f64::from(norm));
                let t = (scale * z * n).tanh();
                let sech2 = 1.0 - t * t;
                (t, scale * n * sech2, scale * z * sech2)
            }
        }
    }

    /// One entry's penalty without λ.
    pub fn entry(self, z: f32, norm: f32) -> f64 {
        self.terms(z, norm).0
    }

    /// The entry's penalty's derivative in `z` (without λ).
    pub fn dz(self, z: f32, norm: f32) -> f64 {
        self.terms(z, norm).1
    }

    /// The entry's penalty's derivative in its decoder row norm (without λ).
    pub fn dnorm(self, z: f32, norm: f32) -> f64 {
        self.terms(z, norm).2
    }

    /// The entry's penalty's direct pseudo-derivative in θ (without λ): the step's `-(1/ε) K`; 0 for tanh, whose
    /// θ-gradient flows through `∂z/∂θ`.
    pub fn dtheta(self, h: f32, theta: f32, eps: f32) -> f64 {
        match self {
            Sparsity::Step => dstep_dtheta(h, theta, eps),
            Sparsity::Tanh { .. } => 0.0,
        }
    }
}

/// `∂L/∂θ` of one entry: `∂L/∂z · ∂z/∂θ + λ · ∂P/∂θ`, where `g_z` is the whole loss's derivative in `z` (the
/// reconstruction's plus the penalty's, already scaled by `1/B`) and `scale` the batch mean's `1/B`.
pub fn entry_dtheta(
    sparsity: Sparsity,
    h: f32,
    theta: f32,
    eps: f32,
    g_z: f64,
    lambda: f64,
    scale: f64,
) -> f64 {
    g_z * dz_dtheta(h, theta, eps) + lambda * scale * sparsity.dtheta(h, theta, eps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rectangle_kernel_is_open_at_both_ends() {
        assert_eq!(rectangle(0.0), 1.0);
        assert_eq!(rectangle(0.4999), 1.0);
        assert_eq!(rectangle(-0.4999), 1.0);
        assert_eq!(rectangle(0.5), 0.0);
        assert_eq!(rectangle(-0.5), 0.0);
    }

    #[test]
    fn rows_list_active_latents_and_gradient_slots() {
        let theta = [0.1f32, 0.1, 0.1, 0.1, 0.1];
        let (mut idx, mut val) = (vec![], vec![]);
        // 0.3 active; 0.09 in the band (|0.09 - 0.1| < 0.025), a slot with z = 0; 0.11 active and in the band;
        // 0.05 and -1 are neither.
        jump_row(
            &[0.3, 0.09, 0.05, 0.11, -1.0],
            &theta,
            0.05,
            &mut idx,
            &mut val,
        );
        assert_eq!(idx, [0, 1, 3]);
        assert_eq!(val, [0.3, 0.0, 0.11]);
    }

    /// The straight-through pseudo-gradient against its closed form on the smallest case: one latent, one input,
    /// `h = w x + b`, `z = h H(h - θ)`, `θ = e^t`, `L = (z d - x)² + λ H(h - θ)`. The closed form of eqs. 11-12 with the
    /// chain rule through `θ = e^t` is `∂L/∂t = θ · [2 (z d - x) d · (-(θ/ε) K) + λ · (-(1/ε) K)]`.
    #[test]
    fn the_threshold_pseudo_gradient_matches_its_closed_form() {
        let (x, w, b, d, lambda, eps) = (1.5f64, 0.8f64, 0.02f64, 0.9f64, 0.3f64, 0.5f64);
        for t in [-0.5f64, -0.1, 0.2, 0.6] {
            let theta = t.exp();
            let h = w * x + b; // 1.22
            let active = h > theta;
            let z = if active { h } else { 0.0 };
            let k = if (h - theta).abs() < eps / 2.0 {
                1.0
            } else {
                0.0
            };
            let closed = theta
                * (2.0 * (z * d - x) * d * (-(theta / eps) * k) + lambda * (-(1.0 / eps) * k));
            let g_z = 2.0 * (z * d - x) * d;
            let ours = theta
                * entry_dtheta(
                    Sparsity::Step,
                    h as f32,
                    theta as f32,
                    eps as f32,
                    g_z,
                    lambda,
                    1.0,
                );
            assert!(
                (ours - closed).abs() < 1e-5 * closed.abs().max(1.0),
                "t = {t}: {ours} vs {closed}"
            );
            // In the band the gradient is non-zero; out of it, exactly zero.
            assert_eq!(ours == 0.0, k == 0.0, "t = {t}");
        }
    }

    /// The step's pseudo-derivative is the exact derivative of the step smoothed by the rectangle kernel, the
    /// ramp `clamp((h - θ)/ε + 1/2, 0, 1)` (its convolution with `K/ε`): central differences of that ramp agree.
    #[test]
    fn the_step_pseudo_derivative_is_the_kernel_smoothed_steps_derivative() {
        let ramp = |h: f64, t: f64, e: f64| ((h - t) / e + 0.5).clamp(0.0, 1.0);
        let (eps, fd_h) = (0.05f64, 1e-5f64);
        for (h, theta) in [(0.11f64, 0.1f64), (0.09, 0.1), (0.2, 0.1), (0.0, 0.1)] {
            let fd = (ramp(h, theta + fd_h, eps) - ramp(h, theta - fd_h, eps)) / (2.0 * fd_h);
            let ours = dstep_dtheta(h as f32, theta as f32, eps as f32);
            assert!((fd - ours).abs() < 1e-3, "h {h}, θ {theta}: {fd} vs {ours}");
        }
    }

    #[test]
    fn the_tanh_penalty_derivatives_match_finite_differences() {
        let s = Sparsity::Tanh { scale: 4.0 };
        let h = 1e-4f32;
        for (z, n) in [(0.0f32, 0.3f32), (0.2, 0.5), (1.3, 0.1)] {
            let fdz = (s.entry(z + h, n) - s.entry(z - h, n)) / (2.0 * f64::from(h));
            let fdn = (s.entry(z, n + h) - s.entry(z, n - h)) / (2.0 * f64::from(h));
            assert!(
                (fdz - s.dz(z, n)).abs() < 1e-2,
                "dz at z {z}, n {n}: {fdz} vs {}",
                s.dz(z, n)
            );
            if z != 0.0 {
                assert!(
                    (fdn - s.dnorm(z, n)).abs() < 1e-2,
                    "dnorm at z {z}: {fdn} vs {}",
                    s.dnorm(z, n)
                );
            }
        }
        assert_eq!(s.dz(0.0, 0.25), 1.0, "at z = 0 the slope is c·‖W_dec‖");
        assert_eq!(Sparsity::Step.entry(0.0, 1.0), 0.0);
        assert_eq!(Sparsity::Step.entry(0.3, 1.0), 1.0);
    }
}
