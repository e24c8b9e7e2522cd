//! Target-L0 mode: adapts λ (the L0 penalty's weight) so that the training L0 reaches a requested value.
//!
//! The controller is integral action on `log λ`, driven by the relative L0 error of each training batch:
//!
//! ```text
//! log λ_{t+1} = clamp(log λ_t + g · (L0_t - L0*) / L0*,  log λ_min, log λ_max)
//! ```
//!
//! `L0_t` is the batch's mean active latents per row under the training rule (the same rule inference uses, for
//! JumpReLU), `L0*` the target and `g` the gain. Too many active latents raise λ, too few lower it; working on
//! `log λ` keeps λ positive and makes the step a fixed ratio whatever λ's scale (λ that suits a bank depends on its
//! norm, which we do not know ahead). The clamp keeps λ from running away while the thresholds and encoder lag
//! behind it (the L0 responds to λ only through Adam's bounded steps). λ's current value is part of the trainer
//! state, so a resumed run continues with it.

/// Smallest λ the controller will set.
pub const LAMBDA_MIN: f64 = 1e-8;
/// Largest λ the controller will set.
pub const LAMBDA_MAX: f64 = 1e4;

/// The controller's settings and state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct L0Controller {
    /// `L0*`.
    pub target: f64,
    /// `g`.
    pub gain: f64,
    /// `λ_t`.
    pub lambda: f64,
}

impl L0Controller {
    /// λ after a batch with L0 `batch_l0`; updates and returns it.
    pub fn update(&mut self, batch_l0: f64) -> f64 {
        let err = (batch_l0 - self.target) / self.target;
        let log = (self.lambda.ln() + self.gain * err).clamp(LAMBDA_MIN.ln(), LAMBDA_MAX.ln());
        self.lambda = log.exp().clamp(LAMBDA_MIN, LAMBDA_MAX);
        self.lambda
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_raises_lambda_when_l0_is_high_and_lowers_it_when_low() {
        let mut c = L0Controller {
            target: 32.0,
            gain: 0.1,
            lambda: 1.0,
        };
        let up = c.update(64.0);
        assert!((up - (0.1f64).exp()).abs() < 1e-12, "{up}");
        let mut c = L0Controller {
            target: 32.0,
            gain: 0.1,
            lambda: 1.0,
        };
        assert!(c.update(16.0) < 1.0);
        let mut c = L0Controller {
            target: 32.0,
            gain: 0.1,
            lambda: 1.0,
        };
        assert_eq!(c.update(32.0), 1.0);
        let mut c = L0Controller {
            target: 1.0,
            gain: 100.0,
            lambda: 1.0,
        };
        assert_eq!(c.update(1e6), LAMBDA_MAX, "clamped");
    }

    /// On a plant where L0 falls with λ and lags it (first-order response, as thresholds moved by Adam do), the
    /// controller settles at the target.
    #[test]
    fn the_controller_settles_on_a_lagging_plant() {
        let mut c = L0Controller {
            target: 32.0,
            gain: 0.05,
            lambda: 1e-3,
        };
        let mut l0 = 500.0f64;
        for _ in 0..3000 {
            let wanted = 64.0 / c.lambda.sqrt().max(1e-12) * 0.01; // L0 = 0.64 / sqrt(λ): λ* = 4e-4
            l0 += 0.05 * (wanted - l0);
            c.update(l0);
        }
        assert!((l0 - 32.0).abs() < 0.5, "{l0}");
    }
}
