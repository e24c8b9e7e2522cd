//! The one model both methods fit: a TopK encoder-decoder from rows `x` to targets `t` (reference
//! upstream-stress-evals.md §1.3 step 2, with husai's changes below). A transcoder's target is the MLP's output y; an
//! SAE's target is its input x. Same code, same initialisation and same batches at one seed, so the two differ only
//! in what they predict (the paired design of [`crate::sweep`]).
//!
//! - Forward: `pre = W_enc x + b_enc` (`W_enc` [m, d_in]); `z` keeps the k largest strictly positive entries of
//!   `pre` (ReLU then top-k, husai's TopK rule, [`husai_kernels::topk::select_row`]); `t̂ = b_dec + Σ_j z_j W_dec[j]`
//!   (`W_dec` [m, d_out], one unit-norm row per latent).
//! - Loss: `Σ (t̂ − t)² / (rows · d_out)`, upstream's element-mean MSE.
//! - Gradients ([`loss_and_grads`]): sparse. Only the ≤ k active latents of a row receive any, through
//!   `∂L/∂z_j = W_dec[j] · g_r` with `g_r = 2 (t̂_r − t_r) / (rows · d_out)`; the per-latent sums run over a
//!   latent-major index of the active slots, one latent per task, in row order, so the result does not depend on
//!   the thread count.
//! - Update: Adam (β 0.9 / 0.999, ε 1e-8, PyTorch's update order, [`husai_kernels::adam`]), then every decoder row
//!   is scaled back to unit norm (upstream; no gradient projection).
//! - Initialisation from the seed (SplitMix64): `W_enc` uniform in ±√(6 / d_in) (upstream's Kaiming-uniform bound),
//!   `W_dec` rows i.i.d. standard normal scaled to unit norm, `b_enc = 0`, `b_dec` = the mean training target.
//!
//! Changes from upstream: a decoder bias (upstream had none, so its transcoder spent capacity on the MLP output's
//! mean of 0.08), ReLU before top-k (upstream kept negative pre-activations), and held-out FVU as the quality figure
//! (upstream reported training MSE, whose scale differs between targets; T5).

use husai_kernels::KernelError;
use husai_kernels::adam::{Adam, AdamConfig, Moments};
use husai_kernels::gemm::{MatMut, MatRef, matmul};
use husai_kernels::metrics::reconstruction;
use husai_kernels::rng::SplitMix64;
use husai_kernels::simd::{gather_dots, multiversion};
use husai_kernels::topk::{select_row, select_row_by_keys};
use rayon::prelude::*;

/// Rows per parallel task in the row-wise passes.
const ROW_CHUNK: usize = 16;

/// Top-k by packed keys ([`select_row_by_keys`]) once k ≥ m / this. At m 256, k 32 (k/m = 1/8) it took about
/// 1.1 µs a row against `select_row`'s 3.2 µs; `select_row` wins when few values beat its running k-th best.
const KEYS_FROM_K_PER_M: usize = 32;

/// What one fit trains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitConfig {
    /// Latents.
    pub d_sae: usize,
    /// Active latents per row.
    pub k: usize,
    /// Passes over the training rows.
    pub epochs: usize,
    pub lr: f32,
    /// Rows per step (the last step of an epoch takes what is left, as upstream's `drop_last=False`).
    pub batch: usize,
}

/// Rows and their targets, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub x: &'a [f32],
    pub t: &'a [f32],
    pub d_in: usize,
    pub d_out: usize,
}

impl Rows<'_> {
    pub fn len(&self) -> usize {
        self.x.len() / self.d_in.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub d_in: usize,
    pub d_out: usize,
    pub d_sae: usize,
    /// `[d_sae, d_in]`.
    pub w_enc: Vec<f32>,
    pub b_enc: Vec<f32>,
    /// `[d_sae, d_out]`, unit-norm rows.
    pub w_dec: Vec<f32>,
    pub b_dec: Vec<f32>,
}

