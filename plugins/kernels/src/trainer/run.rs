//! The training driver: steps to the config's total, the metric stream and progress, held-out evaluation, and the
//! run's status (trainer contract §4–§6):
//!
//! - **diverged**: after a step, a non-finite loss term (`loss.<term>`) or parameter (`w_enc`, `b_enc`, `w_dec`,
//!   `b_dec`), checked every step; or a held-out FVU that is non-finite, or above both `fvu_ceiling` and the
//!   held-out FVU this session started from (`eval.fvu`), checked every `eval_every` steps and after the last.
//!   Training stops at that step. The start matters because an untrained model can begin above the ceiling (with
//!   `b_dec = 0` on activations whose mean is large, FVU starts well above 1), and a short run that improves on it
//!   has not diverged.
//! - **interrupted**: `stop()` was true after a step before the total was reached; training stops after that step.
//! - **ok**: otherwise.
//!
//! Whatever the status, the caller then writes every output, so a diverged run is evidence and an interrupted one
//! can be resumed.

use std::time::Instant;

use serde_json::{Value, json};

use super::data::Dataset;
use super::stream::{Line, MetricStream, progress_text};
use super::{TrainerError, num};
use crate::error::KernelError;
use crate::metrics::EvalMetrics;
use crate::train::batch_start;

/// What one step reports (all per element, as the stream and the summary).
#[derive(Debug, Clone, PartialEq)]
pub struct StepStats {
    /// Each optimised loss term, per element (for TopK `mse` and `aux`).
    pub loss: Vec<(&'static str, f64)>,
    /// The batch's reconstruction MSE per element.
    pub mse: f64,
    /// The batch's L0.
    pub l0: f64,
}

/// What a family's training run offers the driver.
pub trait Session {
    /// One optimiser step on `batch` (`[rows, d_in]`).
    fn step(&mut self, batch: &[f32]) -> Result<StepStats, KernelError>;
    /// Metrics of the current model on `x`.
    fn evaluate(&self, x: &[f32]) -> Result<EvalMetrics, KernelError>;
    /// Optimiser steps taken in the run's lineage.
    fn steps_done(&self) -> u64;
    /// The first parameter holding a NaN or infinity.
    fn non_finite_parameter(&self) -> Option<&'static str>;
    /// Share of latents not fired in the last `dead_window` steps.
    fn train_dead_fraction(&self) -> f64;
}

/// The schedule the driver follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Total steps of the lineage.
    pub total_steps: u64,
    /// Rows per step.
    pub batch: usize,
    /// Learning rate (for the stream).
    pub lr: f64,
    /// Held-out evaluation every N steps (0: only at the end).
    pub eval_every: u64,
    /// A stream line every N steps.
    pub log_every: u64,
    /// FVU ceiling.
    pub fvu_ceiling: f64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Reached its total steps.
    Ok,
    /// Stopped by a non-finite quantity or an FVU above the ceiling.
    Diverged,
    /// Stopped by a stop request.
    Interrupted,
}

impl Status {
    /// `ok`, `diverged` or `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Diverged => "diverged",
            Status::Interrupted => "interrupted",
        }
    }
}

/// Why a run diverged.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    /// The step (1-based) after which it was detected.
    pub step: u64,
    /// `loss.<term>`, a parameter name, or `eval.fvu`.
    pub quantity: String,
    /// The offending value (`None` for NaN/infinity or a whole parameter).
    pub value: Option<f64>,
    /// A sentence for the user.
    pub message: String,
}

impl Detail {
    /// `{"step", "quantity", "value", "message"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "step": self.step,
            "quantity": self.quantity,
            "value": self.value.map_or(Value::Null, num),
            "message": self.message,
        })
    }
}

/// What [`drive`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct DriveOutcome {
    /// How the run ended.
    pub status: Status,
    /// Why, when it diverged.
    pub detail: Option<Detail>,
    /// Steps of the lineage done.
    pub steps_done: u64,
    /// Steps taken by this process.
    pub steps_here: u64,
    /// Wall time of this process's steps (with logging, without the final evaluations).
    pub wall_s: f64,
    /// Rows per second over this process's steps after the first (a warm-up); all of them when only one; NaN when
    /// none.
    pub rows_per_s: f64,
    /// Seconds spent building and writing stream lines and progress messages (the stream's cost).
    pub stream_s: f64,
    /// Final metrics on the held-out rows.
    pub eval: EvalMetrics,
    /// Final metrics on the training rows.
    pub train: EvalMetrics,
    /// Training dead fraction at the end.
    pub train_dead_fraction: f64,
}

