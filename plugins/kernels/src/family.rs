//! The SAE family interface: what a family (TopK, BatchTopK, ReLU + L1, JumpReLU, ...) supplies on top of the
//! shared building blocks of [`crate::engine`].
//!
//! Every family shares the same model and the same forward and backward maths:
//!
//! ```text
//! pre   = (x - b_dec) · W_enc + b_enc                 dense GEMM, [B, d_sae]       (engine)
//! code  = family.activate(pre)                        slots (row, latent, value)   (FAMILY)
//! x_hat = b_dec + Σ_{slots with z ≠ 0} z_j W_dec[j]   sparse decode                (engine)
//! L_rec = (1/B) Σ_rows ||x_hat - x||²                 sum over d_in, mean over rows (engine)
//! g_s   = ∂L_rec/∂z_s = (2/B)·⟨x_hat - x, W_dec[j]⟩   for EVERY slot s, z = 0 too    (engine)
//! L_fam, ∂L_fam/∂z_s, per-latent ∂L_fam/∂W_dec        family loss terms            (FAMILY)
//! ∂L/∂pre_s, ∂L/∂(family parameters)                  the activation's derivative  (FAMILY)
//! dW_dec, dW_enc, db_enc, db_dec, AuxK, Adam, norms   sparse backward and update    (engine)
//! ```
//!
//! A family therefore implements only [`Family`]: its activation rule for training and for inference
//! ([`Family::activate`], both writing a [`SlotCode`]), its loss terms ([`Family::loss_terms`]), the map from
//! `∂L/∂z` to `∂L/∂pre` per slot with the gradients of its own parameters ([`Family::pre_grad`]), its decoder-norm
//! policy ([`Family::decoder_norm`]), state that is not trained by Adam but updated from each batch
//! ([`Family::observe`], e.g. BatchTopK's threshold estimate), and how it is saved for SAELens
//! ([`Family::saelens_config`], [`Family::saelens_tensors`]).
//!
//! # Slots and gradient slots
//!
//! A [`SlotCode`] is a CSR matrix with a variable number of entries per row: `offsets[r]..offsets[r+1]` are the
//! slots of row `r`; each slot has a latent `idx`, a value `val` (the `z` used for decoding) and the latent's
//! pre-activation `pre` (with `b_enc`). A slot with `val == 0` is a *gradient slot*: it never enters the decode
//! (nothing is multiplied by a zero), but the engine still computes its `g_s` and the family may map it to a
//! nonzero `∂L/∂pre` or family-parameter gradient. JumpReLU uses that for the latents whose pre-activation is
//! within ε/2 of θ but did not fire (the straight-through rectangle kernel of Rajamanoharan et al. 2024).
//! Within a row, slots are in any order the family likes, but the order must be a pure function of `pre` and
//! the parameters (determinism); every latent appears at most once per row.
//!
//! # Units
//!
//! Loss values a family returns are in the engine's units: summed over `d_in`, averaged over the `B` rows of the
//! batch (the same as `L_rec`); the trainer divides every term by `d_in` when it reports it per element. Gradients
//! are of exactly those values.
//!
//! # Determinism
//!
//! The engine calls every hook on the same data in the same order whatever the thread count. A hook may use
//! rayon, but its results must not depend on how the work was split: use fixed chunks and sum in a fixed order
//! ([`SlotCode::fill_rows`] does that for row-wise activations).

use rayon::prelude::*;
use serde_json::{Map, Value};

/// Rows per parallel task when filling a code row by row (fixed, so results never depend on thread count).
const FILL_CHUNK: usize = 32;

/// A sparse code with a variable number of slots per row (CSR). See the module documentation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlotCode {
    /// `offsets[r]..offsets[r + 1]` are row `r`'s slots; `offsets.len() == rows + 1`, `offsets[0] == 0`.
    pub offsets: Vec<u32>,
    /// Latent of each slot.
    pub idx: Vec<u32>,
    /// Value `z` of each slot (what is decoded); 0 for a gradient slot.
    pub val: Vec<f32>,
    /// Pre-activation (with `b_enc`) of each slot's latent in its row.
    pub pre: Vec<f32>,
}

