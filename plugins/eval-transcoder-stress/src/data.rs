//! The rows both methods are fitted on, from the one `data` input run:
//! - a `toy-modadd` run: x = `resid_pre.npy` (the MLP's input h), y = `mlp_out.npy` (its output W_out·ReLU(W_in h +
//!   b_in)) for all p² pairs;
//! - a `data synth` run: x = `activations.npy` = s·U, and y = s·V from the same codes s, with a dictionary V of
//!   its own ([`husai_kernels::synth::generate_with_target`]). The run records only x, so the codes are regenerated
//!   from its `generator.json` and x must come out bit-identical to the signed file; U is `dictionary.npy`. This is
//!   the ground truth: a transcoder's decoder should recover V and an SAE's U.
//!
//! Both x and y are divided by one scalar each (the RMS over the training rows' elements), which leaves every
//! direction, and so PWMCC and recovery, unchanged while giving one learning rate the same meaning on either
//! target. The held-out rows are a fixed random share, the same for every seed and both methods.

use std::path::Path;

use husai_kernels::activations::{OpenOptions, open};
use husai_kernels::rng::SplitMix64;
use husai_kernels::synth::{SynthConfig, generate_with_target};
use husai_kernels::trainer::file_sha256;
use husai_plugin_api::run_identity;
use serde_json::{Value, json};

use crate::EvalError;
use crate::fit::Rows;

/// Where the rows came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A toy-modadd run's MLP input and output.
    ToyMlp,
    /// A data synth run and the target dictionary drawn for it.
    Synthetic {
        /// `U`, `[n_features, d_in]`.
        input_dictionary: Vec<f32>,
        /// `V`, `[n_features, d_out]`.
        target_dictionary: Vec<f32>,
        n_features: usize,
        target_seed: u64,
    },
}

/// The split, scaled rows.
#[derive(Debug, Clone)]
pub struct Pairs {
    pub d_in: usize,
    pub d_out: usize,
    pub train_x: Vec<f32>,
    pub train_y: Vec<f32>,
    pub held_x: Vec<f32>,
    pub held_y: Vec<f32>,
    pub x_scale: f64,
    pub y_scale: f64,
    pub source: Source,
    /// The input run and the sha256 of each file read, for the summary.
    pub run: Value,
}

impl Pairs {
    pub fn train_rows(&self) -> usize {
        self.train_x.len() / self.d_in
    }

    pub fn held_rows(&self) -> usize {
        self.held_x.len() / self.d_in
    }

    /// Training rows with the transcoder's target (y) or the SAE's (x itself).
    pub fn train(&self, transcoder: bool) -> Rows<'_> {
        let (t, d_out) = if transcoder {
            (&self.train_y, self.d_out)
        } else {
            (&self.train_x, self.d_in)
        };
        Rows {
            x: &self.train_x,
            t,
            d_in: self.d_in,
            d_out,
        }
    }

    /// Held-out rows with either target.
    pub fn held_out(&self, transcoder: bool) -> Rows<'_> {
        let (t, d_out) = if transcoder {
            (&self.held_y, self.d_out)
        } else {
            (&self.held_x, self.d_in)
        };
        Rows {
            x: &self.held_x,
            t,
            d_in: self.d_in,
            d_out,
        }
    }
}

/// How to read the input and split it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataSettings {
    pub held_out_fraction: f64,
    pub split_seed: u64,
    /// Width of the synthetic target (None: d_in).
    pub target_d: Option<usize>,
    pub target_seed: u64,
}

fn read_f32(dir: &Path, file: &str) -> Result<(Vec<f32>, usize, usize), EvalError> {
    let a = open(&dir.join(file), &OpenOptions::default())
        .map_err(|e| EvalError::Inputs(format!("data run {}: {file}: {e}", dir.display())))?;
    Ok((a.data().to_vec(), a.info().rows, a.info().d_in))
}

fn digest(dir: &Path, file: &str) -> Result<String, EvalError> {
    file_sha256(dir, file).map_err(|e| EvalError::Inputs(e.to_string()))
}

