//! A trainer plugin on an activation bank, recorded as one signed `train` run (docs/trainer-contract.md).
//!
//! In order, before any plugin code runs: the plugin is found and must be a trainer; a resumed run is verified and
//! must be a train run with status `ok` or `interrupted`; the effective config is built from the plugin's schema
//! (starting from the resumed run's recorded config) and validated; every input is recorded with its digest. Then the
//! plugin runs in a child process into a staging directory. Its result must list outputs that exist, report the
//! sha256 of exactly the bytes it read for every input (a mismatch means the file changed under the run: nothing is
//! signed), describe the dataset it trained on, and say how training ended. The run is signed with that status:
//! `diverged` and `interrupted` runs are evidence, signed like any other, and the caller reports them as failures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::config::{self, ConfigSources};
use super::{Pipeline, PipelineError, check_outputs, plain_sha256, unchanged};
use crate::manifest::{DatasetRef, InputRef, PluginInfo, RowRange, RunKind, RunRef, RunStatus};
use crate::plugin::{
    DescribedPlugin, ErrorKind, PluginHost, PluginHostError, PluginKind, ProgressEvent, RunRequest,
};
use crate::store::CommittedRun;
use crate::verify;

/// The checkpoint files of a train run that a resumed run reads (contract §3), recorded as run-linked inputs.
/// `metrics.jsonl` is among them because a resumed run's stream starts with the earlier run's lines.
pub const RESUME_FILES: [&str; 4] = [
    "cfg.json",
    "sae_weights.safetensors",
    "trainer_state.safetensors",
    "metrics.jsonl",
];

/// Config keys that set the length of training; a resumed run may give them anew, and setting one clears the other.
pub const LENGTH_KEYS: [&str; 2] = ["steps", "epochs"];

/// Config keys a resumed run may also give anew without changing what it trains: `device` (issue #13: the same
/// maths on another backend; the trainers leave it out of their resume fingerprint too).
pub const RESUME_FREE_KEYS: [&str; 1] = ["device"];

/// Input roles (contract §2).
pub const ROLE_ACTIVATIONS: &str = "activations";
pub const ROLE_EVAL: &str = "eval_activations";
pub const ROLE_RESUME: &str = "resume";

/// What to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainRequest {
    /// The trainer plugin, by the name it describes itself with.
    pub plugin: String,
    /// The activation bank.
    pub data: PathBuf,
    /// A separate held-out bank (`eval_activations`); sets config `eval` to `{"data": true}`.
    pub eval_data: Option<PathBuf>,
    /// The directory of a verified train run to continue.
    pub resume: Option<PathBuf>,
    /// Config file and `--set`s.
    pub config: ConfigSources,
    /// The initialisation seed; required for a fresh run, taken from the resumed run's config otherwise.
    pub seed: Option<u64>,
    pub campaign: String,
}

/// A signed train run and how it ended.
#[derive(Debug, Clone)]
pub struct TrainedRun {
    pub run: CommittedRun,
    pub plugin: String,
    pub status: RunStatus,
    pub status_detail: Option<Value>,
    pub steps_done: Option<u64>,
    /// The plugin's summary figures (`metrics` of its result), whatever keys it has.
    pub metrics: Value,
    /// The effective config, as recorded and hashed.
    pub config: Value,
}

/// The run being resumed, verified.
#[derive(Debug)]
struct Resumed {
    dir: PathBuf,
    config: Map<String, Value>,
    inputs: Vec<(String, InputRef, String)>,
    identity: Value,
}

/// One recorded input: its role in the request (and in `read_sha256`), the path the plugin gets, the manifest entry
/// and the plain sha256 the host computed before the run.
#[derive(Debug)]
struct Recorded {
    role: String,
    path: PathBuf,
    input: InputRef,
    sha256: String,
}

