//! husai trainer plugin `sae-topk`: TopK sparse autoencoders on CPU, following the trainer contract
//! (`docs/trainer-contract.md`). This file is only TopK's glue: its config keys ([`config`]), building the kernels'
//! TopK trainer, and its checkpoint and state files. Everything every trainer shares (common keys, inputs and
//! held-out rows, metric stream, divergence, interruption, summary and result JSON) is
//! `husai_kernels::trainer`.
//!
//! Inputs by role: `activations` (required), `eval_activations` (optional, with `eval = {"data": true}`), `resume`
//! (optional: the output directory of an earlier run of the same config, continued bit-exactly).
//!
//! Outputs in the request's output directory:
//!
//! - `cfg.json` + `sae_weights.safetensors`: the SAE in SAELens's layout (`sae_lens.SAE.load_from_disk` loads it as
//!   architecture `topk`); same seed and data give byte-identical weights;
//! - `trainer_state.safetensors`: Adam's moments and step, the data cursor, the generator state and the dead-latent
//!   counters (`husai_kernels::state`);
//! - `metrics.json`: the summary on training and held-out rows; `metrics.jsonl`: the metric stream.

mod config;

use std::path::Path;

use husai_kernels::state::{STATE_FILE, TrainerState};
use husai_kernels::trainer::config::check_resume_fingerprint;
use husai_kernels::trainer::{
    self, Dataset, Digests, EVAL_INPUT, Hooks, METRICS_FILE, MetricStream, Plan, RESUME_INPUT,
    STREAM_FILE, TrainerError, read_input,
};
use husai_kernels::{TopKSae, Trainer, batch_start, checkpoint};
use husai_plugin_api::{
    Capability, Description, Plugin, PluginError, PluginKind, Progress, RunRequest,
};
use serde_json::Value;

pub use config::{DEFAULT_AUX_COEFF, FAMILY_KEYS, TopKConfig, config_schema};
pub use husai_kernels::trainer::ACTIVATIONS_INPUT;

/// The family name recorded in `trainer_state.safetensors`.
pub const FAMILY: &str = "topk";

/// Every output, in the order the result lists them.
pub const OUTPUTS: [&str; 5] = [
    checkpoint::CONFIG_FILE,
    checkpoint::WEIGHTS_FILE,
    STATE_FILE,
    METRICS_FILE,
    STREAM_FILE,
];

struct SaeTopK;

impl Plugin for SaeTopK {
    fn describe() -> Description {
        Description {
            name: "sae-topk".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Trainer,
            architectures: vec!["topk".into()],
            evals: vec![],
            config_schema: config_schema(),
            capabilities: vec![Capability::Cpu],
        }
    }

    fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
        run(request, progress)
    }
}

husai_plugin_api::export_plugin!(SaeTopK);

fn plugin_error(e: TrainerError) -> PluginError {
    match e {
        TrainerError::Config { .. } => PluginError::invalid_config(format!("sae-topk {e}")),
        TrainerError::Input(m) => PluginError::invalid_input(m),
        TrainerError::Output(m) => PluginError::output(m),
        TrainerError::Failed(m) => PluginError::failed(m),
    }
}

struct ProgressHooks<'a>(&'a mut Progress);

impl Hooks for ProgressHooks<'_> {
    fn report(&mut self, done: u64, total: u64, message: &str) {
        self.0.report(done, total, message);
    }
    fn stop_requested(&self) -> bool {
        self.0.stop_requested()
    }
}

/// What a `resume` input holds.
struct Resumed {
    model: TopKSae,
    state: TrainerState,
    /// Lines of the earlier `metrics.jsonl` up to the step resumed from.
    stream: Vec<String>,
}

fn read_resume(dir: &Path, digests: &mut Digests) -> Result<Resumed, TrainerError> {
    let mut read =
        |name: &str| read_input(&format!("{RESUME_INPUT}/{name}"), &dir.join(name), digests);
    let cfg = read(checkpoint::CONFIG_FILE)?;
    let weights = read(checkpoint::WEIGHTS_FILE)?;
    let state = read(STATE_FILE).map_err(|e| {
        TrainerError::Input(format!(
            "{e}; only a run written by this trainer (with its {STATE_FILE}) can be resumed"
        ))
    })?;
    let stream_path = dir.join(STREAM_FILE);
    let stream = if stream_path.exists() {
        String::from_utf8_lossy(&read(STREAM_FILE)?).into_owned()
    } else {
        String::new()
    };
    let input = |e: &dyn std::fmt::Display| TrainerError::Input(e.to_string());
    let parts = checkpoint::from_bytes(dir, &cfg, &weights).map_err(|e| input(&e))?;
    let model = TopKSae::from_parts(parts).map_err(|e| {
        TrainerError::Input(format!(
            "{}: {e}",
            dir.join(checkpoint::WEIGHTS_FILE).display()
        ))
    })?;
    let state =
        TrainerState::from_bytes(&dir.join(STATE_FILE), &state, model.d_in(), model.d_sae())
            .map_err(|e| input(&e))?;
    if state.family != FAMILY {
        return Err(TrainerError::Input(format!(
            "{}: written by the {:?} family; sae-topk resumes only {FAMILY:?} runs",
            dir.join(STATE_FILE).display(),
            state.family
        )));
    }
    let done = state.snapshot.steps_done;
    let stream = stream
        .lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= done)
        })
        .map(str::to_owned)
        .collect();
    Ok(Resumed {
        model,
        state,
        stream,
    })
}

