//! The plugin's `run`, in process, on a `data synth`-like run (the ground truth x = s·U, y = s·V) and on a
//! toy-modadd-like run: recovery of both dictionaries, the select-then-confirm rule, the gateable interval, and bad
//! inputs with their messages.

use std::path::{Path, PathBuf};

use husai_kernels::activations::write_npy_f32;
use husai_kernels::synth::{SynthConfig, generate};
use husai_plugin_api::{ErrorKind, Plugin, PluginError, Progress, RunRequest};
use serde_json::{Value, json};

use super::{SUMMARY, TranscoderStress};

fn synth_config() -> SynthConfig {
    SynthConfig {
        rows: 3000,
        d_in: 16,
        n_features: 12,
        l0: 2,
        coef_min: 0.5,
        coef_max: 1.5,
        seed: 4,
    }
}

/// A `data synth` run under `results/planted/data-run`, as the data plugin writes it.
fn synth_run(root: &Path, cfg: &SynthConfig) -> PathBuf {
    let synth = generate(cfg).unwrap();
    let data = root.join("results/planted/data-run");
    std::fs::create_dir_all(&data).unwrap();
    write_npy_f32(&data.join("activations.npy"), cfg.rows, cfg.d_in, &synth.x).unwrap();
    write_npy_f32(
        &data.join("dictionary.npy"),
        cfg.n_features,
        cfg.d_in,
        &synth.dictionary,
    )
    .unwrap();
    let generator = json!({"generator": "husai_kernels::synth", "config": {"rows": cfg.rows, "d_in": cfg.d_in,
        "n_features": cfg.n_features, "l0": cfg.l0, "coef_min": cfg.coef_min, "coef_max": cfg.coef_max, "seed": cfg.seed}});
    std::fs::write(data.join("generator.json"), generator.to_string()).unwrap();
    data
}

fn run(config: Value, inputs: &[(&str, &Path)], out: &Path) -> Result<Value, PluginError> {
    std::fs::create_dir_all(out).unwrap();
    let request = RunRequest {
        config,
        inputs: inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_path_buf()))
            .collect(),
        output_dir: out.to_path_buf(),
    };
    TranscoderStress::run(&request, &mut Progress::discard())?;
    Ok(serde_json::from_slice(&std::fs::read(out.join(SUMMARY)).unwrap()).unwrap())
}