impl Pipeline {
    /// Trains and signs. `on_progress` sees the plugin's progress reports as they arrive.
    pub fn train(
        &self,
        host: &PluginHost,
        req: &TrainRequest,
        on_progress: &mut dyn FnMut(&ProgressEvent),
    ) -> Result<TrainedRun, PipelineError> {
        crate::store::check_campaign(&req.campaign)?;
        let plugin = host.find(&req.plugin)?;
        if plugin.description.kind != PluginKind::Trainer {
            return Err(wrong_kind(&plugin, "`train` needs a trainer"));
        }
        self.check_pinned(&plugin)?;
        let resumed = req.resume.as_deref().map(|d| self.resumed(d)).transpose()?;
        let config = effective_config(&plugin, req, resumed.as_ref())?;

        let mut recorded = Vec::new();
        let (input, sha256) = self.record_input(&req.data, "--data")?;
        recorded.push(Recorded {
            role: ROLE_ACTIVATIONS.to_owned(),
            path: absolute(&req.data),
            input,
            sha256,
        });
        if let Some(e) = &req.eval_data {
            let (input, sha256) = self.record_input(e, "--eval-data")?;
            recorded.push(Recorded {
                role: ROLE_EVAL.to_owned(),
                path: absolute(e),
                input,
                sha256,
            });
        }
        let mut request_inputs: BTreeMap<String, PathBuf> = recorded
            .iter()
            .map(|r| (r.role.clone(), r.path.clone()))
            .collect();
        if let Some(r) = &resumed {
            request_inputs.insert(ROLE_RESUME.to_owned(), r.dir.clone());
            for (name, input, sha256) in &r.inputs {
                recorded.push(Recorded {
                    role: format!("{ROLE_RESUME}/{name}"),
                    path: r.dir.join(name),
                    input: input.clone(),
                    sha256: sha256.clone(),
                });
            }
        }

        let staged = self.store.stage(&req.campaign, RunKind::Train)?;
        let request = RunRequest {
            config: Value::Object(config.clone()),
            inputs: request_inputs,
            output_dir: staged.dir().to_path_buf(),
        };
        // On any error from here `staged` is dropped, which removes the staging directory: no run remains.
        let result = host
            .run(&plugin, &request, on_progress)
            .map_err(|e| rejected_config(&plugin, e))?;
        let name = plugin.description.name.clone();
        check_outputs(&name, staged.dir(), &result)?;
        check_reads(&name, &result, &recorded)?;
        let (status, status_detail) = parse_status(&name, &result)?;
        let data_sha256 = recorded[0].sha256.clone();
        let dataset = parse_dataset(&name, &result, &req.data, data_sha256)?;

        let mut draft = self.draft();
        draft.plugin = Some(plugin_info(&plugin));
        draft.config = Some(Value::Object(config.clone()));
        draft.seeds = config
            .get("seed")
            .and_then(Value::as_u64)
            .into_iter()
            .collect();
        draft.dataset = Some(dataset);
        draft.inputs = recorded.into_iter().map(|r| r.input).collect();
        let metrics = result.get("metrics").cloned().unwrap_or(Value::Null);
        let steps_done = result.get("steps_done").and_then(Value::as_u64);
        draft.extra = json!({"metrics": metrics, "steps_done": steps_done});
        if let Some(t) = result.pointer("/dataset/tensor").filter(|t| t.is_string()) {
            draft.extra["tensor"] = t.clone();
        }
        draft.status = status;
        draft.status_detail = status_detail.clone();
        apply_environment(&name, &result, &mut draft.environment)?;
        let run = self.sign(staged, draft, &|_| {})?;
        Ok(TrainedRun {
            run,
            plugin: name,
            status,
            status_detail,
            steps_done,
            metrics,
            config: Value::Object(config),
        })
    }

