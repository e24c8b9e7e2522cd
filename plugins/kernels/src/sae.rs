//! A TopK sparse autoencoder with sparse decode and sparse gradients. The architecture is the
//! standard one (Gao et al. 2024; SAELens's `topk`, EleutherAI's sparsify), but training differs
//! from both peers in ways that change the weights:
//!
//! - initialisation: `W_dec` Kaiming-uniform from our SplitMix64 stream, rows scaled to unit norm,
//!   `W_enc = W_decᵀ`, `b_enc = 0` ([`TopKSae::init`]); SAELens scales the rows to norm 0.1
//!   (`decoder_init_norm`), sparsify to unit norm; `b_dec` by the trainer's `b_dec_init`;
//! - decoder norm: rows are renormalised to unit norm after every Adam step, and the top-k
//!   selection does not weight activations by decoder norms; SAELens never renormalises and
//!   instead multiplies activations by the row norms (`rescale_acts_by_decoder_norm`);
//! - gradients: the plain gradient of the loss below, no clipping and no removal of the component
//!   parallel to the decoder rows; SAELens clips the gradient norm at 1, sparsify removes the
//!   parallel component before its renormalisation;
//! - loss: the summed-over-`d_in` squared error, unnormalised (sparsify divides by the batch's
//!   total variance); AuxK as described below.
//!
//! ```text
//! pre   = (x - b_dec) · W_enc + b_enc                          dense GEMM, [B, d_sae]
//! z     = TopK_k(ReLU(pre))                                    k-sparse per row (see `topk`)
//! x_hat = z · W_dec + b_dec = b_dec + Σ_{j ∈ top-k} z_j W_dec[j]     sparse: k rows summed
//! L     = (1/B) Σ_rows ||x_hat - x||²                           sum over d_in, mean over rows
//! ```
//!
//! AuxK (Gao et al. 2024, "Scaling and evaluating sparse autoencoders", §A.2): with `dead` the
//! latents that have not fired for a configured number of steps, take per row the top `k_aux`
//! values of the *raw* pre-activations `pre + b_enc` among dead latents (negative ones included),
//! decode them *without* bias, `e_hat = Σ_{j ∈ aux} a_j W_dec[j]`, and add
//! `coeff · (1/B) Σ_rows ||e_hat - e||²`, where `e = x - x_hat` is the main model's residual
//! treated as a constant (stop-gradient, as in the paper's code, sparsify and SAELens). It gives
//! dead latents a gradient toward what the live ones miss. Selecting among raw values follows
//! SAELens (`sae_lens/saes/topk_sae.py`, `calculate_topk_aux_acts` masks live latents to -inf in
//! `hidden_pre`); sparsify and the paper's code select among ReLU'd values, which never reach a
//! latent whose pre-activation is negative on every row, the usual way a TopK latent dies (on the
//! MiniLM bank that version barely changed the dead fraction; see the sae-topk AuxK test). Unlike
//! SAELens we do not scale the term by `min(dead / k_aux, 1)`.
//!
//! Only the encoder product is dense. Everything after the selection touches `k` (or `k_aux`)
//! decoder/encoder rows per data row: the decoder gradient only has rows for latents that were
//! selected, and the pre-activation gradient is k-sparse, so `∂L/∂W_enc = xcᵀ · G` is
//! accumulated per selected latent from the data rows that selected it. No product ever
//! multiplies by the zeros of `z`.
//!
//! Storage: `W_enc` is kept transposed (`w_enc_t`, `[d_sae, d_in]` row-major, row `j` = latent
//! `j`'s encoder direction) so each latent's gradient is one contiguous row; [`SaeParts`] carries
//! the conventional `[d_in, d_sae]` layout.
//!
//! Determinism: parallel work is split into fixed chunks (of rows, of latents) and every sum runs
//! in a fixed order, and the GEMM never splits its inner dimension, so results are bit-identical
//! for any thread count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::adam::{Adam, Moments};
use crate::error::{KernelError, check_finite, check_len};
use crate::gemm::{MatMut, MatRef, matmul};
use crate::metrics::{Reconstruction, ReconstructionAccumulator};
use crate::rng::SplitMix64;
use crate::simd::{axpy, axpy2, dot};
use crate::topk::{SparseCode, select_row};

/// Data rows per parallel task in row-wise passes.
const ROW_CHUNK: usize = 32;
/// Latents per parallel task in the gradient accumulation.
const LATENT_CHUNK: usize = 16;
/// Rows per block when encoding/evaluating many rows (bounds the `[rows, d_sae]` buffer).
const EVAL_BLOCK: usize = 2048;

/// All parameters of a TopK SAE in conventional layouts, for checkpoints and interchange.
#[derive(Debug, Clone, PartialEq)]
pub struct SaeParts {
    /// Input width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Latents kept per row.
    pub k: usize,
    /// Encoder, `[d_in, d_sae]` row-major (SAELens layout).
    pub w_enc: Vec<f32>,
    /// Encoder bias, `[d_sae]`.
    pub b_enc: Vec<f32>,
    /// Decoder, `[d_sae, d_in]` row-major; rows have unit norm after every training step.
    pub w_dec: Vec<f32>,
    /// Decoder bias, `[d_in]` (subtracted from the input before encoding).
    pub b_dec: Vec<f32>,
}

/// AuxK settings for one batch.
#[derive(Debug, Clone, Copy)]
pub struct AuxArgs<'a> {
    /// `dead[j]`: latent `j` counts as dead (length d_sae).
    pub dead: &'a [bool],
    /// Dead latents kept per row.
    pub k_aux: usize,
    /// Weight of the auxiliary loss.
    pub coeff: f32,
}