/// One row's slots as a family writes them in [`SlotCode::fill_rows`].
#[derive(Debug, Default)]
pub struct RowSlots {
    idx: Vec<u32>,
    val: Vec<f32>,
    pre: Vec<f32>,
}

impl RowSlots {
    /// Empties the row, keeping the allocation.
    pub fn clear(&mut self) {
        self.idx.clear();
        self.val.clear();
        self.pre.clear();
    }

    /// Adds a slot: latent `j`, value `z` (0 for a gradient slot), pre-activation `pre`.
    #[inline]
    pub fn push(&mut self, j: u32, z: f32, pre: f32) {
        self.idx.push(j);
        self.val.push(z);
        self.pre.push(pre);
    }

    /// Slots pushed so far for this row.
    pub fn len(&self) -> usize {
        self.idx.len()
    }

    /// True when no slot was pushed for this row.
    pub fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }
}

impl SlotCode {
    /// An empty code of `rows` rows (every row has no slot).
    pub fn empty(rows: usize) -> Self {
        let mut c = Self::default();
        c.clear(rows);
        c
    }

    /// Empties the code and sets it to `rows` rows with no slots, keeping the allocations.
    pub fn clear(&mut self, rows: usize) {
        self.offsets.clear();
        self.offsets.resize(rows + 1, 0);
        self.idx.clear();
        self.val.clear();
        self.pre.clear();
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Total slots (gradient slots included).
    pub fn slots(&self) -> usize {
        self.idx.len()
    }

    /// The slot indices of row `r`.
    pub fn range(&self, r: usize) -> std::ops::Range<usize> {
        self.offsets[r] as usize..self.offsets[r + 1] as usize
    }

    /// Row `r`'s latents and values (gradient slots included, with value 0).
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let s = self.range(r);
        (&self.idx[s.clone()], &self.val[s])
    }

    /// Nonzero values in row `r` (the row's L0).
    pub fn row_nnz(&self, r: usize) -> usize {
        self.val[self.range(r)]
            .iter()
            .filter(|&&v| v != 0.0)
            .count()
    }

    /// Nonzero values over all rows.
    pub fn nnz(&self) -> usize {
        self.val.iter().filter(|&&v| v != 0.0).count()
    }

    /// Appends one row's slots after [`SlotCode::begin_rows`] (serial building, e.g. after a batch-wide
    /// selection).
    pub fn push_row(&mut self, slots: &RowSlots) {
        self.idx.extend_from_slice(&slots.idx);
        self.val.extend_from_slice(&slots.val);
        self.pre.extend_from_slice(&slots.pre);
        self.offsets.push(self.idx.len() as u32);
    }

    /// Builds the code of a `[rows, d_sae]` pre-activation matrix `pre` (with `b_enc`) row by row, in parallel:
    /// `rule(r, pre_row, out)` pushes row `r`'s slots. Rows are processed in fixed chunks and concatenated in
    /// row order, so the result is the same for any thread count.
    pub fn fill_rows<F>(&mut self, pre: &[f32], d_sae: usize, rule: F)
    where
        F: Fn(usize, &[f32], &mut RowSlots) + Sync,
    {
        let rows = pre.len() / d_sae.max(1);
        let chunks: Vec<(Vec<u32>, RowSlots)> = pre
            .par_chunks(d_sae * FILL_CHUNK)
            .enumerate()
            .map(|(c, block)| {
                let mut out = RowSlots::default();
                let mut ends = Vec::with_capacity(FILL_CHUNK);
                for (i, p) in block.chunks_exact(d_sae).enumerate() {
                    rule(c * FILL_CHUNK + i, p, &mut out);
                    ends.push(out.len() as u32);
                }
                (ends, out)
            })
            .collect();
        self.offsets.clear();
        self.offsets.reserve(rows + 1);
        self.offsets.push(0);
        self.idx.clear();
        self.val.clear();
        self.pre.clear();
        for (ends, slots) in &chunks {
            let base = self.idx.len() as u32;
            self.offsets.extend(ends.iter().map(|e| base + e));
            self.idx.extend_from_slice(&slots.idx);
            self.val.extend_from_slice(&slots.val);
            self.pre.extend_from_slice(&slots.pre);
        }
    }

