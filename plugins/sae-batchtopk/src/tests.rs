//! The plugin's `run`, in process: synthetic recovery, held-out inference L0 with the saved threshold on the
//! MiniLM bank, the SAELens JumpReLU checkpoint, same-seed byte identity, exact resume, and config errors.
//! (The batch-level selection, its tie rule and the gradient check are unit tests of
//! `husai_kernels::families` and `husai_kernels::engine`.)

use std::path::Path;

use husai_kernels::activations::write_npy_f32;
use husai_kernels::synth::{SynthConfig, generate, recovery};
use husai_kernels::testing::{
    MINILM, Work, assert_reproducible_and_resumable, metrics, request, state_bytes, subdir, unique,
    weights_tensor,
};
use husai_plugin_api::{ErrorKind, Progress};
use serde_json::{Value, json};

use super::{OUTPUTS, run};

fn go(config: Value, inputs: &[(&str, &Path)], out: &Path) -> Value {
    run(&request(config, inputs, out), &mut Progress::discard()).unwrap()
}

#[test]
fn recovers_90_percent_of_512_planted_features() {
    // The config that achieves it: 512 features in superposition in 128 dimensions, exactly 4 active per row,
    // 32768 rows; a 2x over-complete BatchTopK SAE with k = 8 (2 x L0), batch 1024, 300 steps, lr 4e-3, AuxK
    // (k_aux 64, weight 1/32, dead after 20 steps), seed 0; the last 10 % of the rows held out.
    let data = generate(&SynthConfig {
        rows: 32_768,
        d_in: 128,
        n_features: 512,
        l0: 4,
        coef_min: 0.5,
        coef_max: 1.5,
        seed: 1,
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("synth.npy");
    write_npy_f32(&bank, 32_768, 128, &data.x).unwrap();
    let out = subdir(dir.path(), "run");
    go(
        json!({"d_sae": 1024, "k": 8, "seed": 0, "steps": 300, "batch": 1024, "lr": 4e-3, "k_aux": 64,
               "dead_window": 20}),
        &[("activations", &bank)],
        &out,
    );
    let (_, w_dec) = weights_tensor(&out, "W_dec");
    let rec = recovery(&data.dictionary, &w_dec, 128, 0.9).unwrap();
    assert!(
        rec.recovered_fraction >= 0.9,
        "recovered {:.3} of the planted features at cosine > 0.9",
        rec.recovered_fraction
    );
    let m = metrics(&out);
    assert!(m["eval"]["fvu"].as_f64().unwrap() < 0.1, "{m}");
    assert_eq!(m["train"]["l0_train_rule"].as_f64().unwrap(), 8.0, "{m}");
}

#[test]
fn held_out_inference_l0_with_the_saved_threshold_is_within_15_percent_of_k_on_minilm() {
    let dir = tempfile::tempdir().unwrap();
    let out = subdir(dir.path(), "run");
    let result = go(
        json!({"d_sae": 1536, "k": 32, "seed": 3, "steps": 300, "batch": 1024}),
        &[("activations", Path::new(MINILM))],
        &out,
    );
    assert_eq!(result["status"], "ok");
    let m = metrics(&out);
    let l0 = m["eval"]["l0"].as_f64().unwrap();
    assert!(
        (l0 - 32.0).abs() <= 0.15 * 32.0,
        "held-out inference L0 {l0}: {m}"
    );
    // The training rule keeps exactly batch * k per batch; on the held-out rows (blocks of up to 2048 rows) the
    // mean is k as well.
    let train_rule = m["eval"]["l0_train_rule"].as_f64().unwrap();
    assert!((train_rule - 32.0).abs() < 1e-9, "{train_rule}");
    // The saved checkpoint is SAELens's JumpReLU layout with θ for every latent.
    let theta = m["eval"]["threshold"].as_f64().unwrap();
    assert!(theta > 0.0);
    let (shape, thr) = weights_tensor(&out, "threshold");
    assert_eq!(shape, vec![1536]);
    assert!(thr.iter().all(|&t| t == theta as f32));
    let cfg: Value = serde_json::from_slice(&std::fs::read(out.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["architecture"], "jumprelu");
    assert_eq!(
        (cfg["d_in"].as_u64(), cfg["d_sae"].as_u64()),
        (Some(384), Some(1536))
    );
    assert_eq!(
        result["outputs"],
        json!(OUTPUTS),
        "the result lists every output"
    );
}

#[test]
fn same_seed_gives_byte_identical_outputs_and_resume_continues_exactly() {
    let w = Work::synthetic(run, 4096);
    let cfg = |steps: u64| json!({"d_sae": 128, "k": 4, "seed": 5, "steps": steps, "batch": 256, "dead_window": 3});
    let (a, _) = assert_reproducible_and_resumable(&w, cfg);
    let bank = [("activations", w.bank.as_path())];
    let other = w.out("other");
    w.go(
        json!({"d_sae": 128, "k": 4, "seed": 6, "steps": 20, "batch": 256, "dead_window": 3}),
        &bank,
        &other,
    );
    assert_ne!(state_bytes(&a)[1], state_bytes(&other)[1]);
}

#[test]
fn bad_config_is_a_clear_error_naming_the_key_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("b.npy");
    write_npy_f32(&bank, 64, 4, &vec![1.0; 256]).unwrap();
    let fail = |config: Value| {
        let out = subdir(dir.path(), &format!("o{}", unique()));
        let e = run(
            &request(config, &[("activations", &bank)], &out),
            &mut Progress::discard(),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig, "{e:?}");
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "no output is written"
        );
        e.message
    };
    assert_eq!(
        fail(json!({"d_sae": 16, "k": 17, "seed": 0, "steps": 1})),
        "sae-batchtopk config key `k` = 17 is invalid: must be <= d_sae (16)"
    );
    let e = fail(json!({"d_sae": 16, "k": 2, "seed": 0, "steps": 1, "topk": 3}));
    assert!(
        e.starts_with("sae-batchtopk config key `topk` is not a sae-batchtopk config key; the keys are: d_sae,"),
        "{e}"
    );
    assert_eq!(
        fail(json!({"d_sae": 16, "k": 2, "seed": 0, "steps": 1, "threshold_lr": 0})),
        "sae-batchtopk config key `threshold_lr` = 0 is invalid: must be a number in (0, 1]"
    );
    assert_eq!(
        fail(json!({"d_sae": 16, "k": 2, "seed": 0, "steps": 1, "grad_clip": -1})),
        "sae-batchtopk config key `grad_clip` = -1 is invalid: must be a finite number > 0, or null for no clipping"
    );
    assert!(fail(json!({"d_sae": 16, "seed": 0, "steps": 1})).contains("`k` is required"));
}

/// The published schema is what `husai-audit plugins show sae-batchtopk` prints. `HUSAI_UPDATE_GOLDEN=1` rewrites
/// the golden file.
#[test]
fn the_schema_matches_its_golden_file() {
    husai_kernels::testing::assert_schema_golden(
        env!("CARGO_MANIFEST_DIR"),
        &super::config_schema(),
    );
}