    /// Verifies the run to resume and records its checkpoint files.
    fn resumed(&self, dir: &Path) -> Result<Resumed, PipelineError> {
        let fail = |reason: String| PipelineError::Resume {
            dir: dir.to_path_buf(),
            reason,
        };
        let (run_dir, _) = verify::enclosing_run(dir)
            .filter(|(_, rel)| rel.is_empty())
            .ok_or_else(|| {
                fail("is not a run directory; give the directory of a signed train run".to_owned())
            })?;
        // The checkpoint files are read before and after the run is verified (see `Pipeline::record_input`).
        let plain = |name: &str| {
            let p = run_dir.join(name);
            if p.is_file() {
                plain_sha256(&p, "resume checkpoint file").map(Some)
            } else {
                Ok(None)
            }
        };
        let before = RESUME_FILES.map(plain);
        let run =
            verify::load_verified_run(&run_dir, self.policy()?).map_err(|e| fail(e.to_string()))?;
        let m = &run.manifest;
        if m.kind != RunKind::Train {
            return Err(fail(format!(
                "is a {} run; resume from a train run",
                m.kind
            )));
        }
        if !matches!(m.status, RunStatus::Ok | RunStatus::Interrupted) {
            let at = m
                .status_detail
                .as_ref()
                .and_then(|d| d.get("step"))
                .map(|s| format!(" at step {s}"))
                .unwrap_or_default();
            return Err(fail(format!(
                "run {} ended {}{at}; only an ok or interrupted run can be resumed",
                m.run_id, m.status
            )));
        }
        let mut config = match &m.config {
            Some(Value::Object(c)) => c.clone(),
            _ => return Err(fail(format!("run {} records no config object", m.run_id))),
        };
        config.remove("resume_from");
        let mut inputs = Vec::new();
        let mut digests = Map::new();
        for (name, before) in RESUME_FILES.into_iter().zip(before) {
            let Some(subject) = run.subject(name) else {
                return Err(fail(format!(
                    "run {} has no signed {name}; it cannot be resumed exactly (runs written before the trainer \
                     contract lack trainer_state.safetensors)",
                    m.run_id
                )));
            };
            let path = run_dir.join(name);
            let after = plain_sha256(&path, "resume checkpoint file")?;
            unchanged(&path, before?.as_deref().unwrap_or(""), &after)?;
            let input = InputRef {
                path: path.display().to_string(),
                digest: subject.digest.clone(),
                run: Some(RunRef {
                    campaign: m.campaign.clone(),
                    run_id: m.run_id.clone(),
                    subject: name.to_owned(),
                }),
            };
            digests.insert(name.to_owned(), json!(input.digest));
            inputs.push((name.to_owned(), input, after));
        }
        Ok(Resumed {
            dir: absolute(&run_dir),
            identity: json!({"campaign": m.campaign, "run_id": m.run_id, "digests": digests}),
            config,
            inputs,
        })
    }
}

/// Builds the effective config (contract §1 and §7): the resumed run's recorded config or nothing, overlaid by the
/// user's values and the dedicated flags, defaults filled in, then validated.
fn effective_config(
    plugin: &DescribedPlugin,
    req: &TrainRequest,
    resumed: Option<&Resumed>,
) -> Result<Map<String, Value>, PipelineError> {
    let schema = &plugin.description.config_schema;
    let mut user = config::user_values(&req.config)?;
    if let Some(seed) = req.seed {
        user.insert("seed".to_owned(), json!(seed));
    }
    if req.eval_data.is_some() {
        user.insert("eval".to_owned(), json!({"data": true}));
    }
    let mut cfg = match resumed {
        Some(r) => {
            for (key, given) in &user {
                if LENGTH_KEYS.contains(&key.as_str()) || RESUME_FREE_KEYS.contains(&key.as_str()) {
                    continue;
                }
                let recorded = r.config.get(key).cloned().unwrap_or(Value::Null);
                if *given != recorded {
                    return Err(PipelineError::ResumeConflict {
                        key: format!("/{key}"),
                        recorded: Box::new(recorded),
                        given: Box::new(given.clone()),
                    });
                }
            }
            r.config.clone()
        }
        None => Map::new(),
    };
    // For a resumed run every key but the length keys equals its recorded value (checked above).
    for (key, value) in &user {
        cfg.insert(key.clone(), value.clone());
    }
    config::fill_defaults(&mut cfg, schema);
    // Exactly one of steps/epochs: giving one clears the other (when the schema has it).
    let props = schema.get("properties").and_then(Value::as_object);
    for (given, other) in [
        (LENGTH_KEYS[0], LENGTH_KEYS[1]),
        (LENGTH_KEYS[1], LENGTH_KEYS[0]),
    ] {
        let set = user.get(given).is_some_and(|v| !v.is_null());
        if set && !user.contains_key(other) && props.is_some_and(|p| p.contains_key(other)) {
            cfg.insert(other.to_owned(), Value::Null);
        }
    }
    if let Some(r) = resumed {
        cfg.insert("resume_from".to_owned(), r.identity.clone());
    }
    config::validate(
        &plugin.description.name,
        schema,
        &Value::Object(cfg.clone()),
    )?;
    Ok(cfg)
}

