//! The toy model and its training: c = (a + b) mod p from the tokens a and b, with the answer c never an input.
//!
//! Architecture (reference upstream-stress-evals.md §5.1(a)): h = E[a] + E[b]; r = h + W_out·ReLU(W_in·h + b_in);
//! logits = Uᵀr over the p answers; cross-entropy on c. With `leaky_parity` the answer is also an input,
//! h = E[a] + E[b] + A[c] through a separate answer-position embedding A, which reproduces upstream's leak (the
//! network only has to copy; §0.2) and exists for parity experiments only.
//!
//! Training is full-batch AdamW with decoupled weight decay (Loshchilov & Hutter 2019): every parameter is first
//! scaled by (1 − lr·wd), then moved by the Adam step (as PyTorch's `AdamW`). Strong decay on a fraction of the
//! pairs is the grokking regime of Power et al. 2022 and Nanda et al. 2023.
//!
//! [`forward`] computes the layers one by one (it writes the activation banks); training and the held-out evaluation
//! run through the token tables of [`crate::step`], the same function in a third of the arithmetic.
//!
//! Layouts, row-major f32: E, A [p, d]; W_in [width, d]; b_in [width]; W_out [d, width]; U [d, p].

use husai_kernels::KernelError;
use husai_kernels::adam::{Adam, AdamConfig, Moments};
use husai_kernels::gemm::{MatMut, MatRef, matmul};
use husai_kernels::rng::SplitMix64;

use crate::step::{Rows, Step};

/// Hyper-parameters and sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct ToyConfig {
    pub p: usize,
    pub d_model: usize,
    pub width: usize,
    pub train_fraction: f64,
    pub steps: usize,
    pub lr: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub seed: u64,
    pub leaky_parity: bool,
    /// Held-out accuracy is measured every this many steps (and at the last).
    pub eval_every: usize,
}

impl ToyConfig {
    /// The defaults of the reference calibration (§5.1(a), p = 113 row).
    pub fn new(seed: u64) -> Self {
        ToyConfig {
            p: 113,
            d_model: 128,
            width: 512,
            train_fraction: 0.3,
            steps: 2000,
            lr: 3e-3,
            weight_decay: 1.0,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            seed,
            leaky_parity: false,
            eval_every: 50,
        }
    }
}

/// The parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ToyModel {
    pub p: usize,
    pub d: usize,
    pub width: usize,
    pub embed: Vec<f32>,
    /// The answer-position embedding (leaky parity only; empty otherwise).
    pub answer_embed: Vec<f32>,
    pub w_in: Vec<f32>,
    pub b_in: Vec<f32>,
    pub w_out: Vec<f32>,
    pub unembed: Vec<f32>,
}

/// Every parameter tensor in a fixed order, for the optimiser and the gradients.
pub const N_TENSORS: usize = 6;

impl ToyModel {
    /// PyTorch-like initialisation: embeddings N(0, 1/d); linear layers U(±1/√fan_in), as `nn.Linear`.
    pub fn init(cfg: &ToyConfig) -> Self {
        let (p, d, w) = (cfg.p, cfg.d_model, cfg.width);
        let mut rng = SplitMix64::stream(cfg.seed, 1);
        let mut normal = |n: usize, std: f64| -> Vec<f32> {
            (0..n).map(|_| (rng.normal() * std) as f32).collect()
        };
        let embed = normal(p * d, 1.0 / (d as f64).sqrt());
        let answer_embed = if cfg.leaky_parity {
            normal(p * d, 1.0 / (d as f64).sqrt())
        } else {
            Vec::new()
        };
        let unembed = normal(d * p, 1.0 / (d as f64).sqrt());
        let mut rng = SplitMix64::stream(cfg.seed, 2);
        let mut uniform = |n: usize, bound: f64| -> Vec<f32> {
            (0..n)
                .map(|_| ((rng.uniform_f64() * 2.0 - 1.0) * bound) as f32)
                .collect()
        };
        let w_in = uniform(w * d, 1.0 / (d as f64).sqrt());
        let b_in = uniform(w, 1.0 / (d as f64).sqrt());
        let w_out = uniform(d * w, 1.0 / (w as f64).sqrt());
        ToyModel {
            p,
            d,
            width: w,
            embed,
            answer_embed,
            w_in,
            b_in,
            w_out,
            unembed,
        }
    }

    fn tensors_mut(&mut self) -> [&mut Vec<f32>; N_TENSORS] {
        [
            &mut self.embed,
            &mut self.answer_embed,
            &mut self.w_in,
            &mut self.b_in,
            &mut self.w_out,
            &mut self.unembed,
        ]
    }

