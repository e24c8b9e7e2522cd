//! The plugin's `run`, in process: outputs in SAELens's `jumprelu` layout with the threshold, threshold figures,
//! same-seed bytes, exact resume (with the target-L0 controller's λ), bad configs refused with the key named and
//! nothing written, and target L0 32 reached on the MiniLM bank.

use husai_kernels::testing::{Work, metrics, state_bytes, tensor_shapes};
use serde_json::{Value, json};

fn small(steps: u64) -> Value {
    json!({"d_sae": 64, "seed": 5, "steps": steps, "batch": 64, "l0_coeff": 0.05, "log_every": 5})
}

#[test]
fn a_run_writes_a_jumprelu_checkpoint_with_its_threshold_and_the_same_bytes_for_the_same_seed() {
    let w = Work::synthetic(super::run, 1000);
    let (a, b) = (w.out("a"), w.out("b"));
    let r = w.go(small(20), &[("activations", &w.bank)], &a);
    w.go(small(20), &[("activations", &w.bank)], &b);
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
    assert!(lo <= mid && mid <= hi && lo >= 0.0, "{m}");
    assert!(
        (lo, hi) != (0.01, 0.01),
        "the thresholds moved from 0.01: {m}"
    );
}

#[test]
fn a_resumed_target_l0_run_gives_the_bytes_of_one_uninterrupted_run() {
    for (param, tensor) in [("direct", "fam.threshold"), ("log", "fam.log_threshold")] {
        let w = Work::synthetic(super::run, 1000);
        let (whole, first, second) = (w.out("whole"), w.out("first"), w.out("second"));
        let cfg = |steps| {
            let mut c = small(steps);
            c["target_l0"] = json!(4);
            c["target_l0_gain"] = json!(0.2);
            c["threshold_param"] = json!(param);
            c
        };
        w.go(cfg(30), &[("activations", &w.bank)], &whole);
        w.go(cfg(12), &[("activations", &w.bank)], &first);
        w.go(
            cfg(30),
            &[("activations", &w.bank), ("resume", &first)],
            &second,
        );
        assert_eq!(state_bytes(&whole), state_bytes(&second), "{param}");
        let names: Vec<String> = tensor_shapes(&whole.join("trainer_state.safetensors"))
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert!(
            names.contains(&"family_state.lambda".to_string()),
            "{names:?}"
        );
        assert!(names.contains(&tensor.to_string()), "{param}: {names:?}");
    }
}

#[test]
fn bad_configs_name_the_key_and_write_nothing() {
    let w = Work::synthetic(super::run, 200);
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
        (
            "threshold_param",
            json!("exp"),
            "= \"exp\" is invalid: must be \"log\" or \"direct\"",
        ),
    ] {
        let mut c = small(5);
        c[key] = v;
        assert_eq!(
            w.bad_config(c).message,
            format!("sae-jumprelu config key `{key}` {msg}")
        );
    }
    let mut c = small(5);
    c["k"] = json!(4);
    assert!(
        w.bad_config(c)
            .message
            .starts_with("sae-jumprelu config key `k` is not a sae-jumprelu config key")
    );
}

// Target-L0 mode on the MiniLM bank is tested in tests.rs (tanh penalty: the step penalty cannot reach L0 32 in
// 300 steps, as that test's comment explains).