/// Loss parts of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatchLoss {
    /// Reconstruction loss: sum over d_in of the squared error, mean over rows.
    pub mse_loss: f64,
    /// Weighted AuxK loss (0 when AuxK is off or no latent is dead).
    pub aux_loss: f64,
    /// Mean nonzero latents per row.
    pub l0: f64,
}

impl BatchLoss {
    /// The optimised objective: `mse_loss + aux_loss`.
    pub fn total(&self) -> f64 {
        self.mse_loss + self.aux_loss
    }
}

/// Metrics of the model on a set of rows (definitions in [`crate::metrics`]).
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
    /// family's order; empty for the TopK model here.
    #[serde(default)]
    pub figures: Vec<(String, f64)>,
}

/// A TopK SAE. See the module documentation for the maths and layouts.
#[derive(Debug, Clone, PartialEq)]
pub struct TopKSae {
    d_in: usize,
    d_sae: usize,
    k: usize,
    w_enc_t: Vec<f32>,
    b_enc: Vec<f32>,
    w_dec: Vec<f32>,
    b_dec: Vec<f32>,
}

/// Gradients of the loss, dense, one buffer per parameter (same layouts as the model).
#[derive(Debug, Clone, PartialEq)]
pub struct Grads {
    pub(crate) w_enc_t: Vec<f32>,
    pub(crate) b_enc: Vec<f32>,
    pub(crate) w_dec: Vec<f32>,
    pub(crate) b_dec: Vec<f32>,
}

impl Grads {
    /// Zero gradients for a model of the given shape.
    pub fn zeros(d_in: usize, d_sae: usize) -> Self {
        Self {
            w_enc_t: vec![0.0; d_sae * d_in],
            b_enc: vec![0.0; d_sae],
            w_dec: vec![0.0; d_sae * d_in],
            b_dec: vec![0.0; d_in],
        }
    }

    /// Gradient of the transposed encoder, `[d_sae, d_in]`.
    pub fn w_enc_t(&self) -> &[f32] {
        &self.w_enc_t
    }

    /// Gradient of the encoder bias, `[d_sae]`.
    pub fn b_enc(&self) -> &[f32] {
        &self.b_enc
    }

    /// Gradient of the decoder, `[d_sae, d_in]`.
    pub fn w_dec(&self) -> &[f32] {
        &self.w_dec
    }

    /// Gradient of the decoder bias, `[d_in]`.
    pub fn b_dec(&self) -> &[f32] {
        &self.b_dec
    }
}

/// Adam moments for every parameter of a [`TopKSae`].
#[derive(Debug, Clone, PartialEq)]
pub struct SaeAdamState {
    /// Moments of the (transposed) encoder.
    pub w_enc_t: Moments,
    /// Moments of the encoder bias.
    pub b_enc: Moments,
    /// Moments of the decoder.
    pub w_dec: Moments,
    /// Moments of the decoder bias.
    pub b_dec: Moments,
}

impl SaeAdamState {
    /// Zero moments for a model of the given shape.
    pub fn zeros(d_in: usize, d_sae: usize) -> Self {
        Self {
            w_enc_t: Moments::zeros(d_sae * d_in),
            b_enc: Moments::zeros(d_sae),
            w_dec: Moments::zeros(d_sae * d_in),
            b_dec: Moments::zeros(d_in),
        }
    }
}

/// Per-latent lists of the code slots that selected it (a transposed, CSC view of a code):
/// `entries[start[j]..start[j+1]]` are flat slot indices `row * k + slot`, in increasing row order.
#[derive(Debug, Clone, Default)]
struct Csc {
    start: Vec<u32>,
    entries: Vec<u32>,
}

impl Csc {
    /// Counting sort of the nonzero slots of `code` by latent; stable, so rows stay in order.
    fn build(&mut self, code: &SparseCode, d_sae: usize) {
        self.start.clear();
        self.start.resize(d_sae + 1, 0);
        for r in 0..code.rows() {
            for &j in code.row(r).0 {
                self.start[j as usize + 1] += 1;
            }
        }
        for j in 0..d_sae {
            self.start[j + 1] += self.start[j];
        }
        self.entries.clear();
        self.entries.resize(self.start[d_sae] as usize, 0);
        let mut fill: Vec<u32> = self.start[..d_sae].to_vec();
        let k = code.k();
        for r in 0..code.rows() {
            for (s, &j) in code.row(r).0.iter().enumerate() {
                let f = &mut fill[j as usize];
                self.entries[*f as usize] = (r * k + s) as u32;
                *f += 1;
            }
        }
    }

    fn latent(&self, j: usize) -> &[u32] {
        &self.entries[self.start[j] as usize..self.start[j + 1] as usize]
    }
}

/// Reusable buffers for one training batch (allocated once, reused every step).
#[derive(Debug, Default)]
pub struct Workspace {
    xc: Vec<f32>,
    pre: Vec<f32>,
    code: SparseCode,
    aux_code: SparseCode,
    r_main: Vec<f32>,
    r_aux: Vec<f32>,
    g_main: Vec<f32>,
    g_aux: Vec<f32>,
    row_loss: Vec<f64>,
    row_aux: Vec<f64>,
    csc_main: Csc,
    csc_aux: Csc,
    dead_list: Vec<u32>,
}

impl Workspace {
    /// The sparse code of the last batch passed to [`TopKSae::loss_and_grads`].
    pub fn code(&self) -> &SparseCode {
        &self.code
    }
}