/// Reads the data run `dir` and splits it.
pub fn load(dir: &Path, s: &DataSettings) -> Result<Pairs, EvalError> {
    let bad = |m: String| EvalError::Inputs(format!("data run {}: {m}", dir.display()));
    let (campaign, run_id) = run_identity(dir);
    let (x, y, d_in, d_out, source, files) = if dir.join("mlp_out.npy").is_file() {
        let (x, rows, d_in) = read_f32(dir, "resid_pre.npy")?;
        let (y, y_rows, d_out) = read_f32(dir, "mlp_out.npy")?;
        if y_rows != rows {
            return Err(bad(format!(
                "resid_pre.npy has {rows} rows but mlp_out.npy has {y_rows}"
            )));
        }
        if s.target_d.is_some() {
            return Err(EvalError::Config(
                "config key \"target_d\" applies to a data synth run only; a toy-modadd run's target is its MLP \
                 output"
                    .into(),
            ));
        }
        let files = json!({
            "resid_pre.npy": digest(dir, "resid_pre.npy")?, "mlp_out.npy": digest(dir, "mlp_out.npy")?,
        });
        (x, y, d_in, d_out, Source::ToyMlp, files)
    } else if dir.join("generator.json").is_file() {
        let text = std::fs::read(dir.join("generator.json"))
            .map_err(|e| bad(format!("cannot read generator.json: {e}")))?;
        let g: Value = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("generator.json is not JSON: {e}")))?;
        if g["generator"] != "husai_kernels::synth" {
            return Err(bad(format!(
                "generator.json names generator {}, not husai_kernels::synth; only a `data synth` run's codes can \
                 be regenerated",
                g["generator"]
            )));
        }
        let cfg: SynthConfig = serde_json::from_value(g["config"].clone())
            .map_err(|e| bad(format!("generator.json config: {e}")))?;
        let d_out = s.target_d.unwrap_or(cfg.d_in);
        let (data, target) =
            generate_with_target(&cfg, d_out, s.target_seed).map_err(|e| bad(e.to_string()))?;
        let (signed, rows, d_in) = read_f32(dir, "activations.npy")?;
        let (dict, _, _) = read_f32(dir, "dictionary.npy")?;
        if rows != cfg.rows || d_in != cfg.d_in || signed != data.x || dict != data.dictionary {
            return Err(bad(
                "activations.npy or dictionary.npy is not what generator.json's config generates with this \
                 build's husai_kernels::synth, so the codes behind it (and the target y = s·V) cannot be \
                 reconstructed"
                    .into(),
            ));
        }
        let files = json!({
            "activations.npy": digest(dir, "activations.npy")?, "dictionary.npy": digest(dir, "dictionary.npy")?,
            "generator.json": digest(dir, "generator.json")?,
        });
        let source = Source::Synthetic {
            input_dictionary: data.dictionary,
            target_dictionary: target.dictionary,
            n_features: cfg.n_features,
            target_seed: s.target_seed,
        };
        (signed, target.y, d_in, d_out, source, files)
    } else {
        return Err(bad(
            "it has neither mlp_out.npy (a toy-modadd run) nor generator.json (a data synth run); give one of those \
             as --input data=RUN"
                .into(),
        ));
    };
    let rows = x.len() / d_in;
    let held = ((rows as f64) * s.held_out_fraction).round() as usize;
    if held < 2 || rows - held < 2 {
        return Err(bad(format!(
            "{rows} rows cannot be split into at least 2 training and 2 held-out rows with held_out_fraction {}",
            s.held_out_fraction
        )));
    }
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = SplitMix64::new(s.split_seed);
    for i in (1..rows).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let (train_idx, held_idx) = order.split_at(rows - held);
    let gather = |m: &[f32], d: usize, idx: &[usize]| -> Vec<f32> {
        idx.iter()
            .flat_map(|&r| m[r * d..(r + 1) * d].iter().copied())
            .collect()
    };
    let rms = |m: &[f32]| -> f64 {
        let ss: f64 = m.iter().map(|&v| v as f64 * v as f64).sum();
        (ss / m.len() as f64).sqrt()
    };
    let (mut train_x, mut train_y) = (gather(&x, d_in, train_idx), gather(&y, d_out, train_idx));
    let (mut held_x, mut held_y) = (gather(&x, d_in, held_idx), gather(&y, d_out, held_idx));
    let (x_scale, y_scale) = (rms(&train_x), rms(&train_y));
    if !(x_scale > 0.0 && y_scale > 0.0 && x_scale.is_finite() && y_scale.is_finite()) {
        return Err(bad(format!(
            "the training rows have RMS {x_scale} (input) and {y_scale} (target); both must be finite and > 0"
        )));
    }
    for (m, sc) in [
        (&mut train_x, x_scale),
        (&mut held_x, x_scale),
        (&mut train_y, y_scale),
        (&mut held_y, y_scale),
    ] {
        let inv = (1.0 / sc) as f32;
        m.iter_mut().for_each(|v| *v *= inv);
    }
    let kind = match source {
        Source::ToyMlp => "toy-mlp",
        Source::Synthetic { .. } => "synthetic",
    };
    Ok(Pairs {
        d_in,
        d_out,
        train_x,
        train_y,
        held_x,
        held_y,
        x_scale,
        y_scale,
        source,
        run: json!({"campaign": campaign, "run_id": run_id, "source": kind, "files": files}),
    })
}
