//! The shared SAE engine every family trains on ([`crate::family`] states the maths and what a family supplies):
//! the model ([`Sae`]), its forward pass (dense encoder GEMM, the family's activation, sparse decode), the sparse
//! backward (dW_dec per slot, dW_enc through a per-latent CSC of the slots, db_enc, db_dec), AuxK
//! ([`AuxK`](crate::train::AuxKConfig), Gao et al. 2024 §A.2, as the pre-engine TopK trainer had it), optional global gradient-norm
//! clipping, Adam over every parameter including the family's, the family's decoder-norm policy, dead-latent
//! tracking, evaluation under the inference rule, and the exact-resume snapshot ([`FamilySnapshot`]).
//!
//! Determinism: row-wise work runs in fixed chunks of rows, per-latent work in fixed chunks of latents, every sum
//! in a fixed order, and the GEMM never splits its inner dimension; so weights are bit-identical for any thread
//! count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::adam::{Adam, AdamConfig, Moments};
use crate::bdec::{BDecInit, initial_b_dec};
use crate::error::{KernelError, check_finite, check_len};
use crate::family::{DecoderNorm, Family, LossCtx, Nesting, PreGradCtx, Rule, SlotCode, StepCtx};
use crate::gemm::{MatMut, MatRef, matmul};
use crate::metrics::EvalMetrics;
use crate::metrics::{Reconstruction, ReconstructionAccumulator};
use crate::rng::SplitMix64;
use crate::simd::{axpy, axpy2, dot};
use crate::train::{AuxKConfig, DeadTracker};

/// Data rows per parallel task in row-wise passes.
const ROW_CHUNK: usize = 32;
/// Latents per parallel task in the gradient accumulation.
const LATENT_CHUNK: usize = 16;
/// Rows per block when encoding/evaluating many rows (bounds the `[rows, d_sae]` buffer).
const EVAL_BLOCK: usize = 2048;
/// Elements per task when summing squares for the gradient norm.
const NORM_CHUNK: usize = 1 << 14;

/// How the weights start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// L2 norm of each initial decoder row (SAELens's `decoder_init_norm`; it uses 0.1 for TopK and BatchTopK).
    pub dec_norm: f32,
    /// `W_enc = enc_scale · W_decᵀ` at the start (1: the encoder starts as the decoder's transpose).
    pub enc_scale: f32,
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            dec_norm: 1.0,
            enc_scale: 1.0,
        }
    }
}

/// Everything about a run that is not the family: shapes, optimiser, AuxK, dead-latent window, initialisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Number of latents.
    pub d_sae: usize,
    /// Rows per optimiser step.
    pub batch: usize,
    /// Seed of the initialisation.
    pub seed: u64,
    /// Worker threads (results are bit-identical for any value).
    pub threads: usize,
    /// Adam hyper-parameters.
    pub adam: AdamConfig,
    /// AuxK loss; `None` trains without it.
    pub aux_k: Option<AuxKConfig>,
    /// A latent is dead once it has not fired in the last `dead_window` steps.
    pub dead_window: u64,
    /// How `b_dec` starts ([`FamilyTrainer::init_b_dec`]).
    pub b_dec_init: BDecInit,
    /// Initial weights.
    pub init: InitConfig,
    /// Clip the global L2 norm of all gradients to this value before Adam (SAELens clips at 1); `None`: no
    /// clipping.
    pub grad_clip: Option<f32>,
}

impl EngineConfig {
    /// Defaults: batch 4096, seed 0, all threads, Adam lr 1e-3, no AuxK, dead window 1000, b_dec zeros, unit
    /// decoder rows with `W_enc = W_decᵀ`, no clipping.
    pub fn new(d_sae: usize) -> Self {
        Self {
            d_sae,
            batch: 4096,
            seed: 0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            adam: AdamConfig::default(),
            aux_k: None,
            dead_window: 1000,
            b_dec_init: BDecInit::Zeros,
            init: InitConfig::default(),
            grad_clip: None,
        }
    }

    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<(), KernelError> {
        let bad = |field: &'static str, value: String, reason: &str| {
            Err(KernelError::Config {
                field,
                value,
                reason: reason.into(),
            })
        };
        if self.d_sae == 0 {
            return bad("d_sae", "0".into(), "must be >= 1");
        }
        if self.batch == 0 {
            return bad("batch", "0".into(), "must be >= 1");
        }
        if self.threads == 0 {
            return bad("threads", "0".into(), "must be >= 1");
        }
        if self.dead_window == 0 {
            return bad("dead_window", "0".into(), "must be >= 1");
        }
        if let Some(a) = &self.aux_k {
            if a.k_aux == 0 || a.k_aux > self.d_sae {
                return bad(
                    "aux_k.k_aux",
                    a.k_aux.to_string(),
                    &format!("must be in 1..={} (d_sae)", self.d_sae),
                );
            }
            if !(a.coeff.is_finite() && a.coeff >= 0.0) {
                return bad(
                    "aux_k.coeff",
                    a.coeff.to_string(),
                    "must be a finite number >= 0",
                );
            }
        }
        if !(self.init.dec_norm.is_finite() && self.init.dec_norm > 0.0) {
            return bad(
                "init.dec_norm",
                self.init.dec_norm.to_string(),
                "must be a finite number > 0",
            );
        }
        if !(self.init.enc_scale.is_finite() && self.init.enc_scale > 0.0) {
            return bad(
                "init.enc_scale",
                self.init.enc_scale.to_string(),
                "must be a finite number > 0",
            );
        }
        if let Some(c) = self.grad_clip
            && !(c.is_finite() && c > 0.0)
        {
            return bad(
                "grad_clip",
                c.to_string(),
                "must be a finite number > 0 (or absent: no clipping)",
            );
        }
        self.adam.validate()
    }
}

/// All parameters of an SAE in conventional layouts, with the family's.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelParts {
    /// Input width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Encoder, `[d_in, d_sae]` row-major (SAELens layout).
    pub w_enc: Vec<f32>,
    /// Encoder bias, `[d_sae]`.
    pub b_enc: Vec<f32>,
    /// Decoder, `[d_sae, d_in]` row-major.
    pub w_dec: Vec<f32>,
    /// Decoder bias, `[d_in]`.
    pub b_dec: Vec<f32>,
    /// The family's parameters, `(name, values)` in [`Family::params`] order.
    pub family: Vec<(String, Vec<f32>)>,
}

/// An SAE on the shared engine: the four shared parameters and the family's.
#[derive(Debug, Clone, PartialEq)]
pub struct Sae {
    d_in: usize,
    d_sae: usize,
    w_enc_t: Vec<f32>,
    b_enc: Vec<f32>,
    w_dec: Vec<f32>,
    b_dec: Vec<f32>,
    fam_names: Vec<&'static str>,
    fam: Vec<Vec<f32>>,
}