    pub(crate) fn zeros_like(&self) -> [Vec<f32>; N_TENSORS] {
        [
            vec![0.0; self.embed.len()],
            vec![0.0; self.answer_embed.len()],
            vec![0.0; self.w_in.len()],
            vec![0.0; self.b_in.len()],
            vec![0.0; self.w_out.len()],
            vec![0.0; self.unembed.len()],
        ]
    }
}

/// The pairs (a, b) with c = (a + b) mod p, split into train and held-out by a seeded shuffle.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: Vec<(usize, usize)>,
    pub test: Vec<(usize, usize)>,
}

pub fn split(p: usize, fraction: f64, seed: u64) -> Split {
    let mut pairs: Vec<(usize, usize)> = (0..p).flat_map(|a| (0..p).map(move |b| (a, b))).collect();
    let mut rng = SplitMix64::stream(seed, 3);
    for i in (1..pairs.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        pairs.swap(i, j);
    }
    let n_train = ((pairs.len() as f64) * fraction).round() as usize;
    let test = pairs.split_off(n_train.clamp(1, pairs.len() - 1));
    Split { train: pairs, test }
}

/// Activations of a batch of pairs.
pub struct Forward {
    pub n: usize,
    /// h = E[a] + E[b] (+ A[c]), [n, d].
    pub resid_pre: Vec<f32>,
    /// W_in·h + b_in, [n, width].
    pub pre: Vec<f32>,
    /// ReLU(pre), [n, width]: the hidden layer.
    pub hidden: Vec<f32>,
    /// W_out·hidden, [n, d]: the MLP's output.
    pub mlp_out: Vec<f32>,
    /// r = h + W_out·hidden, [n, d].
    pub resid_post: Vec<f32>,
    /// Uᵀr, [n, p].
    pub logits: Vec<f32>,
}

fn view<'a>(what: &str, d: &'a [f32], r: usize, c: usize) -> Result<MatRef<'a>, KernelError> {
    MatRef::row_major(what, d, r, c)
}

pub fn forward(m: &ToyModel, pairs: &[(usize, usize)]) -> Result<Forward, KernelError> {
    let (n, d, w, p) = (pairs.len(), m.d, m.width, m.p);
    let mut h = vec![0.0f32; n * d];
    for (i, &(a, b)) in pairs.iter().enumerate() {
        let row = &mut h[i * d..(i + 1) * d];
        let (ea, eb) = (&m.embed[a * d..(a + 1) * d], &m.embed[b * d..(b + 1) * d]);
        for j in 0..d {
            row[j] = ea[j] + eb[j];
        }
        if !m.answer_embed.is_empty() {
            let c = (a + b) % p;
            for (r, &e) in row.iter_mut().zip(&m.answer_embed[c * d..(c + 1) * d]) {
                *r += e;
            }
        }
    }
    let mut pre = vec![0.0f32; n * w];
    matmul(
        MatMut::row_major("pre", &mut pre, n, w)?,
        view("h", &h, n, d)?,
        view("w_in", &m.w_in, w, d)?.t(),
        false,
    )?;
    let mut hidden = pre.clone();
    for row in hidden.chunks_mut(w) {
        for (x, b) in row.iter_mut().zip(&m.b_in) {
            *x = (*x + b).max(0.0);
        }
    }
    for row in pre.chunks_mut(w) {
        for (x, b) in row.iter_mut().zip(&m.b_in) {
            *x += b;
        }
    }
    let mut mlp_out = vec![0.0f32; n * d];
    matmul(
        MatMut::row_major("mlp_out", &mut mlp_out, n, d)?,
        view("hidden", &hidden, n, w)?,
        view("w_out", &m.w_out, d, w)?.t(),
        false,
    )?;
    let mut r = h.clone();
    matmul(
        MatMut::row_major("resid_post", &mut r, n, d)?,
        view("hidden", &hidden, n, w)?,
        view("w_out", &m.w_out, d, w)?.t(),
        true,
    )?;
    let mut logits = vec![0.0f32; n * p];
    matmul(
        MatMut::row_major("logits", &mut logits, n, p)?,
        view("r", &r, n, d)?,
        view("unembed", &m.unembed, d, p)?,
        false,
    )?;
    Ok(Forward {
        n,
        resid_pre: h,
        pre,
        hidden,
        mlp_out,
        resid_post: r,
        logits,
    })
}

