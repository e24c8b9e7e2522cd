//! `encode` of a tiny hand-made checkpoint of each architecture gives that family's codes, computed here by hand;
//! an unknown architecture or a checkpoint missing what its rule needs is a clear error.

use std::collections::BTreeMap;
use std::path::Path;

use husai_kernels::activations::{OpenOptions, open, write_npy_f32};
use husai_kernels::checkpoint::encode_safetensors;
use husai_plugin_api::{ErrorKind, PluginError, Progress, RunRequest};
use serde_json::{Value, json};

use super::{ENCODED, encode};

const D_IN: usize = 2;
const D_SAE: usize = 4;

/// The rows encoded. With the weights below (`b_dec = [0.5, 0]`) their pre-activations
/// `(x − b_dec)·W_enc + b_enc` are `[2.0, 0.3, 1.8, −1.75]` and `[−1.0, 0.6, −0.9, 1.25]`.
const X: [f32; 4] = [2.5, 0.3, -0.5, 0.6];
const PRE: [[f32; 4]; 2] = [[2.0, 0.3, 1.8, -1.75], [-1.0, 0.6, -0.9, 1.25]];

/// Writes a checkpoint of `architecture` with `cfg_extra` in its cfg.json and `threshold` as an extra tensor.
fn checkpoint(dir: &Path, architecture: &str, cfg_extra: Value, threshold: Option<[f32; 4]>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut cfg = json!({"d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "apply_b_dec_to_input": true,
                         "architecture": architecture});
    for (k, v) in cfg_extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    // W_enc [d_in, d_sae]: latent 0 reads x0, latent 1 x1, latent 2 x0 + x1, latent 3 −x0.
    let w_enc = [1.0, 0.0, 1.0, -1.0, 0.0, 1.0, 1.0, 0.0];
    let b_enc = [0.0, 0.0, -0.5, 0.25];
    let w_dec = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8, -1.0, 0.0];
    let b_dec = [0.5, 0.0];
    let mut tensors = vec![
        ("W_enc".to_string(), "F32", vec![D_IN, D_SAE], bytes(&w_enc)),
        ("b_enc".to_string(), "F32", vec![D_SAE], bytes(&b_enc)),
        ("W_dec".to_string(), "F32", vec![D_SAE, D_IN], bytes(&w_dec)),
        ("b_dec".to_string(), "F32", vec![D_IN], bytes(&b_dec)),
    ];
    if let Some(t) = threshold {
        tensors.push(("threshold".to_string(), "F32", vec![D_SAE], bytes(&t)));
    }
    std::fs::write(
        dir.join("sae_weights.safetensors"),
        encode_safetensors(None, &tensors),
    )
    .unwrap();
}

fn run_encode(root: &Path, ckpt: &Path) -> Result<Vec<f32>, PluginError> {
    let bank = root.join("x.npy");
    write_npy_f32(&bank, 2, D_IN, &X).unwrap();
    let out = tempfile::tempdir_in(root).unwrap();
    let request = RunRequest {
        config: json!({"operation": "encode", "rows": 2}),
        inputs: BTreeMap::from([
            ("checkpoint".to_string(), ckpt.to_path_buf()),
            ("activations".to_string(), bank),
        ]),
        output_dir: out.path().to_path_buf(),
    };
    let result = encode(&request, &mut Progress::discard())?;
    assert_eq!(result["shape"], json!([2, D_SAE]));
    let codes = open(&out.path().join(ENCODED), &OpenOptions::default()).unwrap();
    Ok(codes.data().to_vec())
}

/// `PRE` with every entry `keep` refuses set to 0.
fn expected(keep: impl Fn(usize, usize, f32) -> bool) -> Vec<f32> {
    (0..2)
        .flat_map(|r| (0..D_SAE).map(move |j| (r, j)))
        .map(|(r, j)| {
            let h = PRE[r][j];
            if keep(r, j, h) { h } else { 0.0 }
        })
        .collect()
}