    /// Starts a code that is built with [`SlotCode::push_row`], one row at a time.
    pub fn begin_rows(&mut self) {
        self.offsets.clear();
        self.offsets.push(0);
        self.idx.clear();
        self.val.clear();
        self.pre.clear();
    }
}

/// Which activation rule [`Family::activate`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The training rule (BatchTopK: top-(B·k) over the batch; JumpReLU: with its gradient slots).
    Train,
    /// The inference rule (what a checkpoint loaded by SAELens computes; BatchTopK: the global threshold).
    /// Gradient slots are not needed.
    Infer,
}

/// How the decoder's row norms are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderNorm {
    /// Rows are scaled back to unit L2 norm after every Adam step (TopK, BatchTopK, ReLU's `unit_norm` variant).
    UnitEachStep,
    /// Rows are left free (ReLU with the norm-weighted L1 penalty, JumpReLU as in SAELens); the family's loss
    /// keeps them bounded.
    Free,
}

/// A family parameter trained by Adam beside the shared ones (JumpReLU's log-threshold `t`, θ = exp(t)).
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyParam {
    /// Name in the trainer state (`fam.<name>` there) and in error messages; `[a-z_]+`.
    pub name: &'static str,
    /// Initial values (their length is the parameter's length, usually d_sae).
    pub init: Vec<f32>,
}

/// Which reconstruction level each decoded slot belongs to (see [`Nesting`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Levels {
    /// Matryoshka prefixes (Bussmann et al. 2025): latents `bounds[c-1]..bounds[c]` are level `c` (`bounds[-1]`
    /// is 0); `bounds` is strictly increasing and ends at d_sae, so level `c`'s reconstruction uses the first
    /// `bounds[c]` latents.
    Prefixes(Vec<u32>),
    /// HierarchicalTopK ranks (Balagansky et al. 2025): the `p`-th slot of a row (0-based; the family writes
    /// slots in decreasing order of value) is level `min(p, count - 1)`, so level `c`'s reconstruction uses the
    /// row's `c + 1` largest latents. A row with fewer slots reconstructs the higher levels from all it has.
    Ranks(usize),
}

/// A nested reconstruction objective: instead of one `L_rec`, the engine optimises `Σ_c w_c L_c`, where `L_c`
/// is the reconstruction loss of level `c`, `x̂_c = b_dec + Σ_{slots of level <= c} z_s W_dec[j_s]` (same units as
/// `L_rec`). Level `count - 1` is the full reconstruction. Every level's gradient flows through one pass per row:
/// with `e_c = x̂_c − x`, a slot of level `c` sees the residual `R_c = Σ_{c' >= c} w_{c'} e_{c'}` (a suffix sum
/// over levels), so `g_s = (2/B)⟨R_c, W_dec[j]⟩` and `∂L/∂W_dec[j] += (2/B) z_s R_c`; `∂L/∂b_dec` gets `R_0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Nesting {
    /// How slots map to levels.
    pub levels: Levels,
    /// Weight `w_c` of each level's loss (length [`Nesting::count`]).
    pub weights: Vec<f32>,
    /// Name of each level's held-out FVU figure in `metrics.json` (`fvu_prefix_192`, `fvu_k_8`), `[a-z0-9_]+`.
    pub figure_names: Vec<String>,
}

impl Nesting {
    /// Number of levels.
    pub fn count(&self) -> usize {
        self.weights.len()
    }

    /// The level of a slot of latent `j` at position `pos` in its row.
    #[inline]
    pub fn level(&self, j: u32, pos: usize) -> usize {
        match &self.levels {
            Levels::Prefixes(bounds) => bounds.partition_point(|&b| b <= j),
            Levels::Ranks(n) => pos.min(n - 1),
        }
    }