/// Scales each row of a `[rows, d]` matrix to unit L2 norm (rows of norm 0 are left as they are).
fn normalize_rows(m: &mut [f32], d: usize) {
    m.par_chunks_mut(d * LATENT_CHUNK).for_each(|block| {
        for row in block.chunks_exact_mut(d) {
            let n = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() as f32;
            if n > 0.0 {
                for v in row.iter_mut() {
                    *v /= n;
                }
            }
        }
    });
}

fn check_dims(d_in: usize, d_sae: usize, k: usize) -> Result<(), KernelError> {
    if d_in == 0 {
        return Err(KernelError::Config {
            field: "d_in",
            value: "0".into(),
            reason: "must be >= 1".into(),
        });
    }
    if d_sae == 0 {
        return Err(KernelError::Config {
            field: "d_sae",
            value: "0".into(),
            reason: "must be >= 1".into(),
        });
    }
    if k == 0 || k > d_sae {
        return Err(KernelError::Config {
            field: "k",
            value: k.to_string(),
            reason: format!("must be in 1..={d_sae} (d_sae)"),
        });
    }
    if d_sae
        .checked_mul(d_in)
        .is_none_or(|n| n > u32::MAX as usize)
    {
        return Err(KernelError::Config {
            field: "d_sae",
            value: d_sae.to_string(),
            reason: format!("d_sae * d_in must stay below 2^32 (d_in = {d_in})"),
        });
    }
    Ok(())
}

impl TopKSae {
    /// A freshly initialised SAE, as the PyTorch reference (and SAELens) do it: `W_dec` drawn
    /// uniform in ±1/sqrt(d_in) (Kaiming-uniform with a = sqrt(5)) from `seed`, each row scaled
    /// to unit norm; `W_enc = W_decᵀ`; both biases zero.
    pub fn init(d_in: usize, d_sae: usize, k: usize, seed: u64) -> Result<Self, KernelError> {
        check_dims(d_in, d_sae, k)?;
        let bound = 1.0 / (d_in as f32).sqrt();
        let mut rng = SplitMix64::new(seed);
        let mut w_dec: Vec<f32> = (0..d_sae * d_in)
            .map(|_| (2.0 * rng.uniform_f32() - 1.0) * bound)
            .collect();
        normalize_rows(&mut w_dec, d_in);
        Ok(Self {
            d_in,
            d_sae,
            k,
            w_enc_t: w_dec.clone(),
            b_enc: vec![0.0; d_sae],
            w_dec,
            b_dec: vec![0.0; d_in],
        })
    }

    /// The state of the initialisation's generator after [`TopKSae::init`] drew the weights of a model of these
    /// dimensions (one draw per decoder weight).
    pub fn rng_state_after_init(d_in: usize, d_sae: usize, seed: u64) -> u64 {
        let mut rng = SplitMix64::new(seed);
        rng.skip((d_in * d_sae) as u64);
        rng.state()
    }

    /// Builds a model from explicit parameters; checks every shape and that all values are finite.
    pub fn from_parts(p: SaeParts) -> Result<Self, KernelError> {
        check_dims(p.d_in, p.d_sae, p.k)?;
        check_len("W_enc", p.w_enc.len(), p.d_in, p.d_sae)?;
        check_len("b_enc", p.b_enc.len(), 1, p.d_sae)?;
        check_len("W_dec", p.w_dec.len(), p.d_sae, p.d_in)?;
        check_len("b_dec", p.b_dec.len(), 1, p.d_in)?;
        check_finite("W_enc", &p.w_enc, p.d_sae)?;
        check_finite("b_enc", &p.b_enc, p.d_sae)?;
        check_finite("W_dec", &p.w_dec, p.d_in)?;
        check_finite("b_dec", &p.b_dec, p.d_in)?;
        let w_enc_t = transpose(&p.w_enc, p.d_in, p.d_sae);
        Ok(Self {
            d_in: p.d_in,
            d_sae: p.d_sae,
            k: p.k,
            w_enc_t,
            b_enc: p.b_enc,
            w_dec: p.w_dec,
            b_dec: p.b_dec,
        })
    }

    /// All parameters in conventional layouts (`W_enc` as `[d_in, d_sae]`).
    pub fn to_parts(&self) -> SaeParts {
        SaeParts {
            d_in: self.d_in,
            d_sae: self.d_sae,
            k: self.k,
            w_enc: transpose(&self.w_enc_t, self.d_sae, self.d_in),
            b_enc: self.b_enc.clone(),
            w_dec: self.w_dec.clone(),
            b_dec: self.b_dec.clone(),
        }
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.d_in
    }
    /// Number of latents.
    pub fn d_sae(&self) -> usize {
        self.d_sae
    }
    /// Latents kept per row.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Encoder stored transposed, `[d_sae, d_in]` row-major.
    pub fn w_enc_t(&self) -> &[f32] {
        &self.w_enc_t
    }
    /// Encoder bias `[d_sae]`.
    pub fn b_enc(&self) -> &[f32] {
        &self.b_enc
    }
    /// Decoder `[d_sae, d_in]` row-major.
    pub fn w_dec(&self) -> &[f32] {
        &self.w_dec
    }
    /// Decoder bias `[d_in]`.
    pub fn b_dec(&self) -> &[f32] {
        &self.b_dec
    }

    fn check_rows(&self, what: &str, x: &[f32]) -> Result<usize, KernelError> {
        let rows = x.len() / self.d_in;
        check_len(what, x.len(), rows, self.d_in)?;
        Ok(rows)
    }

