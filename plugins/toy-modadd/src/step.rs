//! The training step and the held-out evaluation, computed through the token tables: the same function and the
//! same gradients as [`crate::model::forward`] (the layer-by-layer form, which writes the activation banks), in an
//! order that does a third of the arithmetic.
//!
//! The model's input is a sum of token embeddings, h = T[a] + T[b] (+ T[p + c] in leaky parity, where T = [E; A]
//! stacks the two tables), and two of its three linear maps act on h directly. So, with
//!
//! ```text
//! P = T·W_inᵀ   [tokens, width]      pre    = Σ_tok P[tok] + b_in          (W_in·h + b_in)
//! Q = T·U       [tokens, p]          logits = Σ_tok Q[tok] + hidden·M      (Uᵀ(h + W_out·hidden))
//! M = W_outᵀ·U  [width, p]           hidden = ReLU(pre)
//! ```
//!
//! a step costs three GEMMs of rows × width × p (logits, ∂M and ∂hidden) instead of five of rows × width × d plus
//! three of rows × d × p, and the tables' products cost tokens × d × width, independent of the batch. The backward
//! pass is the chain rule through the same three products: ∂T = ∂P·W_in + ∂Q·Uᵀ, ∂W_in = ∂Pᵀ·T,
//! ∂U = Tᵀ·∂Q + W_out·∂M, ∂W_out = U·∂Mᵀ, where ∂P[tok] and ∂Q[tok] sum ∂pre and ∂logits over the rows holding the
//! token.
//!
//! h is symmetric in a and b, and so is the label, so the pairs (a, b) and (b, a) are one row with weight 2 when
//! both are in a split: the loss and the accuracy stay means over the split's ordered pairs, exactly (f32 addition
//! is commutative, so the two rows' activations are bitwise equal).
//!
//! Everything is deterministic and independent of the thread count: row-parallel loops write disjoint rows,
//! reductions run over fixed chunks and are summed in chunk order, and each ∂P/∂Q row sums its rows in row order.

use husai_kernels::KernelError;
use husai_kernels::gemm::{MatMut, MatRef, matmul};
use rayon::prelude::*;

use crate::model::ToyModel;

/// Rows per chunk of the row-parallel loops and of the fixed-order reductions.
const CHUNK: usize = 64;

/// A split's pairs, deduplicated by symmetry, with the token lists both directions need.
#[derive(Debug, Clone)]
pub struct Rows {
    /// Tokens per row: 2, or 3 in leaky parity.
    per_row: usize,
    /// Each row's token ids into T, `per_row` of them.
    tokens: Vec<u32>,
    /// c = (a + b) mod p.
    labels: Vec<u32>,
    /// How many of the split's ordered pairs the row stands for (1 or 2).
    weights: Vec<f32>,
    /// The split's ordered pairs.
    total: usize,
    /// For token t, its `(row, multiplicity)` entries are `by_token[starts[t]..starts[t + 1]]`, rows increasing.
    starts: Vec<usize>,
    by_token: Vec<(u32, f32)>,
}

impl Rows {
    /// The rows of `pairs` for a model over `p` tokens (`leaky`: the answer is a third token, p + c).
    pub fn new(pairs: &[(usize, usize)], p: usize, leaky: bool) -> Rows {
        let per_row = if leaky { 3 } else { 2 };
        let mut slot = vec![u32::MAX; p * p];
        let (mut tokens, mut labels, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for &(a, b) in pairs {
            let key = a.min(b) * p + a.max(b);
            if slot[key] != u32::MAX {
                weights[slot[key] as usize] += 1.0;
                continue;
            }
            slot[key] = labels.len() as u32;
            let c = (a + b) % p;
            tokens.extend([a as u32, b as u32]);
            if leaky {
                tokens.push((p + c) as u32);
            }
            labels.push(c as u32);
            weights.push(1.0f32);
        }
        let n_tokens = if leaky { 2 * p } else { p };
        let mut lists: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_tokens];
        for (i, row) in tokens.chunks(per_row).enumerate() {
            for &t in row {
                let list = &mut lists[t as usize];
                match list.last_mut() {
                    Some((r, mult)) if *r == i as u32 => *mult += 1.0, // (a, a): the token twice
                    _ => list.push((i as u32, 1.0)),
                }
            }
        }
        let mut starts = vec![0];
        let mut by_token = Vec::new();
        for list in lists {
            by_token.extend(list);
            starts.push(by_token.len());
        }
        Rows {
            per_row,
            tokens,
            labels,
            weights,
            total: pairs.len(),
            starts,
            by_token,
        }
    }