/// A plugin's own refusal of the config (a rule its schema cannot state) is a config error, not a crash.
pub(super) fn rejected_config(plugin: &DescribedPlugin, e: PluginHostError) -> PipelineError {
    match e {
        PluginHostError::Failed { error, .. } if error.kind == ErrorKind::InvalidConfig => {
            PipelineError::PluginRejectedConfig {
                plugin: plugin.description.name.clone(),
                message: error.message,
            }
        }
        PluginHostError::InvalidConfig { name, errors, .. } => {
            PipelineError::PluginRejectedConfig {
                plugin: name,
                message: errors.join("; "),
            }
        }
        other => PipelineError::from(other),
    }
}

/// Every recorded input must appear in `read_sha256` with the digest the host recorded, and nothing else may.
fn check_reads(plugin: &str, result: &Value, recorded: &[Recorded]) -> Result<(), PipelineError> {
    let bad = |detail: String| PipelineError::BadResult {
        plugin: plugin.to_owned(),
        detail,
    };
    let reads = result.get("read_sha256").and_then(Value::as_object).ok_or_else(|| {
        bad("the result has no \"read_sha256\" object (the sha256 of the bytes it read, by input role; \
             docs/trainer-contract.md §5), so what it trained on cannot be attested"
            .to_owned())
    })?;
    for r in recorded {
        let read = reads.get(&r.role).and_then(Value::as_str).ok_or_else(|| {
            bad(format!(
                "the result's \"read_sha256\" has no digest for input {:?} ({})",
                r.role,
                r.path.display()
            ))
        })?;
        if read != r.sha256 {
            return Err(PipelineError::ReadMismatch {
                plugin: plugin.to_owned(),
                role: r.role.clone(),
                path: r.path.clone(),
                recorded: r.sha256.clone(),
                read: read.to_owned(),
            });
        }
    }
    if let Some(extra) = reads
        .keys()
        .find(|k| !recorded.iter().any(|r| &r.role == *k))
    {
        return Err(bad(format!(
            "the result's \"read_sha256\" names {extra:?}, which is not an input the host gave it"
        )));
    }
    Ok(())
}

