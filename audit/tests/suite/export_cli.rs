//! `husai-audit export sparsify RUN OUT/` (issue #9 item 4): sparsify's layout from a verified train run, checked
//! here by recomputing sparsify's forward pass (as its SparseCoder defines it) from the exported tensors and
//! comparing its FVU with the one the run signed; scripts/sparsify_interop.sh does the same with the real package.

use crate::common;

use std::collections::BTreeMap;

use common::{Project, assert_fails_with, assert_success, plugin_dir};
use husai_core::export::safetensors::{self, Tensor};
use serde_json::Value;

fn json_out(o: &std::process::Output) -> Value {
    assert_success(o);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A signed data run and a small TopK train run on it: (bank path, train run dir, the train --json output).
fn trained(p: &Project) -> (std::path::PathBuf, std::path::PathBuf, Value) {
    let dir = plugin_dir().display().to_string();
    let synth = json_out(&p.run(&[
        "data",
        "synth",
        "--rows",
        "512",
        "--d-in",
        "8",
        "--n-features",
        "24",
        "--l0",
        "3",
        "--seed",
        "1",
        "--campaign",
        "data",
        "--key",
        "dev.pem",
        "--plugin-dir",
        &dir,
        "--json",
    ]));
    let bank = p
        .dir
        .path()
        .join(synth["dir"].as_str().unwrap())
        .join("activations.npy");
    let train = json_out(&p.run(&[
        "train",
        "--plugin",
        "sae-topk",
        "--data",
        bank.to_str().unwrap(),
        "--set",
        "d_sae=16",
        "--set",
        "k=3",
        "--set",
        "steps=40",
        "--set",
        "batch=64",
        "--seed",
        "2",
        "--campaign",
        "exp",
        "--key",
        "dev.pem",
        "--plugin-dir",
        &dir,
        "--json",
    ]));
    let run = p.dir.path().join(train["dir"].as_str().unwrap());
    (bank, run, train)
}

/// sparsify's SparseCoder forward for a TopK autoencoder: top-k of relu((x - b_dec) W^T + b), decoded with W_dec
/// and b_dec; FVU = sum of squared errors / sum of squared deviations from the rows' mean.
fn sparsify_fvu(t: &BTreeMap<String, Tensor>, k: usize, x: &[f32], d_in: usize) -> f64 {
    let (w, b, w_dec, b_dec) = (
        &t["encoder.weight"],
        &t["encoder.bias"],
        &t["W_dec"],
        &t["b_dec"],
    );
    let n_lat = b.data.len();
    let rows = x.len() / d_in;
    let mut mean = vec![0.0f64; d_in];
    for r in x.chunks(d_in) {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += *v as f64 / rows as f64;
        }
    }
    let (mut err, mut var) = (0.0f64, 0.0f64);
    for r in x.chunks(d_in) {
        let centred: Vec<f64> = r
            .iter()
            .zip(&b_dec.data)
            .map(|(v, bd)| (*v - *bd) as f64)
            .collect();
        let mut pre: Vec<(f64, usize)> = (0..n_lat)
            .map(|j| {
                let dot: f64 = (0..d_in)
                    .map(|i| w.data[j * d_in + i] as f64 * centred[i])
                    .sum();
                ((dot + b.data[j] as f64).max(0.0), j)
            })
            .collect();
        pre.sort_by(|a, b| b.0.total_cmp(&a.0));
        for i in 0..d_in {
            let recon: f64 = b_dec.data[i] as f64
                + pre[..k]
                    .iter()
                    .map(|(a, j)| a * w_dec.data[j * d_in + i] as f64)
                    .sum::<f64>();
            err += (r[i] as f64 - recon).powi(2);
            var += (r[i] as f64 - mean[i]).powi(2);
        }
    }
    err / var
}

#[test]
fn export_sparsify_writes_its_layout_and_reproduces_the_signed_fvu() {
    let p = Project::new();
    let (bank, run, train) = trained(&p);
    let o = p.run(&[
        "export",
        "sparsify",
        run.to_str().unwrap(),
        "out-sparsify",
        "--json",
    ]);
    let v = json_out(&o);
    assert_eq!(
        (v["d_in"].clone(), v["num_latents"].clone(), v["k"].clone()),
        (8.into(), 16.into(), 3.into())
    );

    let cfg: Value =
        serde_json::from_slice(&std::fs::read(p.path("out-sparsify/cfg.json")).unwrap()).unwrap();
    for (key, want) in [
        ("activation", serde_json::json!("topk")),
        ("num_latents", 16.into()),
        ("k", 3.into()),
        ("d_in", 8.into()),
        ("multi_topk", false.into()),
        ("skip_connection", false.into()),
        ("transcode", false.into()),
    ] {
        assert_eq!(cfg[key], want, "cfg.json {key}");
    }
    let out = safetensors::parse(&std::fs::read(p.path("out-sparsify/sae.safetensors")).unwrap())
        .unwrap();
    let names: Vec<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(names, ["W_dec", "b_dec", "encoder.bias", "encoder.weight"]);
    let src =
        safetensors::parse(&std::fs::read(run.join("sae_weights.safetensors")).unwrap()).unwrap();
    assert_eq!(out["encoder.weight"].shape, vec![16, 8]);
    for i in 0..8 {
        for j in 0..16 {
            assert_eq!(
                out["encoder.weight"].data[j * 8 + i],
                src["W_enc"].data[i * 16 + j]
            );
        }
    }
    assert_eq!(out["W_dec"], src["W_dec"]);
    assert_eq!(out["encoder.bias"], src["b_enc"]);
    assert_eq!(out["b_dec"], src["b_dec"]);

    // sparsify's forward on the held-out rows gives the FVU the run signed.
    let eval = &train["metrics"]["eval"];
    let (start, end) = (
        eval["rows"]["start"].as_u64().unwrap() as usize,
        eval["rows"]["end"].as_u64().unwrap() as usize,
    );
    let acts = husai_kernels::activations::open(&bank, &Default::default()).unwrap();
    let x = &acts.data()[start * 8..end * 8];
    let fvu = sparsify_fvu(&out, 3, x, 8);
    let signed = eval["fvu"].as_f64().unwrap();
    assert!(
        (fvu - signed).abs() <= 1e-4 * signed.abs().max(1e-12),
        "sparsify FVU {fvu} vs signed {signed}"
    );

    // A second export into the same directory is refused; so is a run that is not a train run.
    let o = p.run(&["export", "sparsify", run.to_str().unwrap(), "out-sparsify"]);
    assert_fails_with(
        &o,
        2,
        &["out-sparsify: exists and is not an empty directory"],
    );
    let data_run = bank.parent().unwrap().to_str().unwrap().to_owned();
    let o = p.run(&["export", "sparsify", &data_run, "out-data"]);
    assert_fails_with(&o, 2, &["is a data run; export sparsify takes a train run"]);
    assert!(!p.path("out-data").exists());

    // A run changed after signing is refused as a verification failure, and nothing is written.
    let cfg_path = run.join("cfg.json");
    let mut text = std::fs::read_to_string(&cfg_path).unwrap();
    text.push(' ');
    std::fs::write(&cfg_path, text).unwrap();
    let o = p.run(&["export", "sparsify", run.to_str().unwrap(), "out-tampered"]);
    assert_fails_with(&o, 1, &["failed verification", "export: FAILED"]);
    assert!(!p.path("out-tampered").exists());
    let o = p.run(&["export", "sparsify", "nowhere", "out-none"]);
    assert_fails_with(&o, 1, &["nowhere: not a run directory or inside one"]);
}
