//! Pieces of the training loop every family shares ([`crate::engine::FamilyTrainer`] runs the loop): the batch
//! schedule, the AuxK settings and dead-latent tracking.
//!
//! Batches are sequential slices of the data exactly as in the PyTorch reference trainer:
//! step `s` (0-based) uses rows `i .. i + batch` with `i = (s * batch) % (rows - batch + 1)`
//! ([`batch_start`]). There is no shuffling; shuffle the rows beforehand if the order is not random.

use serde::{Deserialize, Serialize};

/// AuxK dead-latent loss settings (Gao et al. 2024, "Scaling and evaluating sparse autoencoders", §A.2).
///
/// With `dead` the latents that have not fired for `dead_window` steps ([`DeadTracker`]), the engine takes per
/// row the top `k_aux` values of the *raw* pre-activations `pre + b_enc` among dead latents (negative ones
/// included), decodes them *without* bias, `e_hat = Σ_{j ∈ aux} a_j W_dec[j]`, and adds
/// `coeff · (1/B) Σ_rows ||e_hat - e||²`, where `e = x - x_hat` is the main model's residual treated as a
/// constant (stop-gradient, as in the paper's code, sparsify and SAELens). It gives dead latents a gradient toward
/// what the live ones miss. Selecting among raw values follows SAELens (`calculate_topk_aux_acts` masks live
/// latents to -inf in `hidden_pre`); sparsify and the paper's code select among ReLU'd values, which never reach a
/// latent whose pre-activation is negative on every row, the usual way a TopK latent dies (on the MiniLM bank that
/// version barely changed the dead fraction; see the sae-topk AuxK test). Unlike SAELens the term is not scaled by
/// `min(dead / k_aux, 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuxKConfig {
    /// Dead latents used per row to reconstruct the residual (the paper uses a power of two
    /// near d_in / 2; SAELens and sparsify use d_in / 2).
    pub k_aux: usize,
    /// Weight of the auxiliary loss (the paper uses 1/32).
    pub coeff: f32,
}

/// First row of the batch of step `step` (0-based) over `rows` training rows: the reference
/// trainer's sequential schedule `(step * batch) % (rows - batch + 1)`. Needs `rows >= batch >= 1`.
pub fn batch_start(step: u64, batch: usize, rows: usize) -> usize {
    let span = (rows - batch + 1) as u128;
    ((step as u128 * batch as u128) % span) as usize
}

/// Per-latent count of optimiser steps since the latent last fired.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadTracker {
    steps_since_fired: Vec<u64>,
    window: u64,
}

impl DeadTracker {
    /// All latents start as just-fired (nothing is dead before `window` steps).
    pub fn new(d_sae: usize, window: u64) -> Self {
        Self {
            steps_since_fired: vec![0; d_sae],
            window,
        }
    }

    /// A tracker continuing from saved counters (exact resume).
    pub fn from_counts(steps_since_fired: Vec<u64>, window: u64) -> Self {
        Self {
            steps_since_fired,
            window,
        }
    }

    /// Records one step in which `fired[j]` says whether latent `j` fired on any row.
    pub fn record(&mut self, fired: &[bool]) {
        for (c, &f) in self.steps_since_fired.iter_mut().zip(fired) {
            *c = if f { 0 } else { c.saturating_add(1) };
        }
    }

    /// `dead[j]`: latent `j` has not fired in the last `window` steps.
    pub fn dead_mask(&self, out: &mut Vec<bool>) {
        out.clear();
        out.extend(self.steps_since_fired.iter().map(|&c| c >= self.window));
    }

    /// Share of latents currently dead.
    pub fn dead_fraction(&self) -> f64 {
        self.steps_since_fired
            .iter()
            .filter(|&&c| c >= self.window)
            .count() as f64
            / self.steps_since_fired.len() as f64
    }

    /// Steps since each latent last fired.
    pub fn steps_since_fired(&self) -> &[u64] {
        &self.steps_since_fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_tracker_counts_steps_since_last_fire() {
        let mut t = DeadTracker::new(3, 2);
        t.record(&[true, false, false]);
        assert_eq!(t.steps_since_fired(), &[0, 1, 1]);
        assert_eq!(t.dead_fraction(), 0.0);
        t.record(&[false, true, false]);
        assert_eq!(t.steps_since_fired(), &[1, 0, 2]);
        let mut mask = Vec::new();
        t.dead_mask(&mut mask);
        assert_eq!(mask, vec![false, false, true]);
        assert!((t.dead_fraction() - 1.0 / 3.0).abs() < 1e-12);
        t.record(&[false, false, true]);
        t.dead_mask(&mut mask);
        assert_eq!(
            mask,
            vec![true, false, false],
            "firing revives a dead latent; 2 idle steps kill one"
        );
    }

    #[test]
    fn the_schedule_is_the_reference_trainers() {
        // 10 rows, batch 4: starts are (s * 4) % 7 = 0, 4, 1, 5, 2, ... as in the peer.
        let starts: Vec<usize> = (0..5).map(|s| batch_start(s, 4, 10)).collect();
        assert_eq!(starts, vec![0, 4, 1, 5, 2]);
        // A batch as large as the data always starts at row 0.
        assert!((0..4).all(|s| batch_start(s, 10, 10) == 0));
    }
}
