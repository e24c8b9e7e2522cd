//! The evaluation: for each task ([`crate::tasks`]), a dense probe on the raw rows and a k-sparse probe on the SAE's
//! latents for every budget k, fitted on the task's training rows and scored by AUC on its test rows (ID or
//! shifted); the per-task gaps; the drop per k with its interval and random-split null ([`crate::drop`]). The
//! budget the verdict uses, `gate_k`, is fixed by the config before any probe runs (reference O4: upstream picked k
//! on the test AUC, per slice).

use std::path::Path;

use husai_kernels::activations::{OpenOptions, open};
use husai_kernels::inference::Encoder;
use husai_kernels::rng::SplitMix64;
use husai_kernels::stats::BootstrapSpec;
use husai_plugin_api::{EvalError, run_identity};
use serde_json::{Value, json};

use crate::drop::drop_stats;
use crate::probe::{auc, columns, fit, rank_latents};
use crate::tasks::{Law, Shift, choose_tasks};

/// The evaluation's settings (the config, checked).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub tasks: usize,
    pub train_rows: usize,
    pub test_rows: usize,
    pub ks: Vec<usize>,
    pub gate_k: usize,
    pub shift: Shift,
    pub lambda: f64,
    pub task_seed: u64,
    pub bootstrap: BootstrapSpec,
    pub permutations: u32,
    pub permutation_seed: u64,
    pub confidence: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tasks: 16,
            train_rows: 512,
            test_rows: 512,
            ks: vec![1, 2, 5],
            gate_k: 5,
            shift: Shift {
                extra: 2,
                scale: 1.5,
            },
            lambda: 1e-2,
            task_seed: 0,
            bootstrap: BootstrapSpec::default(),
            permutations: 9999,
            permutation_seed: 0x004f_4f44, // "OOD"
            confidence: 0.95,
        }
    }
}

/// The lower-case hex sha256 of a file of `dir`.
fn sha256_of(dir: &Path, file: &str) -> Result<String, EvalError> {
    husai_kernels::trainer::file_sha256(dir, file).map_err(|e| EvalError::Inputs(e.to_string()))
}

/// The generating law of a `data synth` run directory.
pub fn read_law(dir: &Path) -> Result<Law, EvalError> {
    let bad = |m: String| EvalError::Inputs(format!("data run {}: {m}", dir.display()));
    let gpath = dir.join("generator.json");
    let text = std::fs::read(&gpath).map_err(|e| {
        bad(format!(
            "cannot read generator.json ({e}); give the `data synth` run the SAE was trained on"
        ))
    })?;
    let g: Value = serde_json::from_slice(&text)
        .map_err(|e| bad(format!("generator.json is not JSON: {e}")))?;
    let c = &g["config"];
    let int = |k: &str| {
        c[k].as_u64()
            .ok_or_else(|| bad(format!("generator.json has no integer config.{k}")))
    };
    let num = |k: &str| {
        c[k].as_f64()
            .ok_or_else(|| bad(format!("generator.json has no number config.{k}")))
    };
    let dict = open(&dir.join("dictionary.npy"), &OpenOptions::default())
        .map_err(|e| bad(e.to_string()))?;
    let (n_features, d_in) = (dict.info().rows, dict.info().d_in);
    let law = Law {
        dictionary: dict.data().to_vec(),
        n_features,
        d_in,
        l0: int("l0")? as usize,
        coef_min: num("coef_min")?,
        coef_max: num("coef_max")?,
    };
    if int("n_features")? as usize != n_features || int("d_in")? as usize != d_in {
        return Err(bad(
            "generator.json's n_features and d_in disagree with dictionary.npy".into(),
        ));
    }
    if law.l0 == 0 || law.l0 >= n_features {
        return Err(bad(format!(
            "l0 {} leaves no room for a task feature among {n_features}",
            law.l0
        )));
    }
    Ok(law)
}

fn dense_latents(enc: &Encoder, x: &[f64]) -> Result<Vec<f64>, EvalError> {
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let code = enc
        .encode(&xf)
        .map_err(|e| EvalError::Failed(format!("encoding with the SAE failed: {e}")))?;
    let m = enc.d_sae();
    let mut z = vec![0f64; code.rows() * m];
    for r in 0..code.rows() {
        let (idx, val) = code.row(r);
        for (&j, &v) in idx.iter().zip(val) {
            z[r * m + j as usize] = v as f64;
        }
    }
    Ok(z)
}

/// What the gate's budget says: `not_evaluated` without an interval, `degrades_under_shift` when the interval of
/// the drop lies above 0, `no_degradation_shown` otherwise.
/// The verdict of the gate's k. A bound the bootstrap left unbounded is written as null (JSON has no infinity): a
/// null `low` of an interval that exists is −∞, so it shows no degradation.
pub(crate) fn conclusion(gate: &Value) -> &'static str {
    if !gate["interval"].is_object() {
        return "not_evaluated";
    }
    match gate["interval"]["low"].as_f64() {
        Some(low) if low > 0.0 => "degrades_under_shift",
        _ => "no_degradation_shown",
    }
}