/// A small grid that fits in seconds: two capacities, one k, one epoch count.
fn small(extra: Value) -> Value {
    let mut c = json!({"d_sae": [12, 24], "k": [2], "epochs": [15], "lr": 0.005, "batch": 128,
                       "select_seeds": [0, 1, 2, 3, 4], "confirm_seeds": [10, 11, 12, 13, 14, 15, 16, 17],
                       "bootstrap": 999, "random_pairs": 8});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
fn on_the_synthetic_ground_truth_transcoders_recover_v_and_saes_recover_u() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth_run(dir.path(), &synth_config());
    let s = run(
        small(json!({"target_d": 10, "epochs": [40]})),
        &[("data", &data)],
        &dir.path().join("out"),
    )
    .unwrap();
    assert_eq!(s["schema"], "transcoder-stress.v1");
    assert_eq!(s["data_run"]["run_id"], "data-run");
    assert_eq!(s["data_run"]["source"], "synthetic");
    assert_eq!(
        (s["data"]["d_in"].as_u64(), s["data"]["d_out"].as_u64()),
        (Some(16), Some(10))
    );
    assert_eq!(s["data"]["held_out_rows"], 600);
    // The confirmed condition's fits, every seed: most planted features recovered on both sides (cosine > 0.9),
    // and held-out FVU far below 1.
    let conf = &s["confirmation"];
    let mut mean = [0.0, 0.0];
    for seed in conf["per_seed"].as_array().unwrap() {
        for (m, (method, what)) in [("transcoder", "V"), ("sae", "U")].into_iter().enumerate() {
            let r = seed[method]["recovered_fraction"].as_f64().unwrap();
            mean[m] += r / 8.0;
            assert!(
                r >= 0.75,
                "seed {}: {method} recovered {r} of {what}",
                seed["seed"]
            );
            let fvu = seed[method]["fvu"].as_f64().unwrap();
            assert!(
                fvu < 0.3,
                "seed {}: {method} held-out FVU {fvu}",
                seed["seed"]
            );
        }
    }
    // Both methods well above chance: the decoders are stable across seeds.
    let (tc, sae) = (
        conf["transcoder_pwmcc"]["mean"].as_f64().unwrap(),
        conf["sae_pwmcc"]["mean"].as_f64().unwrap(),
    );
    let (tc_rand, sae_rand) = (
        conf["random_baseline"]["transcoder_space"]["mean"]
            .as_f64()
            .unwrap(),
        conf["random_baseline"]["sae_space"]["mean"]
            .as_f64()
            .unwrap(),
    );
    // Chance-normalised, (x - rand) / (1 - rand): the random level is high in 10 dimensions.
    let norm = &conf["chance_normalised"];
    assert!(
        (norm["transcoder"].as_f64().unwrap() - (tc - tc_rand) / (1.0 - tc_rand)).abs() < 1e-12
    );
    assert!(
        norm["transcoder"].as_f64().unwrap() > 0.4 && norm["sae"].as_f64().unwrap() > 0.4,
        "{tc} vs {tc_rand}, {sae} vs {sae_rand}"
    );
    assert!((s["transcoder_delta"].as_f64().unwrap() - (tc - sae)).abs() < 1e-12);
    // 8 confirmation seeds: the studentized interval, gateable, and it holds the estimate.
    assert_eq!(conf["gateable"], true);
    assert!(
        conf["interval_method"]
            .as_str()
            .unwrap()
            .contains("studentized")
    );
    let (low, high) = (
        conf["interval"]["low"].as_f64().unwrap(),
        conf["interval"]["high"].as_f64().unwrap(),
    );
    assert!(low <= tc - sae && tc - sae <= high);
    assert_eq!(s["transcoder_delta_lcb"].as_f64(), Some(low));
}

