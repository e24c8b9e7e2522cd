//! A whole trainer plugin run for any family on the shared engine ([`crate::engine`]): inputs and held-out rows,
//! exact resume, the driver, and every output (SAELens checkpoint for the family's SAELens architecture,
//! `trainer_state.safetensors`, `metrics.json`, `metrics.jsonl`). A family plugin parses its config, builds its
//! [`Family`] and an [`EngineConfig`], and calls [`run_family`]; nothing else in it is family-specific.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::config::{CommonConfig, check_resume_fingerprint, resume_fingerprint};
use super::data::{Dataset, Digests, RowSource, open_one_tensor, read_input};
use super::run::{Hooks, Plan, Session, drive};
use super::stream::MetricStream;
use super::{
    ACTIVATIONS_INPUT, EVAL_INPUT, METRICS_FILE, RESUME_INPUT, STREAM_FILE, TrainerError,
    write_json,
};
use crate::activations::ActivationError;
use crate::checkpoint;
use crate::engine::{EngineConfig, FamilyTrainer, Sae};
use crate::family::Family;
use crate::state::{FamilyTrainerState, STATE_FILE};
use crate::train::batch_start;

/// Every output of [`run_family`], in the order the result lists them.
pub const OUTPUTS: [&str; 5] = [
    checkpoint::CONFIG_FILE,
    checkpoint::WEIGHTS_FILE,
    STATE_FILE,
    METRICS_FILE,
    STREAM_FILE,
];

/// One family run, as its plugin describes it.
pub struct FamilyRun<'a, F: Family> {
    /// The plugin's name (`sae-batchtopk`), for messages.
    pub plugin: &'static str,
    /// The family, freshly built from the config (its estimated state is restored on resume).
    pub family: F,
    /// The engine config for rows of width `d_in` (known once the bank is read); `threads` is overwritten with
    /// the current rayon pool's size.
    pub engine: &'a dyn Fn(usize) -> EngineConfig,
    /// The common keys.
    pub common: &'a CommonConfig,
    /// The effective config (defaults filled in), for the resume fingerprint.
    pub effective: &'a Map<String, Value>,
    /// Report the training rule's L0 beside the inference rule's (families whose rules differ).
    pub train_rule_l0: bool,
}

fn failed(e: crate::KernelError) -> TrainerError {
    TrainerError::Failed(format!("training failed: {e}"))
}

/// What a run puts around the engine's trainer. [`Plain`] (every one-layer family) puts nothing there; a plugin
/// that trains more than the SAE (RouteSAE's router over layers) implements it, and [`run_shaped`] does the rest
/// (inputs, held-out rows, resume, the driver, every output) as for any family.
pub trait RunShape<F: Family> {
    /// The session the driver steps.
    type Session: Session;
    /// Opens a bank (the training or the held-out one) from its exact bytes.
    fn open(&self, path: &Path, bytes: Vec<u8>) -> Result<Box<dyn RowSource>, ActivationError>;
    /// The bank row width that a resumed SAE of input width `sae_d_in` needs, when the shape knows it.
    fn bank_width(&self, sae_d_in: usize) -> Option<usize>;
    /// The SAE's input width for the run's bank.
    fn sae_width(&self, data: &Dataset) -> Result<usize, TrainerError>;
    /// A fresh session around a fresh `trainer` (whose `b_dec` is not initialised yet).
    fn start(
        &self,
        trainer: FamilyTrainer<F>,
        data: &Dataset,
    ) -> Result<Self::Session, TrainerError>;
    /// A resumed session around the restored `trainer`; the shape reads its own files from `dir` (hashing each
    /// into `digests` as `resume/<file>`).
    fn resume(
        &self,
        trainer: FamilyTrainer<F>,
        data: &Dataset,
        dir: &Path,
        digests: &mut Digests,
    ) -> Result<Self::Session, TrainerError>;
    /// The engine's trainer inside `session`.
    fn trainer<'s>(&self, session: &'s Self::Session) -> &'s FamilyTrainer<F>;
    /// Writes the shape's own outputs into `dir`; returns their names (listed after the engine's).
    fn write(&self, session: &Self::Session, dir: &Path)
    -> Result<Vec<&'static str>, TrainerError>;
}

/// The run of a one-layer family: a one-tensor bank (`tensor`), the SAE alone.
#[derive(Debug, Clone)]
pub struct Plain {
    /// The `.safetensors` tensor to read (`tensor` of the config).
    pub tensor: Option<String>,
}

