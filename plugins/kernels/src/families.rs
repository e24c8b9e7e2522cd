//! The activation rules of the top-k families on the shared engine ([`crate::family`]): [`TopK`] (Gao et al.
//! 2024) and [`BatchTopK`] (Bussmann, Leask and Nanda 2024, "BatchTopK Sparse Autoencoders").
//!
//! Both decode only strictly positive values (post-ReLU), have no loss term of their own (the engine adds AuxK),
//! take the default `∂L/∂pre = ∂L/∂z` on their selected slots, and renormalise decoder rows to unit norm after
//! every step.

use serde_json::{Map, Value, json};

use crate::family::{DecoderNorm, Family, RowSlots, Rule, SlotCode, StepCtx};
use crate::topk::select_row;

/// Per-row top-k after ReLU; the same rule for training and inference. Ties keep the lower latent index; a row
/// with fewer than k positive values keeps all of them (see [`crate::topk`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    k: usize,
    zeros: Vec<f32>,
}

impl TopK {
    /// The rule for `k` latents per row among `d_sae`.
    pub fn new(k: usize, d_sae: usize) -> Self {
        Self {
            k,
            zeros: vec![0.0; d_sae],
        }
    }

    /// Latents kept per row.
    pub fn k(&self) -> usize {
        self.k
    }
}

impl Family for TopK {
    fn name(&self) -> &'static str {
        "topk"
    }

    fn decoder_norm(&self) -> DecoderNorm {
        DecoderNorm::UnitEachStep
    }

    fn activate(&self, _rule: Rule, ctx: &StepCtx<'_>, pre: &[f32], code: &mut SlotCode) {
        let k = self.k;
        let zeros = &self.zeros[..ctx.d_sae];
        code.fill_rows(pre, ctx.d_sae, |_, p, out| {
            let (mut idx, mut val) = ([0u32; 64], [0f32; 64]);
            if k <= 64 {
                let n = select_row(p, zeros, None, k, &mut idx[..k], &mut val[..k]);
                for s in 0..n {
                    out.push(idx[s], val[s], val[s]);
                }
            } else {
                let (mut idx, mut val) = (vec![0u32; k], vec![0f32; k]);
                let n = select_row(p, zeros, None, k, &mut idx, &mut val);
                for s in 0..n {
                    out.push(idx[s], val[s], val[s]);
                }
            }
        });
    }

    fn saelens_architecture(&self) -> &'static str {
        "topk"
    }

    fn saelens_config(&self, cfg: &mut Map<String, Value>) {
        cfg.insert("k".into(), json!(self.k));
        cfg.insert("rescale_acts_by_decoder_norm".into(), json!(false));
    }
}

/// SAELens's default rate of the BatchTopK threshold's moving average (`topk_threshold_lr`).
pub const DEFAULT_THRESHOLD_LR: f64 = 0.01;

/// BatchTopK. Training keeps the `B·k` largest post-ReLU pre-activations of the whole batch (row L0 varies, the
/// batch total is exactly `B·k` unless the batch has fewer positive values, when all are kept). Tie rule: among
/// values equal to the cutoff, the ones first in row-major order (lower row, then lower latent index) are kept.
/// Inference uses a global threshold θ: `z = pre` where `pre > θ` (and `pre > 0`), as the JumpReLU SAE that
/// SAELens converts a BatchTopK SAE to. θ is estimated during training as SAELens does
/// (`BatchTopKTrainingSAE.update_topk_threshold`): starting at 0, after every step
/// `θ ← (1 − lr)·θ + lr·min{z > 0 in the step's training code}`, in f64, with `lr` = `threshold_lr` (0.01).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchTopK {
    k: usize,
    threshold_lr: f64,
    threshold: f64,
}

impl BatchTopK {
    /// The rule for a batch mean of `k` latents per row, with the threshold's moving-average rate.
    pub fn new(k: usize, threshold_lr: f64) -> Self {
        Self {
            k,
            threshold_lr,
            threshold: 0.0,
        }
    }

    /// Mean latents per row in training.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The inference threshold θ as estimated so far.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Sets θ (tests, and loading a trained model for inference).
    pub fn set_threshold(&mut self, theta: f64) {
        self.threshold = theta;
    }