#[test]
fn the_condition_is_chosen_on_the_selection_seeds_and_gated_only_on_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth_run(dir.path(), &synth_config());
    let s = run(
        small(json!({})),
        &[("data", &data)],
        &dir.path().join("out"),
    )
    .unwrap();
    let conditions = s["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 2);
    // Every condition's per-seed values are reported, on the selection seeds only.
    for c in conditions {
        assert_eq!(c["seeds"], json!([0, 1, 2, 3, 4]));
        assert_eq!(c["per_seed"].as_array().unwrap().len(), 5);
        assert_eq!(c["transcoder_pwmcc"]["pairs"].as_array().unwrap().len(), 10);
        // 5 seeds: the percentile interval, never gateable.
        assert_eq!(c["gateable"], false);
    }
    // The chosen condition has the largest lower bound on the selection seeds (both fit here, so among all).
    assert_eq!(s["selection"]["among_fitted"], true);
    assert!(conditions.iter().all(|c| worst_fvu(c) <= 0.5));
    let best = conditions
        .iter()
        .max_by(|a, b| {
            a["interval"]["low"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["interval"]["low"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(s["selection"]["condition"], best["id"]);
    // The confirmation is that condition on the confirmation seeds, which share none with the selection seeds.
    let conf = &s["confirmation"];
    assert_eq!(conf["id"], best["id"]);
    let seeds: Vec<u64> = conf["per_seed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, (10..18).collect::<Vec<u64>>());
    assert!(seeds.iter().all(|x| *x >= 10));
    // Its numbers are its own fits: the same condition's selection-seed delta is a different number.
    assert_ne!(conf["delta"], best["delta"]);
    // Deterministic.
    let again = run(
        small(json!({})),
        &[("data", &data)],
        &dir.path().join("out2"),
    )
    .unwrap();
    let strip = |mut v: Value| {
        // Wall times and rates are measurements, not results.
        fn scrub(v: &mut Value) {
            match v {
                Value::Object(m) => {
                    m.remove("wall_s");
                    m.remove("rows_per_s");
                    m.values_mut().for_each(scrub);
                }
                Value::Array(a) => a.iter_mut().for_each(scrub),
                _ => {}
            }
        }
        scrub(&mut v);
        v
    };
    assert_eq!(strip(again), strip(s));
}

/// The larger of a condition's two mean held-out FVUs (transcoders, SAEs), summed in seed order as the plugin does.
fn worst_fvu(c: &Value) -> f64 {
    let per_seed = c["per_seed"].as_array().unwrap();
    let mean = |m: &str| {
        per_seed
            .iter()
            .map(|p| p[m]["fvu"].as_f64().unwrap())
            .sum::<f64>()
            / per_seed.len() as f64
    };
    mean("transcoder").max(mean("sae"))
}

#[test]
fn a_confirmation_that_did_not_fit_is_not_gateable() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth_run(dir.path(), &synth_config());
    let mut c = small(json!({"d_sae": [12]}));
    c["max_held_out_fvu"] = json!(1e-9);
    let s = run(c, &[("data", &data)], &dir.path().join("out")).unwrap();
    assert_eq!(s["selection"]["among_fitted"], false);
    let conf = &s["confirmation"];
    assert_eq!(conf["held_out_fvu"]["fitted"], false);
    assert_eq!(conf["held_out_fvu"]["max"], 1e-9);
    assert!(conf["held_out_fvu"]["transcoder"].as_f64().unwrap() > 1e-9);
    // Eight seeds would be gateable; the fit is what refuses it.
    assert_eq!(conf["gateable"], true);
    assert_eq!(s["transcoder_delta_lcb"], Value::Null);
    assert_eq!(s["conclusion"], "not_evaluated");
    let why = conf["gate_reason"].as_str().unwrap();
    assert!(
        why.contains("the confirmed condition did not fit: mean held-out FVU")
            && why.contains("max_held_out_fvu 0.000000001"),
        "{why}"
    );
}

#[test]
fn fewer_than_eight_confirmation_seeds_are_reported_but_not_gateable() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth_run(dir.path(), &synth_config());
    let c = small(json!({"d_sae": [12], "confirm_seeds": [20, 21, 22, 23, 24]}));
    let s = run(c, &[("data", &data)], &dir.path().join("out")).unwrap();
    assert_eq!(s["transcoder_delta_lcb"], Value::Null);
    assert_eq!(s["conclusion"], "not_evaluated");
    assert_eq!(s["confirmation"]["gateable"], false);
    let why = s["confirmation"]["gate_reason"].as_str().unwrap();
    assert!(
        why.contains("confirmed on 5 seeds; a gate needs at least 8"),
        "{why}"
    );
    assert!(s["confirmation"]["interval"]["low"].is_number());
}

#[test]
fn a_toy_run_pairs_the_mlp_input_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let toy = dir.path().join("results/toy/toy-run");
    std::fs::create_dir_all(&toy).unwrap();
    // A ReLU MLP of random weights on sparse inputs: y = W_out relu(W_in x).
    let (rows, d, w) = (800, 8, 16);
    let mut rng = husai_kernels::rng::SplitMix64::new(3);
    let w_in: Vec<f32> = (0..w * d).map(|_| rng.normal() as f32).collect();
    let w_out: Vec<f32> = (0..d * w).map(|_| rng.normal() as f32).collect();
    let x: Vec<f32> = (0..rows * d)
        .map(|_| {
            if rng.uniform_f32() < 0.3 {
                rng.normal() as f32
            } else {
                0.0
            }
        })
        .collect();
    let mut y = vec![0.0f32; rows * d];
    for r in 0..rows {
        let h: Vec<f32> = (0..w)
            .map(|j| {
                (0..d)
                    .map(|i| w_in[j * d + i] * x[r * d + i])
                    .sum::<f32>()
                    .max(0.0)
            })
            .collect();
        for o in 0..d {
            y[r * d + o] = (0..w).map(|j| w_out[o * w + j] * h[j]).sum();
        }
    }
    write_npy_f32(&toy.join("resid_pre.npy"), rows, d, &x).unwrap();
    write_npy_f32(&toy.join("mlp_out.npy"), rows, d, &y).unwrap();
    let c = small(json!({"d_sae": [16], "k": [4], "epochs": [5]}));
    let s = run(c.clone(), &[("data", &toy)], &dir.path().join("out")).unwrap();
    assert_eq!(s["data_run"]["source"], "toy-mlp");
    assert_eq!(s["data_run"]["campaign"], "toy");
    let files = s["data_run"]["files"].as_object().unwrap();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["resid_pre.npy", "mlp_out.npy"]
    );
    assert!(s["data"]["synthetic"].is_null());
    assert!(
        s["confirmation"]["per_seed"][0]["transcoder"]
            .get("recovered_fraction")
            .is_none()
    );
    // target_d is for synthetic data only.
    let mut bad = c;
    bad["target_d"] = json!(4);
    let e = run(bad, &[("data", &toy)], &dir.path().join("out-bad")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidConfig);
    assert!(
        e.message
            .contains("\"target_d\" applies to a data synth run only"),
        "{e:?}"
    );
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth_run(dir.path(), &synth_config());
    let cases = [
        (
            json!({"confirm_seeds": [4, 20, 21, 22, 23]}),
            "seed 4 is in both select_seeds and confirm_seeds",
        ),
        (
            json!({"select_seeds": [0, 1, 2, 3]}),
            "\"select_seeds\" has 4 seeds; the seed-level interval needs at least 5",
        ),
        (
            json!({"k": [2, 13]}),
            "\"k\" holds 13, more than the smallest d_sae 12",
        ),
        (json!({"d_sae": []}), "\"d_sae\" must be a non-empty list"),
        (json!({"epochs": [3, 3]}), "\"epochs\" lists 3 twice"),
        (json!({"lr": 0}), "\"lr\" must be a finite number > 0"),
        (
            json!({"max_held_out_fvu": -1}),
            "\"max_held_out_fvu\" must be a finite number > 0",
        ),
        (
            json!({"held_out_fraction": 1.0}),
            "\"held_out_fraction\" must lie strictly between 0 and 1",
        ),
        (
            json!({"learning_rate": 0.1}),
            "unknown config key \"learning_rate\"",
        ),
    ];
    for (i, (extra, want)) in cases.into_iter().enumerate() {
        let e = run(
            small(extra),
            &[("data", &data)],
            &dir.path().join(format!("out{i}")),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig, "{want}");
        assert!(
            e.message.contains(want),
            "{} does not contain {want}",
            e.message
        );
    }
}

#[test]
fn bad_inputs_are_refused_with_what_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth_run(dir.path(), &synth_config());
    let out = |n: &str| dir.path().join(n);
    let e = run(small(json!({})), &[], &out("a")).unwrap_err();
    assert!(
        e.message.contains("exactly one --input data=RUN"),
        "{}",
        e.message
    );
    let e = run(
        small(json!({})),
        &[("data", &data), ("sae", &data)],
        &out("b"),
    )
    .unwrap_err();
    assert!(
        e.message.contains("the request also names \"sae\""),
        "{}",
        e.message
    );
    let empty = dir.path().join("results/x/empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = run(small(json!({})), &[("data", &empty)], &out("c")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(
        e.message
            .contains("neither mlp_out.npy (a toy-modadd run) nor generator.json"),
        "{}",
        e.message
    );
    // Activations that are not what the recorded generator makes: the codes cannot be recovered.
    let mut other = synth_config();
    other.seed = 5;
    let x = generate(&other).unwrap().x;
    write_npy_f32(&data.join("activations.npy"), other.rows, other.d_in, &x).unwrap();
    let e = run(small(json!({})), &[("data", &data)], &out("d")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(
        e.message
            .contains("is not what generator.json's config generates"),
        "{}",
        e.message
    );
}