fn kernel(e: KernelError) -> TrainerError {
    TrainerError::Failed(format!("training failed: {e}"))
}

/// The held-out FVU check: diverged when `ev`'s FVU is not finite, or above both `ceiling` and `start` (the FVU
/// at the start of this session).
fn fvu_check(ev: &EvalMetrics, step: u64, ceiling: f64, start: f64) -> Option<Detail> {
    let fvu = ev.reconstruction.fvu;
    if fvu.is_finite() && (fvu <= ceiling || fvu <= start) {
        return None;
    }
    Some(Detail {
        step,
        quantity: "eval.fvu".into(),
        value: fvu.is_finite().then_some(fvu),
        message: if fvu.is_finite() {
            format!(
                "held-out FVU {fvu:.4} at step {step} is above fvu_ceiling {ceiling} (worse than predicting the \
                 column means when 1) and above the {start:.4} this run started from; lower lr or raise \
                 fvu_ceiling"
            )
        } else {
            format!("held-out FVU is not finite at step {step}; lower lr")
        },
    })
}

/// Where the driver sends progress and asks whether to stop (a plugin wraps its `Progress`).
pub trait Hooks {
    /// A progress event: `done` of `total` steps, and the stream's quantities as text.
    fn report(&mut self, done: u64, total: u64, message: &str);
    /// True once the run should stop after the current step (SIGINT/SIGTERM in a plugin).
    fn stop_requested(&self) -> bool;
}

