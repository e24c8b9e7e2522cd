//! Encodes rows with a checkpoint written by a family plugin on the shared engine, by husai's own inference rule,
//! for `scripts/saelens_interop.sh` (which compares the output with SAELens's encoder on the same rows).
//!
//!     family_encode --checkpoint DIR --data BANK.npy --rows 100 --out ours.npy
//!
//! The checkpoint's SAELens architecture picks the rule: `topk` (k from cfg.json) or `jumprelu` written by
//! sae-batchtopk (the global threshold from the `threshold` tensor, which must be the same for every latent).
//! Writes `[rows, d_sae]` float32, zeros where a latent is off.

use std::path::PathBuf;

use husai_kernels::activations::{OpenOptions, open, write_npy_f32};
use husai_kernels::checkpoint::{CONFIG_FILE, WEIGHTS_FILE, read_family_bytes};
use husai_kernels::engine::Sae;
use husai_kernels::families::{BatchTopK, TopK};
use husai_kernels::family::{Family, Rule};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut data, mut rows, mut out) = (None, None, 100usize, None);
    while let Some(a) = args.next() {
        let mut v = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--checkpoint" => dir = Some(PathBuf::from(v()?)),
            "--data" => data = Some(PathBuf::from(v()?)),
            "--rows" => rows = v()?.parse()?,
            "--out" => out = Some(PathBuf::from(v()?)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let dir = dir.ok_or("--checkpoint is required")?;
    let cfg_bytes = std::fs::read(dir.join(CONFIG_FILE))?;
    let weights = std::fs::read(dir.join(WEIGHTS_FILE))?;
    let cfg: serde_json::Value = serde_json::from_slice(&cfg_bytes)?;
    let d_sae = cfg["d_sae"].as_u64().ok_or("cfg.json has no d_sae")? as usize;
    let family: Box<dyn Family> = match cfg["architecture"].as_str() {
        Some("topk") => Box::new(TopK::new(
            cfg["k"].as_u64().ok_or("cfg.json has no k")? as usize,
            d_sae,
        )),
        Some("jumprelu") => {
            let st = safetensors::SafeTensors::deserialize(&weights)?;
            let t = st.tensor("threshold")?;
            let thr: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if thr.iter().any(|&v| v != thr[0]) {
                return Err(
                    "the threshold differs between latents: not a sae-batchtopk checkpoint".into(),
                );
            }
            let mut f = BatchTopK::new(1, 0.01);
            f.set_threshold(thr[0] as f64);
            Box::new(f)
        }
        other => return Err(format!("architecture {other:?} is not supported here").into()),
    };
    let parts = read_family_bytes(&dir, family.as_ref(), &cfg_bytes, &weights)?;
    let model = Sae::from_parts(family.as_ref(), parts)?;
    let bank = open(
        &data.ok_or("--data is required")?,
        &OpenOptions {
            tensor: None,
            min_rows: rows,
            expected_d_in: Some(model.d_in()),
            rows: Some((0, rows)),
        },
    )?;
    let code = model.encode(family.as_ref(), Rule::Infer, 0, bank.data())?;
    let mut dense = vec![0f32; rows * d_sae];
    for r in 0..rows {
        let (idx, val) = code.row(r);
        for (&j, &v) in idx.iter().zip(val) {
            dense[r * d_sae + j as usize] = v;
        }
    }
    write_npy_f32(&out.ok_or("--out is required")?, rows, d_sae, &dense)?;
    Ok(())
}