    /// The batch-wide selection of the training rule.
    fn select_batch(&self, ctx: &StepCtx<'_>, pre: &[f32], code: &mut SlotCode) {
        let d_sae = ctx.d_sae;
        let rows = pre.len() / d_sae;
        let want = rows * self.k;
        let (cut, ties_needed) = cutoff(pre, want);
        // Per-row count of values equal to the cutoff, then how many of them each row keeps (row-major order).
        let take: Vec<u32> = match cut {
            None => vec![0; rows],
            Some(c) => {
                use rayon::prelude::*;
                let ties: Vec<u32> = pre
                    .par_chunks(d_sae)
                    .map(|r| r.iter().filter(|&&v| v.to_bits() == c).count() as u32)
                    .collect();
                let mut left = ties_needed;
                ties.iter()
                    .map(|&t| {
                        let n = t.min(left as u32);
                        left -= n as usize;
                        n
                    })
                    .collect()
            }
        };
        let cut_bits = cut.unwrap_or(0);
        code.fill_rows(pre, d_sae, |r, p, out| {
            let mut ties_left = take[r];
            for (j, &v) in p.iter().enumerate() {
                // As i32, the bits of a positive float order as the float, and a negative float (sign bit set)
                // is below every positive one; `<= INF_BITS` leaves out NaN. So with a cutoff, one comparison,
                // true for about one value in fifty, finds the kept values, and only positive values are kept.
                // (Without one, `take` is all zeros, so the tie branch never keeps anything.)
                let b = v.to_bits() as i32;
                let keep = match cut {
                    None => v > 0.0,
                    Some(_) => b > cut_bits as i32 && b <= INF_BITS,
                };
                if keep {
                    out.push(j as u32, v, v);
                } else if b == cut_bits as i32 && ties_left > 0 {
                    ties_left -= 1;
                    out.push(j as u32, v, v);
                }
            }
        });
    }
}

/// The bits of +∞ as i32 (every NaN with the sign bit clear is above it).
const INF_BITS: i32 = 0x7f80_0000;

/// The bit pattern of the `want`-th largest strictly positive value of `pre` and how many values equal to it must
/// be kept (so that exactly `want` are kept), by a three-pass radix select on the f32 bits (positive floats order
/// as their bits). `None` when `pre` has at most `want` positive values: keep them all.
fn cutoff(pre: &[f32], want: usize) -> (Option<u32>, usize) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 16;
    // (shift, width) of each pass: bits 31..21, 20..10, 9..0.
    let passes: [(u32, u32); 3] = [(21, 11), (10, 11), (0, 10)];
    let (mut prefix, mut prefix_mask) = (0u32, 0u32);
    let mut above = 0usize; // values known to be greater than the current prefix range
    for (pass, &(shift, width)) in passes.iter().enumerate() {
        let buckets = 1usize << width;
        let hist = pre
            .par_chunks(CHUNK)
            .map(|c| {
                // Branch-free: a value that is not positive, or outside the prefix range, counts in the extra
                // bucket `buckets` (about half the pre-activations are positive, so a branch here mispredicts on
                // every other value).
                let mut h = vec![0u32; buckets + 1];
                for &v in c {
                    let b = v.to_bits();
                    let counted = usize::from((v > 0.0) & (b & prefix_mask == prefix));
                    let bucket = ((b >> shift) as usize) & (buckets - 1);
                    h[counted * bucket + (1 - counted) * buckets] += 1;
                }
                h.truncate(buckets);
                h
            })
            .reduce(
                || vec![0u32; buckets],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                    a
                },
            );
        if pass == 0 {
            let total: usize = hist.iter().map(|&h| h as usize).sum();
            if total <= want {
                return (None, 0);
            }
        }
        // Walk buckets from the top until the count reaches `want`.
        let mut acc = above;
        let mut chosen = 0usize;
        for bkt in (0..buckets).rev() {
            let h = hist[bkt] as usize;
            if acc + h >= want {
                chosen = bkt;
                break;
            }
            acc += h;
        }
        above = acc;
        prefix |= (chosen as u32) << shift;
        prefix_mask |= ((buckets - 1) as u32) << shift;
    }
    (Some(prefix), want - above)
}

