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
use husai_kernels::simd::axpy;
use husai_kernels::topk::select_row;
use rayon::prelude::*;

/// Rows per parallel task in the row-wise passes.
const ROW_CHUNK: usize = 16;

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

    /// The sparse code of `rows` rows of `x` into `ws.code` (and `ws.pre`).
    fn encode_into(
        &self,
        x: &[f32],
        rows: usize,
        k: usize,
        ws: &mut Workspace,
    ) -> Result<(), KernelError> {
        let m = self.d_sae;
        ws.pre.resize(rows * m, 0.0);
        matmul(
            MatMut::row_major("pre", &mut ws.pre, rows, m)?,
            MatRef::row_major("x", x, rows, self.d_in)?,
            MatRef::row_major("w_enc", &self.w_enc, m, self.d_in)?.t(),
            false,
        )?;
        ws.code.reset(rows, k);
        let b_enc = &self.b_enc;
        ws.pre
            .par_chunks(ROW_CHUNK * m)
            .zip(ws.code.idx.par_chunks_mut(ROW_CHUNK * k))
            .zip(ws.code.val.par_chunks_mut(ROW_CHUNK * k))
            .zip(ws.code.nnz.par_chunks_mut(ROW_CHUNK))
            .for_each(|(((pre, idx), val), nnz)| {
                for (r, n) in nnz.iter_mut().enumerate() {
                    *n = select_row(
                        &pre[r * m..(r + 1) * m],
                        b_enc,
                        None,
                        k,
                        &mut idx[r * k..(r + 1) * k],
                        &mut val[r * k..(r + 1) * k],
                    );
                }
            });
        Ok(())
    }

    /// Decoder row `j`.
    fn w_dec_row(&self, j: u32) -> &[f32] {
        let d = self.d_out;
        &self.w_dec[j as usize * d..(j as usize + 1) * d]
    }

    /// `t̂ = b_dec + Σ z_j W_dec[j]` of one row of the code, into `out` (`d_out` values).
    fn decode_row(&self, (idx, val): (&[u32], &[f32]), out: &mut [f32]) {
        out.copy_from_slice(&self.b_dec);
        for (&j, &z) in idx.iter().zip(val) {
            axpy(out, z, self.w_dec_row(j));
        }
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

fn unit_rows(m: &mut [f32], d: usize) {
    for row in m.chunks_exact_mut(d) {
        let n = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() as f32;
        if n > 0.0 {
            for v in row.iter_mut() {
                *v /= n;
            }
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
    // Row-wise: the prediction, the residual's gradient g_r, and ∂L/∂pre of each active slot.
    {
        let code = &ws.code;
        ws.g.par_chunks_mut(ROW_CHUNK * d_out)
            .zip(ws.dval.par_chunks_mut(ROW_CHUNK * k))
            .zip(ws.row_loss.par_chunks_mut(ROW_CHUNK))
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
                    for (s, &j) in code.row(r).0.iter().enumerate() {
                        let w = model.w_dec_row(j);
                        dval[i * k + s] = w.iter().zip(gr.iter()).map(|(a, b)| a * b).sum();
                    }
                }
            });
    }
    // The latent-major index of the active slots (counting sort: rows stay in order within a latent).
    ws.start.clear();
    ws.start.resize(m + 1, 0);
    for r in 0..rows {
        for &j in ws.code.row(r).0 {
            ws.start[j as usize + 1] += 1;
        }
    }
    for j in 0..m {
        ws.start[j + 1] += ws.start[j];
    }
    ws.slots.resize(ws.start[m], 0);
    let mut fill = ws.start[..m].to_vec();
    for r in 0..rows {
        for s in 0..ws.code.nnz[r] {
            let j = ws.code.idx[r * k + s] as usize;
            ws.slots[fill[j]] = (r * k + s) as u32;
            fill[j] += 1;
        }
    }
    // Per latent: W_dec[j] gets Σ z g_r, W_enc[j] gets Σ ∂pre x_r, b_enc[j] gets Σ ∂pre.
    let (start, slots, code, dval, g) = (&ws.start, &ws.slots, &ws.code, &ws.dval, &ws.g);
    grads
        .w_dec
        .par_chunks_mut(d_out)
        .zip(grads.w_enc.par_chunks_mut(d_in))
        .zip(grads.b_enc.par_iter_mut())
        .enumerate()
        .for_each(|(j, ((gd, ge), gb))| {
            gd.fill(0.0);
            ge.fill(0.0);
            let mut bsum = 0.0f32;
            for &slot in &slots[start[j]..start[j + 1]] {
                let slot = slot as usize;
                let r = slot / k;
                let (z, dp) = (code.val[slot], dval[slot]);
                axpy(gd, z, &g[r * d_out..(r + 1) * d_out]);
                axpy(ge, dp, &batch.x[r * d_in..(r + 1) * d_in]);
                bsum += dp;
            }
            *gb = bsum;
        });
    grads.b_dec.fill(0.0);
    for gr in ws.g.chunks_exact(d_out) {
        for (o, &v) in grads.b_dec.iter_mut().zip(gr) {
            *o += v;
        }
    }
    Ok(husai_kernels::stats::fsum(&ws.row_loss) / (rows * d_out) as f64)
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
    let started = std::time::Instant::now();
    let (d_in, d_out) = (train.d_in, train.d_out);
    let n = train.len();
    let k = cfg.k.min(cfg.d_sae);
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
            bx.clear();
            bt.clear();
            for &r in chunk {
                bx.extend_from_slice(&train.x[r * d_in..(r + 1) * d_in]);
                bt.extend_from_slice(&train.t[r * d_out..(r + 1) * d_out]);
            }
            let batch = Rows {
                x: &bx,
                t: &bt,
                d_in,
                d_out,
            };
            let loss = loss_and_grads(&model, batch, k, &mut ws, &mut grads)?;
            steps += 1;
            if !loss.is_finite() {
                return Err(FitError::Diverged { step: steps, loss });
            }
            adam.begin_step();
            adam.update(&mut model.w_enc, &grads.w_enc, &mut moments[0])?;
            adam.update(&mut model.b_enc, &grads.b_enc, &mut moments[1])?;
            adam.update(&mut model.w_dec, &grads.w_dec, &mut moments[2])?;
            adam.update(&mut model.b_dec, &grads.b_dec, &mut moments[3])?;
            unit_rows(&mut model.w_dec, d_out);
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