    /// `xc = x - b_dec`, `pre = xc · W_enc` (no `b_enc`: the selection adds it), then the top-k
    /// code, and the AuxK code when `aux` is given: `(k_aux, dead latents in increasing order,
    /// code to fill)`. `xc`, `pre` are resized as needed.
    fn encode_block(
        &self,
        x: &[f32],
        xc: &mut Vec<f32>,
        pre: &mut Vec<f32>,
        code: &mut SparseCode,
        aux: Option<(usize, &[u32], &mut SparseCode)>,
    ) {
        let (d_in, d_sae) = (self.d_in, self.d_sae);
        let rows = x.len() / d_in;
        xc.resize(x.len(), 0.0);
        xc.par_chunks_mut(d_in * ROW_CHUNK)
            .zip(x.par_chunks(d_in * ROW_CHUNK))
            .for_each(|(c, xs)| {
                for (cr, xr) in c.chunks_exact_mut(d_in).zip(xs.chunks_exact(d_in)) {
                    for ((o, &v), &b) in cr.iter_mut().zip(xr).zip(&self.b_dec) {
                        *o = v - b;
                    }
                }
            });
        pre.resize(rows * d_sae, 0.0);
        let lhs = MatRef::row_major("x - b_dec", xc, rows, d_in).expect("xc sized above");
        let rhs = MatRef::row_major("W_enc^T", &self.w_enc_t, d_sae, d_in)
            .expect("model invariant")
            .t();
        matmul(
            MatMut::row_major("pre", pre, rows, d_sae).expect("pre sized above"),
            lhs,
            rhs,
            false,
        )
        .expect("shapes agree by construction");
        code.reset(rows, self.k);
        let b_enc = &self.b_enc;
        let k = self.k;
        match aux {
            None => {
                code.chunks_mut(ROW_CHUNK)
                    .zip(pre.par_chunks(d_sae * ROW_CHUNK))
                    .for_each(|(((idx, val), nnz), p)| {
                        for (r, pr) in p.chunks_exact(d_sae).enumerate() {
                            let s = r * k;
                            nnz[r] = select_row(
                                pr,
                                b_enc,
                                None,
                                k,
                                &mut idx[s..s + k],
                                &mut val[s..s + k],
                            ) as u32;
                        }
                    });
            }
            Some((ka, dead, aux_code)) => {
                aux_code.reset(rows, ka);
                code.chunks_mut(ROW_CHUNK)
                    .zip(aux_code.chunks_mut(ROW_CHUNK))
                    .zip(pre.par_chunks(d_sae * ROW_CHUNK))
                    .for_each(|((((idx, val), nnz), ((aidx, aval), annz)), p)| {
                        for (r, pr) in p.chunks_exact(d_sae).enumerate() {
                            let s = r * k;
                            nnz[r] = select_row(
                                pr,
                                b_enc,
                                None,
                                k,
                                &mut idx[s..s + k],
                                &mut val[s..s + k],
                            ) as u32;
                            let s = r * ka;
                            annz[r] = crate::topk::select_among(
                                pr,
                                b_enc,
                                dead,
                                ka,
                                &mut aidx[s..s + ka],
                                &mut aval[s..s + ka],
                            ) as u32;
                        }
                    });
            }
        }
    }

    /// The top-k codes of `x` (`[rows, d_in]` row-major), on the current rayon pool.
    pub fn encode(&self, x: &[f32]) -> Result<SparseCode, KernelError> {
        let rows = self.check_rows("x", x)?;
        let mut out = SparseCode::new(rows, self.k);
        let (mut xc, mut pre, mut code) = (Vec::new(), Vec::new(), SparseCode::default());
        for (b, xb) in x.chunks(EVAL_BLOCK * self.d_in).enumerate() {
            self.encode_block(xb, &mut xc, &mut pre, &mut code, None);
            out.copy_rows_from(b * EVAL_BLOCK, &code);
        }
        Ok(out)
    }

    /// `x_hat = b_dec + Σ z_j W_dec[j]` for each row of `code`; `[rows, d_in]` row-major.
    pub fn decode(&self, code: &SparseCode) -> Result<Vec<f32>, KernelError> {
        for r in 0..code.rows() {
            if let Some(&j) = code.row(r).0.iter().find(|&&j| j as usize >= self.d_sae) {
                return Err(KernelError::Mismatch {
                    what: "decode".into(),
                    detail: format!("row {r} selects latent {j} but d_sae is {}", self.d_sae),
                });
            }
        }
        let d_in = self.d_in;
        let mut out = vec![0f32; code.rows() * d_in];
        out.par_chunks_mut(d_in * ROW_CHUNK)
            .enumerate()
            .for_each(|(c, block)| {
                for (i, row) in block.chunks_exact_mut(d_in).enumerate() {
                    row.copy_from_slice(&self.b_dec);
                    let (idx, val) = code.row(c * ROW_CHUNK + i);
                    for (&j, &v) in idx.iter().zip(val) {
                        axpy(
                            row,
                            v,
                            &self.w_dec[j as usize * d_in..(j as usize + 1) * d_in],
                        );
                    }
                }
            });
        Ok(out)
    }