/// The sparse code of a batch: `nnz[r]` active latents of row r in `idx/val[r*k..]`, largest first.
#[derive(Debug, Clone, Default)]
pub struct Code {
    k: usize,
    idx: Vec<u32>,
    val: Vec<f32>,
    nnz: Vec<usize>,
}

impl Code {
    fn reset(&mut self, rows: usize, k: usize) {
        self.k = k;
        self.idx.resize(rows * k, 0);
        self.val.resize(rows * k, 0.0);
        self.nnz.resize(rows, 0);
    }

    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (s, n) = (r * self.k, self.nnz[r]);
        (&self.idx[s..s + n], &self.val[s..s + n])
    }
}

/// Gradients, shaped as the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Grads {
    pub w_enc: Vec<f32>,
    pub b_enc: Vec<f32>,
    pub w_dec: Vec<f32>,
    pub b_dec: Vec<f32>,
}

impl Grads {
    fn zeros(m: &Model) -> Self {
        Grads {
            w_enc: vec![0.0; m.w_enc.len()],
            b_enc: vec![0.0; m.b_enc.len()],
            w_dec: vec![0.0; m.w_dec.len()],
            b_dec: vec![0.0; m.b_dec.len()],
        }
    }
}

/// Buffers one step reuses.
#[derive(Debug, Default)]
pub struct Workspace {
    pre: Vec<f32>,
    code: Code,
    /// `g_r` per row, `[rows, d_out]`.
    g: Vec<f32>,
    /// `∂L/∂pre` of each active slot.
    dval: Vec<f32>,
    row_loss: Vec<f64>,
    /// Latent-major index of the active slots: `slots[start[j]..start[j + 1]]` are latent j's, in row order.
    start: Vec<usize>,
    slots: Vec<u32>,
}

impl Model {
    /// A fresh model; `b_dec` is the mean training target.
    pub fn init(d_in: usize, d_out: usize, d_sae: usize, seed: u64, b_dec: &[f32]) -> Model {
        assert_eq!(b_dec.len(), d_out, "b_dec has the target's width");
        let bound = (6.0 / d_in as f64).sqrt();
        let mut enc = SplitMix64::stream(seed, 0);
        let w_enc = (0..d_sae * d_in)
            .map(|_| ((2.0 * enc.uniform_f64() - 1.0) * bound) as f32)
            .collect();
        let mut dec = SplitMix64::stream(seed, 1);
        let mut w_dec: Vec<f32> = (0..d_sae * d_out).map(|_| dec.normal() as f32).collect();
        unit_rows(&mut w_dec, d_out);
        Model {
            d_in,
            d_out,
            d_sae,
            w_enc,
            b_enc: vec![0.0; d_sae],
            w_dec,
            b_dec: b_dec.to_vec(),
        }
    }

    /// `pre = x W_encᵀ` (without `b_enc`, which the selection adds) of `rows` rows into `ws.pre`.
    fn pre_into(&self, x: &[f32], rows: usize, ws: &mut Workspace) -> Result<(), KernelError> {
        let m = self.d_sae;
        ws.pre.resize(rows * m, 0.0);
        matmul(
            MatMut::row_major("pre", &mut ws.pre, rows, m)?,
            MatRef::row_major("x", x, rows, self.d_in)?,
            MatRef::row_major("w_enc", &self.w_enc, m, self.d_in)?.t(),
            false,
        )
    }

    /// The active latents of one row of `pre` into `idx`/`val` (`k` wide); returns how many.
    fn select(
        &self,
        pre: &[f32],
        k: usize,
        keys: &mut Vec<u64>,
        idx: &mut [u32],
        val: &mut [f32],
    ) -> usize {
        // The two give the same latents in the same slots (kernels' property test); which is faster depends on
        // k/m: keys when a sizeable share of the row can reach the top k.
        if k * KEYS_FROM_K_PER_M >= self.d_sae {
            select_row_by_keys(pre, &self.b_enc, k, keys, idx, val)
        } else {
            select_row(pre, &self.b_enc, None, k, idx, val)
        }
    }

