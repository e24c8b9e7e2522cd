//! TopK on the engine against a recorded golden: the weights after a fixed 20-step run.
//!
//! This replaces the bit-identity test that trained the pre-engine TopK trainer (`husai_kernels::Trainer`, removed
//! in issue #10) beside the engine step by step. How the golden was produced: at commit ae82f3e, before the old
//! trainer was removed, both the old `Trainer` (its `TrainConfig::new(48, 4)` with batch 64, 2 threads, dead window
//! 3, AuxK k_aux 8 / coeff 1/32) and the engine with the config below trained on the same batches; both gave these
//! bytes, whose sha256 is [`GOLDEN`]. Every engine knob is spelled out so that a change of an engine default does
//! not move it; a change of the TopK maths does, on purpose.

use husai_kernels::adam::AdamConfig;
use husai_kernels::bdec::BDecInit;
use husai_kernels::engine::{EngineConfig, FamilyTrainer, InitConfig, ModelParts};
use husai_kernels::families::TopK;
use husai_kernels::rng::SplitMix64;
use husai_kernels::{AuxKConfig, batch_start};
use sha2::{Digest, Sha256};

/// sha256 of the weights after the run below (old trainer and engine alike, commit ae82f3e).
const GOLDEN: &str = "c65176df4fc14e850bf2446e07de581ff49475de60d937ff757a5e1fd663c25e";

/// Normal rows with a per-column offset (so `b_dec` has something to learn).
fn data(rows: usize, d_in: usize, seed: u64) -> Vec<f32> {
    let mut r = SplitMix64::new(seed);
    (0..rows * d_in)
        .map(|i| r.normal() as f32 + 0.1 * (i % d_in) as f32)
        .collect()
}

/// sha256 of `W_enc, b_enc, W_dec, b_dec` (SAELens layouts, f32 little-endian, concatenated in that order).
fn weights_sha256(p: &ModelParts) -> String {
    let mut h = Sha256::new();
    for t in [&p.w_enc, &p.b_enc, &p.w_dec, &p.b_dec] {
        for v in t.iter() {
            h.update(v.to_le_bytes());
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn run(threads: usize) -> ModelParts {
    let (d_in, d_sae, k, batch, rows) = (16, 48, 4, 64, 512);
    let x = data(rows, d_in, 4);
    let cfg = EngineConfig {
        batch,
        seed: 0,
        threads,
        adam: AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        aux_k: Some(AuxKConfig {
            k_aux: 8,
            coeff: 1.0 / 32.0,
        }),
        dead_window: 3,
        b_dec_init: BDecInit::Zeros,
        init: InitConfig {
            dec_norm: 1.0,
            enc_scale: 1.0,
        },
        grad_clip: None,
        ..EngineConfig::new(d_sae)
    };
    let mut t = FamilyTrainer::new(cfg, TopK::new(k, d_sae), d_in, false).unwrap();
    for s in 0..20u64 {
        let i = batch_start(s, batch, rows);
        t.step(&x[i * d_in..(i + batch) * d_in]).unwrap();
    }
    t.model().to_parts()
}

#[test]
fn topk_on_the_engine_reproduces_the_old_trainers_weights() {
    assert_eq!(weights_sha256(&run(2)), GOLDEN);
    assert_eq!(weights_sha256(&run(1)), GOLDEN, "any thread count");
}
