//! End to end at reduced sizes (issue #11 item "end to end"): the toy model (a signed data run) → SAEs of two
//! families on its resid_pre bank through `husai-audit train` (8 TopK seeds, the gate's minimum, and 5 BatchTopK
//! seeds, the eval's) → a planted `data synth` run and 5 SAEs on it → the known-circuit eval and one
//! trained-vs-random eval per family, reading them by run id → strict `husai-audit gate` runs reading each
//! trained-vs-random summary with `--candidate`: the TopK evidence passes the random_model gate for a TopK
//! candidate, the BatchTopK evidence fails it on its seed count, and the TopK evidence is refused for a BatchTopK
//! candidate → `husai-audit verify` passes; a tampered closure summary and a tampered trained-vs-random summary
//! each fail it. scripts/e2e_toy.sh (SMALL=1) runs the same chain at the same sizes.

use crate::common;

use std::path::PathBuf;

use common::{Project, assert_fails_with, assert_success, plugin_dir};
use serde_json::Value;

fn run_id(v: &Value) -> String {
    PathBuf::from(v["dir"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The project and the arguments every signing command of the chain takes.
struct Chain {
    p: Project,
    dir: String,
}

impl Chain {
    fn args(&self, a: &[&str]) -> Vec<String> {
        a.iter()
            .map(|s| s.to_string())
            .chain(
                ["--key", "dev.pem", "--plugin-dir", &self.dir, "--json"]
                    .iter()
                    .map(|s| s.to_string()),
            )
            .collect()
    }

    fn output(&self, a: &[&str]) -> std::process::Output {
        let args = self.args(a);
        self.p
            .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn call(&self, a: &[&str]) -> Value {
        let o = self.output(a);
        assert_success(&o);
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// Trains `seeds` SAEs of `plugin` on `bank`; returns their run ids.
    fn train(&self, plugin: &str, bank: &str, sets: &[&str], seeds: u32) -> Vec<String> {
        (0..seeds)
            .map(|seed| {
                let s = seed.to_string();
                let mut a = vec!["train", "--plugin", plugin, "--data", bank];
                for set in sets {
                    a.extend(["--set", set]);
                }
                a.extend(["--seed", &s, "--campaign", "toy"]);
                run_id(&self.call(&a))
            })
            .collect()
    }

    /// The trained-vs-random eval of `runs`; returns (run dir, summary).
    fn trained_vs_random(&self, runs: &[String]) -> (PathBuf, Value) {
        let inputs: Vec<String> = runs.iter().map(|r| format!("sae={r}")).collect();
        let mut a = vec![
            "eval",
            "--plugin",
            "trained-vs-random",
            "--campaign",
            "toy",
            "--set",
            "bootstrap=2000",
        ];
        for i in &inputs {
            a.extend(["--input", i]);
        }
        let ev = self.call(&a);
        assert_eq!(ev["schema"], "trained-vs-random.v1");
        (
            self.p.path(ev["dir"].as_str().unwrap()),
            ev["summary"].clone(),
        )
    }

    /// A strict gate on the random_model evidence alone (the other gates' inputs are allowed missing).
    fn gate(&self, summary: &std::path::Path, candidate: &std::path::Path) -> std::process::Output {
        self.p.run(&[
            "gate",
            "--phase4a",
            summary.to_str().unwrap(),
            "--candidate",
            candidate.to_str().unwrap(),
            "--allow-missing",
            "transcoder",
            "--allow-missing",
            "ood",
            "--allow-missing",
            "external",
            "--key",
            "dev.pem",
            "--json",
        ])
    }
}

fn random_model_gate(report: &Value) -> &Value {
    report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "random_model")
        .unwrap()
}

fn check<'a>(gate: &'a Value, metric: &str) -> &'a Value {
    gate["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == metric)
        .unwrap_or_else(|| panic!("no check {metric}: {gate}"))
}

fn covered(gate: &Value) -> Vec<String> {
    gate["evidence"]["sae_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn toy_model_to_saes_to_evals_to_a_strict_gate_signs_a_chain_that_verifies() {
    let dir = plugin_dir();
    let c = Chain {
        p: Project::new(),
        dir: dir.to_str().unwrap().to_owned(),
    };

    let toy = c.call(&[
        "data",
        "generate",
        "--plugin",
        "toy-modadd",
        "--set",
        "seed=0",
        "--set",
        "p=23",
        "--set",
        "d_model=16",
        "--set",
        "width=64",
        "--set",
        "steps=60",
        "--set",
        "eval_every=20",
        "--set",
        "train_fraction=0.5",
        "--campaign",
        "toy",
    ]);
    let toy_id = run_id(&toy);
    assert_eq!(toy["summary"]["p"], 23);
    let bank = c.p.path(toy["dir"].as_str().unwrap()).join("resid_pre.npy");
    let bank = bank.to_str().unwrap();

    let synth = c.call(&[
        "data",
        "synth",
        "--rows",
        "2048",
        "--d-in",
        "16",
        "--n-features",
        "12",
        "--l0",
        "2",
        "--seed",
        "3",
        "--campaign",
        "toy",
    ]);
    let synth_bank =
        c.p.path(synth["dir"].as_str().unwrap())
            .join("activations.npy");

    // 400 steps: at 40 the SAEs are still close to their random initial decoders (trained PWMCC 0.567 against
    // 0.561, a bound below 0), at 400 they are reproducibly above random (bound 0.12, effect 0.31).
    let sae_sets = ["d_sae=32", "k=4", "steps=400", "batch=64"];
    let topk = c.train("sae-topk", bank, &sae_sets, 8);
    let batchtopk = c.train("sae-batchtopk", bank, &sae_sets, 5);
    let planted = c.train(
        "sae-topk",
        synth_bank.to_str().unwrap(),
        &["d_sae=24", "k=2", "steps=150", "batch=64"],
        5,
    );

    // known-circuit on the model, the TopK SAEs and the planted SAEs.
    let mut inputs = vec![format!("model={toy_id}")];
    inputs.extend(topk[..5].iter().map(|r| format!("sae={r}")));
    inputs.push(format!("planted={}", run_id(&synth)));
    inputs.extend(planted.iter().map(|r| format!("planted_sae={r}")));
    let mut a = vec![
        "eval",
        "--plugin",
        "known-circuit",
        "--campaign",
        "toy",
        "--set",
        "random_inits=100",
        "--set",
        "random_decoders=100",
        "--set",
        "bootstrap=1000",
    ];
    for i in &inputs {
        a.extend(["--input", i]);
    }
    let ev = c.call(&a);
    assert_eq!(ev["schema"], "closure-summary.v1");
    let parts = &ev["summary"]["parts"];
    for part in ["embedding", "sae_alignment", "planted"] {
        let outcome = parts[part]["outcome"].as_str().unwrap();
        assert!(
            ["recovered_above_random", "null_result"].contains(&outcome),
            "{part}: {}",
            parts[part]
        );
    }
    assert_eq!(parts["sae_alignment"]["trained"]["n"], 5);
    // At these reduced sizes (150 steps) the SAEs' best cosines to the planted dictionary are well above random
    // decoders', though few clear the 0.9 recovery threshold yet.
    assert_eq!(
        parts["planted"]["mean_best_cosine"]["outcome"], "recovered_above_random",
        "{}",
        parts["planted"]
    );
    let closure =
        c.p.path(ev["dir"].as_str().unwrap())
            .join("closure_summary.json");

    // ood-stress on one planted SAE and the data run it was trained on, by run id: the summary names both.
    let synth_id = run_id(&synth);
    let ood = c.call(&[
        "eval",
        "--plugin",
        "ood-stress",
        "--campaign",
        "toy",
        "--input",
        &format!("sae={}", planted[0]),
        "--input",
        &format!("data={synth_id}"),
        "--set",
        "tasks=12",
        "--set",
        "bootstrap=999",
        "--set",
        "permutations=999",
    ]);
    assert_eq!(ood["schema"], "ood-stress.v1");
    let s = &ood["summary"];
    assert_eq!(s["sae_run"]["run_id"].as_str(), Some(planted[0].as_str()));
    assert_eq!(s["data_run"]["run_id"].as_str(), Some(synth_id.as_str()));
    assert_eq!(s["tasks"].as_array().unwrap().len(), 12);
    assert!(
        ["degrades_under_shift", "no_degradation_shown"]
            .contains(&s["conclusion"].as_str().unwrap()),
        "{s}"
    );
    // The strict ood gate on that evidence: for its own SAE it gates the interval's upper bound; for another
    // candidate it refuses, naming both runs.
    let ood_file =
        c.p.path(ood["dir"].as_str().unwrap())
            .join("ood_stress_summary.json");
    let ood_gate = |candidate: &str| {
        let o = c.p.run(&[
            "gate",
            "--ood",
            ood_file.to_str().unwrap(),
            "--candidate",
            c.p.path("results/toy").join(candidate).to_str().unwrap(),
            "--allow-missing",
            "random_model",
            "--allow-missing",
            "transcoder",
            "--allow-missing",
            "external",
            "--key",
            "dev.pem",
            "--json",
        ]);
        let report: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", common::stdout(&o), common::stderr(&o)));
        let g = report["gates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["gate"] == "ood")
            .unwrap()
            .clone();
        (o.status.code(), g)
    };
    let (code, g) = ood_gate(&planted[0]);
    let high = s["ood_drop_interval"]["high"].as_f64().unwrap();
    let passes = high <= 0.1;
    assert_eq!(
        (code, g["passed"].as_bool()),
        (Some(if passes { 0 } else { 1 }), Some(passes)),
        "{g}"
    );
    assert_eq!(g["checks"][0]["value"].as_f64(), Some(high));
    let (code, g) = ood_gate(&planted[1]);
    assert_eq!(
        (code, &g["status"]),
        (Some(1), &Value::from("not_evaluated")),
        "{g}"
    );
    assert_eq!(
        g["reason"].as_str().unwrap(),
        format!(
            "the OOD evidence concerns SAE run toy/{}, but the candidate is run toy/{}; evaluate ood-stress on the \
             candidate itself",
            planted[0], planted[1]
        )
    );

    // trained-vs-random, one eval per family.
    let (topk_eval, topk_summary) = c.trained_vs_random(&topk);
    assert_eq!(topk_summary["family"], "sae-topk");
    assert_eq!(topk_summary["trained"]["n_seeds"], 8);
    assert_eq!(topk_summary["random"]["n_draws"], 200);
    assert_eq!(topk_summary["random"]["n_pairs"], 100);
    let listed: Vec<&str> = topk_summary["sae_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["campaign"], "toy");
            assert_eq!(r["family"], "sae-topk");
            assert_eq!(r["configuration"]["d_sae"], 32);
            r["run_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(listed, topk);
    let (batch_eval, batch_summary) = c.trained_vs_random(&batchtopk);
    assert_eq!(batch_summary["family"], "sae-batchtopk");
    assert_eq!(batch_summary["trained"]["n_seeds"], 5);
    // 5 seeds: no seed-level bound (the interval needs 8).
    assert!(
        batch_summary["difference"]["ci_low"].is_null(),
        "{batch_summary}"
    );
    assert_eq!(batch_summary["conclusion"], "not_evaluated");

    // A strict gate, the candidate one of the 8 TopK runs. What it decides is what the evidence says: the bound and
    // the chance-normalised effect against the strict profile's thresholds (0 and 0.05); at these sizes they pass.
    let tvr = |d: &PathBuf| d.join("trained_vs_random.json");
    let run_dir = |id: &str| c.p.path("results/toy").join(id);
    let o = c.gate(&tvr(&topk_eval), &run_dir(&topk[3]));
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", common::stdout(&o), common::stderr(&o)));
    let g = random_model_gate(&report);
    let low = topk_summary["difference"]["ci_low"].as_f64().unwrap();
    let effect = topk_summary["chance_normalised_effect"].as_f64().unwrap();
    let passes = low > 0.0 && effect >= 0.05;
    assert!(passes, "{topk_summary}");
    assert_eq!(report["pass_all"], true);
    assert_eq!(g["passed"], passes, "{g}\n{topk_summary}");
    assert_eq!(o.status.code(), Some(if passes { 0 } else { 1 }));
    assert_eq!(check(g, "trained_seeds")["status"], "pass");
    assert_eq!(check(g, "trained_random_difference_lcb")["value"], low);
    assert_eq!(check(g, "chance_normalised_effect")["value"], effect);
    assert_eq!(
        check(g, "evidence_is_candidate_configuration")["status"],
        "pass"
    );
    assert_eq!(covered(g), topk);
    assert_eq!(g["evidence"]["candidate"]["run_id"], topk[3]);
    assert_eq!(g["evidence"]["candidate"]["family"], "sae-topk");

    // The BatchTopK evidence has 5 seeds: the gate fails on the seed count, and the bound is not evaluated.
    let o = c.gate(&tvr(&batch_eval), &run_dir(&batchtopk[0]));
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let g = random_model_gate(&report);
    assert_eq!(g["passed"], false);
    let seeds = check(g, "trained_seeds");
    assert_eq!(
        (&seeds["status"], &seeds["value"], &seeds["threshold"]),
        (&Value::from("fail"), &Value::from(5.0), &Value::from(8.0))
    );
    assert_eq!(
        check(g, "trained_random_difference_lcb")["status"],
        "not_evaluated"
    );
    assert_eq!(covered(g), batchtopk);

    // The TopK evidence does not cover a BatchTopK candidate: the gate refuses, naming both.
    let o = c.gate(&tvr(&topk_eval), &run_dir(&batchtopk[1]));
    assert_fails_with(
        &o,
        2,
        &[
            &format!(
                "the random_model evidence covers run toy/{} (sae-topk",
                topk[0]
            ),
            &format!(
                "but the candidate is run toy/{} (sae-batchtopk",
                batchtopk[1]
            ),
        ],
    );

    assert_success(&c.p.run(&["verify", "results"]));
    // A tampered closure summary fails verify; restored, the tree verifies again.
    let original = std::fs::read(&closure).unwrap();
    let mut text = String::from_utf8(original.clone()).unwrap();
    text = text.replacen("null_result", "recovered_above_random", 1);
    text.push(' ');
    std::fs::write(&closure, text).unwrap();
    assert_fails_with(
        &c.p.run(&["verify", "results"]),
        1,
        &["closure_summary.json"],
    );
    std::fs::write(&closure, original).unwrap();
    assert_success(&c.p.run(&["verify", "results"]));
    // So does a tampered trained-vs-random summary (a passing conclusion written in).
    let summary = tvr(&batch_eval);
    let text =
        std::fs::read_to_string(&summary)
            .unwrap()
            .replacen("not_evaluated", "above_random", 1);
    std::fs::write(&summary, text).unwrap();
    assert_fails_with(
        &c.p.run(&["verify", "results"]),
        1,
        &["trained_vs_random.json"],
    );
}