    /// The sparse code of `rows` rows of `x` into `ws.code` (and `ws.pre`).
    fn encode_into(
        &self,
        x: &[f32],
        rows: usize,
        k: usize,
        ws: &mut Workspace,
    ) -> Result<(), KernelError> {
        let m = self.d_sae;
        self.pre_into(x, rows, ws)?;
        ws.code.reset(rows, k);
        ws.pre
            .par_chunks(ROW_CHUNK * m)
            .zip(ws.code.idx.par_chunks_mut(ROW_CHUNK * k))
            .zip(ws.code.val.par_chunks_mut(ROW_CHUNK * k))
            .zip(ws.code.nnz.par_chunks_mut(ROW_CHUNK))
            .for_each_init(Vec::new, |keys, (((pre, idx), val), nnz)| {
                for (r, n) in nnz.iter_mut().enumerate() {
                    let sl = r * k..(r + 1) * k;
                    *n = self.select(
                        &pre[r * m..(r + 1) * m],
                        k,
                        keys,
                        &mut idx[sl.clone()],
                        &mut val[sl],
                    );
                }
            });
        Ok(())
    }

    /// `t̂ = b_dec + Σ z_j W_dec[j]` of one row of the code, into `out` (`d_out` values).
    fn decode_row(&self, (idx, val): (&[u32], &[f32]), out: &mut [f32]) {
        decode(out, &self.b_dec, idx, val, &self.w_dec);
    }

    /// [`Model::decode_row`] for each row of the code, into `out` (`[rows, d_out]`).
    fn decode_into(&self, code: &Code, out: &mut [f32]) {
        out.par_chunks_mut(self.d_out)
            .enumerate()
            .for_each(|(r, row)| self.decode_row(code.row(r), row));
    }

    /// Predictions for `x` (`[rows, d_in]`) with `k` active latents.
    pub fn predict(&self, x: &[f32], k: usize) -> Result<Vec<f32>, KernelError> {
        let rows = x.len() / self.d_in;
        let mut ws = Workspace::default();
        let mut out = vec![0.0; rows * self.d_out];
        // In blocks, so that `pre` stays small whatever the number of rows.
        let block = 4096;
        for (xb, ob) in x
            .chunks(block * self.d_in)
            .zip(out.chunks_mut(block * self.d_out))
        {
            let n = xb.len() / self.d_in;
            self.encode_into(xb, n, k, &mut ws)?;
            self.decode_into(&ws.code, ob);
        }
        Ok(out)
    }
}

#[inline(always)]
fn unit_rows_body(m: &mut [f32], d: usize) {
    for row in m.chunks_exact_mut(d) {
        // Eight partial sums in f64, combined in a fixed order: one add chain per row was 4 % of a step.
        let mut acc = [0f64; 8];
        let blocks = row.chunks_exact(8);
        let tail = blocks.remainder();
        for b in blocks {
            for i in 0..8 {
                acc[i] += b[i] as f64 * b[i] as f64;
            }
        }
        for (a, &v) in acc.iter_mut().zip(tail) {
            *a += v as f64 * v as f64;
        }
        let sq = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        let n = sq.sqrt() as f32;
        if n > 0.0 {
            for v in row.iter_mut() {
                *v /= n;
            }
        }
    }
}

multiversion! {
    /// Scales every `d`-wide row of `m` to unit norm (rows of norm 0 stay as they are).
    fn unit_rows(m: &mut [f32], d: usize) => unit_rows_body
}

/// `out = init + Σ_i a_i · src[r_i]` over the terms `(a_i, r_i)` in their order (`init` zeros when `None`; `src`
/// rows as wide as `out`), a block of columns at a time held in locals (128, then 64, then 16 wide, then one by
/// one): the same operations in the same order for every element as copying `init` into `out` and one `axpy` per
/// term (so the same bits), without loading and storing `out` once per term.
#[inline(always)]
fn combine_rows<I>(out: &mut [f32], init: Option<&[f32]>, terms: I, src: &[f32])
where
    I: Iterator<Item = (f32, usize)> + Clone,
{
    let w = out.len();
    let mut c0 = 0;
    while w - c0 >= 128 {
        combine_block::<128, I>(out, init, terms.clone(), src, c0);
        c0 += 128;
    }
    if w - c0 >= 64 {
        combine_block::<64, I>(out, init, terms.clone(), src, c0);
        c0 += 64;
    }
    while w - c0 >= 16 {
        combine_block::<16, I>(out, init, terms.clone(), src, c0);
        c0 += 16;
    }
    while c0 < w {
        combine_block::<1, I>(out, init, terms.clone(), src, c0);
        c0 += 1;
    }
}

