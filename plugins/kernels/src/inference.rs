//! Encoding with a saved checkpoint of any family, by that family's inference rule: what `data encode` runs, and
//! the one place each family's inference maths lives (the trainer families call [`relu_row`] and [`jump_row`] for
//! their inference rule; TopK's and BatchTopK's rules are [`crate::families`]).
//!
//! The checkpoint's SAELens `architecture` (its `cfg.json`) picks the rule, as SAELens's `SAE.load_from_disk` does:
//!
//! - `topk` (sae-topk): per row the `k` largest post-ReLU pre-activations, `k` from `cfg.json`
//!   ([`crate::families::TopK`]);
//! - `standard` (sae-relu): every positive pre-activation ([`relu_row`]);
//! - `jumprelu` (sae-jumprelu, and sae-batchtopk, which saves its global θ for every latent): `h` where `h > θ_j`
//!   and `h > 0`, θ the checkpoint's `threshold` tensor ([`jump_row`]).
//!
//! Pre-activations are `(x - b_dec) · W_enc + b_enc` for every family (`apply_b_dec_to_input: true`).

use std::path::Path;

use serde_json::Value;

use crate::checkpoint::{CONFIG_FILE, CheckpointError, WEIGHTS_FILE, read_family_bytes};
use crate::engine::Sae;
use crate::error::KernelError;
use crate::families::TopK;
use crate::family::{DecoderNorm, Family, RowSlots, Rule, SlotCode, StepCtx};

/// The architectures [`Encoder`] reads, in the order messages list them.
pub const ARCHITECTURES: [&str; 3] = ["topk", "standard", "jumprelu"];

/// The standard SAE's rule, `z = ReLU(h)`: every positive pre-activation of the row `pre` is a slot, in index
/// order.
pub fn relu_row(pre: &[f32], out: &mut RowSlots) {
    for (j, &h) in pre.iter().enumerate() {
        if h > 0.0 {
            out.push(j as u32, h, h);
        }
    }
}

/// The JumpReLU rule, `z = h · H(h − θ)` after a ReLU (SAELens's `JumpReLUSAE.encode`): latent `j` of the row
/// `pre` is a slot where `h > θ_j` and `h > 0`, in index order (the ReLU matters only for a θ below 0, which
/// trained thresholds never are).
pub fn jump_row(pre: &[f32], theta: &[f32], out: &mut RowSlots) {
    for (j, (&h, &t)) in pre.iter().zip(theta).enumerate() {
        if h > t && h > 0.0 {
            out.push(j as u32, h, h);
        }
    }
}

/// The inference rule of a checkpoint, as a [`Family`] the engine's encoder runs (inference only: it trains
/// nothing and has no parameters of its own).
#[derive(Debug, Clone)]
enum InferRule {
    TopK(TopK),
    Relu,
    Jump(Vec<f32>),
}

#[derive(Debug, Clone)]
struct Inference {
    architecture: &'static str,
    rule: InferRule,
}

impl Family for Inference {
    fn name(&self) -> &'static str {
        self.architecture
    }

    fn decoder_norm(&self) -> DecoderNorm {
        DecoderNorm::Free
    }

    fn activate(&self, rule: Rule, ctx: &StepCtx<'_>, pre: &[f32], code: &mut SlotCode) {
        match &self.rule {
            InferRule::TopK(t) => t.activate(rule, ctx, pre, code),
            InferRule::Relu => code.fill_rows(pre, ctx.d_sae, |_, p, out| relu_row(p, out)),
            InferRule::Jump(theta) => {
                code.fill_rows(pre, ctx.d_sae, |_, p, out| jump_row(p, theta, out))
            }
        }
    }

    fn saelens_architecture(&self) -> &'static str {
        self.architecture
    }
}

/// A checkpoint loaded for encoding.
#[derive(Debug, Clone)]
pub struct Encoder {
    family: Inference,
    model: Sae,
}