fn check_dims(d_in: usize, d_sae: usize) -> Result<(), KernelError> {
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

/// Scales each row of a `[rows, d]` matrix to L2 norm `target` (rows of norm 0 are left as they are).
fn normalize_rows(m: &mut [f32], d: usize, target: f32) {
    m.par_chunks_mut(d * LATENT_CHUNK).for_each(|block| {
        for row in block.chunks_exact_mut(d) {
            let n = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() as f32;
            if n > 0.0 {
                // v / n first, so a unit target gives exactly the TopK trainer's `v / n`.
                for v in row.iter_mut() {
                    *v = *v / n * target;
                }
            }
        }
    });
}

/// Every trainer's initial decoder for `seed`: `[d_sae, d_in]` row-major, entries uniform in ±1/√d_in from
/// `SplitMix64::new(seed)`, each row then scaled to norm `dec_norm`. Public so that a random-dictionary null (the
/// trained-vs-random eval) draws from exactly the law the SAEs start from.
pub fn initial_decoder(d_in: usize, d_sae: usize, seed: u64, dec_norm: f32) -> Vec<f32> {
    let bound = 1.0 / (d_in as f32).sqrt();
    let mut rng = SplitMix64::new(seed);
    let mut w_dec: Vec<f32> = (0..d_sae * d_in)
        .map(|_| (2.0 * rng.uniform_f32() - 1.0) * bound)
        .collect();
    normalize_rows(&mut w_dec, d_in, dec_norm);
    w_dec
}

fn row_norms(m: &[f32], d: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(m.len() / d, 0.0);
    out.par_chunks_mut(LATENT_CHUNK)
        .zip(m.par_chunks(d * LATENT_CHUNK))
        .for_each(|(o, block)| {
            for (n, row) in o.iter_mut().zip(block.chunks_exact(d)) {
                *n = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() as f32;
            }
        });
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

impl Sae {
    /// A fresh SAE: `W_dec` uniform in ±1/sqrt(d_in) from `seed` (SplitMix64, as the pre-engine TopK trainer), rows
    /// scaled to `init.dec_norm`; `W_enc = init.enc_scale · W_decᵀ`; both biases zero; the family's parameters at
    /// their initial values.
    pub fn init<F: Family + ?Sized>(
        family: &F,
        d_in: usize,
        d_sae: usize,
        seed: u64,
        init: InitConfig,
    ) -> Result<Self, KernelError> {
        check_dims(d_in, d_sae)?;
        let w_dec = initial_decoder(d_in, d_sae, seed, init.dec_norm);
        let w_enc_t = w_dec.iter().map(|&v| v * init.enc_scale).collect();
        let params = family.params(d_in, d_sae);
        Ok(Self {
            d_in,
            d_sae,
            w_enc_t,
            b_enc: vec![0.0; d_sae],
            w_dec,
            b_dec: vec![0.0; d_in],
            fam_names: params.iter().map(|p| p.name).collect(),
            fam: params.into_iter().map(|p| p.init).collect(),
        })
    }

    /// The state of the initialisation's generator after [`Sae::init`] (one draw per decoder weight).
    pub fn rng_state_after_init(d_in: usize, d_sae: usize, seed: u64) -> u64 {
        let mut rng = SplitMix64::new(seed);
        rng.skip((d_in * d_sae) as u64);
        rng.state()
    }

    /// Builds a model from explicit parameters; checks every shape, that all values are finite and that the
    /// family parameters are the family's, by name and length.
    pub fn from_parts<F: Family + ?Sized>(family: &F, p: ModelParts) -> Result<Self, KernelError> {
        check_dims(p.d_in, p.d_sae)?;
        check_len("W_enc", p.w_enc.len(), p.d_in, p.d_sae)?;
        check_len("b_enc", p.b_enc.len(), 1, p.d_sae)?;
        check_len("W_dec", p.w_dec.len(), p.d_sae, p.d_in)?;
        check_len("b_dec", p.b_dec.len(), 1, p.d_in)?;
        check_finite("W_enc", &p.w_enc, p.d_sae)?;
        check_finite("b_enc", &p.b_enc, p.d_sae)?;
        check_finite("W_dec", &p.w_dec, p.d_in)?;
        check_finite("b_dec", &p.b_dec, p.d_in)?;
        let spec = family.params(p.d_in, p.d_sae);
        let names: Vec<&str> = p.family.iter().map(|(n, _)| n.as_str()).collect();
        let want: Vec<&str> = spec.iter().map(|s| s.name).collect();
        if names != want {
            return Err(KernelError::Mismatch {
                what: "family parameters".into(),
                detail: format!(
                    "got {names:?} but the {} family has {want:?}",
                    family.name()
                ),
            });
        }
        for ((name, v), s) in p.family.iter().zip(&spec) {
            check_len(s.name, v.len(), 1, s.init.len())?;
            check_finite(s.name, v, s.init.len().max(1))?;
            let _ = name;
        }
        Ok(Self {
            d_in: p.d_in,
            d_sae: p.d_sae,
            w_enc_t: transpose(&p.w_enc, p.d_in, p.d_sae),
            b_enc: p.b_enc,
            w_dec: p.w_dec,
            b_dec: p.b_dec,
            fam_names: want,
            fam: p.family.into_iter().map(|(_, v)| v).collect(),
        })
    }

    /// All parameters in conventional layouts.
    pub fn to_parts(&self) -> ModelParts {
        ModelParts {
            d_in: self.d_in,
            d_sae: self.d_sae,
            w_enc: transpose(&self.w_enc_t, self.d_sae, self.d_in),
            b_enc: self.b_enc.clone(),
            w_dec: self.w_dec.clone(),
            b_dec: self.b_dec.clone(),
            family: self
                .fam_names
                .iter()
                .zip(&self.fam)
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
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
    /// The family's parameters, in [`Family::params`] order.
    pub fn family_params(&self) -> &[Vec<f32>] {
        &self.fam
    }

    /// Every parameter, mutable, in the order `W_enc^T, b_enc, W_dec, b_dec, family...` (gradient checks and
    /// other optimisers).
    pub fn params_mut(&mut self) -> Vec<&mut [f32]> {
        let mut v: Vec<&mut [f32]> = vec![
            &mut self.w_enc_t,
            &mut self.b_enc,
            &mut self.w_dec,
            &mut self.b_dec,
        ];
        v.extend(self.fam.iter_mut().map(|p| p.as_mut_slice()));
        v
    }

    fn ctx(&self, step: u64, rows: usize) -> StepCtx<'_> {
        StepCtx {
            step,
            rows,
            d_in: self.d_in,
            d_sae: self.d_sae,
            params: &self.fam,
        }
    }

    fn check_rows(&self, what: &str, x: &[f32]) -> Result<usize, KernelError> {
        let rows = x.len() / self.d_in;
        check_len(what, x.len(), rows, self.d_in)?;
        Ok(rows)
    }

    /// `xc = x - b_dec`, `pre = xc · W_enc + b_enc` (dense; `[rows, d_sae]`).
    fn pre_acts(&self, x: &[f32], xc: &mut Vec<f32>, pre: &mut Vec<f32>) {
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
        let b_enc = &self.b_enc;
        pre.par_chunks_mut(d_sae * ROW_CHUNK).for_each(|block| {
            for row in block.chunks_exact_mut(d_sae) {
                for (p, &b) in row.iter_mut().zip(b_enc) {
                    *p += b;
                }
            }
        });
    }

    /// The codes of `x` (`[rows, d_in]`) under `rule`, computed in blocks of rows (the train rule of a batch-wide
    /// family is then applied per block of up to 2048 rows).
    pub fn encode<F: Family + ?Sized>(
        &self,
        family: &F,
        rule: Rule,
        step: u64,
        x: &[f32],
    ) -> Result<SlotCode, KernelError> {
        let rows = self.check_rows("x", x)?;
        let mut out = SlotCode::default();
        out.begin_rows();
        let (mut xc, mut pre, mut code) = (Vec::new(), Vec::new(), SlotCode::default());
        for xb in x.chunks(EVAL_BLOCK * self.d_in) {
            self.pre_acts(xb, &mut xc, &mut pre);
            family.activate(rule, &self.ctx(step, xb.len() / self.d_in), &pre, &mut code);
            let base = out.idx.len() as u32;
            out.offsets
                .extend(code.offsets[1..].iter().map(|&o| o + base));
            out.idx.extend_from_slice(&code.idx);
            out.val.extend_from_slice(&code.val);
            out.pre.extend_from_slice(&code.pre);
        }
        debug_assert_eq!(out.rows(), rows);
        Ok(out)
    }

    /// `x_hat = b_dec + Σ_{z ≠ 0} z_j W_dec[j]` per row of `code`.
    pub fn decode(&self, code: &SlotCode) -> Result<Vec<f32>, KernelError> {
        if let Some(&j) = code.idx.iter().find(|&&j| j as usize >= self.d_sae) {
            return Err(KernelError::Mismatch {
                what: "decode".into(),
                detail: format!("a slot selects latent {j} but d_sae is {}", self.d_sae),
            });
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
                        if v != 0.0 {
                            axpy(
                                row,
                                v,
                                &self.w_dec[j as usize * d_in..(j as usize + 1) * d_in],
                            );
                        }
                    }
                }
            });
        Ok(out)
    }

    /// Adds each level's reconstruction of the rows `x` (coded as `code`) to its accumulator: level `c` decodes
    /// the slots of levels `<= c`, built up level by level in one buffer.
    fn accumulate_levels(
        &self,
        nest: &Nesting,
        code: &SlotCode,
        x: &[f32],
        accs: &mut [ReconstructionAccumulator],
    ) -> Result<(), KernelError> {
        let d_in = self.d_in;
        let mut x_hat = vec![0f32; x.len()];
        x_hat
            .par_chunks_mut(d_in)
            .for_each(|row| row.copy_from_slice(&self.b_dec));
        for (lv, a) in accs.iter_mut().enumerate() {
            x_hat
                .par_chunks_mut(d_in * ROW_CHUNK)
                .enumerate()
                .for_each(|(c, block)| {
                    for (i, row) in block.chunks_exact_mut(d_in).enumerate() {
                        let r = c * ROW_CHUNK + i;
                        let start = code.offsets[r] as usize;
                        for s in code.range(r) {
                            let (j, v) = (code.idx[s], code.val[s]);
                            if v != 0.0 && nest.level(j, s - start) == lv {
                                let w = &self.w_dec[j as usize * d_in..(j as usize + 1) * d_in];
                                axpy(row, v, w);
                            }
                        }
                    }
                });
            a.add(x, &x_hat)?;
        }
        Ok(())
    }

    /// Metrics on `x` under the inference rule (MSE, FVU, L0, dead fraction), streamed in blocks; `figures` gets
    /// the family's figures. When the family's training rule differs (`train_rule_l0`), the L0 of the training
    /// rule on the same blocks is added as the figure `l0_train_rule`.
    pub fn evaluate<F: Family + ?Sized>(
        &self,
        family: &F,
        step: u64,
        x: &[f32],
        train_rule_l0: bool,
    ) -> Result<EvalMetrics, KernelError> {
        let rows = self.check_rows("x", x)?;
        let mut acc = ReconstructionAccumulator::new(self.d_in);
        let mut fired = vec![false; self.d_sae];
        let (mut nnz, mut nnz_train) = (0usize, 0usize);
        let (mut xc, mut pre, mut code) = (Vec::new(), Vec::new(), SlotCode::default());
        let nest = family.nesting();
        let mut level_acc: Vec<ReconstructionAccumulator> = nest.map_or(Vec::new(), |n| {
            (0..n.count())
                .map(|_| ReconstructionAccumulator::new(self.d_in))
                .collect()
        });
        for xb in x.chunks(EVAL_BLOCK * self.d_in) {
            self.pre_acts(xb, &mut xc, &mut pre);
            let ctx = self.ctx(step, xb.len() / self.d_in);
            if train_rule_l0 {
                family.activate(Rule::Train, &ctx, &pre, &mut code);
                nnz_train += code.nnz();
            }
            family.activate(Rule::Infer, &ctx, &pre, &mut code);
            let x_hat = self.decode(&code)?;
            acc.add(xb, &x_hat)?;
            if let Some(n) = nest {
                self.accumulate_levels(n, &code, xb, &mut level_acc)?;
            }
            for (&j, &v) in code.idx.iter().zip(&code.val) {
                if v != 0.0 {
                    fired[j as usize] = true;
                }
            }
            nnz += code.nnz();
        }
        let mut figures = Vec::new();
        if train_rule_l0 {
            figures.push(("l0_train_rule".to_string(), nnz_train as f64 / rows as f64));
        }
        if let Some(n) = nest {
            for (name, a) in n.figure_names.iter().zip(level_acc) {
                figures.push((name.clone(), a.finish().fvu));
            }
        }
        figures.extend(family.figures(&self.fam));
        Ok(EvalMetrics {
            rows,
            reconstruction: acc.finish(),
            l0: nnz as f64 / rows as f64,
            dead_fraction: fired.iter().filter(|&&f| !f).count() as f64 / self.d_sae as f64,
            figures,
        })
    }
}