/// One point of the training curve.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    pub step: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
}

/// A trained model and how training went.
pub struct Trained {
    pub model: ToyModel,
    pub init_embed: Vec<f32>,
    pub split: Split,
    pub curve: Vec<CurvePoint>,
    /// The first evaluated step with held-out accuracy ≥ 0.99.
    pub grok_step: Option<usize>,
    /// Steps run (fewer than `steps` only when stopped).
    pub steps_done: usize,
}

/// The held-out accuracy that counts as grokked.
pub const GROKKED: f64 = 0.99;

/// Trains from the seeded init. `on_eval` sees each curve point and returns false to stop early.
/// The arithmetic runs on `pool`; the callback runs on the calling thread.
pub fn train(
    cfg: &ToyConfig,
    pool: &rayon::ThreadPool,
    on_eval: &mut dyn FnMut(&CurvePoint) -> bool,
) -> Result<Trained, KernelError> {
    let mut model = ToyModel::init(cfg);
    let init_embed = model.embed.clone();
    let split = split(cfg.p, cfg.train_fraction, cfg.seed);
    let mut adam = Adam::new(AdamConfig {
        lr: cfg.lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
    })?;
    let mut moments: Vec<Moments> = model
        .zeros_like()
        .iter()
        .map(|t| Moments::zeros(t.len()))
        .collect();
    let decay = 1.0 - cfg.lr * cfg.weight_decay;
    let mut train_step = Step::new(Rows::new(&split.train, cfg.p, cfg.leaky_parity), &model);
    let mut test_step = Step::new(Rows::new(&split.test, cfg.p, cfg.leaky_parity), &model);
    let mut grads = model.zeros_like();
    let mut curve = Vec::new();
    let mut grok_step = None;
    let mut steps_done = 0;
    for step in 1..=cfg.steps {
        let (train_loss, train_acc) =
            pool.install(|| train_step.loss_and_grads(&model, &mut grads))?;
        if !train_loss.is_finite() {
            return Err(KernelError::Mismatch {
                what: "toy model training".into(),
                detail: format!("the loss is {train_loss} at step {step}; lower lr"),
            });
        }
        adam.begin_step();
        pool.install(|| -> Result<(), KernelError> {
            for ((param, grad), mom) in model
                .tensors_mut()
                .into_iter()
                .zip(&grads)
                .zip(&mut moments)
            {
                for v in param.iter_mut() {
                    *v *= decay;
                }
                adam.update(param, grad, mom)?;
            }
            Ok(())
        })?;
        steps_done = step;
        if step % cfg.eval_every.max(1) == 0 || step == cfg.steps {
            let (test_loss, test_acc) = pool.install(|| test_step.evaluate(&model))?;
            let point = CurvePoint {
                step,
                train_loss,
                train_acc,
                test_loss,
                test_acc,
            };
            if grok_step.is_none() && test_acc >= GROKKED {
                grok_step = Some(step);
            }
            let go_on = on_eval(&point);
            curve.push(point);
            if !go_on {
                break;
            }
        }
    }
    Ok(Trained {
        model,
        init_embed,
        split,
        curve,
        grok_step,
        steps_done,
    })
}

/// The layer-by-layer loss and gradients ([`forward`] and its plain backward pass), the reference the token-table
/// step ([`crate::step`]) is checked against.
#[cfg(test)]
pub(crate) mod reference {
    use super::*;

    /// Mean cross-entropy on c and accuracy; with `grad`, overwrites it with dLoss/dlogits.
    fn cross_entropy(
        logits: &[f32],
        pairs: &[(usize, usize)],
        p: usize,
        mut grad: Option<&mut [f32]>,
    ) -> (f64, f64) {
        let n = pairs.len();
        let (mut loss, mut correct) = (0.0f64, 0usize);
        for (i, &(a, b)) in pairs.iter().enumerate() {
            let c = (a + b) % p;
            let row = &logits[i * p..(i + 1) * p];
            let (mut best, mut max) = (0, f32::NEG_INFINITY);
            for (j, &v) in row.iter().enumerate() {
                if v > max {
                    max = v;
                    best = j;
                }
            }
            correct += usize::from(best == c);
            let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
            loss += sum.ln() - f64::from(row[c] - max);
            if let Some(g) = grad.as_deref_mut() {
                let g = &mut g[i * p..(i + 1) * p];
                for j in 0..p {
                    let soft = f64::from(row[j] - max).exp() / sum;
                    let target = if j == c { 1.0 } else { 0.0 };
                    g[j] = ((soft - target) / n as f64) as f32;
                }
            }
        }
        (loss / n as f64, correct as f64 / n as f64)
    }

