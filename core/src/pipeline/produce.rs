//! A data plugin (kind `data`): a generator or converter whose outputs become one signed run of kind `data`, or, for
//! an operation whose output is deliberately not a run (an inspection aid), plain files written to a directory.
//!
//! The config is built from the plugin's schema exactly as for a trainer ([`super::config`]); inputs given by role
//! are recorded with their digests (run-linked when inside a verified run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::config::{self, ConfigSources};
use super::train::{plugin_info, wrong_kind};
use super::{Pipeline, PipelineError, check_outputs};
use crate::manifest::RunKind;
use crate::plugin::{DescribedPlugin, PluginHost, PluginKind, ProgressEvent, RunRequest};
use crate::store::CommittedRun;

/// What to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceRequest {
    /// The data plugin, by name.
    pub plugin: String,
    /// Config file and `--set`s.
    pub config: ConfigSources,
    /// Values of dedicated flags, overlaid last (for example `seed`, `operation`).
    pub flags: serde_json::Map<String, Value>,
    /// Input files by role.
    pub inputs: BTreeMap<String, PathBuf>,
    pub campaign: String,
}

/// Finds `name` and checks that it is a data plugin.
pub fn find_data_plugin(host: &PluginHost, name: &str) -> Result<DescribedPlugin, PipelineError> {
    let plugin = host.find(name)?;
    if plugin.description.kind != PluginKind::Data {
        return Err(wrong_kind(&plugin, "this command needs a data plugin"));
    }
    Ok(plugin)
}

/// The effective config: user values and flags overlaid, defaults filled in, validated. Data and eval plugins share
/// it (a trainer's adds resume and the length keys, see [`super::train`]).
pub(super) fn effective(
    plugin: &DescribedPlugin,
    sources: &ConfigSources,
    flags: &serde_json::Map<String, Value>,
) -> Result<Value, PipelineError> {
    let schema = &plugin.description.config_schema;
    let mut cfg = config::user_values(sources)?;
    for (k, v) in flags {
        cfg.insert(k.clone(), v.clone());
    }
    config::fill_defaults(&mut cfg, schema);
    let cfg = Value::Object(cfg);
    config::validate(&plugin.description.name, schema, &cfg)?;
    Ok(cfg)
}

fn request(cfg: Value, inputs: &BTreeMap<String, PathBuf>, out: &Path) -> RunRequest {
    RunRequest {
        config: cfg,
        inputs: inputs
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    std::path::absolute(v).unwrap_or_else(|_| v.clone()),
                )
            })
            .collect(),
        output_dir: out.to_path_buf(),
    }
}

impl Pipeline {
    /// Runs a data plugin and signs its outputs as a `data` run. Returns the run and the plugin's result.
    pub fn produce(
        &self,
        host: &PluginHost,
        req: &ProduceRequest,
        on_progress: &mut dyn FnMut(&ProgressEvent),
    ) -> Result<(CommittedRun, Value), PipelineError> {
        crate::store::check_campaign(&req.campaign)?;
        let plugin = find_data_plugin(host, &req.plugin)?;
        self.check_pinned(&plugin)?;
        let cfg = effective(&plugin, &req.config, &req.flags)?;
        let mut inputs = Vec::new();
        for path in req.inputs.values() {
            inputs.push(self.record_input(path, "input")?.0);
        }
        let staged = self.store.stage(&req.campaign, RunKind::Data)?;
        let result = host.run(
            &plugin,
            &request(cfg.clone(), &req.inputs, staged.dir()),
            on_progress,
        )?;
        check_outputs(&plugin.description.name, staged.dir(), &result)?;
        let mut draft = self.draft();
        draft.plugin = Some(plugin_info(&plugin));
        draft.seeds = cfg
            .get("seed")
            .and_then(Value::as_u64)
            .into_iter()
            .collect();
        draft.config = Some(cfg);
        draft.inputs = inputs;
        draft.extra = json!({"generator": plugin.description.name, "summary": result.get("summary").cloned().unwrap_or(Value::Null)});
        let run = self.sign(staged, draft, &|_| {})?;
        Ok((run, result))
    }
}

/// Runs a data plugin whose outputs are not a run: they are written into `out_dir` (which must exist) and the
/// plugin's result is returned. Nothing is signed.
pub fn run_unsigned(
    host: &PluginHost,
    req: &ProduceRequest,
    out_dir: &Path,
    on_progress: &mut dyn FnMut(&ProgressEvent),
) -> Result<Value, PipelineError> {
    let plugin = find_data_plugin(host, &req.plugin)?;
    let cfg = effective(&plugin, &req.config, &req.flags)?;
    let result = host.run(&plugin, &request(cfg, &req.inputs, out_dir), on_progress)?;
    check_outputs(&plugin.description.name, out_dir, &result)?;
    Ok(result)
}