/// Loss parts of one step, in the engine's units (summed over d_in, mean over rows).
#[derive(Debug, Clone, PartialEq)]
pub struct StepLoss {
    /// Reconstruction loss (of the full reconstruction, for a nested family too).
    pub mse_loss: f64,
    /// A nested family's objective `Σ_c w_c L_c` (which replaces `mse_loss` in [`StepLoss::total`]); `None`
    /// otherwise.
    pub nested_mse: Option<f64>,
    /// A nested family's per-level reconstruction losses `L_c` (empty otherwise).
    pub levels: Vec<f64>,
    /// Weighted AuxK loss (0 when off or nothing is dead).
    pub aux_loss: f64,
    /// The family's terms.
    pub family: Vec<(&'static str, f64)>,
    /// Mean nonzero latents per row under the training rule.
    pub l0: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

impl StepLoss {
    /// The optimised objective.
    pub fn total(&self) -> f64 {
        self.nested_mse.unwrap_or(self.mse_loss)
            + self.aux_loss
            + self.family.iter().map(|(_, v)| v).sum::<f64>()
    }
}

/// Per-latent lists of the slots that use it (a CSC view of a [`SlotCode`]): `entries[start[j]..start[j+1]]`
/// are `(slot, row)` pairs in increasing row order.
#[derive(Debug, Clone, Default)]
struct Csc {
    start: Vec<u32>,
    entries: Vec<(u32, u32)>,
}

impl Csc {
    fn build(&mut self, code: &SlotCode, d_sae: usize) {
        self.start.clear();
        self.start.resize(d_sae + 1, 0);
        for &j in &code.idx {
            self.start[j as usize + 1] += 1;
        }
        for j in 0..d_sae {
            self.start[j + 1] += self.start[j];
        }
        self.entries.clear();
        self.entries.resize(self.start[d_sae] as usize, (0, 0));
        let mut fill: Vec<u32> = self.start[..d_sae].to_vec();
        for r in 0..code.rows() {
            for s in code.range(r) {
                let f = &mut fill[code.idx[s] as usize];
                self.entries[*f as usize] = (s as u32, r as u32);
                *f += 1;
            }
        }
    }

    fn latent(&self, j: usize) -> &[(u32, u32)] {
        &self.entries[self.start[j] as usize..self.start[j + 1] as usize]
    }
}

/// Reusable buffers of one training step.
#[derive(Debug, Default)]
pub struct Workspace {
    xc: Vec<f32>,
    pre: Vec<f32>,
    code: SlotCode,
    aux_code: SlotCode,
    r_main: Vec<f32>,
    r_aux: Vec<f32>,
    dz: Vec<f32>,
    dpre: Vec<f32>,
    g_aux: Vec<f32>,
    row_loss: Vec<f64>,
    row_aux: Vec<f64>,
    row_levels: Vec<f64>,
    dec_norms: Vec<f32>,
    dw_scale: Vec<f32>,
    csc_main: Csc,
    csc_aux: Csc,
    dead_list: Vec<u32>,
}

impl Workspace {
    /// The training code of the last step.
    pub fn code(&self) -> &SlotCode {
        &self.code
    }
    /// Each row's reconstruction loss `||x - x_hat||^2` (summed over d_in) of the last step, training rule.
    pub fn row_loss(&self) -> &[f64] {
        &self.row_loss
    }
}

/// Gradients of every parameter (same layouts as the model, family parameters last).
#[derive(Debug, Clone, PartialEq)]
pub struct Grads {
    /// `W_enc^T, b_enc, W_dec, b_dec, family...`.
    pub tensors: Vec<Vec<f32>>,
}

impl Grads {
    fn zeros(m: &Sae) -> Self {
        let mut tensors = vec![
            vec![0.0; m.w_enc_t.len()],
            vec![0.0; m.d_sae],
            vec![0.0; m.w_dec.len()],
            vec![0.0; m.d_in],
        ];
        tensors.extend(m.fam.iter().map(|p| vec![0.0; p.len()]));
        Self { tensors }
    }
}

/// AuxK's top `k_aux` raw pre-activations among `dead` latents in one row (negative values count; ties keep the
/// lower index), as [`crate::train::AuxKConfig`] states.
fn aux_row(pre_row: &[f32], dead: &[u32], ka: usize, out: &mut crate::family::RowSlots) {
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(ka + 1);
    for &j in dead {
        let v = pre_row[j as usize];
        if v.is_nan() {
            continue;
        }
        if best.len() == ka {
            let last = best[ka - 1];
            // NaN was skipped above, so `<=` is "does not beat the last kept value".
            if v <= last.0 {
                continue;
            }
            best.pop();
        }
        let pos = best.partition_point(|&(bv, _)| bv >= v);
        best.insert(pos, (v, j));
    }
    for (v, j) in best {
        out.push(j, v, v);
    }
}

/// Splits a per-slot vector of `code` into the slots of consecutive chunks of `rows_per_chunk` rows.
fn split_by_rows<'a>(
    v: &'a mut [f32],
    code: &SlotCode,
    rows_per_chunk: usize,
) -> Vec<&'a mut [f32]> {
    let rows = code.rows();
    let mut out = Vec::with_capacity(rows.div_ceil(rows_per_chunk));
    let mut rest = v;
    let mut prev = 0usize;
    for ch in 0..rows.div_ceil(rows_per_chunk) {
        let end = code.offsets[((ch + 1) * rows_per_chunk).min(rows)] as usize;
        let (a, b) = rest.split_at_mut(end - prev);
        out.push(a);
        rest = b;
        prev = end;
    }
    out
}

