//! The plugin's `run`, in process, on a synthetic data run and a TopK SAE trained on it (written as a train run
//! writes its checkpoint): the summary's identity of its evidence, its figures, determinism, and bad inputs.

use std::path::{Path, PathBuf};

use husai_kernels::activations::write_npy_f32;
use husai_kernels::engine::FamilyTrainer;
use husai_kernels::families::TopK;
use husai_kernels::synth::{SynthConfig, generate};
use husai_kernels::train::batch_start;
use husai_plugin_api::{ErrorKind, Plugin, PluginError, Progress, RunRequest};
use serde_json::{Value, json};

use super::{OodStress, SUMMARY};

struct Fixture {
    dir: tempfile::TempDir,
    data: PathBuf,
    sae: PathBuf,
}

/// A `data synth`-like run (d_in 24, 64 features, l0 3) and a TopK SAE (d_sae 96, k 3) trained on its rows, under
/// `results/<campaign>/<run_id>/`.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        rows: 8192,
        d_in: 24,
        n_features: 64,
        l0: 3,
        coef_min: 0.5,
        coef_max: 1.5,
        seed: 5,
    };
    let synth = generate(&cfg).unwrap();
    let data = dir.path().join("results/planted/data-run");
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
    let mut engine = husai_kernels::engine::EngineConfig::new(96);
    engine.batch = 256;
    engine.seed = 1;
    let mut t = FamilyTrainer::new(engine, TopK::new(3, 96), 24, false).unwrap();
    for s in 0..1500 {
        let b = batch_start(s, 256, cfg.rows);
        t.step(&synth.x[b * 24..(b + 256) * 24]).unwrap();
    }
    let sae = dir.path().join("results/planted/sae-run");
    std::fs::create_dir_all(&sae).unwrap();
    husai_kernels::checkpoint::write_family(&sae, t.family(), &t.model().to_parts()).unwrap();
    Fixture { dir, data, sae }
}

fn try_run(config: Value, inputs: &[(&str, &Path)], out: &Path) -> Result<Value, PluginError> {
    let request = RunRequest {
        config,
        inputs: inputs
            .iter()
            .map(|(r, p)| (r.to_string(), p.to_path_buf()))
            .collect(),
        output_dir: out.to_path_buf(),
    };
    OodStress::run(&request, &mut Progress::discard())
}

fn summary(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join(SUMMARY)).unwrap()).unwrap()
}

const FAST: fn() -> Value = || json!({"tasks": 12, "train_rows": 300, "test_rows": 300, "bootstrap": 999, "permutations": 999});

#[test]
fn the_summary_names_its_evidence_and_the_probes_see_the_planted_features() {
    let f = fixture();
    let out = f.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let inputs = [("sae/0", f.sae.as_path()), ("data/0", f.data.as_path())];
    let result = try_run(FAST(), &inputs, &out).unwrap();
    assert_eq!(result, json!({"outputs": [SUMMARY], "summary": SUMMARY}));
    let s = summary(&out);
    assert_eq!(
        (s["schema"].as_str(), s["eval"].as_str()),
        (Some("ood-stress.v1"), Some("ood-stress"))
    );
    assert_eq!(
        (
            s["sae_run"]["campaign"].as_str(),
            s["sae_run"]["run_id"].as_str()
        ),
        (Some("planted"), Some("sae-run"))
    );
    assert_eq!(s["data_run"]["run_id"], "data-run");
    let mut d = husai_kernels::trainer::Digests::new();
    husai_kernels::trainer::read_input("w", &f.sae.join("sae_weights.safetensors"), &mut d)
        .unwrap();
    assert_eq!(
        s["sae_run"]["weights_sha256"].as_str(),
        d.get("w").map(String::as_str)
    );
    let tasks = s["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 12);
    assert_eq!(tasks.iter().filter(|t| t["stratum"] == "ood").count(), 6);
    assert_eq!(s["by_k"].as_array().unwrap().len(), 3);
    assert_eq!(s["gate_k"], 5);
    assert_eq!(s["ood_drop"], s["by_k"][2]["ood_drop"]);
    // "Is feature f active?" is linear in the rows and carried by about one latent of a recovering SAE: both probes
    // find it in distribution, the dense one better (the SAE has not recovered every feature).
    let id: Vec<&Value> = tasks.iter().filter(|t| t["stratum"] == "id").collect();
    let sae5: Vec<f64> = id
        .iter()
        .map(|t| t["sae_auc"]["5"].as_f64().unwrap())
        .collect();
    assert!(
        id.iter().all(|t| t["dense_auc"].as_f64().unwrap() > 0.95),
        "{id:?}"
    );
    assert!(sae5.iter().all(|&a| a > 0.8), "{sae5:?}");
    assert!(
        sae5.iter().sum::<f64>() / sae5.len() as f64 > 0.85,
        "{sae5:?}"
    );
    // Under the shift (5 background features against the SAE's k = 3) the task's latent is often crowded out of the
    // top 3, so the SAE probe loses more than the dense one: a drop whose interval excludes 0 at the gate's k.
    let interval = &s["ood_drop_interval"];
    let (low, high, drop) = (
        interval["low"].as_f64().unwrap(),
        interval["high"].as_f64().unwrap(),
        s["ood_drop"].as_f64().unwrap(),
    );
    assert!(low <= drop && drop <= high, "{interval} {drop}");
    assert!(low > 0.0, "{interval}");
    let p = s["permutation_p"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p) && p >= 1.0 / 1000.0);
    eprintln!("ood-stress on the planted SAE: by_k {}", s["by_k"]);
    // The same inputs and config give the same bytes.
    let again = f.dir.path().join("again");
    std::fs::create_dir(&again).unwrap();
    try_run(FAST(), &inputs, &again).unwrap();
    assert_eq!(
        std::fs::read(out.join(SUMMARY)).unwrap(),
        std::fs::read(again.join(SUMMARY)).unwrap()
    );
}