impl Family for BatchTopK {
    fn name(&self) -> &'static str {
        "batchtopk"
    }

    fn decoder_norm(&self) -> DecoderNorm {
        DecoderNorm::UnitEachStep
    }

    fn activate(&self, rule: Rule, ctx: &StepCtx<'_>, pre: &[f32], code: &mut SlotCode) {
        match rule {
            Rule::Train => self.select_batch(ctx, pre, code),
            Rule::Infer => {
                let theta = self.threshold as f32;
                code.fill_rows(pre, ctx.d_sae, |_, p, out: &mut RowSlots| {
                    for (j, &v) in p.iter().enumerate() {
                        if v > theta && v > 0.0 {
                            out.push(j as u32, v, v);
                        }
                    }
                });
            }
        }
    }

    fn observe(&mut self, code: &SlotCode, _ctx: &StepCtx<'_>) {
        let min = code
            .val
            .iter()
            .copied()
            .filter(|&v| v > 0.0)
            .fold(f32::INFINITY, f32::min);
        if min.is_finite() {
            let lr = self.threshold_lr;
            self.threshold = (1.0 - lr) * self.threshold + lr * min as f64;
        }
    }

    fn state(&self) -> Vec<(&'static str, Vec<f64>)> {
        vec![("threshold", vec![self.threshold])]
    }

    fn restore_state(&mut self, state: &[(String, Vec<f64>)]) -> Result<(), String> {
        match state {
            [(name, v)] if name == "threshold" && v.len() == 1 && v[0].is_finite() => {
                self.threshold = v[0];
                Ok(())
            }
            _ => Err(format!(
                "expected one finite entry \"threshold\" of length 1, got {:?}",
                state.iter().map(|(n, v)| (n, v.len())).collect::<Vec<_>>()
            )),
        }
    }

    fn figures(&self, _params: &[Vec<f32>]) -> Vec<(String, f64)> {
        vec![("threshold".into(), self.threshold)]
    }

    fn saelens_architecture(&self) -> &'static str {
        "jumprelu"
    }

    fn saelens_tensors(
        &self,
        _params: &[Vec<f32>],
        d_sae: usize,
    ) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![(
            "threshold".into(),
            vec![d_sae],
            vec![self.threshold as f32; d_sae],
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(rows: usize, d_sae: usize) -> StepCtx<'static> {
        StepCtx {
            step: 0,
            rows,
            d_in: 1,
            d_sae,
            params: &[],
        }
    }

    #[test]
    fn batch_selection_keeps_exactly_b_times_k_with_rows_above_and_below_k() {
        // Row 0 holds the largest values, row 2 only small ones: row L0 must vary.
        let (rows, d_sae, k) = (4, 8, 2);
        let mut pre = vec![0f32; rows * d_sae];
        let mut r = crate::rng::SplitMix64::new(5);
        for (i, v) in pre.iter_mut().enumerate() {
            let row = i / d_sae;
            let base = [3.0, 1.0, 0.1, 1.0][row];
            *v = base * r.uniform_f32() - 0.2;
        }
        let mut code = SlotCode::default();
        BatchTopK::new(k, 0.01).activate(Rule::Train, &ctx(rows, d_sae), &pre, &mut code);
        assert_eq!(code.nnz(), rows * k);
        let l0: Vec<usize> = (0..rows).map(|r| code.row_nnz(r)).collect();
        assert!(
            l0.iter().any(|&n| n > k) && l0.iter().any(|&n| n < k),
            "{l0:?}"
        );
        // Every kept value is >= every dropped positive value.
        let kept_min = code.val.iter().copied().fold(f32::INFINITY, f32::min);
        let mut all: Vec<f32> = pre.iter().copied().filter(|&v| v > 0.0).collect();
        all.sort_by(|a, b| b.partial_cmp(a).unwrap());
        assert_eq!(kept_min, all[rows * k - 1]);
    }

    #[test]
    fn ties_at_the_cutoff_go_to_earlier_rows_then_lower_latents() {
        // Every value is 1.0: 6 of the 12 are kept, the first 6 in row-major order.
        let (rows, d_sae, k) = (3, 4, 2);
        let pre = vec![1.0f32; rows * d_sae];
        let mut code = SlotCode::default();
        BatchTopK::new(k, 0.01).activate(Rule::Train, &ctx(rows, d_sae), &pre, &mut code);
        assert_eq!(code.offsets, vec![0, 4, 6, 6]);
        assert_eq!(code.idx, vec![0, 1, 2, 3, 0, 1]);
        // Fewer positive values than B·k: all of them, nothing else.
        let mut pre = vec![-1.0f32; rows * d_sae];
        pre[5] = 0.5;
        BatchTopK::new(k, 0.01).activate(Rule::Train, &ctx(rows, d_sae), &pre, &mut code);
        assert_eq!(
            (code.offsets.clone(), code.idx.clone()),
            (vec![0, 0, 1, 1], vec![1])
        );
    }

    /// The branch-free histogram and the i32 comparison treat the odd values as the plain float comparison does:
    /// NaN (either sign), −0, negatives and −∞ are never kept; +∞ and subnormals are positive values like others.
    #[test]
    fn batch_selection_keeps_only_the_largest_positive_values_among_odd_ones() {
        let (rows, d_sae, k) = (2, 8, 2);
        let pre = vec![
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            -0.0,
            1e-40,
            0.5,
            -3.0,
            f32::NEG_INFINITY, //
            0.25,
            2.0,
            f32::NAN,
            0.0,
            -1e-40,
            0.75,
            1e-40,
            -0.5,
        ];
        let mut code = SlotCode::default();
        BatchTopK::new(k, 0.01).activate(Rule::Train, &ctx(rows, d_sae), &pre, &mut code);
        // The 4 largest positive values: +∞, 2.0, 0.75, 0.5.
        assert_eq!(code.offsets, vec![0, 2, 4]);
        assert_eq!(code.idx, vec![2, 5, 1, 5]);
        // With room for more than the 7 positive values (B·k = 8), all of them are kept, and nothing else.
        BatchTopK::new(4, 0.01).activate(Rule::Train, &ctx(rows, d_sae), &pre, &mut code);
        assert_eq!(code.idx, vec![2, 4, 5, 0, 1, 5, 6]);
    }

    #[test]
    fn radix_cutoff_matches_a_sort_on_random_values() {
        let mut r = crate::rng::SplitMix64::new(11);
        for n in [1usize, 7, 100, 5000] {
            let pre: Vec<f32> = (0..n).map(|_| (r.normal() as f32) * 2.0).collect();
            let mut pos: Vec<f32> = pre.iter().copied().filter(|&v| v > 0.0).collect();
            pos.sort_by(|a, b| b.partial_cmp(a).unwrap());
            for want in [1usize, 3, n / 4 + 1] {
                let (c, ties) = cutoff(&pre, want);
                if pos.len() <= want {
                    assert_eq!(c, None);
                } else {
                    assert_eq!(
                        f32::from_bits(c.unwrap()),
                        pos[want - 1],
                        "n {n} want {want}"
                    );
                    let above = pos.iter().filter(|&&v| v > pos[want - 1]).count();
                    assert_eq!(ties, want - above);
                }
            }
        }
    }

    #[test]
    fn threshold_follows_saelens_moving_average_and_round_trips() {
        let mut f = BatchTopK::new(2, 0.5);
        let mut code = SlotCode::default();
        code.begin_rows();
        let mut row = RowSlots::default();
        row.push(0, 2.0, 2.0);
        row.push(3, 0.8, 0.8);
        code.push_row(&row);
        f.observe(&code, &ctx(1, 4));
        // The minimum kept value is 0.8 (as f32, widened): θ = 0.5·0 + 0.5·0.8, then 0.5·0.4 + 0.5·0.8.
        let m = 0.8f32 as f64;
        assert_eq!(f.threshold(), 0.5 * m);
        f.observe(&code, &ctx(1, 4));
        assert_eq!(f.threshold(), 0.5 * (0.5 * m) + 0.5 * m);
        let st: Vec<(String, Vec<f64>)> =
            f.state().into_iter().map(|(n, v)| (n.into(), v)).collect();
        let mut g = BatchTopK::new(2, 0.5);
        g.restore_state(&st).unwrap();
        assert_eq!(g, f);
        assert!(g.restore_state(&[]).unwrap_err().contains("\"threshold\""));
        // Inference: strictly above θ only.
        let mut c = SlotCode::default();
        g.activate(Rule::Infer, &ctx(1, 4), &[0.6, 0.61, -1.0, 3.0], &mut c);
        assert_eq!(c.idx, vec![1, 3]);
    }
}
