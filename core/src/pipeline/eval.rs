//! An eval plugin (kind `eval`) on signed runs, recorded as one signed `eval` run (docs/eval-contract.md).
//!
//! In order, before any plugin code runs: the plugin is found and must be an eval; the effective config is built from
//! its schema; every input run is found (by run id under the results tree, or by directory), verified with its chain
//! and required to have ended `ok`; every subject of every input run is recorded as a run-linked input. The plugin
//! then runs in a child process into a staging directory and gets the input run directories by role. Its result must
//! list outputs that exist and name its summary, which must carry a summary schema husai knows and match it. The
//! input runs are verified again (a run that changed under the plugin signs nothing), and the run is signed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::config::ConfigSources;
use super::produce::effective;
use super::train::{plugin_info, wrong_kind};
use super::{Pipeline, PipelineError, check_outputs};
use crate::inputs::{self, InputError};
use crate::manifest::{InputRef, RunKind, RunRef};
use crate::plugin::{DescribedPlugin, PluginHost, PluginKind, ProgressEvent, RunRequest};
use crate::schema;
use crate::store::CommittedRun;
use crate::verify::{self, VerifiedRun};

/// The common envelope every eval summary satisfies, whatever its own schema.
pub const ENVELOPE_SCHEMA: &str = "eval-summary.v1";

/// The summary schemas an eval plugin may sign a summary under (each embedded in [`crate::schema`]). A summary's
/// shape is fixed by husai, not by the plugin that writes it: a new eval adds its schema here.
pub const SUMMARY_SCHEMAS: &[&str] = &[
    ENVELOPE_SCHEMA,
    "closure-summary.v1",
    "trained-vs-random.v1",
    "ood-stress.v1",
    "transcoder-stress.v1",
];

/// The role of an `--input` given without `ROLE=`.
pub const DEFAULT_ROLE: &str = "run";

/// What to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRequest {
    /// The eval plugin, by name.
    pub plugin: String,
    /// Input runs in order: (role, run id or run directory).
    pub inputs: Vec<(String, String)>,
    /// Config file and `--set`s.
    pub config: ConfigSources,
    pub campaign: String,
}

impl EvalRequest {
    /// Parses one `--input` value: `ROLE=RUN` or `RUN` (role [`DEFAULT_ROLE`]).
    pub fn parse_input(spec: &str) -> Result<(String, String), String> {
        match spec.split_once('=') {
            Some((role, run)) => {
                if role.is_empty()
                    || !role
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                {
                    return Err(format!(
                        "--input {spec:?}: the role {role:?} must be lowercase letters, digits and _ (as in \
                         sae=RUN)"
                    ));
                }
                if run.is_empty() {
                    return Err(format!("--input {spec:?}: no run after {role}="));
                }
                Ok((role.to_owned(), run.to_owned()))
            }
            None => Ok((DEFAULT_ROLE.to_owned(), spec.to_owned())),
        }
    }
}

/// A signed eval run and its summary.
#[derive(Debug, Clone)]
pub struct EvaluatedRun {
    pub run: CommittedRun,
    pub plugin: String,
    /// The summary's file name inside the run.
    pub summary_file: String,
    /// The summary's schema id.
    pub summary_schema: String,
    pub summary: Value,
}

/// One verified input run and the role key the plugin sees it under.
struct InputRun {
    key: String,
    run: VerifiedRun,
}

/// Finds `name` and checks that it is an eval plugin.
pub fn find_eval_plugin(host: &PluginHost, name: &str) -> Result<DescribedPlugin, PipelineError> {
    let plugin = host.find(name)?;
    if plugin.description.kind != PluginKind::Eval {
        return Err(wrong_kind(&plugin, "`eval` needs an eval plugin"));
    }
    Ok(plugin)
}

/// The keys the plugin sees its inputs under: `ROLE/i`, `i` counting that role's runs from 0 in order.
pub fn role_keys(roles: &[&str]) -> Vec<String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    roles
        .iter()
        .map(|r| {
            let i = seen.entry(r).or_insert(0);
            let key = format!("{r}/{i}");
            *i += 1;
            key
        })
        .collect()
}