impl<F: Family> RunShape<F> for Plain {
    type Session = FamilyTrainer<F>;
    fn open(&self, path: &Path, bytes: Vec<u8>) -> Result<Box<dyn RowSource>, ActivationError> {
        open_one_tensor(path, bytes, self.tensor.as_deref())
    }
    fn bank_width(&self, sae_d_in: usize) -> Option<usize> {
        Some(sae_d_in)
    }
    fn sae_width(&self, data: &Dataset) -> Result<usize, TrainerError> {
        Ok(data.d_in)
    }
    fn start(
        &self,
        mut trainer: FamilyTrainer<F>,
        data: &Dataset,
    ) -> Result<FamilyTrainer<F>, TrainerError> {
        trainer.init_b_dec(&data.train).map_err(failed)?;
        Ok(trainer)
    }
    fn resume(
        &self,
        trainer: FamilyTrainer<F>,
        _: &Dataset,
        _: &Path,
        _: &mut Digests,
    ) -> Result<FamilyTrainer<F>, TrainerError> {
        Ok(trainer)
    }
    fn trainer<'s>(&self, session: &'s FamilyTrainer<F>) -> &'s FamilyTrainer<F> {
        session
    }
    fn write(&self, _: &FamilyTrainer<F>, _: &Path) -> Result<Vec<&'static str>, TrainerError> {
        Ok(Vec::new())
    }
}

/// Runs `run` on `inputs` (roles `activations`, optionally `eval_activations` and `resume`) into `output_dir`,
/// and returns the result JSON (trainer contract §5).
pub fn run_family<F: Family>(
    run: FamilyRun<'_, F>,
    inputs: &BTreeMap<String, PathBuf>,
    output_dir: &Path,
    hooks: &mut dyn Hooks,
) -> Result<Value, TrainerError> {
    let shape = Plain {
        tensor: run.common.tensor.clone(),
    };
    run_shaped(run, &shape, inputs, output_dir, hooks)
}