    /// Checks the shapes against `d_sae`: lengths agree, prefixes strictly increase to d_sae, weights are finite
    /// and non-negative. The message says what is wrong.
    pub fn validate(&self, d_sae: usize) -> Result<(), String> {
        let n = self.count();
        if n == 0 || self.figure_names.len() != n {
            return Err(format!(
                "a nesting needs at least one level and one figure name per level (has {n} weights, {} names)",
                self.figure_names.len()
            ));
        }
        if let Some(w) = self.weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
            return Err(format!("level weight {w} is not finite and non-negative"));
        }
        match &self.levels {
            Levels::Prefixes(b) => {
                if b.len() != n {
                    return Err(format!("{} prefix bounds for {n} weights", b.len()));
                }
                if b.windows(2).any(|w| w[0] >= w[1]) || b[0] == 0 {
                    return Err(format!(
                        "prefix widths {b:?} must be positive and strictly increasing"
                    ));
                }
                if *b.last().unwrap() as usize != d_sae {
                    return Err(format!(
                        "the last prefix width is {} but d_sae is {d_sae}",
                        b[n - 1]
                    ));
                }
            }
            Levels::Ranks(k) => {
                if *k != n {
                    return Err(format!("{k} rank levels for {n} weights"));
                }
            }
        }
        Ok(())
    }
}

/// What every hook may read about the step being taken.
#[derive(Debug, Clone, Copy)]
pub struct StepCtx<'a> {
    /// The optimiser step being taken, 0-based (the number of completed steps); for evaluation the steps done.
    pub step: u64,
    /// Rows in the batch (`B`).
    pub rows: usize,
    /// Input width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Current values of the family's parameters, in [`Family::params`] order.
    pub params: &'a [Vec<f32>],
}

/// What [`Family::loss_terms`] may read and write besides the code.
#[derive(Debug)]
pub struct LossCtx<'a> {
    /// The step.
    pub step: StepCtx<'a>,
    /// L2 norm of each decoder row (`‖W_dec[j]‖`, length d_sae), as of this forward pass.
    pub dec_norms: &'a [f32],
    /// `∂L/∂z` per slot (length `code.slots()`), already holding the reconstruction gradient `g_s`; the family
    /// ADDS its terms' derivatives.
    pub dz: &'a mut [f32],
    /// Per-latent coefficient `c_j` (length d_sae, zero on entry): the engine adds `c_j · W_dec[j]` to
    /// `∂L/∂W_dec[j]`. The norm-weighted L1 term `λ/B Σ z_j ‖W_dec[j]‖` gives `c_j = λ/B · Σ_rows z_j / ‖W_dec[j]‖`.
    pub dw_dec_scale: &'a mut [f32],
}

/// What [`Family::pre_grad`] may read and write besides the code.
#[derive(Debug)]
pub struct PreGradCtx<'a> {
    /// The step.
    pub step: StepCtx<'a>,
    /// `∂L/∂z` per slot (all loss terms, AuxK excluded: AuxK slots are the engine's).
    pub dz: &'a [f32],
    /// `∂L/∂pre` per slot, zero on entry; the family writes it (the engine then builds dW_enc, db_enc, db_dec).
    pub dpre: &'a mut [f32],
    /// Gradients of the family's parameters, zero on entry, same shapes as [`Family::params`].
    pub param_grads: &'a mut [Vec<f32>],
}

/// An SAE family on the shared engine. See the module documentation for the contract of each hook.
pub trait Family: Send + Sync {
    /// The family's name as recorded in `trainer_state.safetensors` (`topk`, `batchtopk`, `relu`, `jumprelu`).
    fn name(&self) -> &'static str;

    /// Parameters trained by Adam beside `W_enc`, `b_enc`, `W_dec`, `b_dec` (default: none).
    fn params(&self, _d_in: usize, _d_sae: usize) -> Vec<FamilyParam> {
        Vec::new()
    }

    /// The decoder-norm policy.
    fn decoder_norm(&self) -> DecoderNorm;