/// The forward and backward pass of one batch: fills `grads` (overwriting) and returns the loss parts.
/// `frozen_target` replaces AuxK's stop-gradient target `x - x_hat` (gradient checks hold it fixed).
#[allow(clippy::too_many_arguments)]
pub fn loss_and_grads<F: Family + ?Sized>(
    model: &Sae,
    family: &F,
    step: u64,
    x: &[f32],
    dead: Option<(&[bool], AuxKConfig)>,
    ws: &mut Workspace,
    grads: &mut Grads,
    frozen_target: Option<&[f32]>,
) -> Result<StepLoss, KernelError> {
    let rows = model.check_rows("batch", x)?;
    if rows == 0 {
        return Err(KernelError::Mismatch {
            what: "loss_and_grads".into(),
            detail: "the batch has 0 rows; pass at least one row".into(),
        });
    }
    let (d_in, d_sae) = (model.d_in, model.d_sae);
    let ctx = model.ctx(step, rows);
    model.pre_acts(x, &mut ws.xc, &mut ws.pre);
    family.activate(Rule::Train, &ctx, &ws.pre, &mut ws.code);
    // AuxK code: top k_aux raw pre-activations among the dead latents.
    ws.dead_list.clear();
    let aux = dead.filter(|(m, a)| a.coeff > 0.0 && m.iter().any(|&d| d));
    if let Some((mask, _)) = aux {
        ws.dead_list.extend(
            mask.iter()
                .enumerate()
                .filter(|(_, d)| **d)
                .map(|(j, _)| j as u32),
        );
    }
    match aux {
        Some((_, a)) => {
            let dl = &ws.dead_list;
            let ka = a.k_aux.min(dl.len());
            ws.aux_code
                .fill_rows(&ws.pre, d_sae, |_, p, out| aux_row(p, dl, ka, out));
        }
        None => ws.aux_code.clear(rows),
    }
    row_norms(&model.w_dec, d_in, &mut ws.dec_norms);
    let scale = 2.0 / rows as f32;
    let aux_scale = aux.map_or(0.0, |(_, a)| 2.0 * a.coeff / rows as f32);
    let nest = family.nesting();
    // Levels of the nested objective; 1 is the plain `L_rec`, whose residual buffer is one row per data row.
    let levels = nest.map_or(1, Nesting::count);
    ws.r_main.resize(rows * levels * d_in, 0.0);
    ws.r_aux
        .resize(if aux.is_some() { rows * d_in } else { 0 }, 0.0);
    ws.dz.clear();
    ws.dz.resize(ws.code.slots(), 0.0);
    ws.g_aux.clear();
    ws.g_aux.resize(ws.aux_code.slots(), 0.0);
    ws.row_loss.resize(rows, 0.0);
    ws.row_aux.resize(rows, 0.0);
    ws.row_levels
        .resize(if nest.is_some() { rows * levels } else { 0 }, 0.0);
    {
        let w_dec = &model.w_dec;
        let dec_row = |j: u32| &w_dec[j as usize * d_in..(j as usize + 1) * d_in];
        let (code, aux_code) = (&ws.code, &ws.aux_code);
        let n_chunks = rows.div_ceil(ROW_CHUNK);
        let dz_chunks = split_by_rows(&mut ws.dz, code, ROW_CHUNK);
        let ga_chunks = split_by_rows(&mut ws.g_aux, aux_code, ROW_CHUNK);
        let with_aux = aux.is_some();
        let ra_chunks: Vec<&mut [f32]> = if with_aux {
            ws.r_aux.chunks_mut(d_in * ROW_CHUNK).collect()
        } else {
            (0..n_chunks).map(|_| &mut [][..]).collect()
        };
        let lv_chunks: Vec<&mut [f64]> = if nest.is_some() {
            ws.row_levels.chunks_mut(levels * ROW_CHUNK).collect()
        } else {
            (0..n_chunks).map(|_| &mut [][..]).collect()
        };
        // AuxK of row `r` against the full residual `full = x_hat - x` (unscaled): its loss, `ra_row` (the scaled
        // AuxK residual) and the AuxK slots' gradients.
        let aux_part = |r: usize,
                        full: &[f32],
                        e_hat: &mut [f32],
                        ra_row: &mut [f32],
                        ga: &mut [f32],
                        abase| {
            e_hat.fill(0.0);
            let (aidx, aval) = aux_code.row(r);
            for (&j, &v) in aidx.iter().zip(aval) {
                axpy(e_hat, v, dec_row(j));
            }
            let mut s = 0f64;
            for t in 0..d_in {
                let target = match frozen_target {
                    Some(ft) => ft[r * d_in + t],
                    None => -full[t],
                };
                let d = e_hat[t] - target;
                s += d as f64 * d as f64;
                ra_row[t] = aux_scale * d;
            }
            for s in aux_code.range(r) {
                ga[s - abase] = dot(ra_row, dec_row(aux_code.idx[s]));
            }
            s
        };
        ws.r_main
            .par_chunks_mut(levels * d_in * ROW_CHUNK)
            .zip(ws.row_loss.par_chunks_mut(ROW_CHUNK))
            .zip(ws.row_aux.par_chunks_mut(ROW_CHUNK))
            .zip(dz_chunks.into_par_iter())
            .zip(ga_chunks.into_par_iter())
            .zip(ra_chunks.into_par_iter())
            .zip(lv_chunks.into_par_iter())
            .enumerate()
            .for_each(|(c, ((((((rm, rl), ral), dz), ga), ra), rlv))| {
                let mut e_hat = vec![0f32; if with_aux { d_in } else { 0 }];
                let (mut run, mut acc) = match nest {
                    Some(_) => (vec![0f32; d_in], vec![0f32; d_in]),
                    None => (Vec::new(), Vec::new()),
                };
                let base = code.offsets[c * ROW_CHUNK] as usize;
                let abase = aux_code.offsets[c * ROW_CHUNK] as usize;
                for i in 0..rl.len() {
                    let r = c * ROW_CHUNK + i;
                    let xr = &x[r * d_in..(r + 1) * d_in];
                    let ra_row: &mut [f32] = if with_aux {
                        &mut ra[i * d_in..(i + 1) * d_in]
                    } else {
                        &mut []
                    };
                    let Some(nest) = nest else {
                        let res = &mut rm[i * d_in..(i + 1) * d_in];
                        for ((o, &b), &xv) in res.iter_mut().zip(&model.b_dec).zip(xr) {
                            *o = b - xv;
                        }
                        let (idx, val) = code.row(r);
                        for (&j, &v) in idx.iter().zip(val) {
                            if v != 0.0 {
                                axpy(res, v, dec_row(j));
                            }
                        }
                        rl[i] = res.iter().map(|&e| e as f64 * e as f64).sum();
                        ral[i] = if with_aux {
                            aux_part(r, res, &mut e_hat, ra_row, ga, abase)
                        } else {
                            0.0
                        };
                        for v in res.iter_mut() {
                            *v *= scale;
                        }
                        for s in code.range(r) {
                            dz[s - base] = dot(res, dec_row(code.idx[s]));
                        }
                        continue;
                    };
                    // Nested levels: decode each level's slots into its own buffer, turn the buffers into the
                    // level residuals e_c = x_hat_c - x by a running sum, then into R_c = Σ_{c' >= c} w_c' e_c' by
                    // a suffix sum (see `Nesting`): O(levels · d_in) per row on top of the decode.
                    let rb = &mut rm[i * levels * d_in..(i + 1) * levels * d_in];
                    rb.fill(0.0);
                    let start = code.offsets[r] as usize;
                    for s in code.range(r) {
                        let v = code.val[s];
                        if v != 0.0 {
                            let lv = nest.level(code.idx[s], s - start);
                            axpy(&mut rb[lv * d_in..(lv + 1) * d_in], v, dec_row(code.idx[s]));
                        }
                    }
                    for ((o, &b), &xv) in run.iter_mut().zip(&model.b_dec).zip(xr) {
                        *o = b - xv;
                    }
                    for (lv, buf) in rb.chunks_exact_mut(d_in).enumerate() {
                        let mut sq = 0f64;
                        for (o, e) in buf.iter_mut().zip(run.iter_mut()) {
                            *e += *o;
                            *o = *e;
                            sq += *e as f64 * *e as f64;
                        }
                        rlv[i * levels + lv] = sq;
                    }
                    rl[i] = rlv[i * levels + levels - 1];
                    ral[i] = if with_aux {
                        aux_part(r, &run, &mut e_hat, ra_row, ga, abase)
                    } else {
                        0.0
                    };
                    acc.fill(0.0);
                    for (buf, &w) in rb.chunks_exact_mut(d_in).zip(&nest.weights).rev() {
                        for (o, a) in buf.iter_mut().zip(acc.iter_mut()) {
                            *a += w * *o;
                            *o = scale * *a;
                        }
                    }
                    for s in code.range(r) {
                        let lv = nest.level(code.idx[s], s - start);
                        dz[s - base] = dot(&rb[lv * d_in..(lv + 1) * d_in], dec_row(code.idx[s]));
                    }
                }
            });
    }
    let n = rows as f64;
    ws.dw_scale.clear();
    ws.dw_scale.resize(d_sae, 0.0);
    let fam_terms = family.loss_terms(
        &ws.code,
        &mut LossCtx {
            step: ctx,
            dec_norms: &ws.dec_norms,
            dz: &mut ws.dz,
            dw_dec_scale: &mut ws.dw_scale,
        },
    );
    ws.dpre.clear();
    ws.dpre.resize(ws.code.slots(), 0.0);
    for g in &mut grads.tensors[4..] {
        g.fill(0.0);
    }
    {
        let (_, fam_grads) = grads.tensors.split_at_mut(4);
        family.pre_grad(
            &ws.code,
            &mut PreGradCtx {
                step: ctx,
                dz: &ws.dz,
                dpre: &mut ws.dpre,
                param_grads: fam_grads,
            },
        );
    }
    // Per-level losses summed over rows in row order, then weighted in level order.
    let level_losses: Vec<f64> = (0..if nest.is_some() { levels } else { 0 })
        .map(|lv| {
            (0..rows)
                .map(|r| ws.row_levels[r * levels + lv])
                .sum::<f64>()
                / n
        })
        .collect();
    let loss = StepLoss {
        mse_loss: ws.row_loss.iter().sum::<f64>() / n,
        nested_mse: nest.map(|nt| {
            level_losses
                .iter()
                .zip(&nt.weights)
                .map(|(l, &w)| w as f64 * l)
                .sum()
        }),
        levels: level_losses,
        aux_loss: aux.map_or(0.0, |(_, a)| {
            a.coeff as f64 * ws.row_aux.iter().sum::<f64>() / n
        }),
        family: fam_terms,
        l0: ws.code.nnz() as f64 / n,
        grad_norm: 0.0,
    };
    backward(model, nest, rows, aux.is_some(), ws, grads);
    Ok(loss)
}

