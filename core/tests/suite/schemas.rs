//! Every schema accepts what husai really produces and rejects mutations of it; the manifest
//! format is pinned by a golden file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use husai_core::digest::DigestMethod;
use husai_core::dsse::Envelope;
use husai_core::manifest::*;
use husai_core::schema;
use husai_core::statement::{Statement, Subject};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The envelope of every committed run under results/ (real artifacts signed by CI).
fn committed_envelopes() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(repo().join("results")) {
        let entry = entry.unwrap();
        if entry.file_name() == "husai.dsse.json" {
            let v: Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
            out.push((entry.path().to_path_buf(), v));
        }
    }
    assert!(!out.is_empty(), "results/ holds no committed run");
    out
}

fn statement_of(envelope: &Value) -> Value {
    let env: Envelope = serde_json::from_value(envelope.clone()).unwrap();
    serde_json::from_slice(&env.decode_payload().unwrap()).unwrap()
}

#[test]
fn committed_artifacts_satisfy_their_schemas() {
    for (path, env) in committed_envelopes() {
        schema::validate("dsse-envelope.v1", &env).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let st = statement_of(&env);
        schema::validate("statement.v1", &st).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        schema::validate("run-manifest.v1", &st["predicate"])
            .unwrap_or_else(|e| panic!("{path:?}: {e}"));
    }
}

/// Apply `edit` to a copy of `doc` and assert that `schema_id` rejects it at `pointer`.
fn assert_rejects(schema_id: &str, doc: &Value, pointer: &str, edit: impl FnOnce(&mut Value)) {
    let mut bad = doc.clone();
    edit(&mut bad);
    let err = schema::validate(schema_id, &bad)
        .expect_err(&format!("{schema_id} accepted a mutation at {pointer}"));
    assert!(
        err.violations.iter().any(|v| v.starts_with(pointer)),
        "{schema_id}: expected a violation at {pointer}, got {:?}",
        err.violations
    );
}

#[test]
fn mutated_envelopes_are_rejected() {
    let (_, env) = committed_envelopes().remove(0);
    assert_rejects("dsse-envelope.v1", &env, "/payloadType", |e| {
        e["payloadType"] = "text/plain".into()
    });
    assert_rejects("dsse-envelope.v1", &env, "/signatures", |e| {
        e["signatures"] = json!([])
    });
    assert_rejects("dsse-envelope.v1", &env, "/signatures/0/keyid", |e| {
        e["signatures"][0]["keyid"] = "ci".into()
    });
    assert_rejects("dsse-envelope.v1", &env, "/", |e| {
        e.as_object_mut().unwrap().remove("payload");
    });
}

#[test]
fn mutated_statements_are_rejected() {
    let (_, env) = committed_envelopes().remove(0);
    let st = statement_of(&env);
    assert_rejects("statement.v1", &st, "/_type", |s| {
        s["_type"] = "https://in-toto.io/Statement/v0.1".into()
    });
    assert_rejects("statement.v1", &st, "/subject/0/digest", |s| {
        s["subject"][0]["digest"] = json!({"md5": "abc"})
    });
    assert_rejects("statement.v1", &st, "/subject/0/digest", |s| {
        s["subject"][0]["digest"]["sha256-sharded"] = "0".repeat(64).into()
    });
    assert_rejects("statement.v1", &st, "/subject/0/digest/sha256", |s| {
        s["subject"][0]["digest"]["sha256"] = "ABC".into()
    });
}

#[test]
fn mutated_manifests_are_rejected() {
    let (_, env) = committed_envelopes().remove(0);
    let m = statement_of(&env)["predicate"].clone();
    assert_rejects("run-manifest.v1", &m, "/schema_version", |m| {
        m["schema_version"] = "2.0".into()
    });
    assert_rejects("run-manifest.v1", &m, "/run_id", |m| {
        m["run_id"] = "run_20260213T204120Z".into()
    });
    assert_rejects("run-manifest.v1", &m, "/kind", |m| {
        m["kind"] = "magic".into()
    });
    assert_rejects("run-manifest.v1", &m, "/campaign", |m| {
        m["campaign"] = "../escape".into()
    });
    assert_rejects("run-manifest.v1", &m, "/started_at", |m| {
        m["started_at"] = "yesterday".into()
    });
    assert_rejects("run-manifest.v1", &m, "/seeds/0", |m| {
        m["seeds"] = json!([-1])
    });
    assert_rejects("run-manifest.v1", &m, "/inputs/0/digest", |m| {
        m["inputs"][0]["digest"] = json!({})
    });
    assert_rejects("run-manifest.v1", &m, "/digest", |m| {
        m["digest"] = json!({"method": "sha256-sharded"})
    });
    assert_rejects("run-manifest.v1", &m, "/", |m| {
        m.as_object_mut().unwrap().remove("environment");
    });
    assert_rejects("run-manifest.v1", &m, "/", |m| {
        m["surprise"] = json!(1);
    });
    assert_rejects("run-manifest.v1", &m, "/environment/tf32", |m| {
        m["environment"]["tf32"] = json!("yes");
    });
}

