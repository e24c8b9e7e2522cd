//! The plugin's `run`, in process: outputs in SAELens's `standard` layout, same-seed bytes, exact resume, and bad
//! configs refused with the key named and nothing written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use husai_kernels::activations::write_npy_f32;
use husai_kernels::synth::{SynthConfig, generate};
use husai_plugin_api::{ErrorKind, Progress, RunRequest};
use serde_json::{Value, json};

use super::run;

struct Work {
    dir: tempfile::TempDir,
    bank: PathBuf,
}

impl Work {
    fn synthetic(rows: usize) -> Work {
        let data = generate(&SynthConfig {
            rows,
            d_in: 32,
            n_features: 96,
            l0: 3,
            coef_min: 0.5,
            coef_max: 1.5,
            seed: 9,
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bank = dir.path().join("bank.npy");
        write_npy_f32(&bank, rows, 32, &data.x).unwrap();
        Work { dir, bank }
    }

    fn out(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir(&p).unwrap();
        p
    }
}

fn request(config: Value, inputs: &[(&str, &Path)], out: &Path) -> RunRequest {
    RunRequest {
        config,
        inputs: inputs
            .iter()
            .map(|(r, p)| (r.to_string(), p.to_path_buf()))
            .collect::<BTreeMap<_, _>>(),
        output_dir: out.to_path_buf(),
    }
}

fn go(config: Value, inputs: &[(&str, &Path)], out: &Path) -> Value {
    run(&request(config, inputs, out), &mut Progress::discard()).unwrap()
}

fn metrics(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap()
}

/// The bytes a same-seed or resumed run must reproduce: SAELens config, weights and the trainer state.
fn state_bytes(out: &Path) -> Vec<Vec<u8>> {
    [
        "cfg.json",
        "sae_weights.safetensors",
        "trainer_state.safetensors",
    ]
    .iter()
    .map(|f| std::fs::read(out.join(f)).unwrap())
    .collect()
}

/// The tensor names and shapes of a safetensors file, in header order.
fn tensor_shapes(path: &Path) -> Vec<(String, Value)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut v: Vec<(u64, String, Value)> = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, t)| {
            (
                t["data_offsets"][0].as_u64().unwrap(),
                k.clone(),
                t["shape"].clone(),
            )
        })
        .collect();
    v.sort_by_key(|t| t.0);
    v.into_iter().map(|(_, k, s)| (k, s)).collect()
}

fn bad_config(w: &Work, config: Value) -> husai_plugin_api::PluginError {
    let out = w.out(&format!("bad{}", rand_name()));
    let e = run(
        &request(config, &[("activations", &w.bank)], &out),
        &mut Progress::discard(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidConfig, "{e}");
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "no run: nothing written for {e}"
    );
    e
}

fn rand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn json_keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn small(steps: u64) -> Value {
    json!({"d_sae": 64, "seed": 5, "steps": steps, "batch": 64, "l1_coeff": 0.3, "l1_warmup_steps": 5,
           "log_every": 5})
}

#[test]
fn a_run_writes_a_standard_checkpoint_with_the_same_bytes_for_the_same_seed() {
    let w = Work::synthetic(1000);
    let (a, b) = (w.out("a"), w.out("b"));
    let r = go(small(20), &[("activations", &w.bank)], &a);
    go(small(20), &[("activations", &w.bank)], &b);
    assert_eq!(state_bytes(&a), state_bytes(&b));
    assert_eq!(r["status"], "ok", "{r}");
    let cfg: Value = serde_json::from_slice(&std::fs::read(a.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["architecture"], "standard");
    assert_eq!(
        (cfg["d_in"].clone(), cfg["d_sae"].clone()),
        (json!(32), json!(64))
    );
    assert_eq!(cfg["apply_b_dec_to_input"], true);
    let names: Vec<String> = tensor_shapes(&a.join("sae_weights.safetensors"))
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(names, ["W_enc", "b_enc", "W_dec", "b_dec"]);
    let m = metrics(&a);
    assert!(m["eval"]["l0"].as_f64().unwrap() > 0.0, "{m}");
    assert!(json_keys(&m).contains(&"train".to_string()), "{m}");
    let mut c = small(20);
    c["seed"] = json!(6);
    let other = w.out("c");
    go(c, &[("activations", &w.bank)], &other);
    assert_ne!(
        state_bytes(&a)[1],
        state_bytes(&other)[1],
        "another seed, other weights"
    );
}

#[test]
fn a_resumed_run_gives_the_bytes_of_one_uninterrupted_run() {
    let w = Work::synthetic(1000);
    let (whole, first, second) = (w.out("whole"), w.out("first"), w.out("second"));
    go(small(30), &[("activations", &w.bank)], &whole);
    go(small(12), &[("activations", &w.bank)], &first);
    go(
        small(30),
        &[("activations", &w.bank), ("resume", &first)],
        &second,
    );
    assert_eq!(state_bytes(&whole), state_bytes(&second));
}

#[test]
fn bad_configs_name_the_key_and_write_nothing() {
    let w = Work::synthetic(200);
    let mut c = small(5);
    c["l1_coeff"] = json!(-0.1);
    assert_eq!(
        bad_config(&w, c).message,
        "sae-relu config key `l1_coeff` = -0.1 is invalid: must be a finite number >= 0"
    );
    let mut c = small(5);
    c["k"] = json!(4);
    assert!(
        bad_config(&w, c)
            .message
            .starts_with("sae-relu config key `k` is not a sae-relu config key")
    );
    let mut c = small(5);
    c["penalty"] = json!("l0");
    assert!(
        bad_config(&w, c)
            .message
            .starts_with("sae-relu config key `penalty` = \"l0\" is invalid")
    );
}

#[test]
fn the_unit_norm_variant_keeps_decoder_rows_at_unit_norm() {
    let w = Work::synthetic(1000);
    let out = w.out("unit");
    let mut c = small(10);
    c["penalty"] = json!("unit_norm");
    go(c, &[("activations", &w.bank)], &out);
    let parts = husai_kernels::checkpoint::read_family_bytes(
        &out,
        &crate::Relu {
            lambda: 0.3,
            warmup_steps: 5,
            weighting: crate::penalty::Weighting::UnitNorm,
        },
        &std::fs::read(out.join("cfg.json")).unwrap(),
        &std::fs::read(out.join("sae_weights.safetensors")).unwrap(),
    )
    .unwrap();
    for row in parts.w_dec.chunks_exact(32) {
        let n: f64 = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        assert!((n - 1.0).abs() < 1e-5, "row norm {n}");
    }
}