/// The result's optional `environment` (contract §5: where a trainer that did not train on the host's CPU says
/// where it trained), laid over the host's CPU environment: `device` and `backend` (strings, required in the
/// object), `cuda_driver`, `compute_capability`, `cuda_runtime`, `cublas` (strings or null) and `tf32` (boolean or
/// null). Absent or null: the run trained on the CPU and the environment is left as detected. Any other key, or a
/// value of the wrong type, is a bad result naming it.
fn apply_environment(
    plugin: &str,
    result: &Value,
    env: &mut crate::manifest::Environment,
) -> Result<(), PipelineError> {
    let bad = |detail: String| PipelineError::BadResult {
        plugin: plugin.to_owned(),
        detail,
    };
    let obj = match result.get("environment") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(bad(format!(
                "the result's \"environment\" {other} is not an object"
            )));
        }
    };
    const KEYS: [&str; 7] = [
        "device",
        "backend",
        "cuda_driver",
        "compute_capability",
        "cuda_runtime",
        "cublas",
        "tf32",
    ];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(bad(format!(
            "the result's \"environment\" has the key {k:?}; it may have only {KEYS:?}"
        )));
    }
    let required = |k: &str| match obj.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        other => Err(bad(format!(
            "the result's environment.{k} is {}, not a non-empty string",
            other.map_or_else(|| "missing".to_owned(), Value::to_string)
        ))),
    };
    let optional = |k: &str| match obj.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(format!(
            "the result's environment.{k} is {other}, not a string or null"
        ))),
    };
    let tf32 = match obj.get("tf32") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(bad(format!(
                "the result's environment.tf32 is {other}, not true, false or null"
            )));
        }
    };
    let (device, backend) = (required("device")?, required("backend")?);
    env.cuda_driver = optional("cuda_driver")?;
    env.compute_capability = optional("compute_capability")?;
    env.cuda_runtime = optional("cuda_runtime")?;
    env.cublas = optional("cublas")?;
    env.device = device;
    env.backend = backend;
    env.tf32 = tf32;
    Ok(())
}

/// The result's `status` and `status_detail` (contract §5).
fn parse_status(plugin: &str, result: &Value) -> Result<(RunStatus, Option<Value>), PipelineError> {
    let bad = |detail: String| PipelineError::BadResult {
        plugin: plugin.to_owned(),
        detail,
    };
    let status = match result.get("status").and_then(Value::as_str) {
        Some("ok") => RunStatus::Ok,
        Some("diverged") => RunStatus::Diverged,
        Some("interrupted") => RunStatus::Interrupted,
        other => {
            return Err(bad(format!(
                "the result's \"status\" is {}, not one of \"ok\", \"diverged\", \"interrupted\"",
                other.map_or_else(|| "missing".to_owned(), |s| format!("{s:?}"))
            )));
        }
    };
    let detail = match result.get("status_detail") {
        None | Some(Value::Null) => None,
        Some(d @ Value::Object(_)) => Some(d.clone()),
        Some(other) => {
            return Err(bad(format!(
                "the result's \"status_detail\" {other} is not an object"
            )));
        }
    };
    if status != RunStatus::Ok && detail.is_none() {
        return Err(bad(format!(
            "the result says {status} but gives no \"status_detail\" (step, quantity, message)"
        )));
    }
    Ok((status, detail))
}

/// The dataset block of the manifest, from the result's `dataset` (what the plugin actually read) and the host's
/// digest of the file.
fn parse_dataset(
    plugin: &str,
    result: &Value,
    data: &Path,
    sha256: String,
) -> Result<DatasetRef, PipelineError> {
    let bad = |detail: String| PipelineError::BadResult {
        plugin: plugin.to_owned(),
        detail,
    };
    let d = result.get("dataset").ok_or_else(|| {
        bad("the result has no \"dataset\" (format, dtype, shape, rows; contract §5)".to_owned())
    })?;
    let text = |k: &str| {
        d.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                bad(format!(
                    "the result's dataset.{k} is missing or not a string"
                ))
            })
    };
    let shape: Vec<u64> = d
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_u64).collect())
        .ok_or_else(|| bad("the result's dataset.shape is not a list of sizes".to_owned()))?;
    let row = |k: &str| {
        d.pointer(&format!("/rows/{k}"))
            .and_then(Value::as_u64)
            .ok_or_else(|| bad(format!("the result's dataset.rows.{k} is missing")))
    };
    let rows = RowRange {
        start: row("start")?,
        end: row("end")?,
    };
    if rows.start >= rows.end || shape.first().is_some_and(|&n| rows.end > n) {
        return Err(bad(format!(
            "the result's dataset.rows {}..{} do not lie inside the bank's {} rows",
            rows.start,
            rows.end,
            shape.first().copied().unwrap_or(0)
        )));
    }
    Ok(DatasetRef {
        path: data.display().to_string(),
        sha256,
        format: text("format")?,
        dtype: text("dtype")?,
        shape,
        rows,
    })
}