    /// Metrics on `x` (`[rows, d_in]`): MSE, FVU (column means of `x` itself), L0, and the share
    /// of latents that never fired on these rows. Streams in blocks, so any row count fits.
    pub fn evaluate(&self, x: &[f32]) -> Result<EvalMetrics, KernelError> {
        let rows = self.check_rows("x", x)?;
        let mut acc = ReconstructionAccumulator::new(self.d_in);
        let mut fires = vec![0u64; self.d_sae];
        let mut nnz = 0usize;
        let (mut xc, mut pre, mut code) = (Vec::new(), Vec::new(), SparseCode::default());
        for xb in x.chunks(EVAL_BLOCK * self.d_in) {
            self.encode_block(xb, &mut xc, &mut pre, &mut code, None);
            let x_hat = self.decode(&code)?;
            acc.add(xb, &x_hat)?;
            crate::metrics::count_fires(&code, &mut fires);
            nnz += code.total_nnz();
        }
        Ok(EvalMetrics {
            rows,
            reconstruction: acc.finish(),
            l0: nnz as f64 / rows as f64,
            dead_fraction: crate::metrics::dead_fraction(&fires),
            figures: Vec::new(),
        })
    }

    /// Forward and backward pass on one batch `x` (`[B, d_in]`): fills `grads` (overwriting) and
    /// returns the loss parts. `ws` is reused scratch space. With `aux`, adds the AuxK term.
    pub fn loss_and_grads(
        &self,
        x: &[f32],
        aux: Option<AuxArgs<'_>>,
        ws: &mut Workspace,
        grads: &mut Grads,
    ) -> Result<BatchLoss, KernelError> {
        let rows = self.check_rows("batch", x)?;
        if rows == 0 {
            return Err(KernelError::Mismatch {
                what: "loss_and_grads".into(),
                detail: "the batch has 0 rows; pass at least one row".into(),
            });
        }
        if let Some(a) = &aux
            && a.dead.len() != self.d_sae
        {
            return Err(KernelError::Mismatch {
                what: "AuxK".into(),
                detail: format!(
                    "dead mask has {} entries but d_sae is {}",
                    a.dead.len(),
                    self.d_sae
                ),
            });
        }
        check_len("grads.W_dec", grads.w_dec.len(), self.d_sae, self.d_in)?;
        check_len("grads.W_enc", grads.w_enc_t.len(), self.d_sae, self.d_in)?;
        check_len("grads.b_enc", grads.b_enc.len(), 1, self.d_sae)?;
        check_len("grads.b_dec", grads.b_dec.len(), 1, self.d_in)?;
        let loss = self.forward_train(x, aux.as_ref(), ws, None);
        self.backward(rows, aux.is_some(), ws, grads);
        Ok(loss)
    }

