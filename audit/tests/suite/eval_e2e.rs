//! End to end at reduced sizes (issue #11 item "end to end"): the toy model (a signed data run) → 5 TopK SAEs on its
//! resid_pre bank through `husai-audit train` → a planted `data synth` run and 5 SAEs on it → the known-circuit eval
//! reading all of them by run id → `husai-audit verify` passes; a tampered closure summary fails it.

use crate::common;

use std::path::PathBuf;

use common::{Project, assert_fails_with, assert_success, plugin_dir};
use serde_json::Value;

fn json_out(p: &Project, args: &[&str]) -> Value {
    let o = p.run(args);
    assert_success(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn run_id(v: &Value) -> String {
    PathBuf::from(v["dir"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn toy_model_to_saes_to_known_circuit_signs_a_chain_that_verifies() {
    let p = Project::new();
    let dir = plugin_dir();
    let dir = dir.to_str().unwrap();
    let common_args = ["--key", "dev.pem", "--plugin-dir", dir, "--json"];
    let with = |a: &[&str]| -> Vec<String> {
        a.iter()
            .chain(common_args.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let call = |a: Vec<String>| json_out(&p, &a.iter().map(String::as_str).collect::<Vec<_>>());

    let toy = call(with(&[
        "data",
        "generate",
        "--plugin",
        "toy-modadd",
        "--set",
        "seed=0",
        "--set",
        "p=23",
        "--set",
        "d_model=16",
        "--set",
        "width=64",
        "--set",
        "steps=60",
        "--set",
        "eval_every=20",
        "--set",
        "train_fraction=0.5",
        "--campaign",
        "toy",
    ]));
    let toy_id = run_id(&toy);
    assert_eq!(toy["summary"]["p"], 23);
    let toy_dir = p.path(toy["dir"].as_str().unwrap());
    let bank = toy_dir.join("resid_pre.npy");
    let bank = bank.to_str().unwrap();

    let synth = call(with(&[
        "data",
        "synth",
        "--rows",
        "2048",
        "--d-in",
        "16",
        "--n-features",
        "12",
        "--l0",
        "2",
        "--seed",
        "3",
        "--campaign",
        "toy",
    ]));
    let synth_dir = p.path(synth["dir"].as_str().unwrap());
    let synth_bank = synth_dir.join("activations.npy");
    let synth_bank = synth_bank.to_str().unwrap();

    let mut inputs = vec![format!("model={toy_id}")];
    for seed in 0..5 {
        let s = seed.to_string();
        let sae = call(with(&[
            "train",
            "--plugin",
            "sae-topk",
            "--data",
            bank,
            "--set",
            "d_sae=32",
            "--set",
            "k=4",
            "--set",
            "steps=40",
            "--set",
            "batch=64",
            "--seed",
            &s,
            "--campaign",
            "toy",
        ]));
        inputs.push(format!("sae={}", run_id(&sae)));
    }
    inputs.push(format!("planted={}", run_id(&synth)));
    for seed in 0..5 {
        let s = seed.to_string();
        let sae = call(with(&[
            "train",
            "--plugin",
            "sae-topk",
            "--data",
            synth_bank,
            "--set",
            "d_sae=24",
            "--set",
            "k=2",
            "--set",
            "steps=150",
            "--set",
            "batch=64",
            "--seed",
            &s,
            "--campaign",
            "toy",
        ]));
        inputs.push(format!("planted_sae={}", run_id(&sae)));
    }

    let mut args: Vec<String> = [
        "eval",
        "--plugin",
        "known-circuit",
        "--campaign",
        "toy",
        "--set",
        "random_inits=100",
        "--set",
        "random_decoders=100",
        "--set",
        "bootstrap=1000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in &inputs {
        args.push("--input".into());
        args.push(i.clone());
    }
    let ev = call(
        args.into_iter()
            .chain(common_args.iter().map(|s| s.to_string()))
            .collect(),
    );
    assert_eq!(ev["schema"], "closure-summary.v1");
    let parts = &ev["summary"]["parts"];
    for part in ["embedding", "sae_alignment", "planted"] {
        let outcome = parts[part]["outcome"].as_str().unwrap();
        assert!(
            ["recovered_above_random", "null_result"].contains(&outcome),
            "{part}: {}",
            parts[part]
        );
    }
    assert_eq!(parts["sae_alignment"]["trained"]["n"], 5);
    // At these reduced sizes (150 steps) the SAEs' best cosines to the planted dictionary are well above random
    // decoders', though few clear the 0.9 recovery threshold yet.
    assert_eq!(
        parts["planted"]["mean_best_cosine"]["outcome"], "recovered_above_random",
        "{}",
        parts["planted"]
    );

    assert_success(&p.run(&["verify", "results"]));
    let summary = p
        .path(ev["dir"].as_str().unwrap())
        .join("closure_summary.json");
    let mut text = std::fs::read_to_string(&summary).unwrap();
    text = text.replacen("null_result", "recovered_above_random", 1);
    text.push(' ');
    std::fs::write(&summary, text).unwrap();
    assert_fails_with(&p.run(&["verify", "results"]), 1, &["closure_summary.json"]);
}