pub(crate) fn plugin_info(plugin: &DescribedPlugin) -> PluginInfo {
    PluginInfo {
        name: plugin.description.name.clone(),
        version: plugin.description.version.clone(),
        api_version: plugin.api_version,
        library_path: plugin.library_path.display().to_string(),
        library_sha256: plugin.library_sha256.clone(),
    }
}

pub(crate) fn wrong_kind(plugin: &DescribedPlugin, needed: &'static str) -> PipelineError {
    PipelineError::WrongKind {
        name: plugin.description.name.clone(),
        path: plugin.library_path.clone(),
        kind: plugin.description.kind.to_string(),
        needed,
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(role: &str, sha: &str) -> Recorded {
        Recorded {
            role: role.to_owned(),
            path: PathBuf::from(format!("/x/{role}")),
            input: InputRef {
                path: role.to_owned(),
                digest: BTreeMap::new(),
                run: None,
            },
            sha256: sha.to_owned(),
        }
    }

    #[test]
    fn reads_must_match_every_recorded_input_and_name_no_other() {
        let rec = [
            recorded("activations", "aa"),
            recorded("resume/cfg.json", "bb"),
        ];
        let ok = json!({"read_sha256": {"activations": "aa", "resume/cfg.json": "bb"}});
        check_reads("p", &ok, &rec).unwrap();
        let msg = check_reads(
            "p",
            &json!({"read_sha256": {"activations": "cc", "resume/cfg.json": "bb"}}),
            &rec,
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("input activations (/x/activations) changed while plugin p ran")
                && msg.contains("recorded sha256 aa")
                && msg.contains("read bytes with sha256 cc"),
            "{msg}"
        );
        let msg = check_reads("p", &json!({"read_sha256": {"activations": "aa"}}), &rec)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("no digest for input \"resume/cfg.json\""),
            "{msg}"
        );
        let msg = check_reads(
            "p",
            &json!({"read_sha256": {"activations": "aa", "resume/cfg.json": "bb", "x": "1"}}),
            &rec,
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("names \"x\", which is not an input"), "{msg}");
        assert!(
            check_reads("p", &json!({}), &rec)
                .unwrap_err()
                .to_string()
                .contains("no \"read_sha256\"")
        );
    }

    #[test]
    fn status_needs_a_detail_unless_ok() {
        assert_eq!(
            parse_status("p", &json!({"status": "ok"})).unwrap(),
            (RunStatus::Ok, None)
        );
        let d = json!({"step": 3, "quantity": "loss.mse", "value": null, "message": "m"});
        assert_eq!(
            parse_status("p", &json!({"status": "diverged", "status_detail": d})).unwrap(),
            (RunStatus::Diverged, Some(d))
        );
        assert!(
            parse_status("p", &json!({"status": "interrupted"}))
                .unwrap_err()
                .to_string()
                .contains("no \"status_detail\"")
        );
        assert!(
            parse_status("p", &json!({"status": "done"}))
                .unwrap_err()
                .to_string()
                .contains("\"done\", not one of")
        );
        assert!(
            parse_status("p", &json!({}))
                .unwrap_err()
                .to_string()
                .contains("is missing")
        );
    }

    #[test]
    fn dataset_rows_must_lie_in_the_bank() {
        let r = |rows: Value| json!({"dataset": {"format": "npy", "dtype": "float32", "shape": [10, 4], "rows": rows}});
        let d = parse_dataset(
            "p",
            &r(json!({"start": 2, "end": 10})),
            Path::new("x.npy"),
            "ab".into(),
        )
        .unwrap();
        assert_eq!((d.rows.start, d.rows.end, d.shape), (2, 10, vec![10, 4]));
        assert!(
            parse_dataset(
                "p",
                &r(json!({"start": 0, "end": 11})),
                Path::new("x"),
                "ab".into()
            )
            .is_err()
        );
        assert!(
            parse_dataset("p", &json!({}), Path::new("x"), "ab".into())
                .unwrap_err()
                .to_string()
                .contains("no \"dataset\"")
        );
    }

    fn plugin() -> DescribedPlugin {
        DescribedPlugin {
            description: crate::plugin::Description {
                name: "t".into(),
                version: "0".into(),
                kind: PluginKind::Trainer,
                architectures: vec![],
                evals: vec![],
                config_schema: json!({
                    "type": "object", "additionalProperties": false, "required": ["d_sae", "seed"],
                    "properties": {
                        "d_sae": {"type": "integer", "minimum": 1},
                        "seed": {"type": "integer", "minimum": 0},
                        "steps": {"type": ["integer", "null"], "default": 100},
                        "epochs": {"type": ["number", "null"], "default": null},
                        "wobble": {"type": "number", "default": 0.5},
                        "eval": {"type": "object", "default": {"fraction": 0.1}},
                        "resume_from": {"type": ["object", "null"], "default": null}
                    }
                }),
                capabilities: vec![],
            },
            api_version: 1,
            library_path: PathBuf::from("/p.so"),
            library_sha256: String::new(),
        }
    }

    fn request(sets: &[&str], seed: Option<u64>, eval: bool) -> TrainRequest {
        TrainRequest {
            plugin: "t".into(),
            data: PathBuf::from("x.npy"),
            eval_data: eval.then(|| PathBuf::from("e.npy")),
            resume: None,
            config: ConfigSources {
                file: None,
                sets: sets.iter().map(|s| s.to_string()).collect(),
            },
            seed,
            campaign: "c".into(),
        }
    }

    #[test]
    fn a_fresh_config_is_defaults_then_sets_then_flags_and_one_length_key() {
        let c = effective_config(
            &plugin(),
            &request(&["d_sae=4", "epochs=2"], Some(7), true),
            None,
        )
        .unwrap();
        assert_eq!(
            Value::Object(c),
            json!({"d_sae": 4, "epochs": 2, "seed": 7, "eval": {"data": true}, "steps": null, "wobble": 0.5,
                   "resume_from": null})
        );
        let c = effective_config(&plugin(), &request(&["d_sae=4"], Some(7), false), None).unwrap();
        assert_eq!(
            (c["steps"].clone(), c["epochs"].clone()),
            (json!(100), Value::Null)
        );
        let err =
            effective_config(&plugin(), &request(&["d_sae=4"], None, false), None).unwrap_err();
        assert!(
            err.to_string().contains("config key /seed is required"),
            "{err}"
        );
    }

    #[test]
    fn a_resumed_config_starts_from_the_record_and_refuses_other_values() {
        let resumed = Resumed {
            dir: PathBuf::from("/r"),
            config: json!({"d_sae": 4, "seed": 1, "steps": 6, "epochs": null, "wobble": 0.25, "eval": {"fraction": 0.1}})
                .as_object()
                .unwrap()
                .clone(),
            inputs: vec![],
            identity: json!({"run_id": "r1"}),
        };
        let c = effective_config(
            &plugin(),
            &request(&["epochs=3"], None, false),
            Some(&resumed),
        )
        .unwrap();
        assert_eq!(
            (c["epochs"].clone(), c["steps"].clone()),
            (json!(3), Value::Null)
        );
        assert_eq!(
            (c["wobble"].clone(), c["seed"].clone()),
            (json!(0.25), json!(1))
        );
        assert_eq!(c["resume_from"], json!({"run_id": "r1"}));
        let c = effective_config(
            &plugin(),
            &request(&["steps=9", "wobble=0.25"], Some(1), false),
            Some(&resumed),
        )
        .unwrap();
        assert_eq!(c["steps"], 9);
        let err = effective_config(
            &plugin(),
            &request(&["wobble=0.5"], None, false),
            Some(&resumed),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("config key /wobble was 0.25 in the resumed run but is given as 0.5"),
            "{err}"
        );
        // --eval-data changes the held-out rows, so it conflicts with a run that held out a fraction.
        let err =
            effective_config(&plugin(), &request(&[], None, true), Some(&resumed)).unwrap_err();
        assert!(
            err.to_string().contains("/eval was {\"fraction\":0.1}"),
            "{err}"
        );
    }

    #[test]
    fn a_cpu_result_leaves_the_environment_and_a_cuda_one_records_the_device() {
        let cpu = crate::manifest::Environment::detect_cpu();
        for result in [json!({}), json!({"environment": null})] {
            let mut env = cpu.clone();
            apply_environment("sae-topk", &result, &mut env).unwrap();
            assert_eq!(env, cpu);
            // The CUDA fields are absent from a CPU run's manifest, so its bytes are what they were before them.
            let text = serde_json::to_string(&env).unwrap();
            for k in ["compute_capability", "cuda_runtime", "cublas", "tf32"] {
                assert!(!text.contains(k), "{text}");
            }
        }
        let result = json!({"environment": {
            "device": "NVIDIA H200", "backend": "cuda", "cuda_driver": "12.8", "compute_capability": "9.0",
            "cuda_runtime": "nvrtc 12.9", "cublas": null, "tf32": false}});
        let mut env = cpu.clone();
        apply_environment("sae-topk", &result, &mut env).unwrap();
        assert_eq!(
            (env.device.as_str(), env.backend.as_str()),
            ("NVIDIA H200", "cuda")
        );
        assert_eq!(env.cuda_driver.as_deref(), Some("12.8"));
        assert_eq!(env.compute_capability.as_deref(), Some("9.0"));
        assert_eq!(env.cuda_runtime.as_deref(), Some("nvrtc 12.9"));
        assert_eq!((env.cublas.as_deref(), env.tf32), (None, Some(false)));
        assert_eq!(
            (env.os.as_str(), env.threads),
            (cpu.os.as_str(), cpu.threads)
        );
    }

    #[test]
    fn a_bad_result_environment_is_named() {
        for (env, want) in [
            (json!(3), "the result's \"environment\" 3 is not an object"),
            (
                json!({"device": "x", "backend": "cuda", "gpu": 1}),
                "the result's \"environment\" has the key \"gpu\"; it may have only",
            ),
            (
                json!({"backend": "cuda"}),
                "the result's environment.device is missing, not a non-empty string",
            ),
            (
                json!({"device": "x", "backend": "cuda", "cublas": 12}),
                "the result's environment.cublas is 12, not a string or null",
            ),
            (
                json!({"device": "x", "backend": "cuda", "tf32": "yes"}),
                "the result's environment.tf32 is \"yes\", not true, false or null",
            ),
        ] {
            let mut e = crate::manifest::Environment::detect_cpu();
            let err = apply_environment("sae-topk", &json!({"environment": env}), &mut e)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
            assert!(err.contains("sae-topk"), "{err}");
        }
    }

    #[test]
    fn a_resumed_run_may_change_device_and_nothing_else_of_the_record() {
        let mut p = plugin();
        p.description.config_schema["properties"]["device"] =
            json!({"enum": ["auto", "cpu", "cuda"], "default": "auto"});
        let resumed = Resumed {
            dir: PathBuf::from("/r"),
            config: json!({"d_sae": 4, "seed": 1, "steps": 6, "epochs": null, "wobble": 0.25,
                           "eval": {"fraction": 0.1}, "device": "auto"})
            .as_object()
            .unwrap()
            .clone(),
            inputs: vec![],
            identity: json!({"run_id": "r1"}),
        };
        let c =
            effective_config(&p, &request(&["device=cpu"], None, false), Some(&resumed)).unwrap();
        assert_eq!(
            (c["device"].clone(), c["wobble"].clone()),
            (json!("cpu"), json!(0.25))
        );
        let err = effective_config(&p, &request(&["device=gpu"], None, false), Some(&resumed))
            .unwrap_err();
        assert!(err.to_string().contains("/device"), "{err}");
    }
}