/// Runs the evaluation of the SAE in `sae_dir` on the law of `data_dir`; `progress(done, total)` per task.
pub fn evaluate(
    sae_dir: &Path,
    data_dir: &Path,
    s: &Settings,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Value, EvalError> {
    let law = read_law(data_dir)?;
    let enc = Encoder::read(sae_dir)
        .map_err(|e| EvalError::Inputs(format!("SAE run {}: {e}", sae_dir.display())))?;
    if enc.d_in() != law.d_in {
        return Err(EvalError::Inputs(format!(
            "SAE run {} has d_in {} but the data run {} has d_in {}; give the data run the SAE was trained on",
            sae_dir.display(),
            enc.d_in(),
            data_dir.display(),
            law.d_in
        )));
    }
    if s.tasks > law.n_features {
        return Err(EvalError::Config(format!(
            "config key \"tasks\" is {} but the data run has only {} features to define tasks on",
            s.tasks, law.n_features
        )));
    }
    let m = enc.d_sae();
    if let Some(&k) = s.ks.iter().find(|&&k| k > m) {
        return Err(EvalError::Config(format!(
            "config key \"ks\" holds {k}, more than the SAE's {m} latents"
        )));
    }
    let mut g = SplitMix64::new(s.task_seed);
    let chosen = choose_tasks(law.n_features, s.tasks, &mut g);
    let d = law.d_in;
    let mut records = Vec::with_capacity(chosen.len());
    let mut gaps: Vec<Vec<(bool, f64)>> = vec![Vec::new(); s.ks.len()];
    for (t, &(feature, ood)) in chosen.iter().enumerate() {
        let train = law.rows(feature, s.train_rows, None, &mut g);
        let test = law.rows(feature, s.test_rows, ood.then_some(s.shift), &mut g);
        let dense = fit(&train.x, &train.y, d, s.lambda);
        let dense_auc = auc(&dense.decision(&test.x), &test.y).ok_or_else(|| {
            EvalError::Failed(format!("task {t}: a test split without both classes"))
        })?;
        let (z_train, z_test) = (
            dense_latents(&enc, &train.x)?,
            dense_latents(&enc, &test.x)?,
        );
        let order = rank_latents(&z_train, &train.y, m);
        let mut sae_auc = serde_json::Map::new();
        let mut gap = serde_json::Map::new();
        for (i, &k) in s.ks.iter().enumerate() {
            let cols = &order[..k];
            let probe = fit(&columns(&z_train, m, cols), &train.y, k, s.lambda);
            let a = auc(&probe.decision(&columns(&z_test, m, cols)), &test.y)
                .expect("the test rows hold both classes: the dense AUC was computed on them");
            sae_auc.insert(k.to_string(), json!(a));
            gap.insert(k.to_string(), json!(a - dense_auc));
            gaps[i].push((ood, a - dense_auc));
        }
        records.push(json!({
            "feature": feature, "stratum": if ood { "ood" } else { "id" },
            "dense_auc": dense_auc, "sae_auc": sae_auc, "gap": gap,
        }));
        progress(t as u64 + 1, chosen.len() as u64);
    }
    let mut by_k = Vec::with_capacity(s.ks.len());
    let mut gate = Value::Null;
    for (i, &k) in s.ks.iter().enumerate() {
        let id: Vec<f64> = gaps[i].iter().filter(|x| !x.0).map(|x| x.1).collect();
        let ood: Vec<f64> = gaps[i].iter().filter(|x| x.0).map(|x| x.1).collect();
        let st = drop_stats(
            &id,
            &ood,
            s.confidence,
            s.bootstrap,
            s.permutations,
            s.permutation_seed,
        )
        .map_err(|e| EvalError::Failed(e.to_string()))?;
        let (interval, reason) = match &st.interval {
            Ok(i) => (json!({"low": i.low, "high": i.high}), Value::Null),
            Err(why) => (Value::Null, json!(why)),
        };
        let row = json!({
            "k": k, "id_tasks": id.len(), "ood_tasks": ood.len(),
            "id_mean_gap": st.id_mean_gap, "ood_mean_gap": st.ood_mean_gap, "ood_drop": st.drop,
            "interval": interval, "interval_reason": reason, "permutation_p": st.permutation_p,
        });
        if k == s.gate_k {
            gate = row.clone();
        }
        by_k.push(row);
    }
    let (sae_campaign, sae_run_id) = run_identity(sae_dir);
    let (data_campaign, data_run_id) = run_identity(data_dir);
    Ok(json!({
        "schema": crate::SCHEMA,
        "eval": crate::EVAL,
        "sae_run": {
            "campaign": sae_campaign, "run_id": sae_run_id, "architecture": enc.architecture(), "d_sae": m,
            "weights_sha256": sha256_of(sae_dir, "sae_weights.safetensors")?,
            "cfg_sha256": sha256_of(sae_dir, "cfg.json")?,
        },
        "data_run": {
            "campaign": data_campaign, "run_id": data_run_id,
            "dictionary_sha256": sha256_of(data_dir, "dictionary.npy")?,
        },
        "config": {
            "tasks": s.tasks, "train_rows": s.train_rows, "test_rows": s.test_rows, "ks": s.ks, "gate_k": s.gate_k,
            "shift_extra": s.shift.extra, "shift_scale": s.shift.scale, "lambda": s.lambda, "task_seed": s.task_seed,
            "bootstrap": s.bootstrap.resamples, "bootstrap_seed": s.bootstrap.seed,
            "permutations": s.permutations, "permutation_seed": s.permutation_seed, "confidence": s.confidence,
        },
        "tasks": records,
        "by_k": by_k,
        "gate_k": s.gate_k,
        "ood_drop": gate["ood_drop"],
        "ood_drop_interval": gate["interval"],
        "ood_drop_interval_reason": gate["interval_reason"],
        "permutation_p": gate["permutation_p"],
        "interval_method": "studentized two-sample bootstrap of mean(ID gaps) - mean(OOD gaps), tasks resampled \
            within their stratum (husai_kernels::stats::two_sample_bootstrap_t)",
        "conclusion": conclusion(&gate),
        "definitions": crate::DEFINITIONS,
    }))
}