    /// Rows after deduplication.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn n_tokens(&self) -> usize {
        self.starts.len() - 1
    }
}

/// Buffers of one split's steps, reused across steps.
pub struct Step {
    rows: Rows,
    /// T = [E; A], [tokens, d].
    table: Vec<f32>,
    /// P = T·W_inᵀ, [tokens, width].
    p_in: Vec<f32>,
    /// Q = T·U, [tokens, p].
    q: Vec<f32>,
    /// M = W_outᵀ·U, [width, p].
    m: Vec<f32>,
    /// ReLU(pre), [rows, width].
    hidden: Vec<f32>,
    /// [rows, p]; overwritten by ∂loss/∂logits in a gradient step.
    logits: Vec<f32>,
    /// ∂pre, [rows, width] (gradient steps only).
    g_pre: Vec<f32>,
}

/// The gradients of a step, in [`ToyModel`]'s tensor order.
pub type Grads = [Vec<f32>; crate::model::N_TENSORS];

fn view<'a>(what: &str, d: &'a [f32], r: usize, c: usize) -> Result<MatRef<'a>, KernelError> {
    MatRef::row_major(what, d, r, c)
}

fn view_mut<'a>(
    what: &str,
    d: &'a mut [f32],
    r: usize,
    c: usize,
) -> Result<MatMut<'a>, KernelError> {
    MatMut::row_major(what, d, r, c)
}

#[inline(always)]
fn sum_rows_body(out: &mut [f32], first: &[f32], table: &[f32], tokens: &[u32], relu: bool) {
    let cols = out.len();
    out.copy_from_slice(first);
    for &tok in tokens {
        let row = &table[tok as usize * cols..(tok as usize + 1) * cols];
        out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
    }
    if relu {
        out.iter_mut().for_each(|o| *o = o.max(0.0));
    }
}

husai_kernels::simd::multiversion! {
    /// `out = first + Σ_tok table[tok]` (rows of `out.len()` columns, added in token order), then `max(·, 0)` when
    /// `relu`.
    fn sum_rows(out: &mut [f32], first: &[f32], table: &[f32], tokens: &[u32], relu: bool) => sum_rows_body
}

#[inline(always)]
fn mask_and_sum_body(g: &mut [f32], h: &[f32], sum: &mut [f32]) {
    // A select, not a branch: the ReLU pattern is close to random, and mispredicted branches made this pass cost
    // as much as a GEMM.
    for ((g, &h), s) in g.iter_mut().zip(h).zip(sum.iter_mut()) {
        let v = if h > 0.0 { *g } else { 0.0 };
        *g = v;
        *s += v;
    }
}

husai_kernels::simd::multiversion! {
    /// `g ⊙= [h > 0]`, then `sum += g`.
    fn mask_and_sum(g: &mut [f32], h: &[f32], sum: &mut [f32]) => mask_and_sum_body
}

/// `dst[t] = Σ mult · src[row]` over token t's entries, for every token (parallel over tokens, each summing its
/// rows in row order).
fn scatter_rows(rows: &Rows, src: &[f32], cols: usize, dst: &mut [f32]) {
    dst.par_chunks_mut(cols).enumerate().for_each(|(t, out)| {
        out.fill(0.0);
        for &(r, mult) in &rows.by_token[rows.starts[t]..rows.starts[t + 1]] {
            husai_kernels::simd::axpy(out, mult, &src[r as usize * cols..(r as usize + 1) * cols]);
        }
    });
}

impl Step {
    /// Buffers for `rows` under `model`'s sizes.
    pub fn new(rows: Rows, model: &ToyModel) -> Step {
        let (n, t, d, w, p) = (rows.len(), rows.n_tokens(), model.d, model.width, model.p);
        Step {
            table: vec![0.0; t * d],
            p_in: vec![0.0; t * w],
            q: vec![0.0; t * p],
            m: vec![0.0; w * p],
            hidden: vec![0.0; n * w],
            logits: vec![0.0; n * p],
            g_pre: Vec::new(),
            rows,
        }
    }