impl Pipeline {
    /// Evaluates and signs. `on_progress` sees the plugin's progress reports as they arrive.
    pub fn eval(
        &self,
        host: &PluginHost,
        req: &EvalRequest,
        on_progress: &mut dyn FnMut(&ProgressEvent),
    ) -> Result<EvaluatedRun, PipelineError> {
        crate::store::check_campaign(&req.campaign)?;
        let plugin = find_eval_plugin(host, &req.plugin)?;
        self.check_pinned(&plugin)?;
        let cfg = effective(&plugin, &req.config, &serde_json::Map::new())?;
        if req.inputs.is_empty() {
            return Err(PipelineError::Eval(
                "an eval needs at least one --input run".to_owned(),
            ));
        }
        let roles: Vec<&str> = req.inputs.iter().map(|(r, _)| r.as_str()).collect();
        let mut runs = Vec::new();
        for ((_, spec), key) in req.inputs.iter().zip(role_keys(&roles)) {
            runs.push(InputRun {
                key,
                run: self.input_run(spec)?,
            });
        }

        let staged = self.store.stage(&req.campaign, RunKind::Eval)?;
        let request = RunRequest {
            config: cfg.clone(),
            inputs: runs
                .iter()
                .map(|r| (r.key.clone(), absolute(&r.run.dir)))
                .collect(),
            output_dir: staged.dir().to_path_buf(),
        };
        // On any error from here `staged` is dropped, which removes the staging directory: no run remains.
        let result = host
            .run(&plugin, &request, on_progress)
            .map_err(|e| super::train::rejected_config(&plugin, e))?;
        let name = plugin.description.name.clone();
        check_outputs(&name, staged.dir(), &result)?;
        let (summary_file, summary_schema, summary) =
            check_summary(&plugin, staged.dir(), &result)?;
        for r in &runs {
            self.unchanged_run(&name, r)?;
        }

        let mut draft = self.draft();
        draft.plugin = Some(plugin_info(&plugin));
        draft.seeds = cfg
            .get("seed")
            .and_then(Value::as_u64)
            .into_iter()
            .collect();
        draft.config = Some(cfg);
        draft.inputs = runs.iter().flat_map(run_inputs).collect();
        let listed: Vec<Value> = runs
            .iter()
            .map(|r| {
                let m = &r.run.manifest;
                json!({"role": r.key, "campaign": m.campaign, "run_id": m.run_id, "kind": m.kind})
            })
            .collect();
        draft.extra = json!({"eval": {
            "plugin": name, "eval": summary["eval"], "summary": summary_file, "schema": summary_schema,
            "inputs": listed,
        }});
        let run = self.sign(staged, draft, &|_| {})?;
        Ok(EvaluatedRun {
            run,
            plugin: name,
            summary_file,
            summary_schema,
            summary,
        })
    }

    /// An input run: found by id under the results tree or by its directory, verified with its chain, status `ok`.
    fn input_run(&self, spec: &str) -> Result<VerifiedRun, PipelineError> {
        let path = PathBuf::from(spec);
        let dir = if path.exists() {
            path
        } else if verify::looks_like_run_id(spec) {
            find_run(self.store.root(), spec)?
        } else {
            return Err(PipelineError::Eval(format!(
                "--input {spec}: no such run directory, and not a run id (YYYYMMDDTHHMMSSZ-<16 hex>)"
            )));
        };
        match verify::enclosing_run(&dir) {
            Some((_, rel)) if rel.is_empty() => {}
            Some((run_dir, _)) => {
                return Err(PipelineError::Eval(format!(
                    "--input {spec}: is inside run {}; give the run itself (its directory or run id)",
                    run_dir.display()
                )));
            }
            None => {
                return Err(PipelineError::Eval(format!(
                    "--input {spec}: is not a run (no husai.dsse.json); an eval reads signed runs only"
                )));
            }
        }
        let run =
            verify::load_verified_run(&dir, self.policy()?).map_err(|e| InputError::RunFails {
                spec: spec.to_owned(),
                source: Box::new(e),
            })?;
        inputs::require_ok(&run)
            .map_err(|e| PipelineError::Eval(format!("--input {spec}: {e}")))?;
        Ok(run)
    }

    /// Verifies an input run again after the plugin ran: its manifest and every subject must still verify.
    fn unchanged_run(&self, plugin: &str, r: &InputRun) -> Result<(), PipelineError> {
        let again = verify::load_verified_run(&r.run.dir, self.policy()?).map_err(|e| {
            PipelineError::Eval(format!(
                "input {} ({}) changed while plugin {plugin} ran, so nothing was signed: {e}",
                r.key,
                r.run.dir.display()
            ))
        })?;
        if again.subjects != r.run.subjects {
            return Err(PipelineError::Eval(format!(
                "input {} ({}) was re-signed while plugin {plugin} ran, so nothing was signed",
                r.key,
                r.run.dir.display()
            )));
        }
        Ok(())
    }
}