#[test]
fn bad_configs_and_inputs_are_named_and_nothing_is_written() {
    let f = fixture();
    let out = f.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let both = [("sae/0", f.sae.as_path()), ("data/0", f.data.as_path())];
    let err = |config: Value, inputs: &[(&str, &Path)]| {
        let e = try_run(config, inputs, &out).unwrap_err();
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "nothing written for {e}"
        );
        e
    };
    let e = err(json!({"gate_k": 3}), &both);
    assert_eq!(
        (e.kind, e.message.as_str()),
        (
            ErrorKind::InvalidConfig,
            "config key \"gate_k\" is 3, which is not one of ks [1, 2, 5]"
        )
    );
    let e = err(json!({"ks": [1, 1]}), &both);
    assert_eq!(e.message, "config key \"ks\" lists 1 twice");
    let e = err(json!({"tasks": 4}), &both);
    assert_eq!(
        e.message,
        "config key \"tasks\" must be an integer from 10 to 10000, got 4"
    );
    let e = err(json!({"probe": "l1"}), &both);
    assert!(
        e.message
            .starts_with("unknown config key \"probe\"; ood-stress reads tasks,"),
        "{}",
        e.message
    );
    let e = err(json!({"tasks": 65}), &both);
    assert_eq!(
        e.message,
        "config key \"tasks\" is 65 but the data run has only 64 features to define tasks on"
    );
    let e = err(json!({"ks": [1, 200], "gate_k": 1}), &both);
    assert_eq!(
        e.message,
        "config key \"ks\" holds 200, more than the SAE's 96 latents"
    );
    let e = err(json!({}), &[("sae/0", f.sae.as_path())]);
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.ends_with("got 1 and 0"), "{}", e.message);
    let e = err(
        json!({}),
        &[
            ("sae/0", f.sae.as_path()),
            ("data/0", f.data.as_path()),
            ("model/0", f.data.as_path()),
        ],
    );
    assert!(
        e.message.ends_with("the request also names \"model/0\""),
        "{}",
        e.message
    );
    // The SAE's run given as the data run: no generator.json.
    let e = err(
        json!({}),
        &[("sae/0", f.sae.as_path()), ("data/0", f.sae.as_path())],
    );
    assert!(
        e.message.contains("cannot read generator.json"),
        "{}",
        e.message
    );
    // A data run of another width.
    let other = f.dir.path().join("results/planted/other-data");
    std::fs::create_dir_all(&other).unwrap();
    write_npy_f32(&other.join("dictionary.npy"), 20, 8, &[0.5; 160]).unwrap();
    std::fs::write(
        other.join("generator.json"),
        r#"{"config": {"n_features": 20, "d_in": 8, "l0": 2, "coef_min": 0.5, "coef_max": 1.5}}"#,
    )
    .unwrap();
    let e = err(
        json!({}),
        &[("sae/0", f.sae.as_path()), ("data/0", other.as_path())],
    );
    assert!(
        e.message.contains("has d_in 24 but the data run")
            && e.message
                .ends_with("has d_in 8; give the data run the SAE was trained on"),
        "{}",
        e.message
    );
}

#[test]
fn an_interval_unbounded_below_is_written_as_null_and_shows_no_degradation() {
    // Serialising -inf gives null, which the schema allows for a bound; a summary of a very good SAE (every gap
    // but a few exactly 0) has such an interval, and it must still conclude.
    let row = json!({"interval": {"low": f64::NEG_INFINITY, "high": 1e-4}});
    assert_eq!(row["interval"]["low"], Value::Null);
    assert_eq!(crate::eval::conclusion(&row), "no_degradation_shown");
    let row = json!({"interval": {"low": 0.01, "high": 0.2}});
    assert_eq!(crate::eval::conclusion(&row), "degrades_under_shift");
    assert_eq!(
        crate::eval::conclusion(&json!({"interval": null})),
        "not_evaluated"
    );
}