    fn check(&self, model: &ToyModel) -> Result<(), KernelError> {
        let tokens = if model.answer_embed.is_empty() {
            model.p
        } else {
            2 * model.p
        };
        if self.rows.n_tokens() != tokens || self.table.len() != tokens * model.d {
            return Err(KernelError::Mismatch {
                what: "toy model step".into(),
                detail: format!(
                    "the rows were built for {} tokens and d {}, the model has {tokens} and d {}",
                    self.rows.n_tokens(),
                    self.table.len() / self.rows.n_tokens().max(1),
                    model.d
                ),
            });
        }
        Ok(())
    }

    /// Rows, tokens, d, width and p.
    fn sizes(&self, model: &ToyModel) -> (usize, usize, usize, usize, usize) {
        let rows = &self.rows;
        (rows.len(), rows.n_tokens(), model.d, model.width, model.p)
    }

    /// The tables, the hidden layer and the logits of every row.
    fn forward(&mut self, model: &ToyModel) -> Result<(), KernelError> {
        self.check(model)?;
        let (n, t, d, w, p) = self.sizes(model);
        self.table[..p * d].copy_from_slice(&model.embed);
        self.table[p * d..].copy_from_slice(&model.answer_embed);
        matmul(
            view_mut("P", &mut self.p_in, t, w)?,
            view("T", &self.table, t, d)?,
            view("w_in", &model.w_in, w, d)?.t(),
            false,
        )?;
        matmul(
            view_mut("Q", &mut self.q, t, p)?,
            view("T", &self.table, t, d)?,
            view("unembed", &model.unembed, d, p)?,
            false,
        )?;
        matmul(
            view_mut("M", &mut self.m, w, p)?,
            view("w_out", &model.w_out, d, w)?.t(),
            view("unembed", &model.unembed, d, p)?,
            false,
        )?;
        let k = self.rows.per_row;
        let (tokens, p_in, q) = (&self.rows.tokens, &self.p_in, &self.q);
        self.hidden
            .par_chunks_mut(CHUNK * w)
            .zip(self.logits.par_chunks_mut(CHUNK * p))
            .enumerate()
            .for_each(|(c, (hid, lg))| {
                for (r, (h, l)) in hid.chunks_mut(w).zip(lg.chunks_mut(p)).enumerate() {
                    let toks = &tokens[(c * CHUNK + r) * k..(c * CHUNK + r + 1) * k];
                    sum_rows(h, &model.b_in, p_in, toks, true);
                    let first = toks[0] as usize;
                    sum_rows(l, &q[first * p..(first + 1) * p], q, &toks[1..], false);
                }
            });
        matmul(
            view_mut("logits", &mut self.logits, n, p)?,
            view("hidden", &self.hidden, n, w)?,
            view("M", &self.m, w, p)?,
            true,
        )?;
        Ok(())
    }

    /// The split's mean cross-entropy and accuracy over its ordered pairs; with `grad`, the logits are overwritten
    /// by ∂loss/∂logits.
    fn cross_entropy(&mut self, p: usize, grad: bool) -> (f64, f64) {
        let rows = &self.rows;
        let scale = 1.0 / rows.total as f64;
        let parts: Vec<(f64, f64)> = self
            .logits
            .par_chunks_mut(CHUNK * p)
            .enumerate()
            .map(|(ci, chunk)| {
                let (mut loss, mut correct) = (0.0f64, 0.0f64);
                let mut soft = vec![0.0f32; p];
                for (r, row) in chunk.chunks_mut(p).enumerate() {
                    let i = ci * CHUNK + r;
                    let (c, weight) = (rows.labels[i] as usize, f64::from(rows.weights[i]));
                    let (mut best, mut max) = (0, f32::NEG_INFINITY);
                    for (j, &v) in row.iter().enumerate() {
                        if v > max {
                            max = v;
                            best = j;
                        }
                    }
                    if best == c {
                        correct += weight;
                    }
                    // exp in f32 (as PyTorch's cross-entropy), each term <= 1; the sum and the loss in f64.
                    let mut sum = 0.0f64;
                    for (s, &v) in soft.iter_mut().zip(row.iter()) {
                        *s = (v - max).exp();
                        sum += f64::from(*s);
                    }
                    loss += weight * (sum.ln() - f64::from(row[c] - max));
                    if grad {
                        let g = (weight * scale / sum) as f32;
                        for (out, &s) in row.iter_mut().zip(&soft) {
                            *out = s * g;
                        }
                        row[c] -= (weight * scale) as f32;
                    }
                }
                (loss, correct)
            })
            .collect();
        let (loss, correct) = parts
            .iter()
            .fold((0.0, 0.0), |(l, c), &(pl, pc)| (l + pl, c + pc));
        (loss * scale, correct * scale)
    }