/// Every subject of an input run, as a run-linked input with its signed digest.
fn run_inputs(r: &InputRun) -> Vec<InputRef> {
    let m = &r.run.manifest;
    r.run
        .subjects
        .iter()
        .map(|s| InputRef {
            path: r.run.dir.join(&s.name).display().to_string(),
            digest: s.digest.clone(),
            run: Some(RunRef {
                campaign: m.campaign.clone(),
                run_id: m.run_id.clone(),
                subject: s.name.clone(),
            }),
        })
        .collect()
}

/// The result's `summary`: a listed output, a JSON object naming a known summary schema and one of the plugin's
/// evals, valid against the common envelope and its own schema. Returns (file, schema id, document).
fn check_summary(
    plugin: &DescribedPlugin,
    dir: &Path,
    result: &Value,
) -> Result<(String, String, Value), PipelineError> {
    let name = &plugin.description.name;
    let bad = |detail: String| PipelineError::BadResult {
        plugin: name.clone(),
        detail,
    };
    let file = result
        .get("summary")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad("the result has no \"summary\" (the file name of its summary; docs/eval-contract.md §3)".to_owned())
        })?;
    let listed = result
        .get("outputs")
        .and_then(Value::as_array)
        .is_some_and(|o| o.iter().any(|x| x.as_str() == Some(file)));
    if !listed {
        return Err(bad(format!(
            "its summary {file:?} is not among its \"outputs\""
        )));
    }
    let text = std::fs::read_to_string(dir.join(file))
        .map_err(|e| bad(format!("cannot read its summary {file}: {e}")))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| bad(format!("its summary {file} is not JSON: {e}")))?;
    let id = doc
        .get("schema")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("its summary {file} has no \"schema\" string")))?
        .to_owned();
    if !SUMMARY_SCHEMAS.contains(&id.as_str()) {
        return Err(bad(format!(
            "its summary {file} names schema {id:?}, which is not an eval summary schema husai knows ({})",
            SUMMARY_SCHEMAS.join(", ")
        )));
    }
    for schema_id in [ENVELOPE_SCHEMA, id.as_str()] {
        schema::validate(schema_id, &doc).map_err(|e| bad(format!("its summary {file} {e}")))?;
    }
    let eval = doc.get("eval").and_then(Value::as_str).unwrap_or_default();
    if !plugin.description.evals.iter().any(|e| e == eval) {
        return Err(bad(format!(
            "its summary {file} is for eval {eval:?}, which the plugin does not describe (it describes {:?})",
            plugin.description.evals
        )));
    }
    Ok((file.to_owned(), id, doc))
}

fn find_run(results: &Path, run_id: &str) -> Result<PathBuf, PipelineError> {
    let found = std::fs::read_dir(results).ok().and_then(|campaigns| {
        campaigns
            .flatten()
            .map(|c| c.path().join(run_id))
            .find(|p| p.is_dir())
    });
    found.ok_or_else(|| {
        InputError::RunNotFound {
            run_id: run_id.to_owned(),
            results: results.to_path_buf(),
        }
        .into()
    })
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_keys_count_each_role_from_zero_in_order() {
        assert_eq!(
            role_keys(&["model", "sae", "sae", "run", "sae"]),
            ["model/0", "sae/0", "sae/1", "run/0", "sae/2"]
        );
    }

    #[test]
    fn an_input_is_role_equals_run_or_a_bare_run() {
        assert_eq!(
            EvalRequest::parse_input("sae=results/c/r").unwrap(),
            ("sae".to_owned(), "results/c/r".to_owned())
        );
        assert_eq!(
            EvalRequest::parse_input("results/c/r").unwrap(),
            ("run".to_owned(), "results/c/r".to_owned())
        );
        let e = EvalRequest::parse_input("Sae=x").unwrap_err();
        assert!(e.contains("the role \"Sae\" must be lowercase"), "{e}");
        let e = EvalRequest::parse_input("sae=").unwrap_err();
        assert!(e.contains("no run after sae="), "{e}");
    }

    #[test]
    fn every_summary_schema_is_embedded() {
        for id in SUMMARY_SCHEMAS {
            assert!(schema::schema_text(id).is_some(), "{id}");
        }
    }
}