    /// Loss and gradients on `pairs` (full batch).
    pub(super) fn loss_and_grads(
        m: &ToyModel,
        pairs: &[(usize, usize)],
    ) -> Result<(f64, f64, [Vec<f32>; N_TENSORS]), KernelError> {
        let (d, w, p) = (m.d, m.width, m.p);
        let f = forward(m, pairs)?;
        let n = f.n;
        let mut g_logits = vec![0.0f32; n * p];
        let (loss, acc) = cross_entropy(&f.logits, pairs, p, Some(&mut g_logits));
        let mut g = m.zeros_like();
        let [g_embed, g_answer, g_w_in, g_b_in, g_w_out, g_unembed] = &mut g;
        // dU = rᵀ g_logits
        matmul(
            MatMut::row_major("g_unembed", g_unembed, d, p)?,
            view("r", &f.resid_post, n, d)?.t(),
            view("g_logits", &g_logits, n, p)?,
            false,
        )?;
        // g_r = g_logits Uᵀ
        let mut g_r = vec![0.0f32; n * d];
        matmul(
            MatMut::row_major("g_r", &mut g_r, n, d)?,
            view("g_logits", &g_logits, n, p)?,
            view("unembed", &m.unembed, d, p)?.t(),
            false,
        )?;
        // dW_out = g_rᵀ hidden
        matmul(
            MatMut::row_major("g_w_out", g_w_out, d, w)?,
            view("g_r", &g_r, n, d)?.t(),
            view("hidden", &f.hidden, n, w)?,
            false,
        )?;
        // g_pre = (g_r W_out) ⊙ [pre > 0]
        let mut g_pre = vec![0.0f32; n * w];
        matmul(
            MatMut::row_major("g_pre", &mut g_pre, n, w)?,
            view("g_r", &g_r, n, d)?,
            view("w_out", &m.w_out, d, w)?,
            false,
        )?;
        for (g, &z) in g_pre.iter_mut().zip(&f.pre) {
            if z <= 0.0 {
                *g = 0.0;
            }
        }
        for row in g_pre.chunks(w) {
            for (acc, v) in g_b_in.iter_mut().zip(row) {
                *acc += v;
            }
        }
        // dW_in = g_preᵀ h
        matmul(
            MatMut::row_major("g_w_in", g_w_in, w, d)?,
            view("g_pre", &g_pre, n, w)?.t(),
            view("h", &f.resid_pre, n, d)?,
            false,
        )?;
        // g_h = g_r + g_pre W_in
        let mut g_h = g_r;
        matmul(
            MatMut::row_major("g_h", &mut g_h, n, d)?,
            view("g_pre", &g_pre, n, w)?,
            view("w_in", &m.w_in, w, d)?,
            true,
        )?;
        for (i, &(a, b)) in pairs.iter().enumerate() {
            let row = &g_h[i * d..(i + 1) * d];
            for j in 0..d {
                g_embed[a * d + j] += row[j];
                g_embed[b * d + j] += row[j];
            }
            if !g_answer.is_empty() {
                let c = (a + b) % p;
                for j in 0..d {
                    g_answer[c * d + j] += row[j];
                }
            }
        }
        Ok((loss, acc, g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ToyConfig {
        ToyConfig {
            p: 7,
            d_model: 5,
            width: 6,
            steps: 1,
            ..ToyConfig::new(3)
        }
    }

    use crate::step::{Rows, Step};

    /// Pairs with both orders of some pairs, and some (a, a), so that deduplication and the doubled token matter.
    fn mixed_pairs(p: usize, n: usize) -> Vec<(usize, usize)> {
        (0..p)
            .flat_map(|a| (0..p).map(move |b| (a, b)))
            .step_by(3)
            .take(n)
            .chain([(1, 2), (2, 1), (3, 3)])
            .collect()
    }

    /// Central-difference gradient check of every parameter tensor of the token-table step on a tiny model, in f64
    /// terms of the f32 code.
    #[test]
    fn gradients_match_finite_differences() {
        for leaky in [false, true] {
            let cfg = ToyConfig {
                leaky_parity: leaky,
                ..small()
            };
            let mut m = ToyModel::init(&cfg);
            let pairs = mixed_pairs(7, 20);
            let mut step = Step::new(Rows::new(&pairs, 7, leaky), &m);
            let mut g = m.zeros_like();
            step.loss_and_grads(&m, &mut g).unwrap();
            let h = 1e-3f32;
            for (t, g_t) in g.iter().enumerate().take(N_TENSORS) {
                let len = m.tensors_mut()[t].len();
                for i in (0..len).step_by(len.div_ceil(7).max(1)) {
                    let orig = m.tensors_mut()[t][i];
                    m.tensors_mut()[t][i] = orig + h;
                    let up = step.evaluate(&m).unwrap().0;
                    m.tensors_mut()[t][i] = orig - h;
                    let down = step.evaluate(&m).unwrap().0;
                    m.tensors_mut()[t][i] = orig;
                    let numeric = (up - down) / (2.0 * f64::from(h));
                    let analytic = f64::from(g_t[i]);
                    assert!(
                        (numeric - analytic).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                        "leaky {leaky} tensor {t} index {i}: numeric {numeric}, analytic {analytic}"
                    );
                }
            }
        }
    }

    /// The token-table step computes the layer-by-layer model's loss, accuracy and gradients (to f32 rounding), on
    /// a trained-for-a-while model where many pre-activations are negative, for both the plain and the leaky input.
    #[test]
    fn the_token_table_step_matches_the_layer_by_layer_model() {
        for leaky in [false, true] {
            let cfg = ToyConfig {
                p: 11,
                d_model: 8,
                width: 24,
                leaky_parity: leaky,
                ..ToyConfig::new(5)
            };
            let m = ToyModel::init(&cfg);
            let pairs = mixed_pairs(11, 40);
            let rows = Rows::new(&pairs, 11, leaky);
            let unordered: std::collections::BTreeSet<_> =
                pairs.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
            assert!(unordered.len() < pairs.len());
            assert_eq!(rows.len(), unordered.len(), "(a, b) and (b, a) are one row");
            let mut step = Step::new(rows, &m);
            let mut g = m.zeros_like();
            let (loss, acc) = step.loss_and_grads(&m, &mut g).unwrap();
            let (ref_loss, ref_acc, ref_g) = reference::loss_and_grads(&m, &pairs).unwrap();
            assert!(
                (loss - ref_loss).abs() < 1e-6 * ref_loss,
                "leaky {leaky}: loss {loss} vs {ref_loss}"
            );
            assert_eq!(acc, ref_acc, "leaky {leaky}");
            assert_eq!(
                step.evaluate(&m).unwrap(),
                (loss, acc),
                "evaluate is the same forward pass"
            );
            for (t, (ours, theirs)) in g.iter().zip(&ref_g).enumerate() {
                let scale = theirs.iter().fold(0f32, |a, v| a.max(v.abs()));
                assert!(leaky || t != 1 || theirs.is_empty());
                for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * scale,
                        "leaky {leaky} tensor {t}[{i}]: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_step_refuses_a_model_of_other_sizes() {
        let m = ToyModel::init(&small());
        let mut step = Step::new(Rows::new(&[(1, 2)], 7, false), &m);
        let other = ToyModel::init(&ToyConfig {
            leaky_parity: true,
            ..small()
        });
        let err = step.evaluate(&other).unwrap_err().to_string();
        assert!(
            err.contains("built for 7 tokens") && err.contains("the model has 14"),
            "{err}"
        );
    }

    #[test]
    fn the_split_is_a_seeded_partition_of_all_pairs() {
        let s = split(11, 0.3, 5);
        assert_eq!(s.train.len(), 36);
        assert_eq!(s.train.len() + s.test.len(), 121);
        let mut all: Vec<_> = s.train.iter().chain(&s.test).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 121);
        assert_eq!(split(11, 0.3, 5).train, s.train);
        assert_ne!(split(11, 0.3, 6).train, s.train);
    }

    #[test]
    fn weight_decay_is_decoupled_from_the_adam_step() {
        // With a zero gradient Adam does not move a weight, so one step only scales it by (1 - lr*wd).
        let cfg = ToyConfig {
            lr: 0.01,
            weight_decay: 0.5,
            ..small()
        };
        let mut adam = Adam::new(AdamConfig {
            lr: cfg.lr,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
        })
        .unwrap();
        let mut w = vec![2.0f32];
        let mut mom = Moments::zeros(1);
        adam.begin_step();
        w[0] *= 1.0 - cfg.lr * cfg.weight_decay;
        adam.update(&mut w, &[0.0], &mut mom).unwrap();
        assert!((w[0] - 2.0 * 0.995).abs() < 1e-6);
    }
}
