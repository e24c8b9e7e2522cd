//! The plugin's `run`, in process: outputs in SAELens's `jumprelu` layout with the threshold, threshold figures,
//! same-seed bytes, exact resume (with the target-L0 controller's λ), bad configs refused with the key named and
//! nothing written, and target L0 32 reached on the MiniLM bank.

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

const MINILM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/minilm_l3_resid_dev.npy"
);

fn small(steps: u64) -> Value {
    json!({"d_sae": 64, "seed": 5, "steps": steps, "batch": 64, "l0_coeff": 0.05, "log_every": 5})
}

#[test]
fn a_run_writes_a_jumprelu_checkpoint_with_its_threshold_and_the_same_bytes_for_the_same_seed() {
    let w = Work::synthetic(1000);
    let (a, b) = (w.out("a"), w.out("b"));
    let r = go(small(20), &[("activations", &w.bank)], &a);
    go(small(20), &[("activations", &w.bank)], &b);
    assert_eq!(state_bytes(&a), state_bytes(&b));
    assert_eq!(r["status"], "ok", "{r}");
    let cfg: Value = serde_json::from_slice(&std::fs::read(a.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["architecture"], "jumprelu");
    assert_eq!(
        tensor_shapes(&a.join("sae_weights.safetensors")),
        [
            ("W_enc".to_string(), json!([32, 64])),
            ("b_enc".to_string(), json!([64])),
            ("W_dec".to_string(), json!([64, 32])),
            ("b_dec".to_string(), json!([32])),
            ("threshold".to_string(), json!([64])),
        ]
    );
    let text = std::fs::read_to_string(a.join("metrics.json")).unwrap();
    for key in [
        "threshold_min",
        "threshold_p50",
        "threshold_max",
        "threshold_mean",
    ] {
        assert!(text.contains(key), "metrics.json has no {key}: {text}");
    }
    let m = metrics(&a);
    let (lo, mid, hi) = (
        m["eval"]["threshold_min"].as_f64().unwrap(),
        m["eval"]["threshold_p50"].as_f64().unwrap(),
        m["eval"]["threshold_max"].as_f64().unwrap(),
    );
    assert!(lo <= mid && mid <= hi && lo > 0.0, "{m}");
    assert!(
        (lo, hi) != (0.01, 0.01),
        "the thresholds moved from 0.01: {m}"
    );
}

#[test]
fn a_resumed_target_l0_run_gives_the_bytes_of_one_uninterrupted_run() {
    let w = Work::synthetic(1000);
    let (whole, first, second) = (w.out("whole"), w.out("first"), w.out("second"));
    let cfg = |steps| {
        let mut c = small(steps);
        c["target_l0"] = json!(4);
        c["target_l0_gain"] = json!(0.2);
        c
    };
    go(cfg(30), &[("activations", &w.bank)], &whole);
    go(cfg(12), &[("activations", &w.bank)], &first);
    go(
        cfg(30),
        &[("activations", &w.bank), ("resume", &first)],
        &second,
    );
    assert_eq!(state_bytes(&whole), state_bytes(&second));
    let names: Vec<String> = tensor_shapes(&whole.join("trainer_state.safetensors"))
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert!(
        names.contains(&"family_state.lambda".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"fam.log_threshold".to_string()),
        "{names:?}"
    );
}

#[test]
fn bad_configs_name_the_key_and_write_nothing() {
    let w = Work::synthetic(200);
    for (key, v, msg) in [
        (
            "l0_coeff",
            json!(-1),
            "= -1 is invalid: must be a finite number >= 0",
        ),
        (
            "bandwidth",
            json!(0),
            "= 0 is invalid: must be a finite number > 0",
        ),
        (
            "target_l0",
            json!(65),
            "= 65 is invalid: must be <= d_sae (64)",
        ),
    ] {
        let mut c = small(5);
        c[key] = v;
        assert_eq!(
            bad_config(&w, c).message,
            format!("sae-jumprelu config key `{key}` {msg}")
        );
    }
    let mut c = small(5);
    c["k"] = json!(4);
    assert!(
        bad_config(&w, c)
            .message
            .starts_with("sae-jumprelu config key `k` is not a sae-jumprelu config key")
    );
}

/// Target-L0 mode on the MiniLM bank: d_sae 1536, batch 1024, 300 steps, target 32; the controller (gain and
/// starting λ below) brings the held-out L0 (the last 10 % of the rows, never trained on) within ±10 % of 32.
///
/// NOT YET VERIFIED: on the shared 2-core machine this run did not finish within 25 minutes, so the gain and
/// starting λ below have not been tuned against it; it is ignored until someone runs it (`--ignored`) and records
/// the held-out L0 it reaches.
#[test]
#[ignore = "unverified and slow: 300 MiniLM steps at d_sae 1536; run with --ignored"]
fn target_l0_32_is_reached_on_held_out_minilm_rows() {
    let w = Work::synthetic(10);
    let out = w.out("minilm");
    let cfg = json!({"d_sae": 1536, "seed": 7, "steps": 300, "batch": 1024, "target_l0": 32,
                     "target_l0_gain": TARGET_GAIN, "l0_coeff": TARGET_START_L0_COEFF, "log_every": 50});
    go(cfg, &[("activations", Path::new(MINILM))], &out);
    let m = metrics(&out);
    let l0 = m["eval"]["l0"].as_f64().unwrap();
    eprintln!(
        "jumprelu target-L0 32 on MiniLM: held-out l0 {l0:.2}, fvu {}",
        m["eval"]["fvu"]
    );
    assert!((l0 - 32.0).abs() <= 3.2, "held-out L0 {l0}: {m}");
}

/// The controller's gain in the MiniLM test.
const TARGET_GAIN: f64 = 0.05;
/// Its starting λ.
const TARGET_START_L0_COEFF: f64 = 1.0;
