//! `husai-audit select` over husai's own runs (`--run`, `--eval-run`), end to end with the real plugins at tiny
//! sizes: one `data synth` bank, TopK and BatchTopK SAEs on it (3 seeds each, and a second TopK configuration),
//! one ood-stress eval per SAE; the selection groups by family and configuration with distinct seeds counted, its
//! group statistics are those of the runs' own files, the decision cites every run and verifies, and the release
//! gate takes the selection and its representative. Then every refused input, with the message that names it.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{Project, assert_fails_with, assert_success, plugin_dir};
use serde_json::{Value, json};

/// t(0.975, 2): the Student-t quantile of a 95% interval over 3 seeds.
const T_975_2: f64 = 4.302652729911275;

const SAE_SETS: [&str; 4] = ["d_sae=24", "k=2", "steps=100", "batch=64"];
const SAE_SETS_K3: [&str; 4] = ["d_sae=24", "k=3", "steps=100", "batch=64"];

/// The signed runs every test reads (never modifies).
struct Bank {
    p: Project,
    synth: String,
    topk: Vec<String>,
    topk_evals: Vec<String>,
    batchtopk: Vec<String>,
    batchtopk_evals: Vec<String>,
    topk_k3: Vec<String>,
    topk_k3_evals: Vec<String>,
    /// A second ood-stress eval of `topk[0]`, with another task seed.
    topk0_alt_eval: String,
    diverged: String,
    /// A TopK run on another data synth bank.
    other_bank_run: String,
}