    /// Forward pass of training: codes, residual-gradient rows and the per-slot gradients of the
    /// pre-activations. `frozen_target` replaces the AuxK target `x - x_hat` (used by the
    /// gradient check, which must hold the stop-gradient target fixed while perturbing).
    fn forward_train(
        &self,
        x: &[f32],
        aux: Option<&AuxArgs<'_>>,
        ws: &mut Workspace,
        frozen_target: Option<&[f32]>,
    ) -> BatchLoss {
        let (d_in, k) = (self.d_in, self.k);
        let rows = x.len() / d_in;
        let Workspace {
            xc,
            pre,
            code,
            aux_code,
            r_main,
            r_aux,
            g_main,
            g_aux,
            row_loss,
            row_aux,
            dead_list,
            ..
        } = ws;
        dead_list.clear();
        if let Some(a) = aux {
            dead_list.extend(
                a.dead
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| **d)
                    .map(|(j, _)| j as u32),
            );
        }
        self.encode_block(
            x,
            xc,
            pre,
            code,
            aux.map(|a| (a.k_aux, dead_list.as_slice(), &mut *aux_code)),
        );
        let ka = aux.map_or(0, |a| a.k_aux);
        if aux.is_none() {
            aux_code.reset(rows, 0);
        }
        let scale = 2.0 / rows as f32;
        let aux_scale = aux.map_or(0.0, |a| 2.0 * a.coeff / rows as f32);
        r_main.resize(rows * d_in, 0.0);
        r_aux.resize(if aux.is_some() { rows * d_in } else { 0 }, 0.0);
        g_main.resize(rows * k, 0.0);
        g_aux.resize(rows * ka, 0.0);
        row_loss.resize(rows, 0.0);
        row_aux.resize(rows, 0.0);
        let w_dec = &self.w_dec;
        let dec_row = |j: u32| &w_dec[j as usize * d_in..(j as usize + 1) * d_in];
        let (code, aux_code) = (&*code, &*aux_code);
        let r_aux_chunks: Vec<&mut [f32]> = if aux.is_some() {
            r_aux.chunks_mut(d_in * ROW_CHUNK).collect()
        } else {
            (0..rows.div_ceil(ROW_CHUNK)).map(|_| &mut [][..]).collect()
        };
        let g_aux_chunks: Vec<&mut [f32]> = if ka > 0 {
            g_aux.chunks_mut(ka * ROW_CHUNK).collect()
        } else {
            (0..rows.div_ceil(ROW_CHUNK)).map(|_| &mut [][..]).collect()
        };
        r_main
            .par_chunks_mut(d_in * ROW_CHUNK)
            .zip(g_main.par_chunks_mut(k * ROW_CHUNK))
            .zip(row_loss.par_chunks_mut(ROW_CHUNK))
            .zip(row_aux.par_chunks_mut(ROW_CHUNK))
            .zip(r_aux_chunks.into_par_iter())
            .zip(g_aux_chunks.into_par_iter())
            .enumerate()
            .for_each(|(c, (((((rm, gm), rl), ra_loss), ra), ga))| {
                let mut e_hat = vec![0f32; d_in];
                for i in 0..rl.len() {
                    let r = c * ROW_CHUNK + i;
                    let xr = &x[r * d_in..(r + 1) * d_in];
                    let res = &mut rm[i * d_in..(i + 1) * d_in];
                    // res <- x_hat - x, built as b_dec - x + Σ z_j W_dec[j].
                    for ((o, &b), &xv) in res.iter_mut().zip(&self.b_dec).zip(xr) {
                        *o = b - xv;
                    }
                    let (idx, val) = code.row(r);
                    for (&j, &v) in idx.iter().zip(val) {
                        axpy(res, v, dec_row(j));
                    }
                    rl[i] = res.iter().map(|&e| e as f64 * e as f64).sum();
                    if aux.is_some() {
                        // AuxK residual: e_hat - target, target = x - x_hat = -res (stop-grad).
                        e_hat.fill(0.0);
                        let (aidx, aval) = aux_code.row(r);
                        for (&j, &v) in aidx.iter().zip(aval) {
                            axpy(&mut e_hat, v, dec_row(j));
                        }
                        let ra_row = &mut ra[i * d_in..(i + 1) * d_in];
                        let mut s = 0f64;
                        for t in 0..d_in {
                            let target = match frozen_target {
                                Some(ft) => ft[r * d_in + t],
                                None => -res[t],
                            };
                            let d = e_hat[t] - target;
                            s += d as f64 * d as f64;
                            ra_row[t] = aux_scale * d;
                        }
                        ra_loss[i] = s;
                        let gs = &mut ga[i * ka..(i + 1) * ka];
                        for (g, &j) in gs.iter_mut().zip(aidx) {
                            *g = dot(ra_row, dec_row(j));
                        }
                    } else {
                        ra_loss[i] = 0.0;
                    }
                    for v in res.iter_mut() {
                        *v *= scale;
                    }
                    let gs = &mut gm[i * k..(i + 1) * k];
                    for (g, &j) in gs.iter_mut().zip(idx) {
                        *g = dot(res, dec_row(j));
                    }
                }
            });
        let n = rows as f64;
        BatchLoss {
            mse_loss: row_loss.iter().sum::<f64>() / n,
            aux_loss: aux.map_or(0.0, |a| a.coeff as f64 * row_aux.iter().sum::<f64>() / n),
            l0: code.total_nnz() as f64 / n,
        }
    }

    /// Backward pass from the buffers `forward_train` left in `ws`.
    fn backward(&self, rows: usize, with_aux: bool, ws: &mut Workspace, grads: &mut Grads) {
        let (d_in, d_sae, k) = (self.d_in, self.d_sae, self.k);
        ws.csc_main.build(&ws.code, d_sae);
        if with_aux {
            ws.csc_aux.build(&ws.aux_code, d_sae);
        } else {
            ws.csc_aux.start.clear();
            ws.csc_aux.start.resize(d_sae + 1, 0);
            ws.csc_aux.entries.clear();
        }
        let ka = ws.aux_code.k();
        let ws = &*ws;
        // Per latent j: dW_dec[j] = Σ z·r_main + Σ a·r_aux, dW_enc^T[j] = Σ g·xc, db_enc[j] = Σ g,
        // each over the rows that selected j, in row order (main slots first, then AuxK slots).
        grads
            .w_dec
            .par_chunks_mut(d_in * LATENT_CHUNK)
            .zip(grads.w_enc_t.par_chunks_mut(d_in * LATENT_CHUNK))
            .zip(grads.b_enc.par_chunks_mut(LATENT_CHUNK))
            .enumerate()
            .for_each(|(c, ((gd, ge), gb))| {
                gd.fill(0.0);
                ge.fill(0.0);
                for (i, gbj) in gb.iter_mut().enumerate() {
                    let j = c * LATENT_CHUNK + i;
                    let gd_row = &mut gd[i * d_in..(i + 1) * d_in];
                    let ge_row = &mut ge[i * d_in..(i + 1) * d_in];
                    let mut bsum = 0f32;
                    for &e in ws.csc_main.latent(j) {
                        let (e, r) = (e as usize, e as usize / k);
                        let g = ws.g_main[e];
                        axpy2(
                            gd_row,
                            ws.code.val[e],
                            &ws.r_main[r * d_in..(r + 1) * d_in],
                            ge_row,
                            g,
                            &ws.xc[r * d_in..(r + 1) * d_in],
                        );
                        bsum += g;
                    }
                    for &e in ws.csc_aux.latent(j) {
                        let (e, r) = (e as usize, e as usize / ka);
                        let g = ws.g_aux[e];
                        axpy2(
                            gd_row,
                            ws.aux_code.val[e],
                            &ws.r_aux[r * d_in..(r + 1) * d_in],
                            ge_row,
                            g,
                            &ws.xc[r * d_in..(r + 1) * d_in],
                        );
                        bsum += g;
                    }
                    *gbj = bsum;
                }
            });
        // db_dec = Σ_rows r_main (the bias of x_hat) - Σ_j db_enc[j] W_enc^T[j] (x - b_dec feeds
        // the encoder). Column sums in row order.
        let gbd = &mut grads.b_dec;
        gbd.fill(0.0);
        for r in 0..rows {
            for (o, &v) in gbd.iter_mut().zip(&ws.r_main[r * d_in..(r + 1) * d_in]) {
                *o += v;
            }
        }
        for j in 0..d_sae {
            let g = grads.b_enc[j];
            if g != 0.0 {
                axpy(gbd, -g, &self.w_enc_t[j * d_in..(j + 1) * d_in]);
            }
        }
    }

    /// One Adam step on every parameter from `grads`, then the decoder rows back to unit norm
    /// (as the reference trainer does after each step). Call `adam.begin_step()` first.
    pub fn apply_adam(
        &mut self,
        adam: &Adam,
        grads: &Grads,
        state: &mut SaeAdamState,
    ) -> Result<(), KernelError> {
        adam.update(&mut self.w_enc_t, &grads.w_enc_t, &mut state.w_enc_t)?;
        adam.update(&mut self.b_enc, &grads.b_enc, &mut state.b_enc)?;
        adam.update(&mut self.w_dec, &grads.w_dec, &mut state.w_dec)?;
        adam.update(&mut self.b_dec, &grads.b_dec, &mut state.b_dec)?;
        self.normalize_decoder();
        Ok(())
    }

    /// Scales every decoder row to unit L2 norm.
    pub fn normalize_decoder(&mut self) {
        normalize_rows(&mut self.w_dec, self.d_in);
    }

    /// Mutable access to every parameter, in the order `W_enc^T, b_enc, W_dec, b_dec` (for
    /// tests that perturb weights and for optimisers other than [`Adam`]).
    pub fn params_mut(&mut self) -> [&mut [f32]; 4] {
        [
            &mut self.w_enc_t,
            &mut self.b_enc,
            &mut self.w_dec,
            &mut self.b_dec,
        ]
    }
}

