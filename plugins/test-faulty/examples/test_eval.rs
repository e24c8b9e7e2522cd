//! `test-eval`: an eval plugin that exists only in the tests. It implements the eval contract (docs/eval-contract.md)
//! cheaply: for every input run it gets, it counts the run's files and bytes, and writes a summary under the common
//! envelope schema `eval-summary.v1`. Its `mode` breaks the contract in one named way each, so that every host check
//! is tested against a real child process.

use std::path::Path;

use husai_plugin_api::{
    Capability, Description, Plugin, PluginError, PluginKind, Progress, RunRequest,
};
use serde_json::{Map, Value, json};

struct TestEval;

const SUMMARY: &str = "summary.json";
const MODES: [&str; 8] = [
    "ok",
    "no_summary",
    "unlisted_summary",
    "unknown_schema",
    "bad_envelope",
    "wrong_eval",
    "tamper_input",
    "fail",
];

fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "test-eval config",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "mode": {"enum": MODES, "default": "ok", "description": "which way to break the contract (test-eval only)"},
            "seed": {"type": ["integer", "null"], "minimum": 0, "default": null, "description": "recorded only"}
        }
    })
}

fn out_err(e: std::io::Error) -> PluginError {
    PluginError::output(e.to_string())
}

/// (files, bytes) of a run directory, top level only.
fn count(dir: &Path) -> Result<(u64, u64), PluginError> {
    let mut files = 0;
    let mut bytes = 0;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| PluginError::invalid_input(format!("{}: {e}", dir.display())))?;
    for e in entries.flatten() {
        let m = e.metadata().map_err(out_err)?;
        if m.is_file() {
            files += 1;
            bytes += m.len();
        }
    }
    Ok((files, bytes))
}

impl Plugin for TestEval {
    fn describe() -> Description {
        Description {
            name: "test-eval".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Eval,
            architectures: vec![],
            evals: vec!["count".into()],
            config_schema: schema(),
            capabilities: vec![Capability::Cpu],
        }
    }

    fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
        let mode = request
            .config
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("ok");
        if mode == "fail" {
            return Err(PluginError::failed("asked to fail (mode fail)"));
        }
        let mut counted = Map::new();
        let total = request.inputs.len() as u64;
        for (i, (key, dir)) in request.inputs.iter().enumerate() {
            let (files, bytes) = count(dir)?;
            counted.insert(key.clone(), json!({"files": files, "bytes": bytes}));
            progress.report(i as u64 + 1, total, key);
        }
        if mode == "tamper_input" {
            let dir = request.inputs.values().next().expect("at least one input");
            let victim = std::fs::read_dir(dir)
                .map_err(out_err)?
                .flatten()
                .map(|e| e.path())
                .find(|p| p.is_file() && p.file_name().is_some_and(|n| n != "husai.dsse.json"))
                .expect("a run has a subject");
            let mut bytes = std::fs::read(&victim).map_err(out_err)?;
            bytes.push(b'\n');
            std::fs::write(&victim, bytes).map_err(out_err)?;
        }
        let (schema_id, eval) = match mode {
            "unknown_schema" => ("made-up.v1", "count"),
            "wrong_eval" => ("eval-summary.v1", "other"),
            _ => ("eval-summary.v1", "count"),
        };
        let mut summary = json!({"schema": schema_id, "eval": eval, "inputs": counted});
        if mode == "bad_envelope" {
            summary["eval"] = json!(7);
        }
        let text = serde_json::to_string_pretty(&summary).expect("a JSON value serialises");
        std::fs::write(request.output_dir.join(SUMMARY), text).map_err(out_err)?;
        let mut result = json!({"outputs": [SUMMARY], "summary": SUMMARY});
        match mode {
            "no_summary" => {
                result.as_object_mut().expect("an object").remove("summary");
            }
            "unlisted_summary" => result["outputs"] = json!([]),
            _ => {}
        }
        Ok(result)
    }
}

husai_plugin_api::export_plugin!(TestEval);