fn id_of(v: &Value) -> String {
    PathBuf::from(v["dir"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

impl Bank {
    fn output(p: &Project, plugins: &str, a: &[&str]) -> std::process::Output {
        let mut args: Vec<&str> = a.to_vec();
        args.extend(["--key", "dev.pem", "--plugin-dir", plugins, "--json"]);
        p.run(&args)
    }

    fn call(p: &Project, plugins: &str, a: &[&str]) -> Value {
        let o = Self::output(p, plugins, a);
        assert_success(&o);
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn synth(p: &Project, plugins: &str, seed: &str) -> String {
        id_of(&Self::call(
            p,
            plugins,
            &[
                "data",
                "synth",
                "--rows",
                "1024",
                "--d-in",
                "16",
                "--n-features",
                "12",
                "--l0",
                "2",
                "--seed",
                seed,
                "--campaign",
                "toy",
            ],
        ))
    }

    fn train_args<'a>(
        plugin: &'a str,
        bank: &'a str,
        sets: &[&'a str],
        seed: &'a str,
    ) -> Vec<&'a str> {
        let mut a = vec!["train", "--plugin", plugin, "--data", bank];
        for s in sets {
            a.extend(["--set", s]);
        }
        a.extend(["--seed", seed, "--campaign", "toy"]);
        a
    }

    fn train(
        p: &Project,
        plugins: &str,
        synth: &str,
        plugin: &str,
        sets: &[&str],
        seed: u32,
    ) -> String {
        let bank = format!("results/toy/{synth}/activations.npy");
        let seed = seed.to_string();
        id_of(&Self::call(
            p,
            plugins,
            &Self::train_args(plugin, &bank, sets, &seed),
        ))
    }

    fn ood(p: &Project, plugins: &str, synth: &str, sae: &str, task_seed: &str) -> String {
        let (sae, data, seed) = (
            format!("sae={sae}"),
            format!("data={synth}"),
            format!("task_seed={task_seed}"),
        );
        let v = Self::call(
            p,
            plugins,
            &[
                "eval",
                "--plugin",
                "ood-stress",
                "--campaign",
                "toy",
                "--input",
                &sae,
                "--input",
                &data,
                "--set",
                "tasks=12",
                "--set",
                "bootstrap=999",
                "--set",
                "permutations=999",
                "--set",
                &seed,
            ],
        );
        assert_eq!(v["schema"], "ood-stress.v1");
        id_of(&v)
    }

    fn get() -> &'static Bank {
        static BANK: OnceLock<Bank> = OnceLock::new();
        BANK.get_or_init(|| {
            let p = Project::new();
            let plugins = plugin_dir().to_str().unwrap().to_owned();
            let synth = Self::synth(&p, &plugins, "3");
            let family = |plugin: &str, sets: &[&str]| -> (Vec<String>, Vec<String>) {
                let runs: Vec<String> = (0..3)
                    .map(|seed| Self::train(&p, &plugins, &synth, plugin, sets, seed))
                    .collect();
                let evals = runs
                    .iter()
                    .map(|r| Self::ood(&p, &plugins, &synth, r, "0"))
                    .collect();
                (runs, evals)
            };
            let (topk, topk_evals) = family("sae-topk", &SAE_SETS);
            let (batchtopk, batchtopk_evals) = family("sae-batchtopk", &SAE_SETS);
            let (topk_k3, topk_k3_evals) = family("sae-topk", &SAE_SETS_K3);
            let topk0_alt_eval = Self::ood(&p, &plugins, &synth, &topk[0], "1");
            // A learning rate that overflows: the run is signed with status `diverged` and train exits 1.
            let bank = format!("results/toy/{synth}/activations.npy");
            let mut sets = SAE_SETS.to_vec();
            sets.push("lr=1e30");
            let o = Self::output(
                &p,
                &plugins,
                &Self::train_args("sae-topk", &bank, &sets, "3"),
            );
            assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["status"], "diverged");
            let diverged = id_of(&v);
            let other_synth = Self::synth(&p, &plugins, "4");
            let other_bank_run = Self::train(&p, &plugins, &other_synth, "sae-topk", &SAE_SETS, 5);
            Bank {
                p,
                synth,
                topk,
                topk_evals,
                batchtopk,
                batchtopk_evals,
                topk_k3,
                topk_k3_evals,
                topk0_alt_eval,
                diverged,
                other_bank_run,
            }
        })
    }

    fn dir(&self, id: &str) -> String {
        self.p
            .path("results/toy")
            .join(id)
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// `select` with `--run`/`--eval-run` pairs (an eval of `None` gives the run alone), into `campaign`.
    fn select(
        &self,
        campaign: &str,
        pairs: &[(&str, Option<&str>)],
        extra: &[&str],
    ) -> std::process::Output {
        let mut args: Vec<String> = vec!["select".into(), "--key".into(), "dev.pem".into()];
        for (run, eval) in pairs {
            args.extend(["--run".into(), self.dir(run)]);
            if let Some(e) = eval {
                args.extend(["--eval-run".into(), self.dir(e)]);
            }
        }
        args.extend(["--campaign".into(), campaign.into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        self.p
            .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The one decision run in `campaign`.
    fn decision(&self, campaign: &str) -> PathBuf {
        let runs: Vec<PathBuf> = match std::fs::read_dir(self.p.path("results").join(campaign)) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        };
        assert_eq!(runs.len(), 1, "{runs:?}");
        runs[0].clone()
    }

    fn no_decision(&self, campaign: &str) {
        assert!(
            !self.p.path("results").join(campaign).exists(),
            "a failed selection left a run behind"
        );
    }

    fn json(&self, run: &str, file: &str) -> Value {
        read_json(&self.p.path("results/toy").join(run).join(file))
    }

    /// The eval's SAEBench analogue: the mean ID gap at gate_k.
    fn id_gap(&self, eval: &str) -> f64 {
        let s = self.json(eval, "ood_stress_summary.json");
        let k = s["gate_k"].clone();
        s["by_k"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["k"] == k)
            .unwrap()["id_mean_gap"]
            .as_f64()
            .unwrap()
    }

    fn train_ev(&self, run: &str) -> f64 {
        1.0 - self.json(run, "metrics.json")["eval"]["fvu"]
            .as_f64()
            .unwrap()
    }

    fn pairs<'a>(runs: &'a [String], evals: &'a [String]) -> Vec<(&'a str, Option<&'a str>)> {
        runs.iter()
            .zip(evals)
            .map(|(r, e)| (r.as_str(), Some(e.as_str())))
            .collect()
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Equal up to rounding: the bounds use husai's own t quantile, the test a 16-digit constant.
fn close(a: &Value, b: f64) {
    let a = a.as_f64().unwrap_or_else(|| panic!("not a number: {a}"));
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

fn ranked<'a>(doc: &'a Value, condition: &str) -> Vec<&'a Value> {
    doc["ranked"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["condition"] == condition)
        .collect()
}

#[test]
fn two_families_of_three_seeds_select_a_group_whose_statistics_are_the_runs_own() {
    let b = Bank::get();
    let mut pairs = Bank::pairs(&b.topk, &b.topk_evals);
    pairs.extend(Bank::pairs(&b.batchtopk, &b.batchtopk_evals));
    pairs.push((&b.diverged, None));
    let o = b.select("sel-families", &pairs, &[]);
    assert_success(&o);
    let run = b.decision("sel-families");
    let doc = read_json(&run.join("selection.json"));
    assert_eq!(doc["schema_version"], "1.1");
    assert_eq!(
        doc["counts"]["total_rows"], 6,
        "the diverged run yields no row"
    );
    assert_eq!(doc["counts"]["candidates"], 2);

    // Each family is one group of 3 distinct seeds; its statistics are those of the runs' own files.
    let mut lcbs = Vec::new();
    for (family, runs, evals) in [
        ("sae-topk", &b.topk, &b.topk_evals),
        ("sae-batchtopk", &b.batchtopk, &b.batchtopk_evals),
    ] {
        let rows = ranked(&doc, family);
        assert_eq!(rows.len(), 1, "{family}: {rows:?}");
        let c = rows[0];
        assert_eq!(c["seed_count"], 3);
        assert_eq!(c["seeds"], json!([0, 1, 2]));
        assert_eq!(c["sources"], json!(["husai"]));
        assert_eq!(c["complete"], true);
        assert_eq!(
            c["not_applicable"],
            json!([
                "cebench_interp_delta_vs_baseline",
                "cebench_interpretability_max"
            ])
        );
        assert!(c["values"]["cebench_interp_delta_vs_baseline"].is_null());
        let gaps: Vec<f64> = evals.iter().map(|e| b.id_gap(e)).collect();
        let (mean, sd) = mean_sd(&gaps);
        let lcb = mean - T_975_2 * sd / 3f64.sqrt();
        close(&c["values"]["saebench_delta"], lcb);
        let evs: Vec<f64> = runs.iter().map(|r| b.train_ev(r)).collect();
        let (ev_mean, ev_sd) = mean_sd(&evs);
        close(
            &c["values"]["train_explained_variance"],
            ev_mean - T_975_2 * ev_sd / 3f64.sqrt(),
        );
        lcbs.push((family, lcb, mean, sd));
    }
    // One delta axis: the front is the family with the higher SAEBench-analogue bound, and it is selected.
    let (best, other) = if lcbs[0].1 >= lcbs[1].1 {
        (lcbs[0], lcbs[1])
    } else {
        (lcbs[1], lcbs[0])
    };
    let selected = &doc["selected"];
    assert_eq!(selected["condition"], best.0, "{}", doc["rationale"]);
    assert_eq!(selected["is_pareto"], true);
    assert_eq!(
        ranked(&doc, other.0)[0]["is_pareto"],
        lcbs[0].1 == lcbs[1].1
    );
    let g = &selected["group_metrics"];
    close(&g["saebench_delta"]["mean"], best.2);
    close(&g["saebench_delta"]["sd"], best.3);
    close(&g["saebench_delta"]["ci_low"], best.1);
    close(
        &g["saebench_delta"]["ci_high"],
        best.2 + T_975_2 * best.3 / 3f64.sqrt(),
    );
    assert_eq!(g["saebench_delta"]["n"], 3);
    assert_eq!(g["cebench_interp_delta_vs_baseline"]["n"], 0);
    assert_eq!(g["basis"], "lcb");

    // The representative names its train run and the eval run that measured it.
    let rep = &selected["representative"];
    let (runs, evals) = if best.0 == "sae-topk" {
        (&b.topk, &b.topk_evals)
    } else {
        (&b.batchtopk, &b.batchtopk_evals)
    };
    let seed = rep["seed"].as_u64().unwrap() as usize;
    assert_eq!(rep["source"], "husai");
    assert_eq!(rep["architecture"], best.0);
    assert_eq!(rep["checkpoint"], format!("toy/{}", runs[seed]));
    assert_eq!(rep["run"]["run_id"], runs[seed].as_str());
    let envelope = std::fs::read(
        b.p.path("results/toy")
            .join(&runs[seed])
            .join("husai.dsse.json"),
    )
    .unwrap();
    assert_eq!(
        rep["run"]["manifest_sha256"],
        husai_core::digest::sha256_hex(&envelope)
    );
    assert_eq!(rep["eval_run"]["run_id"], evals[seed].as_str());
    close(&rep["metrics"]["saebench_delta"], b.id_gap(&evals[seed]));
    close(
        &rep["metrics"]["train_explained_variance"],
        b.train_ev(&runs[seed]),
    );
    assert_eq!(
        doc["runner_up_comparison"]["cebench_interp_delta_vs_baseline"]["not_applicable"],
        "husai runs have no CE-Bench measurement"
    );

    // The diverged run is not a candidate: skipped, with its status.
    let skipped = doc["skipped_records"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["source_results"], format!("toy/{}", b.diverged));
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("status `diverged`"),
        "{skipped:?}"
    );

    // Every run given is cited, in selection.json and in the signed manifest, by its signed digest.
    let inputs = doc["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 7 + 6);
    let cited: Vec<&str> = inputs
        .iter()
        .map(|i| i["run"]["run_id"].as_str().unwrap())
        .collect();
    for id in b
        .topk
        .iter()
        .chain(&b.batchtopk)
        .chain(&b.topk_evals)
        .chain(&b.batchtopk_evals)
    {
        assert!(cited.contains(&id.as_str()), "{id} not cited");
    }
    assert!(cited.contains(&b.diverged.as_str()));
    let metrics = std::fs::read(
        b.p.path("results/toy")
            .join(&b.topk[0])
            .join("metrics.json"),
    )
    .unwrap();
    let first = inputs
        .iter()
        .find(|i| i["run"]["run_id"] == b.topk[0].as_str())
        .unwrap();
    assert_eq!(first["role"], "husai_train");
    assert_eq!(first["sha256"], husai_core::digest::sha256_hex(&metrics));
    let trust = husai_core::trust::TrustPolicy::load(b.p.path("keys")).unwrap();
    let manifest = husai_core::verify::load_verified_run(&run, &trust)
        .unwrap()
        .manifest;
    assert_eq!(manifest.inputs.len(), 13);
    assert!(manifest.inputs.iter().all(|i| i.run.is_some()));
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(
        summary.contains("husai-audit gate --candidate results/toy/"),
        "{summary}"
    );
    // The provenance chain from the decision to every run verifies (the decision alone: other tests write runs into
    // the same tree meanwhile).
    assert_success(&b.p.run(&["verify", run.to_str().unwrap()]));

    // The release gate reads the selection (the SAEBench bound of the selected group) with the representative as
    // its candidate.
    let o = b.p.run(&[
        "gate",
        "--external",
        run.join("selection.json").to_str().unwrap(),
        "--external-mode",
        "saebench",
        "--basis",
        "lcb",
        "--min-saebench-delta-lcb",
        "-1",
        "--candidate",
        &b.dir(&runs[seed]),
        "--allow-missing",
        "random_model",
        "--allow-missing",
        "transcoder",
        "--allow-missing",
        "ood",
        "--campaign",
        "gate-families",
        "--key",
        "dev.pem",
        "--json",
    ]);
    assert_success(&o);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let external = report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "external")
        .unwrap();
    assert_eq!(external["passed"], true, "{external}");
    close(&external["checks"][0]["value"], best.1);
    assert_eq!(
        report["candidate"]["checkpoint"],
        format!("toy/{}", runs[seed])
    );
}

#[test]
fn two_configurations_of_one_family_are_two_groups() {
    let b = Bank::get();
    let mut pairs = Bank::pairs(&b.topk, &b.topk_evals);
    pairs.extend(Bank::pairs(&b.topk_k3, &b.topk_k3_evals));
    assert_success(&b.select("sel-configs", &pairs, &["--uncertainty-mode", "point"]));
    let doc = read_json(&b.decision("sel-configs").join("selection.json"));
    let groups = ranked(&doc, "sae-topk");
    assert_eq!(groups.len(), 2, "{}", doc["ranked"]);
    assert_ne!(groups[0]["config_sha256"], groups[1]["config_sha256"]);
    for g in &groups {
        assert_eq!(g["seed_count"], 3);
        assert_eq!(g["seeds"], json!([0, 1, 2]));
    }
    // Point mode: each group's value is the mean of its own three evals.
    let k2: f64 = b.topk_evals.iter().map(|e| b.id_gap(e)).sum::<f64>() / 3.0;
    let k3: f64 = b.topk_k3_evals.iter().map(|e| b.id_gap(e)).sum::<f64>() / 3.0;
    let mut values: Vec<f64> = groups
        .iter()
        .map(|g| g["values"]["saebench_delta"].as_f64().unwrap())
        .collect();
    values.sort_by(f64::total_cmp);
    let mut expected = [k2, k3];
    expected.sort_by(f64::total_cmp);
    for (v, e) in values.iter().zip(expected) {
        assert!((v - e).abs() < 1e-12, "{v} vs {e}");
    }
}

#[test]
fn a_run_without_its_eval_is_incomplete() {
    let b = Bank::get();
    let pairs: Vec<(&str, Option<&str>)> = b.topk.iter().map(|r| (r.as_str(), None)).collect();
    let o = b.select("sel-noeval", &pairs, &[]);
    assert_fails_with(&o, 2, &["no candidate rows left", "3 missing_metric"]);
    b.no_decision("sel-noeval");
    // Allowed incomplete, it is ranked but never on the front.
    assert_success(&b.select("sel-noeval-allowed", &pairs, &["--allow-incomplete"]));
    let doc = read_json(&b.decision("sel-noeval-allowed").join("selection.json"));
    assert_eq!(doc["ranked"][0]["complete"], false);
    assert_eq!(doc["selected"]["is_pareto"], false);
    assert!(doc["selected"]["representative"]["eval_run"].is_null());
}

#[test]
fn only_diverged_or_interrupted_runs_leave_nothing_to_select() {
    let b = Bank::get();
    // An interrupted run (signed as `husai-audit train` signs one stopped by SIGTERM), with its state files.
    let src = b.p.path("results/toy").join(&b.topk[2]);
    let read = |name: &str| std::fs::read(src.join(name)).unwrap();
    let mut config = husai_core::verify::load_verified_run(
        &src,
        &husai_core::trust::TrustPolicy::load(b.p.path("keys")).unwrap(),
    )
    .unwrap()
    .manifest
    .config
    .unwrap();
    config["seed"] = json!(7);
    let interrupted = sign_run(
        &b.p,
        husai_core::manifest::RunKind::Train,
        &[
            ("metrics.json", read("metrics.json")),
            ("sae_weights.safetensors", read("sae_weights.safetensors")),
            (
                "trainer_state.safetensors",
                read("trainer_state.safetensors"),
            ),
        ],
        "sae-topk",
        config,
        husai_core::manifest::RunStatus::Interrupted,
    );
    let o = b.select(
        "sel-diverged",
        &[(&b.diverged, None), (&interrupted, None)],
        &[],
    );
    assert_fails_with(
        &o,
        2,
        &[
            "no candidate rows left",
            "2 input record(s) skipped",
            &format!("toy/{}", b.diverged),
            "status `diverged`",
        ],
    );
    b.no_decision("sel-diverged");
    // Next to candidates, both are skipped with their reasons, and cited.
    let mut pairs = Bank::pairs(&b.topk, &b.topk_evals);
    pairs.push((&interrupted, None));
    pairs.push((&b.diverged, None));
    assert_success(&b.select("sel-skipped", &pairs, &[]));
    let doc = read_json(&b.decision("sel-skipped").join("selection.json"));
    let skipped: Vec<(&str, &str)> = doc["skipped_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["source_results"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, format!("toy/{interrupted}"));
    assert_eq!(
        skipped[0].1,
        "train run ended with status `interrupted` (stopped by SIGTERM at step 40); only runs with status `ok` are candidates"
    );
    assert!(skipped[1].1.contains("status `diverged`"));
    assert_eq!(doc["selected"]["seed_count"], 3);
    assert_eq!(doc["inputs"].as_array().unwrap().len(), 5 + 3);
}

#[test]
fn runs_of_the_wrong_kind_are_refused_by_name() {
    let b = Bank::get();
    // A data run as --run.
    let o = b.select("sel-kind", &[(&b.synth, None)], &[]);
    assert_fails_with(
        &o,
        2,
        &[
            &format!("run toy/{} is a data run", b.synth),
            "not a train run",
        ],
    );
    // An eval run as --run.
    let o = b.select("sel-kind", &[(&b.topk_evals[0], None)], &[]);
    assert_fails_with(
        &o,
        2,
        &[
            &format!(
                "run toy/{} is an eval run of plugin ood-stress",
                b.topk_evals[0]
            ),
            "an ood-stress eval run goes to --eval-run",
        ],
    );
    // A train run as --eval-run.
    let o = b.select("sel-kind", &[(&b.topk[0], Some(&b.topk[1]))], &[]);
    assert_fails_with(
        &o,
        2,
        &[
            &format!(
                "run toy/{} is a train run of plugin sae-topk, not an ood-stress eval",
                b.topk[1]
            ),
            "a train run goes to --run",
        ],
    );
    b.no_decision("sel-kind");
}

#[test]
fn evals_must_pair_with_the_runs_given() {
    let b = Bank::get();
    // The eval of topk[1] without topk[1]: both named, with the runs given.
    let o = b.select("sel-pair", &[(&b.topk[0], Some(&b.topk_evals[1]))], &[]);
    assert_fails_with(
        &o,
        2,
        &[&format!(
            "eval run toy/{} measured SAE run toy/{}, which is not among the --run runs (toy/{})",
            b.topk_evals[1], b.topk[1], b.topk[0]
        )],
    );
    // Two evals of one run.
    let mut args = vec![
        "select".to_string(),
        "--key".into(),
        "dev.pem".into(),
        "--run".into(),
        b.dir(&b.topk[0]),
        "--eval-run".into(),
        b.dir(&b.topk_evals[0]),
        "--eval-run".into(),
        b.dir(&b.topk0_alt_eval),
        "--campaign".into(),
        "sel-pair".into(),
    ];
    let o =
        b.p.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_fails_with(
        &o,
        2,
        &[&format!(
            "SAE run toy/{} has two ood-stress eval runs, toy/{} and toy/{}",
            b.topk[0], b.topk_evals[0], b.topk0_alt_eval
        )],
    );
    // Evals with different task settings measure different things.
    let o = b.select(
        "sel-pair",
        &[
            (&b.topk[0], Some(&b.topk0_alt_eval)),
            (&b.topk[1], Some(&b.topk_evals[1])),
        ],
        &[],
    );
    assert_fails_with(
        &o,
        2,
        &[
            &format!(
                "eval runs toy/{} and toy/{} measured their SAEs differently",
                b.topk0_alt_eval, b.topk_evals[1]
            ),
            "task_seed 1 vs 0",
        ],
    );
    // Runs trained on different banks.
    let o = b.select(
        "sel-pair",
        &[
            (&b.topk[0], Some(&b.topk_evals[0])),
            (&b.other_bank_run, None),
        ],
        &["--allow-incomplete"],
    );
    assert_fails_with(
        &o,
        2,
        &[&format!(
            "train runs toy/{} and toy/{} were trained on different data",
            b.topk[0], b.other_bank_run
        )],
    );
    // The same run twice.
    args.truncate(5);
    args.extend(["--run".into(), b.dir(&b.topk[0])]);
    let o =
        b.p.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_fails_with(
        &o,
        2,
        &[&format!("--run names run toy/{} twice", b.topk[0])],
    );
    b.no_decision("sel-pair");
}

/// Signs `files` as a run of `kind` with a plugin and config, through the store API with the project's key.
fn sign_run(
    p: &Project,
    kind: husai_core::manifest::RunKind,
    files: &[(&str, Vec<u8>)],
    plugin: &str,
    config: Value,
    status: husai_core::manifest::RunStatus,
) -> String {
    use husai_core::manifest::{ManifestDraft, PluginInfo, RunStatus, ToolInfo};
    let store = husai_core::store::RunStore::open(p.path("results")).unwrap();
    let staged = store.stage("toy", kind).unwrap();
    for (name, bytes) in files {
        std::fs::write(staged.dir().join(name), bytes).unwrap();
    }
    let mut draft = ManifestDraft::new(ToolInfo {
        name: "husai-audit".into(),
        version: "0".into(),
        git_commit: None,
        git_dirty: None,
    });
    draft.plugin = Some(PluginInfo {
        name: plugin.into(),
        version: "0".into(),
        api_version: 1,
        library_path: "none".into(),
        library_sha256: "0".repeat(64),
    });
    draft.seeds = config
        .get("seed")
        .and_then(Value::as_u64)
        .into_iter()
        .collect();
    draft.config = Some(config);
    draft.status = status;
    if status != RunStatus::Ok {
        draft.status_detail = Some(json!({"step": 40, "message": "stopped by SIGTERM at step 40"}));
    }
    staged.commit(draft, &p.key, &|_| {}).unwrap().run_id
}

#[test]
fn one_seed_of_one_configuration_with_two_measurements_is_a_conflict() {
    let b = Bank::get();
    // A second signed train run claiming topk[0]'s configuration and seed, with another held-out FVU, and an
    // ood-stress summary of it: nothing says which measurement of seed 0 is right.
    let src = b.p.path("results/toy").join(&b.topk[0]);
    let read = |name: &str| std::fs::read(src.join(name)).unwrap();
    let mut metrics: Value = serde_json::from_slice(&read("metrics.json")).unwrap();
    metrics["eval"]["fvu"] = json!(metrics["eval"]["fvu"].as_f64().unwrap() + 0.01);
    let trust = husai_core::trust::TrustPolicy::load(b.p.path("keys")).unwrap();
    let config = husai_core::verify::load_verified_run(&src, &trust)
        .unwrap()
        .manifest
        .config
        .unwrap();
    let twin = sign_run(
        &b.p,
        husai_core::manifest::RunKind::Train,
        &[
            ("metrics.json", serde_json::to_vec(&metrics).unwrap()),
            ("sae_weights.safetensors", read("sae_weights.safetensors")),
            ("cfg.json", read("cfg.json")),
        ],
        "sae-topk",
        config,
        husai_core::manifest::RunStatus::Ok,
    );
    let mut summary = b.json(&b.topk_evals[0], "ood_stress_summary.json");
    summary["sae_run"]["run_id"] = json!(twin);
    let twin_eval = sign_run(
        &b.p,
        husai_core::manifest::RunKind::Eval,
        &[(
            "ood_stress_summary.json",
            serde_json::to_vec(&summary).unwrap(),
        )],
        "ood-stress",
        summary["config"].clone(),
        husai_core::manifest::RunStatus::Ok,
    );
    let o = b.select(
        "sel-twin",
        &[
            (&b.topk[0], Some(&b.topk_evals[0])),
            (&b.topk[1], Some(&b.topk_evals[1])),
            (&twin, Some(&twin_eval)),
        ],
        &["--min-seeds-per-group", "2"],
    );
    assert_fails_with(
        &o,
        2,
        &[&format!(
            "has seed 0 twice with different `train_explained_variance` (toy/{} row 0 vs toy/{twin} row 0)",
            b.topk[0]
        )],
    );
    b.no_decision("sel-twin");
}

#[test]
fn a_tampered_run_fails_verification_and_nothing_is_signed() {
    let p = Project::new();
    let plugins = plugin_dir().to_str().unwrap().to_owned();
    let synth = Bank::synth(&p, &plugins, "3");
    let run = Bank::train(&p, &plugins, &synth, "sae-topk", &SAE_SETS, 0);
    let eval = Bank::ood(&p, &plugins, &synth, &run, "0");
    let dir = p.path("results/toy").join(&run);
    let metrics = dir.join("metrics.json");
    let text = std::fs::read_to_string(&metrics)
        .unwrap()
        .replacen("\"fvu\"", "\"fvu\" ", 1);
    std::fs::write(&metrics, text).unwrap();
    let eval_dir = p.path("results/toy").join(&eval);
    let o = p.run(&[
        "select",
        "--key",
        "dev.pem",
        "--run",
        dir.to_str().unwrap(),
        "--eval-run",
        eval_dir.to_str().unwrap(),
    ]);
    assert_fails_with(
        &o,
        1,
        &[
            &format!("--run {}", dir.display()),
            "failed verification",
            "metrics.json",
        ],
    );
    assert!(!p.path("results/decisions").exists());
    // So does a tampered eval summary (its train run restored first).
    std::fs::write(
        &metrics,
        std::fs::read_to_string(&metrics)
            .unwrap()
            .replacen("\"fvu\" ", "\"fvu\"", 1),
    )
    .unwrap();
    let summary = eval_dir.join("ood_stress_summary.json");
    let mut bytes = std::fs::read(&summary).unwrap();
    bytes.push(b'\n');
    std::fs::write(&summary, bytes).unwrap();
    let o = p.run(&[
        "select",
        "--key",
        "dev.pem",
        "--run",
        dir.to_str().unwrap(),
        "--eval-run",
        eval_dir.to_str().unwrap(),
    ]);
    assert_fails_with(
        &o,
        1,
        &[
            &format!("--eval-run {}", eval_dir.display()),
            "failed verification",
        ],
    );
    assert!(!p.path("results/decisions").exists());
}

#[test]
fn help_teaches_what_a_husai_row_is() {
    let p = Project::new();
    let o = p.run(&["select", "--help"]);
    assert_success(&o);
    // clap wraps the text to the width of the output: compare with runs of whitespace made one space.
    let help = common::stdout(&o)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "--run <RUN_DIR>",
        "--eval-run <RUN_DIR>",
        "1 - eval.fvu of metrics.json (held-out rows)",
        "offline analogue of SAEBench's sparse-probing best_minus_llm_auc",
        "CE-Bench does not apply",
        "skipped_records",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    // --run is strict mode's: not with --parity.
    let o = p.run(&["select", "--parity", "--run", "x", "--key", "dev.pem"]);
    assert_fails_with(&o, 2, &["--run"]);
}