#[test]
fn a_cuda_environment_satisfies_the_manifest_schema() {
    // A GPU run's environment (issue #13): the optional CUDA fields next to the required ones; a CPU run omits them.
    let mut m = full_manifest();
    m.environment.device = "NVIDIA H200".into();
    m.environment.backend = "cuda".into();
    m.environment.cuda_driver = Some("12.8".into());
    m.environment.compute_capability = Some("9.0".into());
    m.environment.cuda_runtime = Some("nvrtc 12.9".into());
    m.environment.cublas = Some("12.9.1".into());
    m.environment.tf32 = Some(false);
    let v = serde_json::to_value(&m).unwrap();
    schema::validate("run-manifest.v1", &v).unwrap();
    assert_eq!(v["environment"]["compute_capability"], "9.0");
    let back: Manifest = serde_json::from_value(v).unwrap();
    assert_eq!(back, m);
}

/// A manifest with every optional block filled, built from fixed values.
fn full_manifest() -> Manifest {
    Manifest {
        schema_version: MANIFEST_SCHEMA_VERSION.to_string(),
        run_id: "20261128T052501Z-9f3a1c2b7d4e6a80".to_string(),
        kind: RunKind::Train,
        campaign: "golden".to_string(),
        started_at: "2026-11-28T05:25:01.000Z".to_string(),
        finished_at: "2026-11-28T05:26:40.250Z".to_string(),
        argv: vec![
            "husai-audit".into(),
            "train".into(),
            "--seed".into(),
            "7".into(),
        ],
        tool: ToolInfo {
            name: "husai-audit".into(),
            version: "0.1.0".into(),
            git_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            git_dirty: Some(false),
        },
        plugin: Some(PluginInfo {
            name: "sae-topk".into(),
            version: "0.1.0".into(),
            api_version: 1,
            library_path: "target/release/libhusai_sae_topk.so".into(),
            library_sha256: "ab".repeat(32),
        }),
        config: Some(json!({"d_sae": 4096, "k": 32, "lr": 0.001})),
        config_sha256: Some("cd".repeat(32)),
        seeds: vec![7],
        inputs: vec![InputRef {
            path: "results/data/20261128T050000Z-0000000000000001/acts.npy".into(),
            digest: BTreeMap::from([("sha256-sharded".to_string(), "ef".repeat(32))]),
            run: Some(RunRef {
                campaign: "data".into(),
                run_id: "20261128T050000Z-0000000000000001".into(),
                subject: "acts.npy".into(),
            }),
        }],
        dataset: Some(DatasetRef {
            path: "acts.npy".into(),
            sha256: "01".repeat(32),
            format: "npy".into(),
            dtype: "float32".into(),
            shape: vec![32768, 384],
            rows: RowRange {
                start: 0,
                end: 32768,
            },
        }),
        digest: DigestMethod::Sha256Sharded {
            shard_size: 64 << 20,
        },
        output_sizes: BTreeMap::from([
            ("cfg.json".to_string(), 512),
            ("sae_weights.safetensors".to_string(), 12_600_000),
        ]),
        environment: Environment {
            os: "linux".into(),
            arch: "x86_64".into(),
            cpu: Some("AMD EPYC".into()),
            threads: 2,
            device: "cpu".into(),
            backend: "cpu".into(),
            cuda_driver: None,
            compute_capability: None,
            cuda_runtime: None,
            cublas: None,
            tf32: None,
        },
        command: Some(husai_core::manifest::CommandInfo {
            argv: vec!["python".into(), "train.py".into()],
            exit_code: 0,
            started_at: Some("2026-11-28T05:25:01.500Z".into()),
            finished_at: Some("2026-11-28T05:26:39.750Z".into()),
            duration_ms: Some(98_250),
        }),
        extra: json!({}),
        status: husai_core::manifest::RunStatus::Ok,
        status_detail: None,
    }
}

