//! Encodes the first rows of an activation bank with a checkpoint written by this plugin, under the inference rule
//! (what SAELens's `JumpReLUSAE.encode` computes), and writes the dense `[rows, d_sae]` activations as .npy, for
//! `scripts/saelens_interop.sh`. The thresholds are the trained ones from `trainer_state.safetensors`, exactly
//! those the checkpoint's `threshold` tensor holds.
//!
//! Usage: encode CHECKPOINT_DIR DATA.npy ROWS OUT.npy

use std::path::Path;

use husai_kernels::activations::{OpenOptions, open, write_npy_f32};
use husai_kernels::checkpoint::read_family_bytes;
use husai_kernels::engine::Sae;
use husai_kernels::family::Rule;
use husai_kernels::state::{FamilyTrainerState, STATE_FILE};
use husai_sae_jumprelu::JumpConfig;
use husai_sae_jumprelu::family::LOG_THRESHOLD;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, data, rows, out] = &args[..] else {
        return Err("usage: encode CHECKPOINT_DIR DATA.npy ROWS OUT.npy".into());
    };
    let dir = Path::new(dir);
    let cfg_bytes = std::fs::read(dir.join("cfg.json"))?;
    let cfg: serde_json::Value = serde_json::from_slice(&cfg_bytes)?;
    let d_sae = cfg["d_sae"].as_u64().ok_or("cfg.json has no d_sae")? as usize;
    let family =
        JumpConfig::from_json(&serde_json::json!({"d_sae": d_sae, "seed": 0, "steps": 1}))?
            .family();
    let mut parts = read_family_bytes(
        dir,
        &family,
        &cfg_bytes,
        &std::fs::read(dir.join("sae_weights.safetensors"))?,
    )?;
    let state_path = dir.join(STATE_FILE);
    let state_bytes = std::fs::read(&state_path)?;
    // A fixed-λ run has no family state; a target-L0 run has the controller's λ.
    let parse = |state: &[(&str, usize)]| {
        FamilyTrainerState::from_bytes(
            &state_path,
            &state_bytes,
            parts.d_in,
            d_sae,
            &[(LOG_THRESHOLD, d_sae)],
            state,
        )
    };
    let state = parse(&[]).or_else(|_| parse(&[("lambda", 1)]))?;
    parts.family = state.family_params;
    let model = Sae::from_parts(&family, parts)?;
    let rows: usize = rows.parse()?;
    let bank = open(
        Path::new(data),
        &OpenOptions {
            rows: Some((0, rows)),
            expected_d_in: Some(model.d_in()),
            ..Default::default()
        },
    )?;
    let code = model.encode(&family, Rule::Infer, 0, bank.data())?;
    let mut dense = vec![0f32; rows * d_sae];
    for r in 0..rows {
        let (idx, val) = code.row(r);
        for (&j, &v) in idx.iter().zip(val) {
            dense[r * d_sae + j as usize] = v;
        }
    }
    write_npy_f32(Path::new(out), rows, d_sae, &dense)?;
    Ok(())
}