    /// Loss and accuracy (no gradients).
    pub fn evaluate(&mut self, model: &ToyModel) -> Result<(f64, f64), KernelError> {
        self.forward(model)?;
        Ok(self.cross_entropy(model.p, false))
    }

    /// Loss, accuracy and every parameter's gradient, into `g` (overwritten; shaped as the model's tensors).
    pub fn loss_and_grads(
        &mut self,
        model: &ToyModel,
        g: &mut Grads,
    ) -> Result<(f64, f64), KernelError> {
        self.forward(model)?;
        let (loss, acc) = self.cross_entropy(model.p, true);
        let (n, t, d, w, p) = self.sizes(model);
        let [g_embed, g_answer, g_w_in, g_b_in, g_w_out, g_unembed] = g;
        let g_logits = &self.logits;
        // ∂M = hiddenᵀ·∂logits; ∂W_out = U·∂Mᵀ; ∂U = W_out·∂M (+ Tᵀ·∂Q below).
        let mut g_m = vec![0.0f32; w * p];
        matmul(
            view_mut("dM", &mut g_m, w, p)?,
            view("hidden", &self.hidden, n, w)?.t(),
            view("d_logits", g_logits, n, p)?,
            false,
        )?;
        matmul(
            view_mut("d_w_out", g_w_out, d, w)?,
            view("unembed", &model.unembed, d, p)?,
            view("dM", &g_m, w, p)?.t(),
            false,
        )?;
        matmul(
            view_mut("d_unembed", g_unembed, d, p)?,
            view("w_out", &model.w_out, d, w)?,
            view("dM", &g_m, w, p)?,
            false,
        )?;
        // ∂pre = (∂logits·Mᵀ) ⊙ [pre > 0]; ∂b_in = Σ_rows ∂pre (fixed chunks, summed in order).
        self.g_pre.resize(n * w, 0.0);
        matmul(
            view_mut("d_pre", &mut self.g_pre, n, w)?,
            view("d_logits", g_logits, n, p)?,
            view("M", &self.m, w, p)?.t(),
            false,
        )?;
        let partial: Vec<Vec<f32>> = self
            .g_pre
            .par_chunks_mut(CHUNK * w)
            .zip(self.hidden.par_chunks(CHUNK * w))
            .map(|(gp, hid)| {
                let mut sum = vec![0.0f32; w];
                for (g, h) in gp.chunks_mut(w).zip(hid.chunks(w)) {
                    mask_and_sum(g, h, &mut sum);
                }
                sum
            })
            .collect();
        g_b_in.fill(0.0);
        for part in &partial {
            husai_kernels::simd::axpy(g_b_in, 1.0, part);
        }
        // ∂P and ∂Q: each token's rows; then through the tables' products.
        let mut g_p = vec![0.0f32; t * w];
        let mut g_q = vec![0.0f32; t * p];
        scatter_rows(&self.rows, &self.g_pre, w, &mut g_p);
        scatter_rows(&self.rows, g_logits, p, &mut g_q);
        matmul(
            view_mut("d_unembed", g_unembed, d, p)?,
            view("T", &self.table, t, d)?.t(),
            view("dQ", &g_q, t, p)?,
            true,
        )?;
        matmul(
            view_mut("d_w_in", g_w_in, w, d)?,
            view("dP", &g_p, t, w)?.t(),
            view("T", &self.table, t, d)?,
            false,
        )?;
        let mut g_table = vec![0.0f32; t * d];
        matmul(
            view_mut("dT", &mut g_table, t, d)?,
            view("dP", &g_p, t, w)?,
            view("w_in", &model.w_in, w, d)?,
            false,
        )?;
        matmul(
            view_mut("dT", &mut g_table, t, d)?,
            view("dQ", &g_q, t, p)?,
            view("unembed", &model.unembed, d, p)?.t(),
            true,
        )?;
        g_embed.copy_from_slice(&g_table[..p * d]);
        g_answer.copy_from_slice(&g_table[p * d..]);
        Ok((loss, acc))
    }
}