fn backward(
    model: &Sae,
    nest: Option<&Nesting>,
    rows: usize,
    with_aux: bool,
    ws: &mut Workspace,
    grads: &mut Grads,
) {
    let levels = nest.map_or(1, Nesting::count);
    let (d_in, d_sae) = (model.d_in, model.d_sae);
    ws.csc_main.build(&ws.code, d_sae);
    if with_aux {
        ws.csc_aux.build(&ws.aux_code, d_sae);
    } else {
        ws.csc_aux.start.clear();
        ws.csc_aux.start.resize(d_sae + 1, 0);
        ws.csc_aux.entries.clear();
    }
    let ws = &*ws;
    let [g_enc, g_benc, g_dec, g_bdec, ..] = &mut grads.tensors[..] else {
        unreachable!("four shared gradients")
    };
    g_dec
        .par_chunks_mut(d_in * LATENT_CHUNK)
        .zip(g_enc.par_chunks_mut(d_in * LATENT_CHUNK))
        .zip(g_benc.par_chunks_mut(LATENT_CHUNK))
        .enumerate()
        .for_each(|(c, ((gd, ge), gb))| {
            gd.fill(0.0);
            ge.fill(0.0);
            for (i, gbj) in gb.iter_mut().enumerate() {
                let j = c * LATENT_CHUNK + i;
                let gd_row = &mut gd[i * d_in..(i + 1) * d_in];
                let ge_row = &mut ge[i * d_in..(i + 1) * d_in];
                let mut bsum = 0f32;
                for &(s, r) in ws.csc_main.latent(j) {
                    let (s, r) = (s as usize, r as usize);
                    let (z, g) = (ws.code.val[s], ws.dpre[s]);
                    if z == 0.0 && g == 0.0 {
                        continue;
                    }
                    // The slot's residual: its level's R_c for a nested family, the row's residual otherwise.
                    let lv = nest.map_or(0, |n| n.level(j as u32, s - ws.code.offsets[r] as usize));
                    let res = (r * levels + lv) * d_in;
                    axpy2(
                        gd_row,
                        z,
                        &ws.r_main[res..res + d_in],
                        ge_row,
                        g,
                        &ws.xc[r * d_in..(r + 1) * d_in],
                    );
                    bsum += g;
                }
                for &(s, r) in ws.csc_aux.latent(j) {
                    let (s, r) = (s as usize, r as usize);
                    let g = ws.g_aux[s];
                    axpy2(
                        gd_row,
                        ws.aux_code.val[s],
                        &ws.r_aux[r * d_in..(r + 1) * d_in],
                        ge_row,
                        g,
                        &ws.xc[r * d_in..(r + 1) * d_in],
                    );
                    bsum += g;
                }
                let cj = ws.dw_scale[j];
                if cj != 0.0 {
                    axpy(gd_row, cj, &model.w_dec[j * d_in..(j + 1) * d_in]);
                }
                *gbj = bsum;
            }
        });
    g_bdec.fill(0.0);
    // b_dec is in every level's reconstruction, so its gradient is level 0's R_0 = Σ_c w_c e_c.
    for r in 0..rows {
        let res = r * levels * d_in;
        for (o, &v) in g_bdec.iter_mut().zip(&ws.r_main[res..res + d_in]) {
            *o += v;
        }
    }
    for (&g, enc_row) in g_benc.iter().zip(model.w_enc_t.chunks_exact(d_in)) {
        if g != 0.0 {
            axpy(g_bdec, -g, enc_row);
        }
    }
}

/// Global L2 norm of all gradients, summed in fixed chunks and a fixed order.
fn grad_norm(grads: &Grads) -> f64 {
    grads
        .tensors
        .iter()
        .map(|t| {
            t.par_chunks(NORM_CHUNK)
                .map(|c| c.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
                .collect::<Vec<f64>>()
                .into_iter()
                .sum::<f64>()
        })
        .sum::<f64>()
        .sqrt()
}

/// Optimiser state and estimated family state of a run after some steps: with the model, what continuing bit
/// for bit needs.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySnapshot {
    /// Optimiser steps taken.
    pub steps_done: u64,
    /// Adam moments of `W_enc^T, b_enc, W_dec, b_dec, family...`.
    pub moments: Vec<Moments>,
    /// Steps since each latent last fired.
    pub steps_since_fired: Vec<u64>,
    /// [`Family::state`].
    pub family_state: Vec<(String, Vec<f64>)>,
}

/// A training run of any family on the shared engine. Implements [`crate::trainer::Session`].
pub struct FamilyTrainer<F: Family> {
    config: EngineConfig,
    pool: rayon::ThreadPool,
    model: Sae,
    family: F,
    adam: Adam,
    moments: Vec<Moments>,
    grads: Grads,
    ws: Workspace,
    dead: DeadTracker,
    dead_mask: Vec<bool>,
    fired: Vec<bool>,
    train_rule_l0: bool,
    last: Option<StepLoss>,
}

impl<F: Family> std::fmt::Debug for FamilyTrainer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FamilyTrainer")
            .field("family", &self.family.name())
            .field("config", &self.config)
            .field("steps_done", &self.adam.step_count())
            .finish()
    }
}

impl<F: Family> FamilyTrainer<F> {
    /// A fresh run on rows of width `d_in` (b_dec zero until [`FamilyTrainer::init_b_dec`]).
    /// `train_rule_l0`: evaluations also report the training rule's L0 (families whose rules differ).
    pub fn new(
        config: EngineConfig,
        family: F,
        d_in: usize,
        train_rule_l0: bool,
    ) -> Result<Self, KernelError> {
        config.validate()?;
        let model = Sae::init(&family, d_in, config.d_sae, config.seed, config.init)?;
        Self::with_model(config, family, model, train_rule_l0)
    }