fn assert_codes(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-6, "entry {i}: {got:?} vs {want:?}");
    }
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            *g == 0.0,
            *w == 0.0,
            "the same latents fire: {got:?} vs {want:?}"
        );
    }
}

#[test]
fn topk_keeps_the_k_largest_post_relu_values_per_row() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("topk");
    checkpoint(&ckpt, "topk", json!({"k": 2}), None);
    let got = run_encode(dir.path(), &ckpt).unwrap();
    // Row 0: 2.0 and 1.8; row 1: 1.25 and 0.6.
    assert_codes(&got, &expected(|r, j, _| [[0, 2], [1, 3]][r].contains(&j)));
}

#[test]
fn standard_keeps_every_positive_pre_activation() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("standard");
    checkpoint(&ckpt, "standard", json!({}), None);
    let got = run_encode(dir.path(), &ckpt).unwrap();
    assert_codes(&got, &expected(|_, _, h| h > 0.0));
}

#[test]
fn jumprelu_keeps_values_above_each_latents_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let theta = [1.0, 0.5, 2.0, 0.0];
    let ckpt = dir.path().join("jumprelu");
    checkpoint(&ckpt, "jumprelu", json!({}), Some(theta));
    let got = run_encode(dir.path(), &ckpt).unwrap();
    // Row 0: 2.0 > 1 only (1.8 is below 2); row 1: 0.6 > 0.5 and 1.25 > 0.
    assert_codes(&got, &expected(|_, j, h| h > theta[j] && h > 0.0));
    assert_eq!(got.iter().filter(|&&v| v != 0.0).count(), 3);
}

#[test]
fn a_batchtopk_checkpoint_encodes_with_its_global_threshold() {
    // sae-batchtopk saves SAELens's JumpReLU layout with θ the same for every latent.
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("batchtopk");
    checkpoint(&ckpt, "jumprelu", json!({}), Some([1.5; 4]));
    let got = run_encode(dir.path(), &ckpt).unwrap();
    assert_codes(&got, &expected(|_, _, h| h > 1.5));
    assert_eq!(got.iter().filter(|&&v| v != 0.0).count(), 2);
}

#[test]
fn an_unknown_architecture_or_a_missing_rule_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let fails = |name: &str, arch: &str, extra: Value, threshold: Option<[f32; 4]>| {
        let ckpt = dir.path().join(name);
        checkpoint(&ckpt, arch, extra, threshold);
        let e = run_encode(dir.path(), &ckpt).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
        e.message
    };
    let m = fails("gated", "gated", json!({}), None);
    assert!(
        m.ends_with(
            "gated/cfg.json: architecture is \"gated\"; encoding reads the architectures \"topk\", \
             \"standard\", \"jumprelu\""
        ),
        "{m}"
    );
    let m = fails("nothreshold", "jumprelu", json!({}), None);
    assert!(
        m.ends_with(
            "nothreshold/sae_weights.safetensors: has no tensor \"threshold\", which a jumprelu checkpoint needs"
        ),
        "{m}"
    );
    let m = fails("nok", "topk", json!({}), None);
    assert!(
        m.ends_with("nok/cfg.json: field \"k\" must be an integer in 1..=4 (d_sae)"),
        "{m}"
    );
    let m = fails("bigk", "topk", json!({"k": 5}), None);
    assert!(m.contains("field \"k\" must be an integer in 1..=4"), "{m}");
    let m = fails(
        "rescaled",
        "topk",
        json!({"k": 2, "rescale_acts_by_decoder_norm": true}),
        None,
    );
    assert!(m.contains("rescale_acts_by_decoder_norm is true"), "{m}");
    let m = fails(
        "nanthreshold",
        "jumprelu",
        json!({}),
        Some([0.1, f32::NAN, 0.1, 0.1]),
    );
    assert!(
        m.ends_with("tensor \"threshold\" is NaN at latent 1; thresholds must be finite"),
        "{m}"
    );
}