/// Hooks that report nothing and never stop (benchmarks, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Hooks for Silent {
    fn report(&mut self, _: u64, _: u64, _: &str) {}
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Steps `session` from its current step to `plan.total_steps` over `data.train` (sequential batches, see
/// [`batch_start`]), writing stream lines to `stream` and progress through `hooks.report` (at most every 50 ms,
/// plus the last step); `hooks.stop_requested()` is polled after every step.
pub fn drive(
    session: &mut dyn Session,
    plan: &Plan,
    data: &Dataset,
    stream: &mut MetricStream,
    hooks: &mut dyn Hooks,
) -> Result<DriveOutcome, TrainerError> {
    let d_in = data.d_in;
    let n_train = data.train_len();
    // Where this session starts, for the FVU check (one held-out evaluation, outside the timed span).
    let start_fvu = session
        .evaluate(&data.eval)
        .map_err(kernel)?
        .reconstruction
        .fvu;
    let t0 = Instant::now();
    let mut t_warm = t0;
    let (mut last_line_t, mut last_line_step) = (t0, session.steps_done());
    let mut last_report: Option<Instant> = None;
    let mut stream_s = 0.0;
    let mut status = Status::Ok;
    let mut detail = None;
    let mut steps_here = 0u64;
    while session.steps_done() < plan.total_steps {
        let s = session.steps_done();
        let i = batch_start(s, plan.batch, n_train);
        let stats = session
            .step(&data.train[i * d_in..(i + plan.batch) * d_in])
            .map_err(kernel)?;
        steps_here += 1;
        if steps_here == 1 {
            t_warm = Instant::now();
        }
        let step = s + 1;
        if let Some((name, v)) = stats.loss.iter().find(|(_, v)| !v.is_finite()) {
            status = Status::Diverged;
            detail = Some(Detail {
                step,
                quantity: format!("loss.{name}"),
                value: None,
                message: format!("loss term {name} became {v} at step {step}; lower lr"),
            });
        } else if let Some(p) = session.non_finite_parameter() {
            status = Status::Diverged;
            detail = Some(Detail {
                step,
                quantity: p.into(),
                value: None,
                message: format!(
                    "parameter {p} holds a NaN or infinity after step {step}; lower lr"
                ),
            });
        }
        let mut eval = None;
        if status == Status::Ok && plan.eval_every > 0 && step.is_multiple_of(plan.eval_every) {
            let ev = session.evaluate(&data.eval).map_err(kernel)?;
            if let Some(d) = fvu_check(&ev, step, plan.fvu_ceiling, start_fvu) {
                status = Status::Diverged;
                detail = Some(d);
            }
            eval = Some(ev);
        }
        let stopping = status == Status::Ok && step < plan.total_steps && hooks.stop_requested();
        if stopping {
            status = Status::Interrupted;
        }
        let last = step == plan.total_steps || status != Status::Ok;
        let tl = Instant::now();
        let log = step.is_multiple_of(plan.log_every) || last || eval.is_some();
        let due = last || last_report.is_none_or(|t| t.elapsed().as_millis() >= 50);
        if log || due {
            let dt = (tl - last_line_t).as_secs_f64();
            let line = Line {
                step,
                elapsed_s: (tl - t0).as_secs_f64(),
                rows_per_s: ((step - last_line_step) as f64 * plan.batch as f64) / dt,
                lr: plan.lr,
                loss: &stats.loss,
                mse: stats.mse,
                l0: stats.l0,
                dead_fraction: session.train_dead_fraction(),
                eval: eval.as_ref(),
            };
            if log {
                stream.write(&line)?;
                last_line_t = tl;
                last_line_step = step;
            }
            if due {
                hooks.report(step, plan.total_steps, &progress_text(&line));
                last_report = Some(Instant::now());
            }
            stream_s += tl.elapsed().as_secs_f64();
        }
        if status != Status::Ok {
            break;
        }
    }
    let end = Instant::now();
    let wall_s = (end - t0).as_secs_f64();
    let rows_per_s = match steps_here {
        0 => f64::NAN, // nothing to time (a resume at its total): null in JSON
        1 => plan.batch as f64 / wall_s,
        n => ((n - 1) as f64 * plan.batch as f64) / (end - t_warm).as_secs_f64(),
    };
    let steps_done = session.steps_done();
    let eval = session.evaluate(&data.eval).map_err(kernel)?;
    if status == Status::Ok
        && let Some(d) = fvu_check(&eval, steps_done, plan.fvu_ceiling, start_fvu)
    {
        status = Status::Diverged;
        detail = Some(d);
    }
    let train = session.evaluate(&data.train).map_err(kernel)?;
    Ok(DriveOutcome {
        status,
        detail,
        steps_done,
        steps_here,
        wall_s,
        rows_per_s,
        stream_s,
        eval,
        train,
        train_dead_fraction: session.train_dead_fraction(),
    })
}

/// The `husai_kernels::metrics` definitions, as the summary states them.
pub const DEFINITIONS: &str = "husai_kernels::metrics: MSE = mean squared error per element; FVU = \
    sum((x - x_hat)^2) / sum((x - mean)^2) with per-column means of the evaluated rows; L0 = mean nonzero latents \
    per row; dead_fraction = share of latents that fired on none of the evaluated rows; train_dead_fraction = share \
    of latents that have not fired in the last dead_window training steps";

fn block(m: &EvalMetrics) -> serde_json::Map<String, Value> {
    let v = json!({
        "mse": num(m.reconstruction.mse),
        "fvu": num(m.reconstruction.fvu),
        "l0": num(m.l0),
        "dead_fraction": num(m.dead_fraction),
    });
    match v {
        Value::Object(mut o) => {
            // Family figures (`l0_train_rule`, `threshold`, ...) after the shared four.
            for (name, value) in &m.figures {
                o.insert(name.clone(), num(*value));
            }
            o
        }
        _ => unreachable!(),
    }
}

impl DriveOutcome {
    /// `metrics.json` (trainer contract §4).
    pub fn summary_json(&self, data: &Dataset) -> Value {
        let mut train = serde_json::Map::new();
        train.insert("rows".into(), data.train_rows.to_json());
        train.extend(block(&self.train));
        let mut eval = serde_json::Map::new();
        eval.insert("rows".into(), data.eval_rows.to_json());
        eval.insert("source".into(), json!(data.eval_source));
        eval.extend(block(&self.eval));
        json!({
            "status": self.status.as_str(),
            "steps_done": self.steps_done,
            "train": train,
            "eval": eval,
            "train_dead_fraction": num(self.train_dead_fraction),
            "wall_s": num(self.wall_s),
            "rows_per_s": num(self.rows_per_s),
            "definitions": DEFINITIONS,
        })
    }

    /// The result JSON `run` returns (trainer contract §5); `summary` is [`DriveOutcome::summary_json`]'s value.
    pub fn result_json(
        &self,
        data: &Dataset,
        summary: &Value,
        outputs: &[&str],
        digests: &super::Digests,
    ) -> Value {
        let mut metrics = summary.clone();
        if let Some(m) = metrics.as_object_mut() {
            for k in ["definitions", "status", "steps_done"] {
                m.remove(k);
            }
        }
        json!({
            "status": self.status.as_str(),
            "status_detail": self.detail.as_ref().map_or(Value::Null, Detail::to_json),
            "steps_done": self.steps_done,
            "outputs": outputs,
            "read_sha256": digests,
            "dataset": data.dataset_json(),
            "metrics": metrics,
        })
    }
}
