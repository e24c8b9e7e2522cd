//! The plugin's `run`, in process, and the one model against TopK SAEs on the MiniLM bank: HierarchicalTopK at
//! K = 32 against a TopK-32 SAE evaluated on its own k' largest latents, and separately trained TopK-8 and
//! TopK-16; the FVU-versus-k' curve in `metrics.json`; the SAELens TopK checkpoint; thread-count independence,
//! same-seed byte identity, exact resume, and config errors. (The one-pass K-level objective against K separate
//! decodes and its gradient check are unit tests of `husai_kernels::engine`.)

use std::path::Path;

use husai_kernels::activations::{OpenOptions, open};
use husai_kernels::engine::{EngineConfig, FamilyTrainer};
use husai_kernels::families::TopK;
use husai_kernels::family::Family;
use husai_kernels::testing::{MINILM, Work, assert_reproducible_and_resumable, metrics};
use husai_kernels::train::batch_start;
use serde_json::{Value, json};

use super::{HierarchicalConfig, HierarchicalTopK, OUTPUTS, run};

/// The engine config the plugin would use for `config` on 384-wide rows, on `threads` threads.
fn engine(config: Value, threads: usize) -> EngineConfig {
    let mut e = HierarchicalConfig::from_json(&config)
        .unwrap()
        .engine_config(384);
    e.threads = threads;
    e
}

/// Trains `family` on the first `train` rows of `x` for `steps` steps of `batch` rows (the plugin's schedule).
fn train<F: Family>(
    family: F,
    cfg: EngineConfig,
    x: &[f32],
    train: usize,
    steps: u64,
) -> FamilyTrainer<F> {
    let batch = cfg.batch;
    let mut t = FamilyTrainer::new(cfg, family, 384, false).unwrap();
    for s in 0..steps {
        let b = batch_start(s, batch, train);
        t.step(&x[b * 384..(b + batch) * 384]).unwrap();
    }
    t
}

#[test]
fn at_k_8_and_16_it_beats_topk_32_on_its_own_largest_latents_and_at_32_it_is_within_3_percent() {
    let bank = open(Path::new(MINILM), &OpenOptions::default()).unwrap();
    let x = bank.data();
    let rows = x.len() / 384;
    let n_train = rows - rows / 10;
    let (train_x, held_out) = (&x[..n_train * 384], &x[n_train * 384..]);
    let (d_sae, steps) = (1536, 300);
    let config =
        |k: usize| json!({"d_sae": d_sae, "k": k, "seed": 3, "batch": 1024, "steps": steps});
    let curve = |m: &husai_kernels::engine::Sae| {
        let ev = m
            .evaluate(&HierarchicalTopK::new(32, d_sae), 0, held_out, false)
            .unwrap();
        let fvu = |k: usize| {
            ev.figures
                .iter()
                .find(|(n, _)| *n == format!("fvu_k_{k}"))
                .unwrap()
                .1
        };
        [fvu(8), fvu(16), fvu(32)]
    };
    let h = train(
        HierarchicalTopK::new(32, d_sae),
        engine(config(32), 2),
        train_x,
        n_train,
        steps,
    );
    let t32 = train(
        TopK::new(32, d_sae),
        engine(config(32), 2),
        train_x,
        n_train,
        steps,
    );
    let (hc, tc) = (curve(h.model()), curve(t32.model()));
    let own = |k: usize| {
        let t = train(
            TopK::new(k, d_sae),
            engine(config(k), 2),
            train_x,
            n_train,
            steps,
        );
        t.evaluate(held_out).unwrap().reconstruction.fvu
    };
    let (t8, t16) = (own(8), own(16));
    eprintln!(
        "held-out FVU at k' = 8, 16, 32: HierarchicalTopK {hc:.4?}, TopK-32 on its k' largest {tc:.4?}, \
         TopK-8 {t8:.4}, TopK-16 {t16:.4}"
    );
    assert!(
        hc[0] < tc[0],
        "k' = 8: {} against TopK-32's {}",
        hc[0],
        tc[0]
    );
    assert!(
        hc[1] < tc[1],
        "k' = 16: {} against TopK-32's {}",
        hc[1],
        tc[1]
    );
    assert!(
        hc[2] <= 1.03 * tc[2],
        "k' = 32: {} is not within 3 % of TopK-32's {}",
        hc[2],
        tc[2]
    );
}