/// [`combine_rows`] on columns `c0..c0 + B`.
#[inline(always)]
fn combine_block<const B: usize, I>(
    out: &mut [f32],
    init: Option<&[f32]>,
    terms: I,
    src: &[f32],
    c0: usize,
) where
    I: Iterator<Item = (f32, usize)>,
{
    let w = out.len();
    let mut acc = [0f32; B];
    if let Some(init) = init {
        acc.copy_from_slice(&init[c0..c0 + B]);
    }
    for (a, r) in terms {
        let row: &[f32; B] = src[r * w + c0..r * w + c0 + B]
            .try_into()
            .expect("B columns");
        for (o, &v) in acc.iter_mut().zip(row) {
            *o += a * v;
        }
    }
    out[c0..c0 + B].copy_from_slice(&acc);
}

#[inline(always)]
fn decode_body(out: &mut [f32], b_dec: &[f32], idx: &[u32], val: &[f32], w_dec: &[f32]) {
    let terms = val.iter().zip(idx).map(|(&z, &j)| (z, j as usize));
    combine_rows(out, Some(b_dec), terms, w_dec);
}

multiversion! {
    /// `out = b_dec + Σ z_j W_dec[j]` over one row's active latents, in slot order.
    fn decode(out: &mut [f32], b_dec: &[f32], idx: &[u32], val: &[f32], w_dec: &[f32]) => decode_body
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn latent_grads_body(
    gd: &mut [f32],
    ge: &mut [f32],
    slots: &[u32],
    k: usize,
    val: &[f32],
    dval: &[f32],
    g: &[f32],
    x: &[f32],
) -> f32 {
    let by_z = slots.iter().map(|&s| (val[s as usize], s as usize / k));
    let by_dpre = slots.iter().map(|&s| (dval[s as usize], s as usize / k));
    combine_rows(gd, None, by_z, g);
    combine_rows(ge, None, by_dpre, x);
    slots
        .iter()
        .fold(0.0f32, |s, &slot| s + dval[slot as usize])
}

multiversion! {
    /// One latent's gradients from its active slots (row order): `W_dec[j]` gets Σ z g_r into `gd`, `W_enc[j]`
    /// gets Σ ∂pre x_r into `ge`, and the return value, Σ ∂pre, is `b_enc[j]`'s.
    #[allow(clippy::too_many_arguments)]
    fn latent_grads(gd: &mut [f32], ge: &mut [f32], slots: &[u32], k: usize, val: &[f32], dval: &[f32], g: &[f32], x: &[f32]) -> f32 => latent_grads_body
}

/// The latent-major index of the code's active slots: `slots[start[j]..start[j + 1]]` are latent j's, in row
/// order (a counting sort).
fn slot_index(code: &Code, m: usize, start: &mut Vec<usize>, slots: &mut Vec<u32>) {
    let k = code.k;
    start.clear();
    start.resize(m + 1, 0);
    for (r, &n) in code.nnz.iter().enumerate() {
        for &j in &code.idx[r * k..r * k + n] {
            start[j as usize + 1] += 1;
        }
    }
    for j in 0..m {
        start[j + 1] += start[j];
    }
    slots.resize(start[m], 0);
    let mut fill = start[..m].to_vec();
    for (r, &n) in code.nnz.iter().enumerate() {
        for s in r * k..r * k + n {
            let j = code.idx[s] as usize;
            slots[fill[j]] = s as u32;
            fill[j] += 1;
        }
    }
}

/// The loss of one batch and its gradients into `grads` (overwritten).
pub fn loss_and_grads(
    model: &Model,
    batch: Rows<'_>,
    k: usize,
    ws: &mut Workspace,
    grads: &mut Grads,
) -> Result<f64, KernelError> {
    let (d_in, d_out, m) = (model.d_in, model.d_out, model.d_sae);
    let rows = batch.len();
    model.encode_into(batch.x, rows, k, ws)?;
    let scale = 2.0 / (rows * d_out) as f32;
    ws.g.resize(rows * d_out, 0.0);
    ws.dval.resize(rows * k, 0.0);
    ws.row_loss.resize(rows, 0.0);
    let Workspace {
        code,
        g,
        dval,
        row_loss,
        start,
        slots,
        ..
    } = ws;
    let code = &*code;
    // The row pass and the latent-major index both need only the code: side by side, so that the index (serial)
    // costs no wall time while the pool works through the rows.
    rayon::join(
        || slot_index(code, m, start, slots),
        || {
            // Row-wise: the prediction, the residual's gradient g_r, and ∂L/∂pre of each active slot. (Selecting
            // each row's latents in this same pass measured 5-8 % slower than the separate pass in encode_into.)
            g.par_chunks_mut(ROW_CHUNK * d_out)
                .zip(dval.par_chunks_mut(ROW_CHUNK * k))
                .zip(row_loss.par_chunks_mut(ROW_CHUNK))
                .enumerate()
                .for_each(|(c, ((g, dval), loss))| {
                    for (i, l) in loss.iter_mut().enumerate() {
                        let r = c * ROW_CHUNK + i;
                        let gr = &mut g[i * d_out..(i + 1) * d_out];
                        model.decode_row(code.row(r), gr);
                        let t = &batch.t[r * d_out..(r + 1) * d_out];
                        let mut sq = 0.0f64;
                        for (o, &tv) in gr.iter_mut().zip(t) {
                            let e = *o - tv;
                            sq += (e as f64) * (e as f64);
                            *o = scale * e;
                        }
                        *l = sq;
                        let idx = code.row(r).0;
                        gather_dots(&mut dval[i * k..i * k + idx.len()], idx, &model.w_dec, gr);
                    }
                })
        },
    );
    let (start, slots, dval, g) = (&*start, &*slots, &*dval, &*g);
    let Grads {
        w_enc,
        b_enc,
        w_dec,
        b_dec,
    } = grads;
    rayon::join(
        || {
            // Per latent: W_dec[j] gets Σ z g_r, W_enc[j] gets Σ ∂pre x_r, b_enc[j] gets Σ ∂pre.
            w_dec
                .par_chunks_mut(d_out)
                .zip(w_enc.par_chunks_mut(d_in))
                .zip(b_enc.par_iter_mut())
                .enumerate()
                .with_min_len(4)
                .for_each(|(j, ((gd, ge), gb))| {
                    let slots = &slots[start[j]..start[j + 1]];
                    *gb = latent_grads(gd, ge, slots, k, &code.val, dval, g, batch.x);
                })
        },
        || {
            b_dec.fill(0.0);
            for gr in g.chunks_exact(d_out) {
                for (o, &v) in b_dec.iter_mut().zip(gr) {
                    *o += v;
                }
            }
        },
    );
    Ok(husai_kernels::stats::fsum(row_loss) / (rows * d_out) as f64)
}

/// A finished fit.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub model: Model,
    /// Held-out FVU: `Σ‖t̂ − t‖² / Σ‖t − mean(t)‖²` over the held-out rows (per-column means of those rows).
    pub fvu: f64,
    /// The mean loss of the last epoch's steps.
    pub final_loss: f64,
    pub steps: u64,
    pub rows_seen: u64,
    pub wall_s: f64,
}

