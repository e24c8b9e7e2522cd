//! `husai-audit eval` through the host with the `test-eval` plugin (docs/eval-contract.md): input runs by id or
//! directory and by role, verified first and recorded with their digests; the summary checked against its schema
//! and signed; every broken-contract path refused with a message that names it and no run left behind; a tampered
//! summary fails verify.

use crate::common;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::{Project, assert_fails_with, assert_success, plugin_dir};
use husai_core::manifest::{RunKind, RunStatus};
use serde_json::Value;

fn manifest(dir: &Path) -> Value {
    let env: Value =
        serde_json::from_slice(&std::fs::read(dir.join("husai.dsse.json")).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    statement["predicate"].clone()
}

fn eval(p: &Project, inputs: &[&str], extra: &[&str]) -> std::process::Output {
    let dir = plugin_dir();
    let mut args = vec![
        "eval",
        "--plugin",
        "test-eval",
        "--campaign",
        "ev",
        "--key",
        "dev.pem",
        "--plugin-dir",
        dir.to_str().unwrap(),
        "--json",
    ];
    for i in inputs {
        args.extend(["--input", i]);
    }
    args.extend_from_slice(extra);
    p.run(&args)
}

/// Runs in the `ev` campaign (published or staging): none may be left by a refused eval.
fn eval_runs(p: &Project) -> Vec<PathBuf> {
    match std::fs::read_dir(p.path("results/ev")) {
        Ok(d) => d.flatten().map(|e| e.path()).collect(),
        Err(_) => vec![],
    }
}

fn two_runs(p: &Project) -> (PathBuf, PathBuf) {
    let a = p.attest("a", "in", &[("x.txt", b"hello"), ("y.txt", b"world!")]);
    let b = p.attest("b", "in", &[("z.bin", &[1, 2, 3])]);
    (a, b)
}

#[test]
fn an_eval_of_runs_by_id_and_directory_signs_a_summary_that_verifies() {
    let p = Project::new();
    let (a, b) = two_runs(&p);
    let a_id = common::file_name(&a);
    let o = eval(
        &p,
        &[
            &format!("model={a_id}"),
            &format!("sae={}", b.display()),
            &a_id,
        ],
        &[],
    );
    assert_success(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = p.dir.path().join(v["dir"].as_str().unwrap());
    let summary: Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary, v["summary"]);
    assert_eq!(summary["schema"], "eval-summary.v1");
    // The plugin got the run directories under ROLE/i keys.
    let inputs = summary["inputs"].as_object().unwrap();
    let keys: Vec<&str> = inputs.keys().map(String::as_str).collect();
    assert_eq!(keys, ["model/0", "run/0", "sae/0"]);
    assert_eq!(inputs["sae/0"]["files"], 2); // z.bin and husai.dsse.json

    let m = manifest(&run);
    assert_eq!(m["kind"], "eval");
    assert_eq!(m["extra"]["eval"]["schema"], "eval-summary.v1");
    assert_eq!(m["extra"]["eval"]["eval"], "count");
    let listed = m["extra"]["eval"]["inputs"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["role"], "model/0");
    assert_eq!(listed[0]["run_id"], a_id.as_str());
    assert_eq!(listed[1]["run_id"], common::file_name(&b).as_str());
    // Every subject of every input run is a run-linked input with its signed digest: 2 + 1 + 2.
    let recorded = m["inputs"].as_array().unwrap();
    assert_eq!(recorded.len(), 5);
    assert!(recorded.iter().all(|i| i["run"]["run_id"].is_string()));
    assert!(
        recorded
            .iter()
            .any(|i| i["run"]["subject"] == "z.bin" && i["digest"].as_object().is_some())
    );

    assert_success(&p.run(&["verify", "results"]));
    // A tampered summary fails verify.
    std::fs::write(
        run.join("summary.json"),
        serde_json::to_string(&serde_json::json!({"schema": "eval-summary.v1", "eval": "count"}))
            .unwrap(),
    )
    .unwrap();
    let o = p.run(&["verify", "results"]);
    assert_fails_with(&o, 1, &["summary.json"]);
}

#[test]
fn inputs_that_are_not_verified_ok_runs_are_refused_before_the_plugin_runs() {
    let p = Project::new();
    let (a, _) = two_runs(&p);
    // A plain file, a plain directory and a file inside a run.
    std::fs::write(p.path("plain.txt"), b"x").unwrap();
    assert_fails_with(
        &eval(&p, &["plain.txt"], &[]),
        2,
        &["--input plain.txt: is not a run (no husai.dsse.json)"],
    );
    std::fs::create_dir(p.path("d")).unwrap();
    assert_fails_with(&eval(&p, &["d"], &[]), 2, &["is not a run"]);
    let inside = a.join("x.txt");
    assert_fails_with(
        &eval(&p, &[inside.to_str().unwrap()], &[]),
        2,
        &["is inside run", "give the run itself"],
    );
    // An unknown run id, and a spec that is neither.
    assert_fails_with(
        &eval(&p, &["20250101T000000Z-0123456789abcdef"], &[]),
        2,
        &["run 20250101T000000Z-0123456789abcdef is not under results"],
    );
    assert_fails_with(&eval(&p, &["nothing-here"], &[]), 2, &["not a run id"]);
    // A bad role.
    assert_fails_with(&eval(&p, &["Model=x"], &[]), 2, &["must be lowercase"]);
    // A run that fails verification.
    std::fs::write(a.join("x.txt"), b"changed").unwrap();
    assert_fails_with(
        &eval(&p, &[a.to_str().unwrap()], &[]),
        2,
        &["fails verification", "x.txt"],
    );
    // A signed run that did not end ok.
    let diverged = common::sign_with_status(
        &p,
        "in",
        RunKind::Train,
        &[("w.bin", b"w")],
        RunStatus::Diverged,
        "loss went NaN",
    );
    assert_fails_with(
        &eval(&p, &[diverged.to_str().unwrap()], &[]),
        2,
        &["ended with status `diverged`", "loss went NaN"],
    );
    assert!(eval_runs(&p).is_empty(), "{:?}", eval_runs(&p));
}

#[test]
fn a_result_that_breaks_the_contract_signs_nothing() {
    let p = Project::new();
    let (a, _) = two_runs(&p);
    let a = a.to_str().unwrap().to_owned();
    let cases: [(&str, &[&str]); 7] = [
        ("no_summary", &["the result has no \"summary\""]),
        (
            "unlisted_summary",
            &["its summary \"summary.json\" is not among its \"outputs\""],
        ),
        (
            "unknown_schema",
            &["names schema \"made-up.v1\", which is not an eval summary schema husai knows"],
        ),
        (
            "bad_envelope",
            &["does not match schema eval-summary.v1", "/eval"],
        ),
        (
            "wrong_eval",
            &["is for eval \"other\", which the plugin does not describe"],
        ),
        ("fail", &["asked to fail (mode fail)"]),
        // Last: it changes the input run.
        (
            "tamper_input",
            &["changed while plugin test-eval ran, so nothing was signed"],
        ),
    ];
    for (mode, needles) in cases {
        let set = format!("mode={mode}");
        let o = eval(&p, &[&a], &["--set", &set]);
        assert_fails_with(&o, 2, needles);
        assert!(
            eval_runs(&p).is_empty(),
            "mode {mode} left {:?}",
            eval_runs(&p)
        );
    }
}

#[test]
fn a_config_value_the_schema_refuses_is_named() {
    let p = Project::new();
    let (a, _) = two_runs(&p);
    let o = eval(&p, &[a.to_str().unwrap()], &["--set", "mode=nope"]);
    assert_fails_with(&o, 2, &["/mode"]);
    assert!(eval_runs(&p).is_empty());
}

#[test]
fn a_non_eval_plugin_and_no_input_are_refused() {
    let p = Project::new();
    let (a, _) = two_runs(&p);
    let dir = plugin_dir();
    let o = p.run(&[
        "eval",
        "--plugin",
        "test-trainer",
        "--input",
        a.to_str().unwrap(),
        "--campaign",
        "ev",
        "--key",
        "dev.pem",
        "--plugin-dir",
        dir.to_str().unwrap(),
    ]);
    assert_fails_with(&o, 2, &["is a trainer plugin; `eval` needs an eval plugin"]);
    let o = p.run(&[
        "eval",
        "--plugin",
        "test-eval",
        "--campaign",
        "ev",
        "--key",
        "dev.pem",
    ]);
    assert_fails_with(&o, 2, &["--input"]);
}