    /// A nested reconstruction objective (Matryoshka, HierarchicalTopK); `None` (the default) is the plain
    /// `L_rec`. When present, the training code's slots map to levels by [`Nesting::level`], and the held-out
    /// evaluation reports one FVU per level.
    fn nesting(&self) -> Option<&Nesting> {
        None
    }

    /// Projects the family's parameters onto their constraint set after every optimiser update (JumpReLU's
    /// directly trained threshold onto θ >= 0). Default: unconstrained.
    fn project(&self, _params: &mut [Vec<f32>]) {}

    /// Fills `code` from `pre` (`[rows, d_sae]`, with `b_enc` added) by `rule`. Only slots with `val > 0` are
    /// decoded; with [`Rule::Train`] the family adds the gradient slots it needs.
    fn activate(&self, rule: Rule, ctx: &StepCtx<'_>, pre: &[f32], code: &mut SlotCode);

    /// The family's extra loss terms on the training code: returns `(name, value)` pairs (names `[a-z_]+`, not
    /// `mse` or `aux`, which are the engine's), adds their `∂/∂z` to `ctx.dz` and their `∂/∂W_dec` (as per-latent
    /// multiples of `W_dec[j]`) to `ctx.dw_dec_scale`. Terms that depend on family parameters only through the
    /// code's `pre` (JumpReLU's L0) put their parameter gradient in [`Family::pre_grad`]. Default: none.
    fn loss_terms(&self, _code: &SlotCode, _ctx: &mut LossCtx<'_>) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// Maps `∂L/∂z` to `∂L/∂pre` per slot and fills the family parameters' gradients. Default: the derivative of
    /// a ReLU-like rule, `∂L/∂pre = ∂L/∂z` where `z > 0`, 0 elsewhere (TopK, BatchTopK, ReLU).
    fn pre_grad(&self, code: &SlotCode, ctx: &mut PreGradCtx<'_>) {
        for ((d, &g), &z) in ctx.dpre.iter_mut().zip(ctx.dz).zip(&code.val) {
            *d = if z > 0.0 { g } else { 0.0 };
        }
    }

    /// Called after each optimiser step with the step's training code, for state that is estimated rather than
    /// trained (BatchTopK's inference threshold). Default: nothing.
    fn observe(&mut self, _code: &SlotCode, _ctx: &StepCtx<'_>) {}

    /// That estimated state, as named f64 vectors, for exact resume (default: none). Must round-trip through
    /// [`Family::restore_state`].
    fn state(&self) -> Vec<(&'static str, Vec<f64>)> {
        Vec::new()
    }

    /// Restores what [`Family::state`] returned; errors name the missing or misshaped entry.
    fn restore_state(&mut self, state: &[(String, Vec<f64>)]) -> Result<(), String> {
        match state.first() {
            None => Ok(()),
            Some((name, _)) => Err(format!("unexpected family state entry {name:?}")),
        }
    }

    /// Family figures for `metrics.json` (threshold statistics and the like), given the family parameters.
    /// Names are `[a-z0-9_]+`. Default: none.
    fn figures(&self, _params: &[Vec<f32>]) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// SAELens's architecture name of the saved checkpoint (`topk`, `jumprelu`, `standard`).
    fn saelens_architecture(&self) -> &'static str;

    /// Architecture-specific `cfg.json` fields, added to the common ones (`d_in`, `d_sae`, `dtype`, `device`,
    /// `apply_b_dec_to_input`, `normalize_activations`, `reshape_activations`, `metadata`, `architecture`).
    fn saelens_config(&self, _cfg: &mut Map<String, Value>) {}

    /// Extra tensors of `sae_weights.safetensors` after `W_enc, b_enc, W_dec, b_dec`: `(name, shape, values)`
    /// (JumpReLU and BatchTopK: `threshold [d_sae]`). Default: none.
    fn saelens_tensors(
        &self,
        _params: &[Vec<f32>],
        _d_sae: usize,
    ) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        Vec::new()
    }
}