/// Why a fit stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum FitError {
    Kernel(KernelError),
    /// The loss stopped being finite.
    Diverged {
        step: u64,
        loss: f64,
    },
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FitError::Kernel(e) => write!(f, "{e}"),
            FitError::Diverged { step, loss } => {
                write!(f, "the loss became {loss} at step {step}; lower lr")
            }
        }
    }
}

impl From<KernelError> for FitError {
    fn from(e: KernelError) -> Self {
        FitError::Kernel(e)
    }
}

/// Fits a model to `train` and scores it on `held_out`. Epoch e visits the training rows in the order of a
/// Fisher-Yates shuffle drawn from stream `2 + e` of the seed.
pub fn fit(
    train: Rows<'_>,
    held_out: Rows<'_>,
    cfg: FitConfig,
    seed: u64,
) -> Result<Fitted, FitError> {
    // The whole fit runs on a worker of the current pool: each step enters a dozen parallel regions, and entering
    // one from outside the pool costs a cross-thread wake-up each time (17.7 µs here, against 0.3 µs inside).
    rayon::scope(|_| fit_in_pool(train, held_out, cfg, seed))
}

/// Copies rows `order` of `src` (`width` columns) into `dst`, in parallel.
fn gather(dst: &mut Vec<f32>, src: &[f32], width: usize, order: &[usize]) {
    dst.resize(order.len() * width, 0.0);
    dst.par_chunks_mut(ROW_CHUNK * width)
        .zip(order.par_chunks(ROW_CHUNK))
        .for_each(|(out, rows)| {
            for (o, &r) in out.chunks_exact_mut(width).zip(rows) {
                o.copy_from_slice(&src[r * width..(r + 1) * width]);
            }
        });
}

