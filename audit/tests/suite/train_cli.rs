//! `husai-audit data synth` and `husai-audit train` end to end with the real sae-topk plugin (these need sae-topk
//! written to docs/trainer-contract.md: read_sha256, status, dataset, trainer_state.safetensors): signed runs that
//! verify, a provenance link from the train run to the data run, byte-identical weights for the same seed, and
//! bad activation files refused with a clear message and no run.

use crate::common;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::{Project, assert_fails_with, assert_success, stderr};
use husai_core::digest::sha256_hex;
use husai_kernels::activations::write_npy_f32;
use serde_json::Value;

use common::plugin_dir;

fn json_out(o: &std::process::Output) -> Value {
    assert_success(o);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn run_dir(p: &Project, v: &Value) -> PathBuf {
    p.dir.path().join(v["dir"].as_str().unwrap())
}

/// The signed manifest (the Statement's predicate) of a run.
fn manifest(dir: &Path) -> Value {
    let env: Value =
        serde_json::from_slice(&std::fs::read(dir.join("husai.dsse.json")).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    let statement: Value = serde_json::from_slice(&payload).unwrap();
    statement["predicate"].clone()
}

fn train(p: &Project, data: &str, seed: &str, extra: &[&str]) -> std::process::Output {
    let dir = plugin_dir();
    let mut args = vec![
        "train",
        "--plugin",
        "sae-topk",
        "--data",
        data,
        "--set",
        "d_sae=32",
        "--set",
        "k=4",
        "--seed",
        seed,
        "--set",
        "batch=64",
        "--campaign",
        "sweep",
        "--key",
        "dev.pem",
        "--plugin-dir",
        dir.to_str().unwrap(),
        "--json",
    ];
    if !extra.iter().any(|a| a.starts_with("epochs=")) {
        args.extend(["--set", "steps=30"]);
    }
    args.extend_from_slice(extra);
    p.run(&args)
}

#[test]
fn synth_then_train_signs_runs_that_verify_with_identical_weights_per_seed() {
    let p = Project::new();
    let synth = json_out(&p.run(&[
        "data",
        "synth",
        "--plugin-dir",
        plugin_dir().to_str().unwrap(),
        "--rows",
        "512",
        "--d-in",
        "16",
        "--n-features",
        "48",
        "--l0",
        "3",
        "--seed",
        "7",
        "--campaign",
        "data",
        "--key",
        "dev.pem",
        "--json",
    ]));
    let data_run = run_dir(&p, &synth);
    for f in [
        "activations.npy",
        "dictionary.npy",
        "generator.json",
        "husai.dsse.json",
    ] {
        assert!(data_run.join(f).is_file(), "{f} missing from the data run");
    }
    let m = manifest(&data_run);
    assert_eq!(m["kind"], "data");
    assert_eq!(m["config"]["l0"], 3);
    assert_eq!(m["seeds"], serde_json::json!([7]));
    let generator: Value =
        serde_json::from_slice(&std::fs::read(data_run.join("generator.json")).unwrap()).unwrap();
    assert_eq!(
        generator["files"]["dictionary.npy"]["shape"],
        serde_json::json!([48, 16])
    );

    let data = data_run.join("activations.npy");
    let data_s = data.to_str().unwrap();
    let a = run_dir(&p, &json_out(&train(&p, data_s, "3", &[])));
    let b = run_dir(&p, &json_out(&train(&p, data_s, "3", &[])));
    let c = run_dir(
        &p,
        &json_out(&train(&p, data_s, "4", &["--set", "epochs=2"])),
    );
    let weights = |d: &Path| std::fs::read(d.join("sae_weights.safetensors")).unwrap();
    assert_eq!(
        weights(&a),
        weights(&b),
        "same seed, same data: byte-identical weights"
    );
    assert_ne!(weights(&a), weights(&c), "another seed gives other weights");

    let m = manifest(&a);
    assert_eq!(m["kind"], "train");
    assert_eq!(m["seeds"], serde_json::json!([3]));
    assert_eq!(m["config"]["steps"], 30);
    assert_eq!(m["config"]["lr"], 0.001);
    assert_eq!(m["config_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(m["config_sha256"], manifest(&b)["config_sha256"]);
    let lib = plugin_dir().join(format!("libhusai_sae_topk{}", std::env::consts::DLL_SUFFIX));
    assert_eq!(m["plugin"]["name"], "sae-topk");
    assert_eq!(m["plugin"]["api_version"], 1);
    assert_eq!(
        m["plugin"]["library_sha256"],
        Value::from(sha256_hex(&std::fs::read(&lib).unwrap()))
    );
    assert_eq!(
        m["dataset"]["sha256"],
        Value::from(sha256_hex(&std::fs::read(&data).unwrap()))
    );
    assert_eq!(m["dataset"]["format"], "npy");
    assert_eq!(m["dataset"]["dtype"], "float32");
    assert_eq!(m["dataset"]["shape"], serde_json::json!([512, 16]));
    assert_eq!(
        m["dataset"]["rows"],
        serde_json::json!({"start": 0, "end": 512})
    );
    // The data set is another run's output, so the input links to that run (verify follows the link).
    assert_eq!(m["inputs"][0]["run"]["run_id"], synth["run_id"]);
    assert_eq!(m["inputs"][0]["run"]["subject"], "activations.npy");
    // epochs=2 is recorded as given, and clears steps (exactly one of them is set).
    assert_eq!(manifest(&c)["config"]["epochs"], 2);
    assert_eq!(manifest(&c)["config"]["steps"], Value::Null);

    // A row range: only those rows are trained on (epochs count them), and the manifest and config record it.
    let d = run_dir(
        &p,
        &json_out(&train(
            &p,
            data_s,
            "3",
            &[
                "--set",
                r#"rows={"start":100,"end":420}"#,
                "--set",
                "epochs=1",
            ],
        )),
    );
    let md = manifest(&d);
    assert_eq!(
        md["dataset"]["rows"],
        serde_json::json!({"start": 100, "end": 420})
    );
    assert_eq!(
        md["config"]["rows"],
        serde_json::json!({"start": 100, "end": 420})
    );
    assert_eq!(md["config"]["epochs"], 1);
    assert_ne!(md["config_sha256"], m["config_sha256"]);
    let o = train(&p, data_s, "3", &["--set", r#"rows={"start":0,"end":600}"#]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("rows"), "{}", stderr(&o));

    let metrics: Value =
        serde_json::from_slice(&std::fs::read(a.join("metrics.json")).unwrap()).unwrap();
    for block in ["train", "eval"] {
        for k in ["mse", "fvu", "l0", "dead_fraction"] {
            assert!(
                metrics[block][k].is_number(),
                "metrics.json {block}.{k}: {metrics}"
            );
        }
        assert!(metrics[block]["l0"].as_f64().unwrap() <= 4.0);
    }
    for k in ["wall_s", "rows_per_s"] {
        assert!(metrics[k].is_number(), "metrics.json {k}: {metrics}");
    }
    // Held-out rows are the last 10 % of the bank, never trained on, and metrics.json says so.
    assert_eq!(
        metrics["train"]["rows"],
        serde_json::json!({"start": 0, "end": 460})
    );
    assert_eq!(
        metrics["eval"]["rows"],
        serde_json::json!({"start": 460, "end": 512})
    );
    let stream = std::fs::read_to_string(a.join("metrics.jsonl")).unwrap();
    let last: Value = serde_json::from_str(stream.lines().last().unwrap()).unwrap();
    assert_eq!(last["step"], 30, "{stream}");
    let cfg: Value = serde_json::from_slice(&std::fs::read(a.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(
        (
            cfg["architecture"].as_str(),
            cfg["d_in"].as_u64(),
            cfg["d_sae"].as_u64(),
            cfg["k"].as_u64()
        ),
        (Some("topk"), Some(16), Some(32), Some(4))
    );

    let o = p.run(&["verify"]);
    assert_success(&o);

    // data encode: dense features of the first rows, at most k nonzeros each, written outside any run.
    let o = p.run(&[
        "data",
        "encode",
        "--plugin-dir",
        plugin_dir().to_str().unwrap(),
        "--checkpoint",
        a.to_str().unwrap(),
        "--data",
        data_s,
        "--rows",
        "100",
        "--out",
        "enc.npy",
    ]);
    assert_success(&o);
    let enc = husai_kernels::activations::open(&p.path("enc.npy"), &Default::default()).unwrap();
    assert_eq!((enc.info().rows, enc.info().d_in), (100, 32));
    // Data of another width than the checkpoint's d_in is refused with both widths named.
    write_npy_f32(&p.path("narrow.npy"), 200, 8, &vec![0.5f32; 1600]).unwrap();
    let o = p.run(&[
        "data",
        "encode",
        "--plugin-dir",
        plugin_dir().to_str().unwrap(),
        "--checkpoint",
        a.to_str().unwrap(),
        "--data",
        "narrow.npy",
        "--out",
        "bad.npy",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(
            "narrow.npy has d_in = 8, but the SAE checkpoint it is used with (resumed or encoded with) has d_in = 16"
        ),
        "{err}"
    );
    assert!(!p.path("bad.npy").exists());
    for row in enc.data().chunks(32) {
        assert!(row.iter().filter(|v| **v != 0.0).count() <= 4);
        assert!(row.iter().all(|v| *v >= 0.0));
    }

    // `show` prints a train run's metrics (the trainer's summary figures, signed in the manifest).
    let o = p.run(&["show", a.to_str().unwrap()]);
    assert_success(&o);
    let shown = common::stdout(&o);
    assert!(shown.contains("\nmetrics\n"), "{shown}");
    for key in ["train.rows.start", "train.fvu", "train.l0"] {
        assert!(
            shown.lines().any(|l| l.trim_start().starts_with(key)),
            "{key} missing:\n{shown}"
        );
    }

    // --rows has one meaning in `data encode` and `train`: START:END, or N for 0:N.
    let o = p.run(&[
        "data",
        "encode",
        "--plugin-dir",
        plugin_dir().to_str().unwrap(),
        "--checkpoint",
        a.to_str().unwrap(),
        "--data",
        data_s,
        "--rows",
        "5:15",
        "--out",
        "enc-5-15.npy",
    ]);
    assert_success(&o);
    assert!(
        common::stdout(&o).contains("of rows 5:15"),
        "{}",
        common::stdout(&o)
    );
    assert!(
        common::stdout(&o).contains("checkpoint from verified run sweep/"),
        "{}",
        common::stdout(&o)
    );
    let part =
        husai_kernels::activations::open(&p.path("enc-5-15.npy"), &Default::default()).unwrap();
    assert_eq!(part.info().rows, 10);
    assert_eq!(
        part.data(),
        &enc.data()[5 * 32..15 * 32],
        "rows 5:15 are the same rows of 0:100"
    );
    let ranged = run_dir(&p, &json_out(&train(&p, data_s, "3", &["--rows", "0:200"])));
    assert_eq!(
        manifest(&ranged)["config"]["rows"],
        serde_json::json!({"start": 0, "end": 200})
    );
    let counted = run_dir(&p, &json_out(&train(&p, data_s, "3", &["--rows", "200"])));
    assert_eq!(
        manifest(&counted)["config"]["rows"],
        serde_json::json!({"start": 0, "end": 200})
    );
    let o = train(
        &p,
        data_s,
        "3",
        &["--rows", "10", "--set", "rows={\"start\": 0, \"end\": 9}"],
    );
    assert_fails_with(
        &o,
        2,
        &["--rows and --set rows=... both set the rows; give one of them"],
    );
    let o = train(&p, data_s, "3", &["--rows", "0:x"]);
    assert_fails_with(&o, 2, &["use START:END", "a count N"]);

    // data encode verifies the checkpoint's run first: a checkpoint changed after signing is refused (exit 1).
    let cfg = a.join("cfg.json");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push(' ');
    std::fs::write(&cfg, text).unwrap();
    let o = p.run(&[
        "data",
        "encode",
        "--plugin-dir",
        plugin_dir().to_str().unwrap(),
        "--checkpoint",
        a.to_str().unwrap(),
        "--data",
        data_s,
        "--out",
        "tampered.npy",
    ]);
    assert_fails_with(&o, 1, &["does not verify", "data encode: FAILED"]);
    assert!(!p.path("tampered.npy").exists());
}

/// Every entry under results/<campaign>/.
fn leftovers(p: &Project) -> Vec<PathBuf> {
    match std::fs::read_dir(p.path("results/sweep")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn bad_activation_files_are_refused_with_no_run() {
    let p = Project::new();
    let mut v = vec![0.25f32; 128 * 16];
    v[5 * 16 + 2] = f32::NAN;
    write_npy_f32(&p.path("nan.npy"), 128, 16, &v).unwrap();
    write_npy_f32(&p.path("small.npy"), 10, 16, &vec![0.25f32; 160]).unwrap();
    write_npy_f32(&p.path("ok.npy"), 128, 16, &vec![0.25f32; 128 * 16]).unwrap();
    let full = std::fs::read(p.path("ok.npy")).unwrap();
    std::fs::write(p.path("cut.npy"), &full[..full.len() - 100]).unwrap();
    let cases = [
        (
            "nan.npy",
            "nan.npy: non-finite value NaN at row 5, column 2",
        ),
        (
            "small.npy",
            "config key `batch` = 64 is more than the 9 training rows",
        ),
        ("cut.npy", "cut.npy is truncated or damaged"),
        ("missing.npy", "input missing.npy does not exist"),
    ];
    for (file, want) in cases {
        let o = train(&p, file, "1", &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{file}: {err}");
        assert!(err.contains(want), "{file}: {err}");
        assert!(leftovers(&p).is_empty(), "{file}: left {:?}", leftovers(&p));
    }
}

/// A .safetensors file with an f16 tensor `acts` [rows, d] and a second tensor, so --tensor is needed.
fn write_safetensors_f16(path: &Path, rows: usize, d: usize) {
    let acts: Vec<u8> = (0..rows * d)
        .flat_map(|i| half_bits(((i * 7919) % 1000) as f32 / 1000.0).to_le_bytes())
        .collect();
    let other = vec![0u8; 16];
    let header = format!(
        "{{\"acts\":{{\"dtype\":\"F16\",\"shape\":[{rows},{d}],\"data_offsets\":[0,{a}]}},\
         \"other\":{{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[{a},{b}]}}}}",
        a = acts.len(),
        b = acts.len() + other.len()
    );
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&acts);
    out.extend_from_slice(&other);
    std::fs::write(path, out).unwrap();
}

/// IEEE binary16 bits of a value in [0, 1) that binary16 represents closely (normal range, round toward zero).
fn half_bits(v: f32) -> u16 {
    if v == 0.0 {
        return 0;
    }
    let bits = v.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    assert!(exp > 0, "test values stay in the normal range");
    ((exp as u16) << 10) | ((bits >> 13) & 0x3ff) as u16
}

#[test]
fn train_reads_a_named_float16_safetensors_tensor() {
    let p = Project::new();
    write_safetensors_f16(&p.path("bank.safetensors"), 256, 16);
    let o = train(&p, "bank.safetensors", "5", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("holds 2 tensors [\"acts\", \"other\"]; name the one to use"),
        "{}",
        stderr(&o)
    );
    let dir = run_dir(
        &p,
        &json_out(&train(
            &p,
            "bank.safetensors",
            "5",
            // Random half-precision rows: a few steps cannot beat the column means, so the ceiling is lifted.
            &["--set", "tensor=acts", "--set", "fvu_ceiling=1000"],
        )),
    );
    let m = manifest(&dir);
    assert_eq!(m["dataset"]["format"], "safetensors");
    assert_eq!(m["dataset"]["dtype"], "float16");
    assert_eq!(m["dataset"]["shape"], serde_json::json!([256, 16]));
    assert_eq!(m["config"]["tensor"], "acts");
    assert_eq!(m["extra"]["tensor"], "acts");
    assert_success(&p.run(&["verify"]));
}

#[test]
fn a_seed_the_manifest_cannot_record_exactly_is_refused_before_any_work() {
    let p = Project::new();
    let o = p.run(&[
        "train",
        "--plugin",
        "sae-topk",
        "--data",
        "missing.npy",
        "--set",
        "d_sae=8",
        "--seed",
        "9007199254740992",
        "--campaign",
        "c",
        "--key",
        "dev.pem",
    ]);
    common::assert_fails_with(
        &o,
        2,
        &["--seed", "9007199254740992 is not in 0..=9007199254740991"],
    );
    assert!(!p.path("results").exists());
}

#[test]
fn resume_continues_a_signed_run_and_refuses_data_of_another_width() {
    let p = Project::new();
    let x: Vec<f32> = (0..256 * 16)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    write_npy_f32(&p.path("acts.npy"), 256, 16, &x).unwrap();
    let first = run_dir(&p, &json_out(&train(&p, "acts.npy", "1", &[])));
    let first_id = first.file_name().unwrap().to_str().unwrap().to_string();

    let resumed = json_out(&train(
        &p,
        "acts.npy",
        "1",
        &["--resume", first.to_str().unwrap(), "--set", "steps=60"],
    ));
    let resumed_dir = run_dir(&p, &resumed);
    let m = manifest(&resumed_dir);
    assert_eq!(m["config"]["resume_from"]["run_id"], first_id.as_str());
    let linked: Vec<&str> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["run"]["subject"].as_str())
        .collect();
    assert_eq!(
        linked,
        [
            "cfg.json",
            "sae_weights.safetensors",
            "trainer_state.safetensors",
            "metrics.jsonl"
        ]
    );
    assert_ne!(
        manifest(&first)["config_sha256"],
        m["config_sha256"],
        "a resumed run must not hash like a fresh one"
    );
    assert_success(&p.run(&["verify"]));

    // Data whose width differs from the checkpoint's d_in.
    write_npy_f32(&p.path("wide.npy"), 256, 24, &vec![0.5f32; 256 * 24]).unwrap();
    let before = leftovers(&p).len();
    let o = train(
        &p,
        "wide.npy",
        "1",
        &["--resume", first.to_str().unwrap(), "--set", "steps=60"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("wide.npy: rows have width 24 but the resumed checkpoint has d_in 16"),
        "{}",
        stderr(&o)
    );
    assert_eq!(leftovers(&p).len(), before, "a refused resume left a run");

    // Only a signed train run can be resumed.
    let o = train(
        &p,
        "acts.npy",
        "1",
        &["--resume", p.path("acts.npy").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a run directory"),
        "{}",
        stderr(&o)
    );
}

/// Issue #13 on a machine without a usable GPU (every CI machine, and this build has no CUDA backend):
/// `device = cuda` is refused before anything runs, naming what is missing; `auto` (the default) trains on the
/// CPU and says why; a bad value is refused by the schema with the allowed ones.
#[test]
fn device_cuda_without_a_gpu_is_refused_and_auto_falls_back_saying_so() {
    let p = Project::new();
    // Varied rows (a constant bank has no held-out variance, so no finite FVU).
    let v: Vec<f32> = (0..128 * 16)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    write_npy_f32(&p.path("ok.npy"), 128, 16, &v).unwrap();
    let o = train(&p, "ok.npy", "1", &["--set", "device=cuda"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "sae-topk config key `device` = cuda, but the GPU cannot be used: this build has no CUDA backend \
             (husai-kernels was built without its `cuda` cargo feature); set device = cpu (or auto, which falls \
             back to the CPU and says so); no run was recorded"
        ),
        "{err}"
    );
    assert!(leftovers(&p).is_empty(), "left {:?}", leftovers(&p));
    let o = train(&p, "ok.npy", "1", &["--set", "device=gpu"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "config key /device = \"gpu\": \"gpu\" is not one of \"auto\", \"cpu\" or \"cuda\""
        ),
        "{err}"
    );
    let o = train(&p, "ok.npy", "1", &["--set", "tf32=yes"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("config key /tf32"), "{}", stderr(&o));
    let o = train(&p, "ok.npy", "1", &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(
            "training: device = auto: training on the CPU (this build has no CUDA backend"
        ),
        "{err}"
    );
    // The effective config records both keys with their defaults.
    let v = json_out(&o);
    let config = &manifest(&run_dir(&p, &v))["config"];
    assert_eq!(config["device"], "auto");
    assert_eq!(config["tf32"], false);
}