/// [`run_family`] with `shape` around the engine's trainer.
pub fn run_shaped<F: Family, S: RunShape<F>>(
    run: FamilyRun<'_, F>,
    shape: &S,
    inputs: &BTreeMap<String, PathBuf>,
    output_dir: &Path,
    hooks: &mut dyn Hooks,
) -> Result<Value, TrainerError> {
    let FamilyRun {
        plugin,
        family,
        engine,
        common,
        effective,
        train_rule_l0,
    } = run;
    if let Some(role) = inputs
        .keys()
        .find(|r| ![ACTIVATIONS_INPUT, EVAL_INPUT, RESUME_INPUT].contains(&r.as_str()))
    {
        return Err(TrainerError::Input(format!(
            "{plugin} takes the inputs {ACTIVATIONS_INPUT:?} and, optionally, {EVAL_INPUT:?} and {RESUME_INPUT:?}; \
             the request also names {role:?}"
        )));
    }
    // The backend before any input is read: `device = cuda` without a usable GPU fails here, at once.
    let probe = crate::cuda::probe();
    let backend = crate::backend::resolve(plugin, common.device, &probe, false)
        .map_err(|e| TrainerError::config("device", e))?;
    // What the manifest records of the device (trainer contract §5): a CUDA run's device and versions; a CPU run's
    // result has no `environment` and the host records the CPU.
    let environment = match (&probe, backend.backend) {
        (crate::cuda::Probe::Available(dev), crate::backend::Backend::Cuda) => {
            Some(crate::cuda::environment(dev, common.tf32))
        }
        _ => None,
    };
    // A report with total 0 is a note: husai-audit train prints it as a line of its own.
    hooks.report(0, 0, &backend.note);
    let mut digests = Digests::new();
    let resumed = match inputs.get(RESUME_INPUT) {
        Some(dir) => {
            let r = read_resume(dir, &family, &mut digests)?;
            check_resume_fingerprint(&r.1.config, effective)?;
            Some(r)
        }
        None => None,
    };
    let open = |path: &Path, bytes: Vec<u8>| shape.open(path, bytes);
    let data = Dataset::load_from(
        inputs,
        common,
        resumed.as_ref().and_then(|r| shape.bank_width(r.0.d_in())),
        &mut digests,
        &open,
    )?;
    let d_in = shape.sae_width(&data)?;
    if let Some(r) = &resumed
        && r.0.d_in() != d_in
    {
        return Err(TrainerError::Input(format!(
            "the bank's rows give the SAE inputs of width {d_in} but the resumed checkpoint has d_in {}; train on \
             a bank of that width",
            r.0.d_in()
        )));
    }
    let n_train = data.train_len();
    let total = common.length.total_steps(n_train, common.batch);
    let rng_state = Sae::rng_state_after_init(d_in, common.d_sae, common.seed);
    let mut engine = engine(d_in);
    engine.threads = rayon::current_num_threads();
    // Every input is read and checked before anything is written.
    let (mut session, resumed_lines) = match resumed {
        None => {
            let t = FamilyTrainer::new(engine, family, d_in, train_rule_l0).map_err(failed)?;
            (shape.start(t, &data)?, None)
        }
        Some((model, state, lines)) => {
            let done = state.snapshot.steps_done;
            if done > total {
                return Err(TrainerError::config(
                    "steps",
                    format!(
                        "= {total} is below the {done} steps the resumed run already took; set steps >= {done}"
                    ),
                ));
            }
            let cursor = batch_start(done, common.batch, n_train) as u64;
            if state.cursor != cursor || state.rng_state != rng_state {
                return Err(TrainerError::Input(format!(
                    "the resumed run's data cursor {} and generator state {} do not match this run's {cursor} and \
                     {rng_state} (other training rows or seed); resume with the same data and rows",
                    state.cursor, state.rng_state
                )));
            }
            let t =
                FamilyTrainer::from_snapshot(engine, family, model, state.snapshot, train_rule_l0)
                    .map_err(failed)?;
            let session = shape.resume(t, &data, &inputs[RESUME_INPUT], &mut digests)?;
            (session, Some(lines))
        }
    };
    let mut stream = MetricStream::create(&output_dir.join(STREAM_FILE))?;
    if let Some(lines) = &resumed_lines {
        stream.append_raw(lines.iter().map(String::as_str))?;
    }
    let plan = Plan {
        total_steps: total,
        batch: common.batch,
        lr: common.lr,
        eval_every: common.eval_every,
        log_every: common.log_every,
        fvu_ceiling: common.fvu_ceiling,
    };
    let outcome = drive(&mut session, &plan, &data, &mut stream, hooks)?;
    drop(stream);

    let output = |e: &dyn std::fmt::Display| TrainerError::Output(e.to_string());
    let trainer = shape.trainer(&session);
    let parts = trainer.model().to_parts();
    checkpoint::write_family(output_dir, trainer.family(), &parts).map_err(|e| output(&e))?;
    let state = FamilyTrainerState {
        family: trainer.family().name().into(),
        snapshot: trainer.snapshot(),
        family_params: parts.family.clone(),
        cursor: batch_start(outcome.steps_done, common.batch, n_train) as u64,
        rng_state,
        config: resume_fingerprint(effective),
        d_in,
    };
    let state_path = output_dir.join(STATE_FILE);
    std::fs::write(&state_path, state.to_bytes())
        .map_err(|e| TrainerError::Output(format!("cannot write {}: {e}", state_path.display())))?;
    let mut outputs: Vec<&str> = OUTPUTS.to_vec();
    outputs.extend(shape.write(&session, output_dir)?);
    let summary = outcome.summary_json(&data);
    write_json(&output_dir.join(METRICS_FILE), &summary)?;
    let mut result = outcome.result_json(&data, &summary, &outputs, &digests);
    if let Some(env) = environment {
        result["environment"] = env;
    }
    Ok(result)
}

type Resumed = (Sae, FamilyTrainerState, Vec<String>);

/// The model, state and metric-stream lines (up to the step resumed from) of an earlier run's directory.
fn read_resume<F: Family>(
    dir: &Path,
    family: &F,
    digests: &mut Digests,
) -> Result<Resumed, TrainerError> {
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
    let mut parts =
        checkpoint::read_family_bytes(dir, family, &cfg, &weights).map_err(|e| input(&e))?;
    let (d_in, d_sae) = (parts.d_in, parts.d_sae);
    let spec = family.params(d_in, d_sae);
    let params: Vec<(&str, usize)> = spec.iter().map(|p| (p.name, p.init.len())).collect();
    let state_spec: Vec<(&str, usize)> =
        family.state().iter().map(|(n, v)| (*n, v.len())).collect();
    let state = FamilyTrainerState::from_bytes(
        &dir.join(STATE_FILE),
        &state,
        d_in,
        d_sae,
        &params,
        &state_spec,
    )
    .map_err(|e| input(&e))?;
    if state.family != family.name() {
        return Err(TrainerError::Input(format!(
            "{}: written by the {:?} family; this plugin resumes only {:?} runs",
            dir.join(STATE_FILE).display(),
            state.family,
            family.name()
        )));
    }
    parts.family = state.family_params.clone();
    let model = Sae::from_parts(family, parts).map_err(|e| {
        TrainerError::Input(format!(
            "{}: {e}",
            dir.join(checkpoint::WEIGHTS_FILE).display()
        ))
    })?;
    let done = state.snapshot.steps_done;
    let lines = stream
        .lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= done)
        })
        .map(str::to_owned)
        .collect();
    Ok((model, state, lines))
}