impl Encoder {
    /// Reads `cfg.json` and `sae_weights.safetensors` of the checkpoint directory `dir`.
    pub fn read(dir: &Path) -> Result<Encoder, CheckpointError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| CheckpointError::Io {
                path,
                op: "read it",
                source,
            })
        };
        Encoder::from_bytes(dir, &read(CONFIG_FILE)?, &read(WEIGHTS_FILE)?)
    }

    /// [`Encoder::read`] from the two files' contents (`dir` names them in messages).
    pub fn from_bytes(
        dir: &Path,
        cfg_bytes: &[u8],
        weights: &[u8],
    ) -> Result<Encoder, CheckpointError> {
        let (cfg_path, w_path) = (dir.join(CONFIG_FILE), dir.join(WEIGHTS_FILE));
        let invalid = |path: &Path, detail: String| CheckpointError::Invalid {
            path: path.to_owned(),
            detail,
        };
        let cfg: Value = serde_json::from_slice(cfg_bytes)
            .map_err(|e| invalid(&cfg_path, format!("is not valid JSON: {e}")))?;
        let arch = cfg.get("architecture").and_then(Value::as_str);
        let Some(&architecture) = ARCHITECTURES.iter().find(|&&a| Some(a) == arch) else {
            let found = arch.map_or_else(|| "missing".to_string(), |a| format!("{a:?}"));
            return Err(invalid(
                &cfg_path,
                format!(
                    "architecture is {found}; encoding reads the architectures {}",
                    ARCHITECTURES.map(|a| format!("{a:?}")).join(", ")
                ),
            ));
        };
        let d_sae = cfg
            .get("d_sae")
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| {
                invalid(
                    &cfg_path,
                    "field \"d_sae\" must be a positive integer".into(),
                )
            })?;
        let rule = match architecture {
            "topk" => {
                let k = cfg
                    .get("k")
                    .and_then(Value::as_u64)
                    .and_then(|v| usize::try_from(v).ok())
                    .filter(|&k| (1..=d_sae).contains(&k))
                    .ok_or_else(|| {
                        invalid(
                            &cfg_path,
                            format!("field \"k\" must be an integer in 1..={d_sae} (d_sae)"),
                        )
                    })?;
                // Our TopK selects on the plain pre-activations; a checkpoint that asks for selection weighted
                // by decoder norms would get other codes.
                if cfg.get("rescale_acts_by_decoder_norm") == Some(&Value::Bool(true)) {
                    return Err(invalid(
                        &cfg_path,
                        "rescale_acts_by_decoder_norm is true; encoding applies TopK to the plain \
                         pre-activations only"
                            .into(),
                    ));
                }
                InferRule::TopK(TopK::new(k, d_sae))
            }
            "standard" => InferRule::Relu,
            _ => InferRule::Jump(threshold(&w_path, weights, d_sae)?),
        };
        let family = Inference { architecture, rule };
        let parts = read_family_bytes(dir, &family, cfg_bytes, weights)?;
        let model = Sae::from_parts(&family, parts).map_err(|e| invalid(&w_path, e.to_string()))?;
        Ok(Encoder { family, model })
    }

    /// The checkpoint's SAELens architecture (one of [`ARCHITECTURES`]).
    pub fn architecture(&self) -> &'static str {
        self.family.architecture
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.model.d_in()
    }

    /// Number of latents.
    pub fn d_sae(&self) -> usize {
        self.model.d_sae()
    }

    /// The model, for decoding and evaluation.
    pub fn model(&self) -> &Sae {
        &self.model
    }

    /// The sparse codes of `x` (`[rows, d_in]`) under the checkpoint's inference rule.
    pub fn encode(&self, x: &[f32]) -> Result<SlotCode, KernelError> {
        self.model.encode(&self.family, Rule::Infer, 0, x)
    }

    /// [`Encoder::encode`] as dense `[rows, d_sae]` activations, 0 where a latent is off.
    pub fn encode_dense(&self, x: &[f32]) -> Result<Vec<f32>, KernelError> {
        let code = self.encode(x)?;
        let d_sae = self.d_sae();
        let mut dense = vec![0f32; code.rows() * d_sae];
        for (r, row) in dense.chunks_exact_mut(d_sae).enumerate() {
            let (idx, val) = code.row(r);
            for (&j, &v) in idx.iter().zip(val) {
                row[j as usize] = v;
            }
        }
        Ok(dense)
    }
}

/// The `threshold` tensor (`F32 [d_sae]`) of a `jumprelu` checkpoint; every value must be finite.
fn threshold(w_path: &Path, weights: &[u8], d_sae: usize) -> Result<Vec<f32>, CheckpointError> {
    let invalid = |detail: String| CheckpointError::Invalid {
        path: w_path.to_owned(),
        detail,
    };
    let st = safetensors::SafeTensors::deserialize(weights)
        .map_err(|e| invalid(format!("is not a valid safetensors file: {e}")))?;
    let view = st.tensor("threshold").map_err(|_| {
        invalid("has no tensor \"threshold\", which a jumprelu checkpoint needs".into())
    })?;
    if view.dtype() != safetensors::Dtype::F32 || view.shape() != [d_sae] {
        return Err(invalid(format!(
            "tensor \"threshold\" is {:?} {:?}; cfg.json implies F32 [{d_sae}]",
            view.dtype(),
            view.shape()
        )));
    }
    let theta: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(j) = theta.iter().position(|t| !t.is_finite()) {
        return Err(invalid(format!(
            "tensor \"threshold\" is {} at latent {j}; thresholds must be finite",
            theta[j]
        )));
    }
    Ok(theta)
}
