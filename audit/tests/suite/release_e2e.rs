//! The release chain end to end on husai's own evidence (issue #14), at reduced sizes in one test: the toy model (a
//! signed data run) and a planted `data synth` run → SAEs of two families on the planted bank (8 seeds each, the
//! random_model gate's minimum) → known-circuit, one trained-vs-random eval per family,
//! transcoder-stress on the toy model's MLP and on the planted run's ground truth, one ood-stress eval per SAE →
//! `select` over the husai runs → the strict gate on every piece of evidence for the selected candidate → a signed
//! report whose every input is a verified husai run, each gate's verdict the one its statistic says → `husai-audit
//! verify` passes. scripts/e2e_toy.sh (SMALL=1) runs the same chain at the same sizes.

use crate::common;

use std::path::PathBuf;

use common::{Project, assert_success, plugin_dir};
use serde_json::Value;

fn run_id(v: &Value) -> String {
    PathBuf::from(v["dir"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

struct Chain {
    p: Project,
    dir: String,
}

impl Chain {
    /// Runs a signing command that loads plugins.
    fn call(&self, a: &[&str]) -> Value {
        let mut args: Vec<&str> = a.to_vec();
        args.extend(["--plugin-dir", &self.dir]);
        self.sign(&args)
    }

    /// Runs a signing command.
    fn sign(&self, a: &[&str]) -> Value {
        let mut args: Vec<&str> = a.to_vec();
        args.extend(["--key", "dev.pem", "--json"]);
        let o = self.p.run(&args);
        assert_success(&o);
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn eval(&self, plugin: &str, inputs: &[String], sets: &[&str]) -> Value {
        let mut a = vec!["eval", "--plugin", plugin, "--campaign", "toy"];
        for i in inputs {
            a.extend(["--input", i]);
        }
        for s in sets {
            a.extend(["--set", s]);
        }
        self.call(&a)
    }

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

    fn dir_of(&self, run: &str) -> PathBuf {
        self.p.path("results/toy").join(run)
    }

    fn file(&self, v: &Value, name: &str) -> PathBuf {
        self.p.path(v["dir"].as_str().unwrap()).join(name)
    }
}

fn gate<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == name)
        .unwrap()
}

/// A gate passes exactly when every check passes (none missing), which is what each statistic says.
fn assert_verdict_follows_checks(g: &Value) {
    let checks = g["checks"].as_array().unwrap();
    let all = !checks.is_empty() && checks.iter().all(|c| c["status"] == "pass");
    assert_eq!(g["passed"].as_bool(), Some(all), "{g}");
}

#[test]
fn toy_model_to_two_families_to_every_eval_to_select_to_a_strict_gate_on_husai_evidence_alone() {
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
    let synth_id = run_id(&synth);
    let bank = c.file(&synth, "activations.npy");
    let bank = bank.to_str().unwrap();
    let sets = ["d_sae=24", "k=2", "steps=150", "batch=64"];
    let topk = c.train("sae-topk", bank, &sets, 8);
    let batchtopk = c.train("sae-batchtopk", bank, &sets, 8);

    // known-circuit: the toy model's embedding and the planted dictionary recovered by the TopK SAEs.
    let mut inputs = vec![format!("model={toy_id}"), format!("planted={synth_id}")];
    inputs.extend(topk[..5].iter().map(|r| format!("planted_sae={r}")));
    let kc = c.eval(
        "known-circuit",
        &inputs,
        &["random_inits=100", "random_decoders=100", "bootstrap=1000"],
    );
    assert_eq!(kc["schema"], "closure-summary.v1");
    assert_eq!(
        kc["summary"]["parts"]["planted"]["mean_best_cosine"]["outcome"],
        "recovered_above_random"
    );

    // trained-vs-random per family.
    let tvr = |runs: &[String]| {
        let inputs: Vec<String> = runs.iter().map(|r| format!("sae={r}")).collect();
        c.eval("trained-vs-random", &inputs, &["bootstrap=2000"])
    };
    let (tvr_topk, tvr_batch) = (tvr(&topk), tvr(&batchtopk));

    // transcoder-stress: on the toy model's MLP (its input and output), and on the planted run's ground truth,
    // the data the candidates were trained on. 5 selection seeds per condition, 8 fresh confirmation seeds.
    let tc_sets = [
        "select_seeds=[0,1,2,3,4]",
        "confirm_seeds=[10,11,12,13,14,15,16,17]",
        "bootstrap=999",
        "random_pairs=8",
        "batch=64",
        "lr=0.005",
    ];
    let mut toy_sets = tc_sets.to_vec();
    toy_sets.extend(["d_sae=[16,32]", "k=[4]", "epochs=[20]"]);
    let tc_toy = c.eval("transcoder-stress", &[format!("data={toy_id}")], &toy_sets);
    let s = &tc_toy["summary"];
    assert_eq!(tc_toy["schema"], "transcoder-stress.v1");
    assert_eq!(s["data_run"]["source"], "toy-mlp");
    assert_eq!(
        s["data"]["train_rows"].as_u64().unwrap() + s["data"]["held_out_rows"].as_u64().unwrap(),
        529
    );
    let mut synth_sets = tc_sets.to_vec();
    synth_sets.extend(["d_sae=[24]", "k=[2]", "epochs=[10,30]"]);
    let tc_synth = c.eval(
        "transcoder-stress",
        &[format!("data={synth_id}")],
        &synth_sets,
    );
    let ts = &tc_synth["summary"];
    assert_eq!(ts["data_run"]["source"], "synthetic");
    assert_eq!(ts["conditions"].as_array().unwrap().len(), 2);
    assert_eq!(ts["confirmation"]["id"], ts["selection"]["condition"]);
    assert_eq!(ts["confirmation"]["gateable"], true);
    for seed in ts["confirmation"]["per_seed"].as_array().unwrap() {
        for m in ["transcoder", "sae"] {
            assert!(
                seed[m]["recovered_fraction"].as_f64().unwrap() >= 0.5,
                "{seed}"
            );
        }
    }

    // ood-stress for every SAE (its in-distribution gap is the selector's SAEBench analogue).
    let all: Vec<&String> = topk.iter().chain(&batchtopk).collect();
    let oods: Vec<Value> = all
        .iter()
        .map(|r| {
            c.eval(
                "ood-stress",
                &[format!("sae={r}"), format!("data={synth_id}")],
                &["tasks=12", "bootstrap=999", "permutations=999"],
            )
        })
        .collect();

    // select over the husai runs.
    let mut a: Vec<String> = vec!["select".into(), "--campaign".into(), "toy-decisions".into()];
    for (r, e) in all.iter().zip(&oods) {
        a.extend(["--run".into(), c.dir_of(r).to_str().unwrap().into()]);
        a.extend([
            "--eval-run".into(),
            c.p.path(e["dir"].as_str().unwrap())
                .to_str()
                .unwrap()
                .into(),
        ]);
    }
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let sel = c.sign(&a);
    let selected = &sel["selected"];
    assert_eq!(
        sel["counts"]["candidates"], 2,
        "two families, one configuration each: {sel}"
    );
    let rep = selected["representative"]["checkpoint"].as_str().unwrap();
    let rep_run = rep.rsplit('/').next().unwrap().to_owned();
    let family = selected["representative"]["architecture"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(all.iter().any(|r| **r == rep_run), "{rep}");
    assert_eq!(selected["seed_count"].as_u64(), Some(8), "{selected}");
    // The decision run (the only one in its campaign).
    let decisions: Vec<PathBuf> = std::fs::read_dir(c.p.path("results/toy-decisions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(decisions.len(), 1);
    let selection_file = decisions[0].join("selection.json");

    // The strict gate on all four kinds of evidence for the selected candidate.
    let tvr_file = c.file(
        if family == "sae-topk" {
            &tvr_topk
        } else {
            &tvr_batch
        },
        "trained_vs_random.json",
    );
    let rep_index = all.iter().position(|r| **r == rep_run).unwrap();
    let ood_file = c.file(&oods[rep_index], "ood_stress_summary.json");
    let tc_file = c.file(&tc_synth, "transcoder_stress_summary.json");
    let o = c.p.run(&[
        "gate",
        "--phase4a",
        tvr_file.to_str().unwrap(),
        "--transcoder",
        tc_file.to_str().unwrap(),
        "--ood",
        ood_file.to_str().unwrap(),
        "--external",
        selection_file.to_str().unwrap(),
        "--external-mode",
        "saebench",
        "--candidate",
        c.dir_of(&rep_run).to_str().unwrap(),
        "--campaign",
        "toy-decisions",
        "--key",
        "dev.pem",
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", common::stdout(&o), common::stderr(&o)));
    let pass_all = report["pass_all"].as_bool().unwrap();
    assert_eq!(
        o.status.code(),
        Some(if pass_all { 0 } else { 1 }),
        "{report}"
    );
    for name in ["random_model", "transcoder", "ood", "external"] {
        let g = gate(&report, name);
        assert_ne!(
            g["status"], "not_evaluated",
            "{name}: every input was given and concerns the candidate: {g}"
        );
        assert_verdict_follows_checks(g);
        // Every input is a file of a signed husai run of this chain.
        for input in g["inputs"].as_array().unwrap() {
            assert!(
                input["campaign"] == "toy" || input["campaign"] == "toy-decisions",
                "{input}"
            );
        }
    }
    let tc_gate = gate(&report, "transcoder");
    assert_eq!(tc_gate["checks"][0]["value"], ts["transcoder_delta_lcb"]);
    assert_eq!(
        tc_gate["checks"][0]["status"] == "pass",
        ts["transcoder_delta_lcb"].as_f64().unwrap() >= 0.0
    );
    let ood_gate = gate(&report, "ood");
    let high = oods[rep_index]["summary"]["ood_drop_interval"]["high"].clone();
    assert_eq!(ood_gate["checks"][0]["value"], high);
    let ext = gate(&report, "external");
    assert_eq!(
        ext["checks"][0]["value"],
        selected["group_metrics"]["saebench_delta"]["ci_low"]
    );
    let rm = gate(&report, "random_model");
    assert_eq!(
        rm["evidence"]["candidate"]["run_id"].as_str(),
        Some(rep_run.as_str())
    );
    assert_eq!(
        pass_all,
        ["random_model", "transcoder", "ood", "external"]
            .iter()
            .all(|n| gate(&report, n)["passed"] == true)
    );
    // Another family's transcoder data: the toy-model evidence is refused for this candidate, naming both runs.
    let o = c.p.run(&[
        "gate",
        "--transcoder",
        c.file(&tc_toy, "transcoder_stress_summary.json")
            .to_str()
            .unwrap(),
        "--candidate",
        c.dir_of(&rep_run).to_str().unwrap(),
        "--allow-missing",
        "random_model",
        "--allow-missing",
        "ood",
        "--allow-missing",
        "external",
        "--key",
        "dev.pem",
        "--json",
    ]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let g = gate(&r, "transcoder");
    assert_eq!(
        (o.status.code(), &g["status"]),
        (Some(1), &Value::from("not_evaluated"))
    );
    assert_eq!(
        g["reason"].as_str().unwrap(),
        format!(
            "the transcoder evidence was measured on data run toy/{toy_id}, but the candidate toy/{rep_run} was \
             trained on toy/{synth_id}; run transcoder-stress on the candidate's own data run"
        )
    );
    let o = c.p.run(&["verify", "results", "--keys", "keys"]);
    assert_success(&o);
}
