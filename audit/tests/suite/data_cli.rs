//! `husai-audit data synth` and `data encode` through the `data` plugin: a signed data run that verifies, an encoding
//! written outside any run, and bad values refused by key with no run. Independent of the trainers: the checkpoint
//! encoded here is written directly with husai-kernels.

use crate::common;

use base64::Engine;
use common::{Project, assert_fails_with, assert_success, plugin_dir};
use husai_kernels::activations::write_npy_f32;
use serde_json::{Value, json};

fn manifest(dir: &std::path::Path) -> Value {
    let env: Value =
        serde_json::from_slice(&std::fs::read(dir.join("husai.dsse.json")).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice::<Value>(&payload).unwrap()["predicate"].clone()
}

fn synth(p: &Project, extra: &[&str]) -> std::process::Output {
    let dir = plugin_dir().display().to_string();
    let mut a = vec![
        "data",
        "synth",
        "--rows",
        "256",
        "--d-in",
        "8",
        "--n-features",
        "24",
        "--seed",
        "7",
        "--campaign",
        "data",
        "--key",
        "dev.pem",
        "--plugin-dir",
        &dir,
        "--json",
    ];
    a.extend_from_slice(extra);
    p.run(&a)
}

#[test]
fn synth_signs_a_data_run_through_the_plugin_and_encode_writes_a_plain_file() {
    let p = Project::new();
    let o = synth(&p, &["--l0", "3"]);
    assert_success(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = p.dir.path().join(v["dir"].as_str().unwrap());
    for f in ["activations.npy", "dictionary.npy", "generator.json"] {
        assert!(run.join(f).is_file(), "{f}");
    }
    let m = manifest(&run);
    assert_eq!(m["kind"], "data");
    assert_eq!(m["plugin"]["name"], "data");
    assert_eq!(m["config"]["operation"], "synth");
    assert_eq!(
        (m["config"]["l0"].clone(), m["config"]["coef_min"].clone()),
        (json!(3), json!(0.5))
    );
    assert_eq!(m["seeds"], json!([7]));
    assert_eq!(m["extra"]["summary"]["dictionary"], json!([24, 8]));
    let again = synth(&p, &["--l0", "3"]);
    let run2 = p.dir.path().join(
        serde_json::from_slice::<Value>(&again.stdout).unwrap()["dir"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        std::fs::read(run.join("activations.npy")).unwrap(),
        std::fs::read(run2.join("activations.npy")).unwrap(),
        "same seed, same bank"
    );
    assert_success(&p.run(&["verify"]));

    // Encode the bank with a TopK checkpoint: at most k non-negative features per row, never inside a run.
    let sae = husai_kernels::SaeParts::init(8, 16, 2, 1).unwrap();
    let ckpt = p.path("ckpt");
    std::fs::create_dir(&ckpt).unwrap();
    husai_kernels::checkpoint::write(&ckpt, &sae).unwrap();
    let dir = plugin_dir().display().to_string();
    let data = run.join("activations.npy");
    let encode = |extra: &[&str]| {
        let mut a = vec![
            "data",
            "encode",
            "--checkpoint",
            "ckpt",
            "--data",
            data.to_str().unwrap(),
            "--rows",
            "10",
            "--out",
            "enc.npy",
            "--plugin-dir",
            &dir,
        ];
        a.extend_from_slice(extra);
        p.run(&a)
    };
    // A checkpoint outside any signed run is refused unless --allow-unsigned says so.
    assert_fails_with(
        &encode(&[]),
        1,
        &[
            "checkpoint ckpt is not inside a signed run (no husai.dsse.json above it)",
            "--allow-unsigned",
            "data encode: FAILED",
        ],
    );
    assert!(!p.path("enc.npy").exists());
    let o = encode(&["--allow-unsigned"]);
    assert_success(&o);
    assert!(
        common::stdout(&o)
            .contains("wrote enc.npy ([10,16] feature activations of rows 0:10, not a signed run)"),
        "{}",
        common::stdout(&o)
    );
    assert!(
        common::stdout(&o)
            .contains("checkpoint ckpt is not inside a signed run (--allow-unsigned)")
    );
    let enc = husai_kernels::activations::open(&p.path("enc.npy"), &Default::default()).unwrap();
    assert_eq!((enc.info().rows, enc.info().d_in), (10, 16));
    for row in enc.data().chunks(16) {
        assert!(row.iter().filter(|v| **v != 0.0).count() <= 2);
        assert!(row.iter().all(|v| *v >= 0.0));
    }
    let leftovers: Vec<_> = std::fs::read_dir(p.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".husai-encode"))
        .collect();
    assert!(leftovers.is_empty(), "the scratch directory is removed");
    // Data of another width than the checkpoint's is refused with both widths named, and no file is written.
    write_npy_f32(&p.path("narrow.npy"), 20, 4, &[0.5; 80]).unwrap();
    let o = p.run(&[
        "data",
        "encode",
        "--checkpoint",
        "ckpt",
        "--data",
        "narrow.npy",
        "--out",
        "bad.npy",
        "--plugin-dir",
        &dir,
        "--allow-unsigned",
    ]);
    assert_fails_with(
        &o,
        2,
        &[
            "narrow.npy has d_in = 4, but the SAE checkpoint it is used with (resumed or encoded with) has d_in = 8",
        ],
    );
    assert!(!p.path("bad.npy").exists());
}

#[test]
fn synth_refuses_bad_values_by_key_and_records_no_run() {
    let p = Project::new();
    let o = synth(&p, &["--l0", "30"]);
    assert_fails_with(&o, 2, &["plugin data", "l0", "30", "n_features"]);
    let o = synth(&p, &["--l0", "0"]);
    assert_fails_with(&o, 2, &["config key /l0 = 0", "allowed: integer >= 1"]);
    let runs: Vec<_> = std::fs::read_dir(p.path("results/data"))
        .map(|r| r.flatten().collect())
        .unwrap_or_default();
    assert!(runs.is_empty(), "{runs:?}");
}
