//! The plugin's `run`, in process: planted parent/child features (Matryoshka against the one-level BatchTopK of
//! the same width and L0), per-prefix held-out FVU on the MiniLM bank with the SAELens JumpReLU checkpoint,
//! thread-count independence, same-seed byte identity, exact resume, and config errors. (The one-pass prefix
//! objective against per-prefix decodes and its gradient check are unit tests of `husai_kernels::engine`.)

use std::path::Path;

use husai_kernels::activations::write_npy_f32;
use husai_kernels::engine::{EngineConfig, FamilyTrainer};
use husai_kernels::rng::SplitMix64;
use husai_kernels::testing::{
    MINILM, Work, assert_reproducible_and_resumable, metrics, request, state_bytes, subdir,
    weights_tensor,
};
use husai_plugin_api::{ErrorKind, Progress};
use serde_json::{Value, json};

use super::{Matryoshka, OUTPUTS, run};

fn go(config: Value, inputs: &[(&str, &Path)], out: &Path) -> Value {
    run(&request(config, inputs, out), &mut Progress::discard()).unwrap()
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

/// Planted hierarchy: `parents` parent directions, each with `children` child directions (random unit vectors
/// in `d_in` dimensions). A row holds two distinct parents, each with one of its children, which always fires
/// with it (coefficients uniform in [0.5, 1.5]): the co-occurrence that makes a flat SAE absorb the parent into
/// its children's latents (Chanin et al. 2024, "A is for Absorption"). Returns the rows and the parents.
fn hierarchy(
    rows: usize,
    d_in: usize,
    parents: usize,
    children: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let mut r = SplitMix64::new(seed);
    let mut dirs = vec![0f32; parents * (1 + children) * d_in];
    for d in dirs.chunks_exact_mut(d_in) {
        d.iter_mut().for_each(|x| *x = r.normal() as f32);
        unit(d);
    }
    let (par, kids) = dirs.split_at(parents * d_in);
    let mut x = vec![0f32; rows * d_in];
    for row in x.chunks_exact_mut(d_in) {
        let a = (r.next_u64() % parents as u64) as usize;
        let b = (a + 1 + (r.next_u64() % (parents as u64 - 1)) as usize) % parents;
        for p in [a, b] {
            let c = p * children + (r.next_u64() % children as u64) as usize;
            for (dir, coef) in [
                (&par[p * d_in..(p + 1) * d_in], 0.5 + r.uniform_f32()),
                (&kids[c * d_in..(c + 1) * d_in], 0.5 + r.uniform_f32()),
            ] {
                row.iter_mut().zip(dir).for_each(|(o, &d)| *o += coef * d);
            }
        }
    }
    (x, par.to_vec())
}

/// For each planted parent, the cosine with its best-aligned decoder row.
fn best_cosines(planted: &[f32], w_dec: &[f32], d_in: usize) -> Vec<f32> {
    planted
        .chunks_exact(d_in)
        .map(|p| {
            w_dec
                .chunks_exact(d_in)
                .map(|w| {
                    let n = w.iter().map(|x| x * x).sum::<f32>().sqrt();
                    p.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() / n
                })
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .collect()
}

#[test]
fn matryoshka_recovers_planted_parents_that_batchtopk_of_the_same_width_and_l0_absorbs() {
    // 8 parents with 16 children each in 64 dimensions; every row holds two parents, each with one child. With
    // k = 2 (one latent per parent-child pair), a flat SAE of the same width can only spend its budget on
    // parent+child latents, which absorb the parent (cosine about 0.7 with it); the Matryoshka prefix of the first
    // 8 latents must reconstruct alone, so it learns the parents, though each still carries some of its children's
    // mean direction. Measured (mean parent cosine, seeds 2 and 3): Matryoshka 0.846 and 0.835, BatchTopK 0.790
    // and 0.783. SAELens's matryoshka_batchtopk shows the same pattern on such data.
    let (d_in, parents, children, rows) = (64, 8, 16, 16_384);
    let (x, planted) = hierarchy(rows, d_in, parents, children, 11);
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join("h.npy");
    write_npy_f32(&bank, rows, d_in, &x).unwrap();
    let d_sae = parents * (1 + children);
    let train = |widths: Value, seed: u64| {
        let out = subdir(
            dir.path(),
            &format!("{}-{seed}", widths.as_array().unwrap().len()),
        );
        go(
            json!({"d_sae": d_sae, "k": 2, "seed": seed, "steps": 1000, "batch": 512, "lr": 4e-3,
                   "matryoshka_widths": widths, "dead_window": 50}),
            &[("activations", &bank)],
            &out,
        );
        let (_, w_dec) = weights_tensor(&out, "W_dec");
        (best_cosines(&planted, &w_dec, d_in), metrics(&out))
    };
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    for seed in [2, 3] {
        let (nested, m_nested) = train(json!([parents, d_sae]), seed);
        let (flat, m_flat) = train(json!([d_sae]), seed);
        eprintln!(
            "seed {seed}: parent cosines, matryoshka {nested:.3?} (mean {:.3}, fvu {}), batchtopk {flat:.3?} \
             (mean {:.3}, fvu {})",
            mean(&nested),
            m_nested["eval"]["fvu"],
            mean(&flat),
            m_flat["eval"]["fvu"]
        );
        assert!(
            mean(&nested) > mean(&flat) + 0.03,
            "seed {seed}: Matryoshka's parents ({:.3}) are clearly better than BatchTopK's ({:.3})",
            mean(&nested),
            mean(&flat)
        );
        // The one-level run is BatchTopK: a single prefix figure, equal to the FVU.
        assert_eq!(
            m_flat["eval"][format!("fvu_prefix_{d_sae}")],
            m_flat["eval"]["fvu"]
        );
    }
}

#[test]
fn per_prefix_held_out_fvu_falls_with_width_on_minilm_and_the_checkpoint_is_saelens_jumprelu() {
    let dir = tempfile::tempdir().unwrap();
    let out = subdir(dir.path(), "run");
    let result = go(
        json!({"d_sae": 1536, "k": 32, "seed": 3, "steps": 300, "batch": 1024,
               "matryoshka_widths": [192, 384, 768]}),
        &[("activations", Path::new(MINILM))],
        &out,
    );
    assert_eq!(result["status"], "ok");
    let m = metrics(&out);
    let fvu: Vec<f64> = [192, 384, 768, 1536]
        .iter()
        .map(|w| m["eval"][format!("fvu_prefix_{w}")].as_f64().unwrap())
        .collect();
    eprintln!("held-out FVU per prefix {fvu:?}, l0 {}", m["eval"]["l0"]);
    assert!(
        fvu.windows(2).all(|p| p[0] > p[1]),
        "per-prefix FVU must fall as the prefix widens: {fvu:?}"
    );
    assert_eq!(m["eval"]["fvu"].as_f64(), Some(fvu[3]));
    assert!(fvu[3] < 0.3, "{fvu:?}");
    let l0 = m["eval"]["l0"].as_f64().unwrap();
    assert!(
        (l0 - 32.0).abs() <= 0.15 * 32.0,
        "held-out inference L0 {l0}"
    );
    let theta = m["eval"]["threshold"].as_f64().unwrap();
    let (shape, thr) = weights_tensor(&out, "threshold");
    assert_eq!(shape, vec![1536]);
    assert!(thr.iter().all(|&t| t == theta as f32));
    let cfg: Value = serde_json::from_slice(&std::fs::read(out.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["architecture"], "jumprelu");
    assert_eq!(result["outputs"], json!(OUTPUTS));
    // The stream's optimised terms are the prefix sum and AuxK.
    let first = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let line: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let terms: Vec<&String> = line["loss"].as_object().unwrap().keys().collect();
    assert_eq!(terms, ["nested_mse", "aux"]);
    assert!(line["loss"]["nested_mse"].as_f64() > line["mse"].as_f64());
}

#[test]
fn weights_do_not_depend_on_the_thread_count() {
    let (x, _) = hierarchy(2048, 32, 4, 3, 5);
    let train = |threads: usize| {
        let mut cfg = EngineConfig::new(64);
        cfg.batch = 256;
        cfg.threads = threads;
        cfg.dead_window = 2;
        let mut t =
            FamilyTrainer::new(cfg, Matryoshka::new(4, 0.01, &[8, 24, 64]), 32, true).unwrap();
        for s in 0..12 {
            let b = (s * 256) % 2048;
            t.step(&x[b * 32..(b + 256) * 32]).unwrap();
        }
        let m = t.model();
        (
            m.w_dec().to_vec(),
            m.w_enc_t().to_vec(),
            m.b_dec().to_vec(),
            t.family().batchtopk().threshold(),
        )
    };
    let (a, b) = (train(1), train(3));
    assert!(
        a.0.iter()
            .zip(&b.0)
            .all(|(p, q)| p.to_bits() == q.to_bits())
    );
    assert!(
        a.1.iter()
            .zip(&b.1)
            .all(|(p, q)| p.to_bits() == q.to_bits())
    );
    assert_eq!((a.2, a.3), (b.2, b.3));
}

#[test]
fn same_seed_gives_byte_identical_outputs_and_resume_continues_exactly() {
    let w = Work::synthetic(run, 4096);
    let cfg = |steps: u64| {
        json!({"d_sae": 128, "k": 4, "seed": 5, "steps": steps, "batch": 256, "dead_window": 3,
               "matryoshka_widths": [16, 48]})
    };
    let (a, half) = assert_reproducible_and_resumable(&w, cfg);
    let bank = [("activations", w.bank.as_path())];
    // Other widths are another objective: other weights, and the resume fingerprint refuses to mix them.
    let other = w.out("other");
    w.go(
        json!({"d_sae": 128, "k": 4, "seed": 5, "steps": 20, "batch": 256, "dead_window": 3,
               "matryoshka_widths": [32, 48]}),
        &bank,
        &other,
    );
    assert_ne!(state_bytes(&a)[1], state_bytes(&other)[1]);
    let mixed = w.out("mixed");
    let e = w
        .try_run(
            json!({"d_sae": 128, "k": 4, "seed": 5, "steps": 20, "batch": 256, "dead_window": 3,
                   "matryoshka_widths": [32, 48]}),
            &[("activations", &w.bank), ("resume", &half)],
            &mixed,
        )
        .unwrap_err();
    assert!(e.message.contains("matryoshka_widths"), "{e}");
}

#[test]
fn bad_config_is_a_clear_error_naming_the_key_and_nothing_runs() {
    let w = Work::synthetic(run, 256);
    let msg = |config: Value| w.bad_config(config).message;
    assert_eq!(
        msg(json!({"d_sae": 16, "k": 2, "seed": 0, "steps": 1, "matryoshka_widths": [8, 4]})),
        "sae-matryoshka config key `matryoshka_widths` = [8,4] is invalid: widths must be strictly increasing (8 then 4)"
    );
    assert_eq!(
        msg(json!({"d_sae": 16, "k": 2, "seed": 0, "steps": 1, "matryoshka_widths": [4, 32]})),
        "sae-matryoshka config key `matryoshka_widths` = [4,32] is invalid: width 32 is above d_sae (16)"
    );
    assert_eq!(
        msg(json!({"d_sae": 16, "k": 17, "seed": 0, "steps": 1})),
        "sae-matryoshka config key `k` = 17 is invalid: must be <= d_sae (16)"
    );
    let e = msg(json!({"d_sae": 16, "k": 2, "seed": 0, "steps": 1, "widths": [4]}));
    assert!(
        e.starts_with("sae-matryoshka config key `widths` is not a sae-matryoshka config key; the keys are: d_sae,"),
        "{e}"
    );
    let e =
        w.bad_config(json!({"d_sae": 16, "k": 2, "seed": 0, "steps": 1, "matryoshka_widths": "4"}));
    assert_eq!(e.kind, ErrorKind::InvalidConfig);
}

/// The published schema is what `husai-audit plugins show sae-matryoshka` prints. `HUSAI_UPDATE_GOLDEN=1`
/// rewrites the golden file.
#[test]
fn the_schema_matches_its_golden_file() {
    husai_kernels::testing::assert_schema_golden(
        env!("CARGO_MANIFEST_DIR"),
        &super::config_schema(),
    );
}