/// The plugin's `run`, callable in-process (tests call it with `Progress::discard_with_stop_flag`).
pub fn run(request: &RunRequest, progress: &mut Progress) -> Result<Value, PluginError> {
    train(request, progress).map_err(plugin_error)
}

fn train(request: &RunRequest, progress: &mut Progress) -> Result<Value, TrainerError> {
    let cfg = TopKConfig::from_json(&request.config)?;
    if let Some(role) = request
        .inputs
        .keys()
        .find(|r| ![ACTIVATIONS_INPUT, EVAL_INPUT, RESUME_INPUT].contains(&r.as_str()))
    {
        return Err(TrainerError::Input(format!(
            "sae-topk takes the inputs {ACTIVATIONS_INPUT:?} and, optionally, {EVAL_INPUT:?} and {RESUME_INPUT:?}; \
             the request also names {role:?}"
        )));
    }
    let effective = cfg.effective();
    let mut digests = Digests::new();
    let resumed = match request.inputs.get(RESUME_INPUT) {
        Some(dir) => {
            let r = read_resume(dir, &mut digests)?;
            check_resume_fingerprint(&r.state.config, &effective)?;
            Some(r)
        }
        None => None,
    };
    let data = Dataset::load(
        &request.inputs,
        &cfg.common,
        resumed.as_ref().map(|r| r.model.d_in()),
        &mut digests,
    )?;
    let d_in = data.d_in;
    let n_train = data.train_len();
    let total = cfg.common.length.total_steps(n_train, cfg.common.batch);
    let train_cfg = cfg.train_config(d_in, total);
    let rng_state = TopKSae::rng_state_after_init(d_in, cfg.common.d_sae, cfg.common.seed);
    let out = &request.output_dir;
    let mut stream = MetricStream::create(&out.join(STREAM_FILE))?;
    let failed =
        |e: husai_kernels::KernelError| TrainerError::Failed(format!("training failed: {e}"));
    let mut session = match resumed {
        None => {
            let mut t = Trainer::new(train_cfg, d_in).map_err(failed)?;
            t.init_b_dec(&data.train).map_err(failed)?;
            t
        }
        Some(r) => {
            let done = r.state.snapshot.steps_done;
            if done > total {
                return Err(TrainerError::config(
                    "steps",
                    format!(
                        "= {total} is below the {done} steps the resumed run already took; set steps >= {done}"
                    ),
                ));
            }
            let cursor = batch_start(done, cfg.common.batch, n_train) as u64;
            if r.state.cursor != cursor || r.state.rng_state != rng_state {
                return Err(TrainerError::Input(format!(
                    "the resumed run's data cursor {} and generator state {} do not match this run's {cursor} and \
                     {rng_state} (other training rows or seed); resume with the same data and rows",
                    r.state.cursor, r.state.rng_state
                )));
            }
            stream.append_raw(r.stream.iter().map(String::as_str))?;
            Trainer::from_snapshot(train_cfg, r.model, r.state.snapshot).map_err(failed)?
        }
    };
    let plan = Plan {
        total_steps: total,
        batch: cfg.common.batch,
        lr: cfg.common.lr,
        eval_every: cfg.common.eval_every,
        log_every: cfg.common.log_every,
        fvu_ceiling: cfg.common.fvu_ceiling,
    };
    let outcome = trainer::drive(
        &mut session,
        &plan,
        &data,
        &mut stream,
        &mut ProgressHooks(progress),
    )?;
    drop(stream);

    let output = |e: &dyn std::fmt::Display| TrainerError::Output(e.to_string());
    checkpoint::write(out, &session.model().to_parts()).map_err(|e| output(&e))?;
    let state = TrainerState {
        family: FAMILY.into(),
        snapshot: session.snapshot(),
        cursor: batch_start(outcome.steps_done, cfg.common.batch, n_train) as u64,
        rng_state,
        config: husai_kernels::trainer::config::resume_fingerprint(&effective),
        d_in,
    };
    let state_path = out.join(STATE_FILE);
    std::fs::write(&state_path, state.to_bytes())
        .map_err(|e| TrainerError::Output(format!("cannot write {}: {e}", state_path.display())))?;
    let summary = outcome.summary_json(&data);
    trainer::write_json(&out.join(METRICS_FILE), &summary)?;
    Ok(outcome.result_json(&data, &summary, &OUTPUTS, &digests))
}

#[cfg(test)]
mod tests;