    fn with_model(
        config: EngineConfig,
        family: F,
        model: Sae,
        train_rule_l0: bool,
    ) -> Result<Self, KernelError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .build()
            .map_err(|e| KernelError::ThreadPool {
                threads: config.threads,
                reason: e.to_string(),
            })?;
        if let Some(n) = family.nesting() {
            n.validate(model.d_sae)
                .map_err(|detail| KernelError::Mismatch {
                    what: format!("{} nesting", family.name()),
                    detail,
                })?;
        }
        let adam = Adam::new(config.adam)?;
        let grads = Grads::zeros(&model);
        let moments = grads
            .tensors
            .iter()
            .map(|t| Moments::zeros(t.len()))
            .collect();
        let d_sae = model.d_sae;
        Ok(Self {
            dead: DeadTracker::new(d_sae, config.dead_window),
            dead_mask: Vec::new(),
            fired: vec![false; d_sae],
            ws: Workspace::default(),
            config,
            pool,
            model,
            family,
            adam,
            moments,
            grads,
            train_rule_l0,
            last: None,
        })
    }

    /// Continues exactly from `model` and `snapshot` (written by an earlier run of the same config).
    pub fn from_snapshot(
        config: EngineConfig,
        mut family: F,
        model: Sae,
        snapshot: FamilySnapshot,
        train_rule_l0: bool,
    ) -> Result<Self, KernelError> {
        config.validate()?;
        if model.d_sae != config.d_sae {
            return Err(KernelError::Config {
                field: "d_sae",
                value: config.d_sae.to_string(),
                reason: format!(
                    "the resumed checkpoint has d_sae {}; train it with that",
                    model.d_sae
                ),
            });
        }
        family
            .restore_state(&snapshot.family_state)
            .map_err(|detail| KernelError::Mismatch {
                what: "family state".into(),
                detail,
            })?;
        let mut t = Self::with_model(config, family, model, train_rule_l0)?;
        if snapshot.moments.len() != t.moments.len() {
            return Err(KernelError::Mismatch {
                what: "adam state".into(),
                detail: format!(
                    "{} moment tensors but the model has {} parameters",
                    snapshot.moments.len(),
                    t.moments.len()
                ),
            });
        }
        for (i, (m, g)) in snapshot.moments.iter().zip(&t.grads.tensors).enumerate() {
            check_len(&format!("adam moments {i}"), m.m.len(), 1, g.len())?;
            check_len(&format!("adam moments {i}"), m.v.len(), 1, g.len())?;
        }
        check_len(
            "dead-latent counters",
            snapshot.steps_since_fired.len(),
            1,
            t.model.d_sae,
        )?;
        t.adam = Adam::with_step(t.config.adam, snapshot.steps_done)?;
        t.moments = snapshot.moments;
        t.dead = DeadTracker::from_counts(snapshot.steps_since_fired, t.config.dead_window);
        Ok(t)
    }

    /// Sets `b_dec` from the training rows by `config.b_dec_init`. Only before the first step.
    pub fn init_b_dec(&mut self, rows: &[f32]) -> Result<(), KernelError> {
        if self.adam.step_count() != 0 {
            return Err(KernelError::Mismatch {
                what: "init_b_dec".into(),
                detail: format!(
                    "the run has taken {} steps; b_dec is initialised before the first",
                    self.adam.step_count()
                ),
            });
        }
        let (method, d_in) = (self.config.b_dec_init, self.model.d_in);
        let b = self.pool.install(|| initial_b_dec(method, rows, d_in))?;
        self.model.b_dec.copy_from_slice(&b);
        Ok(())
    }

    /// The model as it is now.
    pub fn model(&self) -> &Sae {
        &self.model
    }
    /// The family (with its estimated state).
    pub fn family(&self) -> &F {
        &self.family
    }
    /// The engine config.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
    /// Optimiser steps taken (the lineage's).
    pub fn steps_done(&self) -> u64 {
        self.adam.step_count()
    }
    /// The loss parts of the last step.
    pub fn last_loss(&self) -> Option<&StepLoss> {
        self.last.as_ref()
    }
    /// The training code of the last step.
    pub fn last_code(&self) -> &SlotCode {
        self.ws.code()
    }
    /// Each row's reconstruction loss `||x - x_hat||^2` (summed over d_in) in the last step, under the training
    /// rule and before that step's update (RouteSAE's router learns from it).
    pub fn last_row_loss(&self) -> &[f64] {
        self.ws.row_loss()
    }

    /// The optimiser, dead-latent and family state.
    pub fn snapshot(&self) -> FamilySnapshot {
        FamilySnapshot {
            steps_done: self.adam.step_count(),
            moments: self.moments.clone(),
            steps_since_fired: self.dead.steps_since_fired().to_vec(),
            family_state: self
                .family
                .state()
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
        }
    }

    /// One optimiser step on `batch` (`[rows, d_in]`).
    pub fn step(&mut self, batch: &[f32]) -> Result<StepLoss, KernelError> {
        let Self {
            config,
            pool,
            model,
            family,
            adam,
            moments,
            grads,
            ws,
            dead,
            dead_mask,
            fired,
            last,
            ..
        } = self;
        pool.install(|| {
            let step = adam.step_count();
            let aux = config.aux_k.filter(|a| a.coeff > 0.0).map(|a| {
                dead.dead_mask(dead_mask);
                (dead_mask.as_slice(), a)
            });
            let mut loss = loss_and_grads(model, &*family, step, batch, aux, ws, grads, None)?;
            let norm = grad_norm(grads);
            loss.grad_norm = norm;
            if let Some(c) = config.grad_clip
                && norm > c as f64
            {
                // As torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6).
                let s = (c as f64 / (norm + 1e-6)) as f32;
                for t in &mut grads.tensors {
                    t.par_chunks_mut(NORM_CHUNK)
                        .for_each(|ch| ch.iter_mut().for_each(|v| *v *= s));
                }
            }
            adam.begin_step();
            for (p, (g, m)) in model
                .params_mut()
                .into_iter()
                .zip(grads.tensors.iter().zip(moments.iter_mut()))
            {
                adam.update(p, g, m)?;
            }
            if family.decoder_norm() == DecoderNorm::UnitEachStep {
                normalize_rows(&mut model.w_dec, model.d_in, 1.0);
            }
            family.project(&mut model.fam);
            fired.fill(false);
            for (&j, &v) in ws.code.idx.iter().zip(&ws.code.val) {
                if v != 0.0 {
                    fired[j as usize] = true;
                }
            }
            dead.record(fired);
            let ctx = model.ctx(step, batch.len() / model.d_in);
            family.observe(&ws.code, &ctx);
            *last = Some(loss.clone());
            Ok(loss)
        })
    }

    /// Metrics of the current model on `x` (inference rule), on this run's pool.
    pub fn evaluate(&self, x: &[f32]) -> Result<EvalMetrics, KernelError> {
        self.pool.install(|| {
            self.model
                .evaluate(&self.family, self.adam.step_count(), x, self.train_rule_l0)
        })
    }

    /// Share of latents not fired in the last `dead_window` steps.
    pub fn train_dead_fraction(&self) -> f64 {
        self.dead.dead_fraction()
    }

    /// The first parameter holding a NaN or infinity, if any.
    pub fn non_finite_parameter(&self) -> Option<&'static str> {
        let m = &self.model;
        let bad = |v: &[f32]| {
            v.par_chunks(1 << 16)
                .any(|c| c.iter().any(|x| !x.is_finite()))
        };
        self.pool.install(|| {
            let shared = [
                ("w_enc", m.w_enc_t.as_slice()),
                ("b_enc", m.b_enc.as_slice()),
                ("w_dec", m.w_dec.as_slice()),
                ("b_dec", m.b_dec.as_slice()),
            ];
            shared
                .into_iter()
                .chain(
                    m.fam_names
                        .iter()
                        .copied()
                        .zip(m.fam.iter().map(Vec::as_slice)),
                )
                .find(|(_, v)| bad(v))
                .map(|(n, _)| n)
        })
    }

    /// Runs `f` on this run's thread pool (plugins use it for their own parallel work).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }
}