#[test]
fn the_statement_format_matches_its_golden_file() {
    let statement = Statement::new(
        vec![
            // Over one shard: plain sha256 plus the sharded digest in annotations.
            Subject::new(
                "sae_weights.safetensors".into(),
                "12".repeat(32),
                Some("56".repeat(32)),
            ),
            Subject::new("cfg.json".into(), "34".repeat(32), None),
        ],
        full_manifest(),
    );
    let value = serde_json::to_value(&statement).unwrap();
    schema::validate("statement.v1", &value).unwrap();
    schema::validate("run-manifest.v1", &value["predicate"]).unwrap();
    let canonical = husai_core::canonical::to_canonical_vec(&value).unwrap();
    let golden = repo().join("core/tests/golden/statement.v1.canonical.json");
    if std::env::var_os("HUSAI_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &canonical).unwrap();
    }
    let want = std::fs::read(&golden).expect("golden file (regenerate with HUSAI_UPDATE_GOLDEN=1)");
    assert_eq!(
        String::from_utf8_lossy(&canonical),
        String::from_utf8_lossy(&want),
        "the signed statement format changed; if deliberate, bump the schema version and regenerate with HUSAI_UPDATE_GOLDEN=1"
    );
    // And it round-trips.
    let back: Statement = serde_json::from_slice(&want).unwrap();
    assert_eq!(back, statement);
}

/// Every line of the committed metric-stream fixtures (core/tests/fixtures/metrics, the shape of trainer
/// contract §4, with null figures and held-out lines).
fn metric_lines() -> Vec<Value> {
    let dir = repo().join("core/tests/fixtures/metrics");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    assert!(lines.len() > 10, "{}", dir.display());
    lines
}

#[test]
fn metric_stream_lines_satisfy_their_schema() {
    let lines = metric_lines();
    for line in &lines {
        schema::validate("metrics-line.v1", line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    assert!(
        lines.iter().any(|l| l.get("eval").is_some()) && lines.iter().any(|l| l["mse"].is_null()),
        "the fixtures cover held-out lines and null figures"
    );
    // The smallest line: no held-out evaluation, every figure null but the step.
    let minimal = json!({"step": 0, "elapsed_s": null, "rows_per_s": null, "lr": null,
        "loss": {"mse": null}, "mse": null, "l0": null, "dead_fraction": null});
    schema::validate("metrics-line.v1", &minimal).unwrap();
}

#[test]
fn mutated_metric_lines_are_rejected() {
    let line = metric_lines()
        .into_iter()
        .find(|l| l.get("eval").is_some())
        .unwrap();
    let id = "metrics-line.v1";
    for field in [
        "step",
        "elapsed_s",
        "rows_per_s",
        "lr",
        "loss",
        "mse",
        "l0",
        "dead_fraction",
    ] {
        let mut bad = line.clone();
        bad.as_object_mut().unwrap().remove(field);
        let err = schema::validate(id, &bad).expect_err(field);
        assert!(
            err.violations.iter().any(|v| v.starts_with("/: ")
                && v.contains(&format!("\"{field}\" is a required property"))),
            "{field}: {:?}",
            err.violations
        );
    }
    let mut bad = line.clone();
    bad["colour"] = "red".into();
    let err = schema::validate(id, &bad).unwrap_err();
    assert!(
        err.violations.iter().any(|v| v.contains("colour")),
        "{:?}",
        err.violations
    );
    assert_rejects(id, &line, "/step", |l| l["step"] = json!(-1));
    assert_rejects(id, &line, "/step", |l| l["step"] = json!(2.5));
    assert_rejects(id, &line, "/step", |l| l["step"] = Value::Null);
    assert_rejects(id, &line, "/mse", |l| l["mse"] = "0.1".into());
    assert_rejects(id, &line, "/mse", |l| l["mse"] = json!(-0.5));
    assert_rejects(id, &line, "/l0", |l| l["l0"] = json!(-1.0));
    assert_rejects(id, &line, "/dead_fraction", |l| {
        l["dead_fraction"] = json!(1.5)
    });
    assert_rejects(id, &line, "/elapsed_s", |l| l["elapsed_s"] = json!(-2.0));
    assert_rejects(id, &line, "/loss", |l| l["loss"] = json!({}));
    assert_rejects(id, &line, "/loss", |l| l["loss"] = json!(0.1));
    assert_rejects(id, &line, "/loss/mse", |l| l["loss"]["mse"] = "low".into());
    assert_rejects(id, &line, "/loss", |l| l["loss"]["Bad Term"] = json!(0.1));
    assert_rejects(id, &line, "/eval", |l| {
        l["eval"].as_object_mut().unwrap().remove("fvu");
    });
    assert_rejects(id, &line, "/eval", |l| l["eval"]["dead"] = json!(0.1));
    assert_rejects(id, &line, "/eval/fvu", |l| l["eval"]["fvu"] = json!(-0.1));
    assert_rejects(id, &line, "/", |l| *l = json!([1, 2]));
}