#[test]
fn metrics_hold_the_fvu_curve_and_the_checkpoint_is_saelens_topk_with_k_equal_to_big_k() {
    let w = Work::synthetic(run, 4096);
    let out = w.out("run");
    let result = w.go(
        json!({"d_sae": 128, "k": 6, "seed": 1, "steps": 150, "batch": 256, "lr": 4e-3}),
        &[("activations", &w.bank)],
        &out,
    );
    assert_eq!(result["status"], "ok");
    assert_eq!(result["outputs"], json!(OUTPUTS));
    let m = metrics(&out);
    let curve: Vec<f64> = (1..=6)
        .map(|k| m["eval"][format!("fvu_k_{k}")].as_f64().unwrap())
        .collect();
    eprintln!("held-out FVU curve {curve:?}");
    // Each added latent helps, up to the last ones on data with 3 true features per row, which may add as much
    // noise as signal (measured: 0.2083 then 0.2093 at k' = 5, 6).
    assert!(
        curve.windows(2).all(|p| p[1] <= p[0] * 1.01) && curve[0] > 2.0 * curve[5],
        "FVU must fall with the latents added: {curve:?}"
    );
    assert_eq!(m["eval"]["fvu"].as_f64(), Some(curve[5]));
    assert!(m["eval"].get("fvu_k_7").is_none());
    let cfg: Value = serde_json::from_slice(&std::fs::read(out.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(
        (cfg["architecture"].as_str(), cfg["k"].as_u64()),
        (Some("topk"), Some(6))
    );
    let first = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let line: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let terms: Vec<&String> = line["loss"].as_object().unwrap().keys().collect();
    assert_eq!(terms, ["nested_mse", "aux"]);
    // The mean over k' of the partial errors is above the full reconstruction's error.
    assert!(line["loss"]["nested_mse"].as_f64() > line["mse"].as_f64());
}

#[test]
fn weights_do_not_depend_on_the_thread_count() {
    let w = Work::synthetic(run, 2048);
    let bank = open(&w.bank, &OpenOptions::default()).unwrap();
    let x = bank.data();
    let go = |threads: usize| {
        let mut cfg = EngineConfig::new(96);
        cfg.batch = 256;
        cfg.threads = threads;
        cfg.dead_window = 2;
        let mut t = FamilyTrainer::new(cfg, HierarchicalTopK::new(5, 96), 32, false).unwrap();
        for s in 0..12 {
            let b = batch_start(s, 256, 2048);
            t.step(&x[b * 32..(b + 256) * 32]).unwrap();
        }
        let m = t.model();
        (
            m.w_dec().to_vec(),
            m.w_enc_t().to_vec(),
            m.b_enc().to_vec(),
            m.b_dec().to_vec(),
        )
    };
    let (a, b) = (go(1), go(3));
    let same = |p: &[f32], q: &[f32]| p.iter().zip(q).all(|(u, v)| u.to_bits() == v.to_bits());
    assert!(same(&a.0, &b.0) && same(&a.1, &b.1) && same(&a.2, &b.2) && same(&a.3, &b.3));
}

#[test]
fn same_seed_gives_byte_identical_outputs_and_resume_continues_exactly() {
    let w = Work::synthetic(run, 4096);
    let cfg = |steps: u64| json!({"d_sae": 128, "k": 4, "seed": 5, "steps": steps, "batch": 256, "dead_window": 3});
    assert_reproducible_and_resumable(&w, cfg);
}

#[test]
fn bad_config_is_a_clear_error_naming_the_key_and_nothing_runs() {
    let w = Work::synthetic(run, 256);
    let msg = |config: Value| w.bad_config(config).message;
    assert_eq!(
        msg(json!({"d_sae": 16, "k": 17, "seed": 0, "steps": 1})),
        "sae-hierarchical-topk config key `k` = 17 is invalid: must be <= d_sae (16)"
    );
    assert_eq!(
        msg(json!({"d_sae": 16, "seed": 0, "steps": 1})),
        "sae-hierarchical-topk config key `k` is required (K, the largest number of latents per row)"
    );
    assert_eq!(
        msg(json!({"d_sae": 16, "k": 4, "seed": 0, "steps": 1, "aux_coeff": -1})),
        "sae-hierarchical-topk config key `aux_coeff` = -1 is invalid: must be a finite number >= 0 (0 turns AuxK off)"
    );
    let e = msg(json!({"d_sae": 16, "k": 4, "seed": 0, "steps": 1, "levels": [1, 2]}));
    assert!(
        e.starts_with("sae-hierarchical-topk config key `levels` is not a sae-hierarchical-topk config key; the keys are: d_sae,")
            && e.ends_with("k, k_aux, aux_coeff, dec_init_norm, enc_init_scale, grad_clip"),
        "{e}"
    );
}

/// The published schema is what `husai-audit plugins show sae-hierarchical-topk` prints. `HUSAI_UPDATE_GOLDEN=1`
/// rewrites the golden file.
#[test]
fn the_schema_matches_its_golden_file() {
    husai_kernels::testing::assert_schema_golden(
        env!("CARGO_MANIFEST_DIR"),
        &super::config_schema(),
    );
}