impl<F: Family> crate::trainer::Session for FamilyTrainer<F> {
    fn step(&mut self, batch: &[f32]) -> Result<crate::trainer::StepStats, KernelError> {
        let loss = FamilyTrainer::step(self, batch)?;
        let d = self.model.d_in as f64;
        // A nested family optimises its weighted sum of level losses in place of the plain reconstruction loss;
        // `mse` (the full reconstruction's) stays the stream's `mse` either way.
        let mut terms = match loss.nested_mse {
            Some(v) => vec![("nested_mse", v / d)],
            None => vec![("mse", loss.mse_loss / d)],
        };
        // Reported whenever AuxK is configured, weight 0 (off) included, so the stream's terms do not depend on it.
        if self.config.aux_k.is_some() {
            terms.push(("aux", loss.aux_loss / d));
        }
        terms.extend(loss.family.iter().map(|&(n, v)| (n, v / d)));
        Ok(crate::trainer::StepStats {
            loss: terms,
            mse: loss.mse_loss / d,
            l0: loss.l0,
        })
    }
    fn evaluate(&self, x: &[f32]) -> Result<EvalMetrics, KernelError> {
        FamilyTrainer::evaluate(self, x)
    }
    fn steps_done(&self) -> u64 {
        FamilyTrainer::steps_done(self)
    }
    fn non_finite_parameter(&self) -> Option<&'static str> {
        FamilyTrainer::non_finite_parameter(self)
    }
    fn train_dead_fraction(&self) -> f64 {
        FamilyTrainer::train_dead_fraction(self)
    }
}