impl SparseCode {
    /// Copies all rows of `src` into rows `first..first + src.rows()` of `self` (same k).
    fn copy_rows_from(&mut self, first: usize, src: &SparseCode) {
        let k = self.k();
        debug_assert_eq!(k, src.k());
        self.idx[first * k..(first + src.rows) * k].copy_from_slice(&src.idx);
        self.val[first * k..(first + src.rows) * k].copy_from_slice(&src.val);
        self.nnz[first..first + src.rows].copy_from_slice(&src.nnz);
    }
}

fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small model with every parameter nonzero and generic, and a batch with a nonzero mean.
    fn tiny() -> (TopKSae, Vec<f32>) {
        let (d_in, d_sae, k, rows) = (5, 12, 3, 7);
        let mut m = TopKSae::init(d_in, d_sae, k, 3).unwrap();
        let mut r = SplitMix64::new(99);
        for v in m.w_enc_t.iter_mut() {
            *v += 0.3 * (r.uniform_f32() - 0.5);
        }
        for v in m.b_enc.iter_mut() {
            *v = 0.2 * (r.uniform_f32() - 0.3);
        }
        for v in m.b_dec.iter_mut() {
            *v = 0.5 * (r.uniform_f32() - 0.5);
        }
        let x: Vec<f32> = (0..rows * d_in)
            .map(|i| r.normal() as f32 + 0.1 * (i % d_in) as f32)
            .collect();
        (m, x)
    }

    #[test]
    fn gradients_match_central_differences_for_every_parameter_with_auxk() {
        let (mut model, x) = tiny();
        // Push half of the dead latents below zero on every row, so AuxK selects negative values.
        for j in (5..12).step_by(2) {
            model.b_enc[j] -= 3.0;
        }
        let (d_in, d_sae) = (model.d_in, model.d_sae);
        // Latents 4..12 count as dead; two of them per row feed the AuxK term, weighted 0.5 so
        // its gradients are as visible as the main ones.
        let dead: Vec<bool> = (0..d_sae).map(|j| j >= 4).collect();
        let aux = AuxArgs {
            dead: &dead,
            k_aux: 2,
            coeff: 0.5,
        };
        let mut ws = Workspace::default();
        let mut grads = Grads::zeros(d_in, d_sae);
        let base = model
            .loss_and_grads(&x, Some(aux), &mut ws, &mut grads)
            .unwrap();
        assert!(base.aux_loss > 0.0 && base.mse_loss > 0.0, "{base:?}");
        assert!(
            ws.aux_code.total_nnz() >= 7,
            "AuxK must be active in the check"
        );
        let (code0, aux0) = (ws.code.clone(), ws.aux_code.clone());
        // AuxK selects raw pre-activations: the check must cover negative AuxK activations too.
        assert!(
            aux0.val.iter().any(|&v| v < 0.0) && aux0.val.iter().any(|&v| v > 0.0),
            "{:?}",
            aux0.val
        );
        // AuxK's target x - x_hat is a stop-gradient constant: freeze it at the base point.
        let x_hat = model.decode(&code0).unwrap();
        let target: Vec<f32> = x.iter().zip(&x_hat).map(|(a, b)| a - b).collect();

        // With the selection fixed the objective is exactly quadratic in any single coordinate,
        // so central differences carry only rounding error; a largish step keeps that small.
        let eps = 1e-2f32;
        let analytic = [
            grads.w_enc_t.clone(),
            grads.b_enc.clone(),
            grads.w_dec.clone(),
            grads.b_dec.clone(),
        ];
        let names = ["W_enc", "b_enc", "W_dec", "b_dec"];
        let mut checked = 0;
        for (p, (grad, name)) in analytic.iter().zip(names).enumerate() {
            for (i, &an) in grad.iter().enumerate() {
                let eval = |delta: f32| {
                    let mut m = model.clone();
                    m.params_mut()[p][i] += delta;
                    let mut w = Workspace::default();
                    let l = m.forward_train(&x, Some(&aux), &mut w, Some(&target));
                    let sel = |c: &SparseCode| (c.idx.clone(), c.nnz.clone());
                    assert_eq!(
                        (sel(&w.code), sel(&w.aux_code)),
                        (sel(&code0), sel(&aux0)),
                        "selection changed at {name}[{i}]"
                    );
                    l.total()
                };
                let fd = ((eval(eps) - eval(-eps)) / (2.0 * eps as f64)) as f32;
                assert!(
                    (fd - an).abs() <= 2e-3 + 1e-2 * an.abs(),
                    "{name}[{i}]: analytic {an} vs finite difference {fd}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 2 * d_in * d_sae + d_sae + d_in);
        // The check covered real signal: decoder rows used only by AuxK have nonzero gradients.
        let aux_only = (0..d_sae).find(|&j| {
            !code0
                .idx
                .iter()
                .zip(&code0.val)
                .any(|(&i, &v)| i as usize == j && v > 0.0)
                && aux0.idx.contains(&(j as u32))
        });
        if let Some(j) = aux_only {
            assert!(
                grads.w_dec[j * d_in..(j + 1) * d_in]
                    .iter()
                    .any(|&g| g != 0.0)
            );
        }
    }

    #[test]
    fn gradients_without_auxk_match_and_unused_latents_get_zero() {
        let (model, x) = tiny();
        let mut ws = Workspace::default();
        let mut grads = Grads::zeros(model.d_in, model.d_sae);
        // Garbage in the gradient buffers must be overwritten, not accumulated into.
        grads.w_dec.fill(7.0);
        grads.b_dec.fill(7.0);
        let base = model.loss_and_grads(&x, None, &mut ws, &mut grads).unwrap();
        assert_eq!(base.aux_loss, 0.0);
        let mut used = vec![false; model.d_sae];
        for r in 0..ws.code.rows() {
            for &j in ws.code.row(r).0 {
                used[j as usize] = true;
            }
        }
        let d = model.d_in;
        for (j, &u) in used.iter().enumerate() {
            let row_zero = grads.w_dec[j * d..(j + 1) * d].iter().all(|&g| g == 0.0);
            assert_eq!(row_zero, !u, "latent {j}");
        }
        let eps = 1e-2f32;
        for i in 0..d {
            let f = |delta: f32| {
                let mut m = model.clone();
                m.b_dec[i] += delta;
                m.forward_train(&x, None, &mut Workspace::default(), None)
                    .total()
            };
            let fd = ((f(eps) - f(-eps)) / (2.0 * eps as f64)) as f32;
            assert!(
                (fd - grads.b_dec[i]).abs() <= 2e-3 + 1e-2 * grads.b_dec[i].abs(),
                "b_dec[{i}]: {} vs {fd}",
                grads.b_dec[i]
            );
        }
    }

    #[test]
    fn init_matches_the_reference_recipe() {
        let m = TopKSae::init(8, 20, 4, 1).unwrap();
        assert_eq!(m.w_enc_t, m.w_dec, "W_enc must start as W_dec transposed");
        for row in m.w_dec.chunks_exact(8) {
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-5);
        }
        assert!(m.b_enc.iter().chain(&m.b_dec).all(|&v| v == 0.0));
        assert_eq!(TopKSae::init(8, 20, 4, 1).unwrap(), m);
        assert_ne!(TopKSae::init(8, 20, 4, 2).unwrap(), m);
    }

    #[test]
    fn parts_round_trip_and_bad_parts_are_rejected_by_name() {
        let (m, _) = tiny();
        let parts = m.to_parts();
        assert_eq!(
            parts.w_enc[1], m.w_enc_t[m.d_in],
            "W_enc[0][1] is latent 1's first input weight"
        );
        assert_eq!(TopKSae::from_parts(parts.clone()).unwrap(), m);
        let e = TopKSae::from_parts(SaeParts {
            b_dec: vec![0.0; 4],
            ..parts.clone()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "b_dec: expected 5 f32 values ([1, 5] row-major) but got 4; pass a buffer of exactly that length"
        );
        let mut w_dec = parts.w_dec.clone();
        w_dec[2 * 5 + 3] = f32::NAN;
        let e = TopKSae::from_parts(SaeParts {
            w_dec,
            ..parts.clone()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "W_dec: non-finite value NaN at row 2, column 3; clean or drop that row before training"
        );
        let e = TopKSae::from_parts(SaeParts { k: 13, ..parts }).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config field `k` = 13 is invalid: must be in 1..=12 (d_sae)"
        );
    }

    #[test]
    fn encode_decode_evaluate_agree_with_training_forward() {
        let (m, x) = tiny();
        let code = m.encode(&x).unwrap();
        let mut ws = Workspace::default();
        let mut g = Grads::zeros(m.d_in, m.d_sae);
        let loss = m.loss_and_grads(&x, None, &mut ws, &mut g).unwrap();
        assert_eq!(&code, ws.code());
        let ev = m.evaluate(&x).unwrap();
        assert!((ev.reconstruction.loss_per_row - loss.mse_loss).abs() < 1e-5 * loss.mse_loss);
        assert_eq!(ev.l0, loss.l0);
        let e = m.encode(&x[..6]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x: expected 5 f32 values ([1, 5] row-major) but got 6"),
            "{e}"
        );
        let dead = vec![true; 3];
        let e = m
            .loss_and_grads(
                &x,
                Some(AuxArgs {
                    dead: &dead,
                    k_aux: 1,
                    coeff: 1.0,
                }),
                &mut ws,
                &mut g,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "AuxK: dimension mismatch (dead mask has 3 entries but d_sae is 12)"
        );
        let e = m.loss_and_grads(&[], None, &mut ws, &mut g).unwrap_err();
        assert_eq!(
            e.to_string(),
            "loss_and_grads: dimension mismatch (the batch has 0 rows; pass at least one row)"
        );
    }
}