fn fit_in_pool(
    train: Rows<'_>,
    held_out: Rows<'_>,
    cfg: FitConfig,
    seed: u64,
) -> Result<Fitted, FitError> {
    let started = std::time::Instant::now();
    let (d_in, d_out) = (train.d_in, train.d_out);
    let n = train.len();
    let k = cfg.k.min(cfg.d_sae);
    let target_is_input = std::ptr::eq(train.x, train.t) && d_in == d_out;
    let mut mean = vec![0.0f64; d_out];
    for row in train.t.chunks_exact(d_out) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    let b_dec: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
    let mut model = Model::init(d_in, d_out, cfg.d_sae, seed, &b_dec);
    let mut adam = Adam::new(AdamConfig {
        lr: cfg.lr,
        ..AdamConfig::default()
    })?;
    let mut moments = [
        Moments::zeros(model.w_enc.len()),
        Moments::zeros(model.b_enc.len()),
        Moments::zeros(model.w_dec.len()),
        Moments::zeros(model.b_dec.len()),
    ];
    let mut grads = Grads::zeros(&model);
    let mut ws = Workspace::default();
    let (mut bx, mut bt) = (Vec::new(), Vec::new());
    let mut order: Vec<usize> = (0..n).collect();
    let (mut steps, mut rows_seen, mut final_loss) = (0u64, 0u64, f64::NAN);
    for epoch in 0..cfg.epochs {
        let mut rng = SplitMix64::stream(seed, 2 + epoch as u64);
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let (mut sum, mut count) = (0.0f64, 0usize);
        for chunk in order.chunks(cfg.batch) {
            // An SAE's target is its input: one gather serves both.
            if target_is_input {
                gather(&mut bx, train.x, d_in, chunk);
            } else {
                rayon::join(
                    || gather(&mut bx, train.x, d_in, chunk),
                    || gather(&mut bt, train.t, d_out, chunk),
                );
            }
            let batch = Rows {
                x: &bx,
                t: if target_is_input { &bx } else { &bt },
                d_in,
                d_out,
            };
            let loss = loss_and_grads(&model, batch, k, &mut ws, &mut grads)?;
            steps += 1;
            if !loss.is_finite() {
                return Err(FitError::Diverged { step: steps, loss });
            }
            adam.begin_step();
            // The encoder's and the decoder's updates touch disjoint tensors: side by side.
            let [m_we, m_be, m_wd, m_bd] = &mut moments;
            let (adam, g) = (&adam, &grads);
            let (enc, dec) = rayon::join(
                || {
                    adam.update(&mut model.w_enc, &g.w_enc, m_we)?;
                    adam.update(&mut model.b_enc, &g.b_enc, m_be)
                },
                || {
                    adam.update(&mut model.w_dec, &g.w_dec, m_wd)?;
                    unit_rows(&mut model.w_dec, d_out);
                    adam.update(&mut model.b_dec, &g.b_dec, m_bd)
                },
            );
            enc?;
            dec?;
            rows_seen += chunk.len() as u64;
            sum += loss;
            count += 1;
        }
        final_loss = sum / count.max(1) as f64;
    }
    let wall_s = started.elapsed().as_secs_f64();
    let predicted = model.predict(held_out.x, k)?;
    let fvu = reconstruction(held_out.t, &predicted, d_out)?.fvu;
    Ok(Fitted {
        model,
        fvu,
        final_loss,
        steps,
        rows_seen,
        wall_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(rows: usize, d_in: usize, d_out: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut rng = SplitMix64::new(seed);
        let x: Vec<f32> = (0..rows * d_in).map(|_| rng.normal() as f32).collect();
        let t: Vec<f32> = (0..rows * d_out).map(|_| rng.normal() as f32).collect();
        (x, t)
    }

    /// The loss in f64 from the parameters, with the active set held at the one the analytic gradient used.
    fn loss_with_code(m: &Model, x: &[f32], t: &[f32], code: &Code) -> f64 {
        let (d_in, d_out) = (m.d_in, m.d_out);
        let rows = x.len() / d_in;
        let mut total = 0.0;
        for r in 0..rows {
            let xr = &x[r * d_in..(r + 1) * d_in];
            let mut pred: Vec<f64> = m.b_dec.iter().map(|&b| b as f64).collect();
            for &j in code.row(r).0 {
                let j = j as usize;
                let pre: f64 = (0..d_in)
                    .map(|i| m.w_enc[j * d_in + i] as f64 * xr[i] as f64)
                    .sum::<f64>()
                    + m.b_enc[j] as f64;
                for (o, p) in pred.iter_mut().enumerate() {
                    *p += pre * m.w_dec[j * d_out + o] as f64;
                }
            }
            for (o, p) in pred.iter().enumerate() {
                let e = p - t[r * d_out + o] as f64;
                total += e * e;
            }
        }
        total / (rows * d_out) as f64
    }

    #[test]
    fn gradients_match_central_differences_of_the_loss() {
        let (d_in, d_out, m, k, rows) = (6, 5, 10, 3, 9);
        let (x, t) = toy(rows, d_in, d_out, 3);
        let mut model = Model::init(d_in, d_out, m, 7, &[0.1, -0.2, 0.0, 0.3, 0.05]);
        model.b_enc.iter_mut().for_each(|b| *b = 0.5);
        let mut ws = Workspace::default();
        let mut grads = Grads::zeros(&model);
        let batch = Rows {
            x: &x,
            t: &t,
            d_in,
            d_out,
        };
        let loss = loss_and_grads(&model, batch, k, &mut ws, &mut grads).unwrap();
        let code = ws.code.clone();
        assert!((loss - loss_with_code(&model, &x, &t, &code)).abs() < 1e-5 * loss.max(1.0));
        let h = 1e-3f32;
        let mut worst = 0.0f64;
        type Field = fn(&mut Model) -> &mut Vec<f32>;
        let tensors: [(&str, Field, &Vec<f32>); 4] = [
            ("w_enc", |m| &mut m.w_enc, &grads.w_enc),
            ("b_enc", |m| &mut m.b_enc, &grads.b_enc),
            ("w_dec", |m| &mut m.w_dec, &grads.w_dec),
            ("b_dec", |m| &mut m.b_dec, &grads.b_dec),
        ];
        for (name, field, analytic) in tensors {
            for (i, &want) in analytic.iter().enumerate() {
                let mut plus = model.clone();
                field(&mut plus)[i] += h;
                let mut minus = model.clone();
                field(&mut minus)[i] -= h;
                let numeric = (loss_with_code(&plus, &x, &t, &code)
                    - loss_with_code(&minus, &x, &t, &code))
                    / (2.0 * h as f64);
                let diff = (numeric - want as f64).abs() / (numeric.abs().max(1e-2));
                assert!(
                    diff < 2e-2,
                    "{name}[{i}]: numeric {numeric}, analytic {}",
                    want
                );
                worst = worst.max(diff);
            }
        }
        assert!(worst < 2e-2, "worst relative difference {worst}");
    }

    #[test]
    fn blocked_row_combinations_have_the_bits_of_one_axpy_per_term() {
        // Widths exercise every block size (128, 64, 16, 1) and their mixtures.
        let mut rng = SplitMix64::new(12);
        for w in [1usize, 5, 16, 17, 63, 64, 100, 128, 130, 200, 300] {
            let rows = 7;
            let src: Vec<f32> = (0..rows * w).map(|_| rng.normal() as f32).collect();
            let init: Vec<f32> = (0..w).map(|_| rng.normal() as f32).collect();
            let terms: Vec<(f32, usize)> = (0..11)
                .map(|_| (rng.normal() as f32, rng.below(rows as u64) as usize))
                .collect();
            for init in [None, Some(init.as_slice())] {
                let mut want = init.map_or(vec![0.0; w], <[f32]>::to_vec);
                for &(a, r) in &terms {
                    husai_kernels::simd::axpy(&mut want, a, &src[r * w..(r + 1) * w]);
                }
                let mut got = vec![f32::NAN; w];
                combine_rows(&mut got, init, terms.iter().copied(), &src);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "width {w}");
            }
        }
    }

    #[test]
    fn fits_are_thread_independent_and_a_seed_fixes_them() {
        let (d_in, d_out) = (8, 6);
        let (x, t) = toy(300, d_in, d_out, 1);
        let (ho_x, ho_t) = toy(50, d_in, d_out, 2);
        let cfg = FitConfig {
            d_sae: 16,
            k: 3,
            epochs: 3,
            lr: 1e-2,
            batch: 32,
        };
        let train = Rows {
            x: &x,
            t: &t,
            d_in,
            d_out,
        };
        let held = Rows {
            x: &ho_x,
            t: &ho_t,
            d_in,
            d_out,
        };
        let run = |threads: usize, seed: u64| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| fit(train, held, cfg, seed).unwrap())
        };
        let (a, b) = (run(1, 5), run(3, 5));
        assert_eq!(a.model, b.model);
        assert_eq!(a.fvu, b.fvu);
        assert_ne!(run(1, 6).model, a.model);
        // ⌈300 / 32⌉ = 10 steps per epoch, the last of 12 rows.
        assert_eq!((a.steps, a.rows_seen), (30, 900));
        for row in a.model.w_dec.chunks(d_out) {
            let n: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5, "decoder rows stay unit norm: {n}");
        }
    }

    #[test]
    fn a_transcoder_learns_a_linear_map_through_its_bottleneck() {
        // t = A x with x sparse in a basis: the held-out FVU falls well below 1 within a few epochs.
        let (d_in, d_out, rows) = (8, 5, 2000);
        let mut rng = SplitMix64::new(9);
        let a: Vec<f32> = (0..d_out * d_in).map(|_| rng.normal() as f32).collect();
        let mut x = vec![0.0f32; rows * d_in];
        for r in 0..rows {
            let f = rng.below(d_in as u64) as usize;
            x[r * d_in + f] = 0.5 + rng.uniform_f32();
        }
        let t: Vec<f32> = (0..rows)
            .flat_map(|r| {
                let xr = &x[r * d_in..(r + 1) * d_in];
                (0..d_out)
                    .map(|o| (0..d_in).map(|i| a[o * d_in + i] * xr[i]).sum::<f32>())
                    .collect::<Vec<_>>()
            })
            .collect();
        let split = 1600;
        let train = Rows {
            x: &x[..split * d_in],
            t: &t[..split * d_out],
            d_in,
            d_out,
        };
        let held = Rows {
            x: &x[split * d_in..],
            t: &t[split * d_out..],
            d_in,
            d_out,
        };
        let cfg = FitConfig {
            d_sae: 16,
            k: 2,
            epochs: 30,
            lr: 1e-2,
            batch: 64,
        };
        let f = fit(train, held, cfg, 1).unwrap();
        assert!(f.fvu < 0.1, "held-out FVU {}", f.fvu);
    }
}