/// The reconstruction metrics of `x_hat` against `x` (for tests and families that decode themselves).
pub fn reconstruction(x: &[f32], x_hat: &[f32], d: usize) -> Result<Reconstruction, KernelError> {
    crate::metrics::reconstruction(x, x_hat, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::{BatchTopK, TopK};

    fn data(rows: usize, d_in: usize, seed: u64) -> Vec<f32> {
        let mut r = SplitMix64::new(seed);
        (0..rows * d_in)
            .map(|i| r.normal() as f32 + 0.1 * (i % d_in) as f32)
            .collect()
    }

    /// A small model with every parameter nonzero and generic.
    fn tiny<F: Family>(f: &F, d_in: usize, d_sae: usize) -> Sae {
        let mut m = Sae::init(f, d_in, d_sae, 3, InitConfig::default()).unwrap();
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
        m
    }

    /// Central differences of the total loss against the analytic gradients of every parameter, with the
    /// selection (and AuxK's stop-gradient target) held fixed.
    fn check_gradients<F: Family>(
        f: &F,
        model: &Sae,
        x: &[f32],
        dead: Option<(&[bool], AuxKConfig)>,
    ) -> usize {
        let mut ws = Workspace::default();
        let mut grads = Grads::zeros(model);
        let base = loss_and_grads(model, f, 0, x, dead, &mut ws, &mut grads, None).unwrap();
        assert!(base.mse_loss > 0.0);
        let (code0, aux0) = (ws.code.clone(), ws.aux_code.clone());
        let x_hat = model.decode(&code0).unwrap();
        let target: Vec<f32> = x.iter().zip(&x_hat).map(|(a, b)| a - b).collect();
        // Per-row latent sets: the order of slots within a row does not change the loss.
        let sets = |c: &SlotCode| -> Vec<Vec<u32>> {
            (0..c.rows())
                .map(|r| {
                    let mut v = c.row(r).0.to_vec();
                    v.sort_unstable();
                    v
                })
                .collect()
        };
        let eps = 3e-3f32;
        let mut checked = 0;
        for (p, grad) in grads.tensors.iter().enumerate() {
            for (i, &an) in grad.iter().enumerate() {
                let eval = |delta: f32| {
                    let mut m = model.clone();
                    m.params_mut()[p][i] += delta;
                    let mut w = Workspace::default();
                    let mut g = Grads::zeros(&m);
                    let l =
                        loss_and_grads(&m, f, 0, x, dead, &mut w, &mut g, Some(&target)).unwrap();
                    assert_eq!(
                        (sets(&w.code), sets(&w.aux_code)),
                        (sets(&code0), sets(&aux0)),
                        "selection changed at parameter {p}[{i}]"
                    );
                    l.total()
                };
                let fd = ((eval(eps) - eval(-eps)) / (2.0 * eps as f64)) as f32;
                assert!(
                    (fd - an).abs() <= 4e-3 + 1e-2 * an.abs(),
                    "parameter {p}[{i}]: analytic {an} vs finite difference {fd}"
                );
                checked += 1;
            }
        }
        checked
    }

    #[test]
    fn topk_gradients_with_auxk_match_central_differences() {
        let f = TopK::new(3, 12);
        let mut model = tiny(&f, 5, 12);
        for j in (5..12).step_by(2) {
            model.b_enc[j] -= 3.0;
        }
        let x = data(7, 5, 1);
        let dead: Vec<bool> = (0..12).map(|j| j >= 4).collect();
        let aux = AuxKConfig {
            k_aux: 2,
            coeff: 0.5,
        };
        let n = check_gradients(&f, &model, &x, Some((&dead, aux)));
        assert_eq!(n, 2 * 5 * 12 + 12 + 5);
    }

    #[test]
    fn batchtopk_gradients_match_central_differences() {
        let f = BatchTopK::new(3, 0.01);
        let model = tiny(&f, 5, 12);
        let x = data(7, 5, 2);
        let mut ws = Workspace::default();
        let mut g = Grads::zeros(&model);
        loss_and_grads(&model, &f, 0, &x, None, &mut ws, &mut g, None).unwrap();
        let l0: Vec<usize> = (0..7).map(|r| ws.code.row_nnz(r)).collect();
        assert_eq!(l0.iter().sum::<usize>(), 21);
        assert!(
            l0.iter().any(|&n| n != 3),
            "the check must cover rows with L0 != k: {l0:?}"
        );
        let dead: Vec<bool> = (0..12).map(|j| j % 3 == 0).collect();
        check_gradients(
            &f,
            &model,
            &x,
            Some((
                &dead,
                AuxKConfig {
                    k_aux: 2,
                    coeff: 0.5,
                },
            )),
        );
    }

    /// A family with a nested objective on top of `inner`'s rule (what sae-matryoshka and sae-hierarchical-topk
    /// build), for the engine's own checks.
    struct Nested<F> {
        inner: F,
        nest: Nesting,
    }

    impl<F: Family> Family for Nested<F> {
        fn name(&self) -> &'static str {
            self.inner.name()
        }
        fn decoder_norm(&self) -> DecoderNorm {
            self.inner.decoder_norm()
        }
        fn nesting(&self) -> Option<&Nesting> {
            Some(&self.nest)
        }
        fn activate(&self, rule: Rule, ctx: &StepCtx<'_>, pre: &[f32], code: &mut SlotCode) {
            self.inner.activate(rule, ctx, pre, code)
        }
        fn saelens_architecture(&self) -> &'static str {
            self.inner.saelens_architecture()
        }
    }

    fn ranks(k: usize) -> Nesting {
        Nesting {
            levels: crate::family::Levels::Ranks(k),
            weights: vec![1.0 / k as f32; k],
            figure_names: (1..=k).map(|i| format!("fvu_k_{i}")).collect(),
        }
    }

    fn prefixes(bounds: &[u32]) -> Nesting {
        Nesting {
            levels: crate::family::Levels::Prefixes(bounds.to_vec()),
            weights: vec![1.0; bounds.len()],
            figure_names: bounds.iter().map(|b| format!("fvu_prefix_{b}")).collect(),
        }
    }

    /// The nested objective computed the naive way: one full decode per level of the code truncated to the
    /// slots of levels <= c (the selection held at `code`), `Σ_c w_c ||x_hat_c - x||² / B`; and each `L_c`.
    fn naive_nested(model: &Sae, nest: &Nesting, code: &SlotCode, x: &[f32]) -> (f64, Vec<f64>) {
        let rows = code.rows();
        let per_level: Vec<f64> = (0..nest.count())
            .map(|lv| {
                let mut t = SlotCode::default();
                t.begin_rows();
                for r in 0..rows {
                    let mut slots = crate::family::RowSlots::default();
                    let start = code.offsets[r] as usize;
                    for s in code.range(r) {
                        if nest.level(code.idx[s], s - start) <= lv {
                            slots.push(code.idx[s], code.val[s], code.pre[s]);
                        }
                    }
                    t.push_row(&slots);
                }
                let x_hat = model.decode(&t).unwrap();
                x_hat
                    .iter()
                    .zip(x)
                    .map(|(a, b)| (a - b) as f64 * (a - b) as f64)
                    .sum::<f64>()
                    / rows as f64
            })
            .collect();
        let total = per_level
            .iter()
            .zip(&nest.weights)
            .map(|(l, &w)| w as f64 * l)
            .sum();
        (total, per_level)
    }

    /// The one-pass nested loss and gradients against the naive per-level decodes: the level losses agree, and
    /// central differences of the naive objective (with the code's values moving with the parameters, its
    /// selection fixed) agree with every analytic gradient. Returns the gradients checked.
    fn check_nested<F: Family>(f: &Nested<F>, model: &Sae, x: &[f32]) -> usize {
        let mut ws = Workspace::default();
        let mut grads = Grads::zeros(model);
        let base = loss_and_grads(model, f, 0, x, None, &mut ws, &mut grads, None).unwrap();
        let code0 = ws.code.clone();
        let (naive, per_level) = naive_nested(model, &f.nest, &code0, x);
        assert!(
            (base.total() - naive).abs() <= 1e-5 * naive,
            "{} vs {naive}",
            base.total()
        );
        for (a, b) in base.levels.iter().zip(&per_level) {
            assert!(
                (a - b).abs() <= 1e-5 * b.max(1e-3),
                "level loss {a} vs naive {b}"
            );
        }
        let eps = 3e-3f32;
        let mut checked = 0;
        for (p, grad) in grads.tensors.iter().enumerate() {
            for (i, &an) in grad.iter().enumerate() {
                let eval = |delta: f32| {
                    let mut m = model.clone();
                    m.params_mut()[p][i] += delta;
                    let code = m.encode(f, Rule::Train, 0, x).unwrap();
                    assert_eq!(
                        code.idx, code0.idx,
                        "selection or order changed at parameter {p}[{i}]"
                    );
                    naive_nested(&m, &f.nest, &code, x).0
                };
                let fd = ((eval(eps) - eval(-eps)) / (2.0 * eps as f64)) as f32;
                assert!(
                    (fd - an).abs() <= 4e-3 + 1e-2 * an.abs(),
                    "parameter {p}[{i}]: analytic {an} vs naive finite difference {fd}"
                );
                checked += 1;
            }
        }
        checked
    }

    #[test]
    fn hierarchical_ranks_one_pass_matches_the_naive_k_decodes() {
        let f = Nested {
            inner: TopK::new(4, 12),
            nest: ranks(4),
        };
        let model = tiny(&f, 5, 12);
        let x = data(7, 5, 3);
        let n = check_nested(&f, &model, &x);
        assert_eq!(n, 2 * 5 * 12 + 12 + 5);
    }

    #[test]
    fn matryoshka_prefixes_one_pass_matches_the_naive_prefix_decodes() {
        let f = Nested {
            inner: BatchTopK::new(4, 0.01),
            nest: prefixes(&[3, 7, 12]),
        };
        let model = tiny(&f, 5, 12);
        let x = data(7, 5, 4);
        check_nested(&f, &model, &x);
    }

    #[test]
    fn nested_gradients_with_auxk_match_central_differences() {
        let f = Nested {
            inner: BatchTopK::new(3, 0.01),
            nest: prefixes(&[4, 12]),
        };
        let model = tiny(&f, 5, 12);
        let x = data(7, 5, 6);
        let dead: Vec<bool> = (0..12).map(|j| j % 3 == 1).collect();
        let aux = AuxKConfig {
            k_aux: 2,
            coeff: 0.5,
        };
        check_gradients(&f, &model, &x, Some((&dead, aux)));
    }

    #[test]
    fn a_nesting_that_does_not_fit_the_model_is_refused_by_name() {
        let cases = [
            (
                prefixes(&[4, 8]),
                "the last prefix width is 8 but d_sae is 12",
            ),
            (
                prefixes(&[6, 4, 12]),
                "must be positive and strictly increasing",
            ),
            (
                Nesting {
                    weights: vec![1.0, f32::NAN],
                    ..prefixes(&[4, 12])
                },
                "level weight NaN is not finite",
            ),
            (
                Nesting {
                    figure_names: vec!["a".into()],
                    ..ranks(2)
                },
                "one figure name per level (has 2 weights, 1 names)",
            ),
        ];
        for (nest, want) in cases {
            let f = Nested {
                inner: TopK::new(2, 12),
                nest,
            };
            let e = FamilyTrainer::new(EngineConfig::new(12), f, 5, false).unwrap_err();
            assert!(e.to_string().contains(want), "{e} lacks {want:?}");
            assert!(e.to_string().contains("topk nesting"), "{e}");
        }
    }

    #[test]
    fn evaluation_reports_each_levels_fvu_and_the_last_is_the_full_fvu() {
        let f = Nested {
            inner: TopK::new(4, 12),
            nest: ranks(4),
        };
        let model = tiny(&f, 5, 12);
        let x = data(40, 5, 8);
        let m = model.evaluate(&f, 0, &x, false).unwrap();
        let names: Vec<&str> = m.figures.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["fvu_k_1", "fvu_k_2", "fvu_k_3", "fvu_k_4"]);
        let fvu: Vec<f64> = m.figures.iter().map(|f| f.1).collect();
        assert!(
            (fvu[3] - m.reconstruction.fvu).abs() < 1e-12,
            "{fvu:?} vs {}",
            m.reconstruction.fvu
        );
        // Against the naive decode of the top-2 slots per row.
        let code = model.encode(&f, Rule::Infer, 0, &x).unwrap();
        let mut t = SlotCode::default();
        t.begin_rows();
        for r in 0..code.rows() {
            let mut slots = crate::family::RowSlots::default();
            for s in code.range(r).take(2) {
                slots.push(code.idx[s], code.val[s], code.pre[s]);
            }
            t.push_row(&slots);
        }
        let two = reconstruction(&x, &model.decode(&t).unwrap(), 5).unwrap();
        assert!((two.fvu - fvu[1]).abs() < 1e-9, "{} vs {}", two.fvu, fvu[1]);
    }

    // TopK on the engine against the pre-engine TopK trainer's weights: tests/suite/golden.rs.

    #[test]
    fn weights_are_bit_identical_for_any_thread_count_and_resume_is_exact() {
        let (d_in, d_sae, batch) = (16, 64, 96);
        let x = data(600, d_in, 5);
        let run = |threads: usize, split: Option<u64>| {
            let mut cfg = EngineConfig::new(d_sae);
            cfg.batch = batch;
            cfg.threads = threads;
            cfg.dead_window = 2;
            cfg.grad_clip = Some(0.5);
            cfg.aux_k = Some(AuxKConfig {
                k_aux: 8,
                coeff: 0.1,
            });
            let mut t =
                FamilyTrainer::new(cfg.clone(), BatchTopK::new(4, 0.01), d_in, true).unwrap();
            for s in 0..12u64 {
                if split == Some(s) {
                    let snap = t.snapshot();
                    let model = t.model().clone();
                    t = FamilyTrainer::from_snapshot(
                        cfg.clone(),
                        BatchTopK::new(4, 0.01),
                        model,
                        snap,
                        true,
                    )
                    .unwrap();
                }
                let i = crate::batch_start(s, batch, 600);
                t.step(&x[i * d_in..(i + batch) * d_in]).unwrap();
            }
            (t.model().clone(), t.family().threshold())
        };
        let one = run(1, None);
        assert!(one.1 > 0.0);
        assert_eq!(one, run(2, None));
        assert_eq!(one, run(3, None));
        assert_eq!(one, run(2, Some(5)));
    }

    #[test]
    fn gradient_clipping_bounds_the_step() {
        let f = TopK::new(2, 8);
        let model = tiny(&f, 4, 8);
        let x: Vec<f32> = data(16, 4, 6).iter().map(|v| v * 50.0).collect();
        let mut ws = Workspace::default();
        let mut g = Grads::zeros(&model);
        loss_and_grads(&model, &f, 0, &x, None, &mut ws, &mut g, None).unwrap();
        let n = grad_norm(&g);
        assert!(n > 1.0, "{n}");
        let mut cfg = EngineConfig::new(8);
        cfg.batch = 16;
        cfg.grad_clip = Some(1.0);
        let mut t = FamilyTrainer::new(cfg, TopK::new(2, 8), 4, false).unwrap();
        let loss = t.step(&x).unwrap();
        assert!(loss.grad_norm > 1.0);
        let e = EngineConfig {
            grad_clip: Some(0.0),
            ..EngineConfig::new(8)
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "config field `grad_clip` = 0 is invalid: must be a finite number > 0 (or absent: no clipping)"
        );
    }
}
