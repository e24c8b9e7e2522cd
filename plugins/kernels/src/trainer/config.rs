//! The config keys every trainer has (trainer contract §1): their JSON Schema fragment, their parsing and the
//! checks a schema cannot state. A family adds its own keys beside these ([`split_family_keys`]).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::TrainerError;
use crate::backend::DeviceChoice;
use crate::bdec::BDecInit;

/// The keys of [`CommonConfig`], in schema order.
pub const COMMON_KEYS: [&str; 17] = [
    "d_sae",
    "seed",
    "steps",
    "epochs",
    "batch",
    "lr",
    "tensor",
    "rows",
    "eval",
    "eval_every",
    "log_every",
    "fvu_ceiling",
    "b_dec_init",
    "dead_window",
    "device",
    "tf32",
    "resume_from",
];

/// Largest seed a JSON number carries exactly (2^53 - 1).
pub const MAX_SEED: u64 = (1 << 53) - 1;

/// The defaults a family chooses for the common keys (the rest are the same for every family).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommonDefaults {
    /// `batch`.
    pub batch: usize,
    /// `lr`.
    pub lr: f64,
    /// `b_dec_init`, with the reason shown in the schema's description.
    pub b_dec_init: BDecInit,
    /// Why that `b_dec_init` default (e.g. which peer's convention it follows).
    pub b_dec_init_why: &'static str,
}

impl CommonDefaults {
    /// The defaults every family here shares, which follow SAELens 6: batch 4096, lr 1e-3, `b_dec = 0` (SAELens 6
    /// starts every SAE at zero and has no other `b_dec` init); `why` completes the schema's description.
    pub const fn saelens6(why: &'static str) -> CommonDefaults {
        CommonDefaults {
            batch: 4096,
            lr: 1e-3,
            b_dec_init: BDecInit::Zeros,
            b_dec_init_why: why,
        }
    }
}

/// A half-open row range `[start, end)` of a bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RowRange {
    /// First row.
    pub start: usize,
    /// One past the last row.
    pub end: usize,
}

impl RowRange {
    /// `{"start": .., "end": ..}`.
    pub fn to_json(self) -> Value {
        json!({"start": self.start, "end": self.end})
    }
}

/// Which rows the held-out metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EvalSpec {
    /// The last `fraction` of the selected rows (rounded up to whole rows), never trained on.
    Fraction(f64),
    /// Explicit rows of the bank, disjoint from the training rows.
    Rows(RowRange),
    /// All rows of the `eval_activations` input (must be `true`).
    Data(bool),
}

impl EvalSpec {
    /// The config form.
    pub fn to_json(self) -> Value {
        match self {
            EvalSpec::Fraction(f) => json!({"fraction": f}),
            EvalSpec::Rows(r) => json!({"rows": r.to_json()}),
            EvalSpec::Data(d) => json!({"data": d}),
        }
    }
}

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    /// Total optimiser steps.
    Steps(u64),
    /// Total passes over the training rows.
    Epochs(f64),
}

impl Length {
    /// Total steps for `train_rows` training rows: `steps`, or `ceil(epochs * train_rows / batch)`.
    pub fn total_steps(self, train_rows: usize, batch: usize) -> u64 {
        match self {
            Length::Steps(s) => s,
            Length::Epochs(e) => ((e * train_rows as f64) / batch as f64).ceil().max(1.0) as u64,
        }
    }
}

/// The common keys, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonConfig {
    /// Number of latents.
    pub d_sae: usize,
    /// Initialisation seed.
    pub seed: u64,
    /// `steps` or `epochs`.
    pub length: Length,
    /// Rows per step.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Tensor of a `.safetensors` bank.
    pub tensor: Option<String>,
    /// Rows of the bank used at all.
    pub rows: Option<RowRange>,
    /// Held-out rows.
    pub eval: EvalSpec,
    /// Held-out evaluation (and FVU divergence check) every N steps; 0 only at the end.
    pub eval_every: u64,
    /// A metric line every N steps (and the last).
    pub log_every: u64,
    /// Held-out FVU above this ends training as diverged.
    pub fvu_ceiling: f64,
    /// Decoder-bias initialisation.
    pub b_dec_init: BDecInit,
    /// Dead = not fired in the last N steps.
    pub dead_window: u64,
    /// Where to train (`crate::backend`).
    pub device: DeviceChoice,
    /// Allow TF32 in the CUDA encoder GEMM (no effect on the CPU).
    pub tf32: bool,
    /// Identity of the run resumed from (set by the host).
    pub resume_from: Option<Value>,
}

/// Default `eval_every`.
pub const DEFAULT_EVAL_EVERY: u64 = 0;
/// Default `log_every`.
pub const DEFAULT_LOG_EVERY: u64 = 10;
/// Default `fvu_ceiling`.
pub const DEFAULT_FVU_CEILING: f64 = 1.0;
/// Default `dead_window` (SAELens's `dead_feature_window`).
pub const DEFAULT_DEAD_WINDOW: u64 = 1000;
/// Default held-out fraction.
pub const DEFAULT_EVAL_FRACTION: f64 = 0.1;

fn row_range_schema(what: &str) -> Value {
    json!({
        "type": "object",
        "description": what,
        "required": ["start", "end"],
        "additionalProperties": false,
        "properties": {
            "start": {"type": "integer", "minimum": 0, "description": "first row (0-based)"},
            "end": {"type": "integer", "minimum": 1, "description": "one past the last row"}
        }
    })
}

/// The JSON Schema `properties` of the common keys with `defaults`. A family inserts its own keys, lists
/// `d_sae` and `seed` (plus its own required keys) under `required`, and sets `additionalProperties: false`.
pub fn common_properties(defaults: &CommonDefaults) -> Map<String, Value> {
    let mut rows = row_range_schema(
        "rows [start, end) of the bank used at all (training and default held-out rows); null: all rows",
    );
    rows["type"] = json!(["object", "null"]);
    rows["default"] = Value::Null;
    let props = json!({
        "d_sae": {"type": "integer", "minimum": 1, "description": "number of latents"},
        "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED,
                 "description": "initialisation seed (the host sets it from --seed)"},
        "steps": {"type": ["integer", "null"], "minimum": 1, "default": null,
                  "description": "total optimiser steps, counted from step 0 of the run's lineage (a resumed run \
                                  continues to this total); exactly one of steps and epochs is set"},
        "epochs": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": null,
                   "description": "total passes over the training rows: steps = ceil(epochs * training rows / \
                                   batch); exactly one of steps and epochs is set"},
        "batch": {"type": "integer", "minimum": 1, "default": defaults.batch, "description": "rows per step"},
        "lr": {"type": "number", "exclusiveMinimum": 0, "default": defaults.lr,
               "description": "Adam learning rate (betas 0.9, 0.999, eps 1e-8, constant schedule)"},
        "tensor": {"type": ["string", "null"], "default": null,
                   "description": "tensor name in a .safetensors bank; null: the file's only tensor"},
        "rows": rows,
        "eval": {
            "type": "object",
            "default": {"fraction": DEFAULT_EVAL_FRACTION},
            "description": "held-out rows, never trained on: {\"fraction\": f} the last f of the selected rows \
                            (rounded up to whole rows); {\"rows\": {\"start\", \"end\"}} explicit bank rows \
                            disjoint from the training rows (set `rows` to the training rows); {\"data\": true} all \
                            rows of the eval_activations input (--eval-data)",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": false,
            "properties": {
                "fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                             "description": "share of the selected rows held out (the last ones)"},
                "rows": row_range_schema("held-out rows [start, end) of the bank"),
                "data": {"const": true, "description": "evaluate on the eval_activations input"}
            }
        },
        "eval_every": {"type": "integer", "minimum": 0, "default": DEFAULT_EVAL_EVERY,
                       "description": "held-out evaluation (and the fvu_ceiling check) every N steps; 0: only at \
                                       the end"},
        "log_every": {"type": "integer", "minimum": 1, "default": DEFAULT_LOG_EVERY,
                      "description": "one metrics.jsonl line every N steps (and at the last step)"},
        "fvu_ceiling": {"type": "number", "exclusiveMinimum": 0, "default": DEFAULT_FVU_CEILING,
                        "description": "a held-out FVU above this (1.0: worse than predicting the column means) \
                                        and above the held-out FVU the run started from ends training with status \
                                        diverged"},
        "b_dec_init": {"enum": ["zeros", "mean", "geometric_median"], "default": defaults.b_dec_init.as_str(),
                       "description": format!(
                           "decoder-bias initialisation from the training rows: zeros, their mean, or their \
                            geometric median (Weiszfeld, at most {} iterations); default {}",
                           crate::bdec::GEOMETRIC_MEDIAN_MAX_ITER, defaults.b_dec_init_why)},
        "dead_window": {"type": "integer", "minimum": 1, "default": DEFAULT_DEAD_WINDOW,
                        "description": "a latent is dead when it has not fired in the last N steps (SAELens's \
                                        dead_feature_window is 1000)"},
        "device": {"enum": DeviceChoice::NAMES, "default": "auto",
                   "description": "where to train: auto (the GPU when a usable one is found and this family has a \
                                   CUDA engine, else the CPU; the choice and its reason are logged), cpu, or cuda \
                                   (the GPU or an error naming what is missing). No family has a CUDA engine yet, \
                                   so auto trains on the CPU and cuda fails"},
        "tf32": {"type": "boolean", "default": false,
                 "description": "allow TF32 in the CUDA encoder GEMM (faster, 10-bit mantissa products); it changes \
                                 the arithmetic, so it is part of the config hash. No effect on the CPU"},
        "resume_from": {"type": ["object", "null"], "default": null,
                        "description": "set by the host only: identity of the run resumed from (campaign, run id, \
                                        digests)"}
    });
    match props {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}

/// One half of a split config object (see [`split_family_keys`]).
pub type ConfigHalf = Map<String, Value>;

/// Splits a request's config object into the family's keys (`family_keys`) and the common ones; any other key is
/// an error naming it and listing the keys there are.
pub fn split_family_keys(
    plugin: &str,
    config: &Value,
    family_keys: &[&str],
) -> Result<(ConfigHalf, ConfigHalf), TrainerError> {
    let obj = config.as_object().ok_or_else(|| {
        TrainerError::config(
            "",
            format!("the {plugin} config must be a JSON object, not {config}"),
        )
    })?;
    let (mut own, mut common) = (Map::new(), Map::new());
    for (k, v) in obj {
        if family_keys.contains(&k.as_str()) {
            own.insert(k.clone(), v.clone());
        } else if COMMON_KEYS.contains(&k.as_str()) {
            common.insert(k.clone(), v.clone());
        } else {
            let mut all: Vec<&str> = COMMON_KEYS.to_vec();
            all.extend_from_slice(family_keys);
            return Err(TrainerError::config(
                k,
                format!(
                    "is not a {plugin} config key; the keys are: {}",
                    all.join(", ")
                ),
            ));
        }
    }
    Ok((own, common))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    d_sae: Option<Value>,
    seed: Option<Value>,
    #[serde(default)]
    steps: Option<Value>,
    #[serde(default)]
    epochs: Option<Value>,
    #[serde(default)]
    batch: Option<Value>,
    #[serde(default)]
    lr: Option<Value>,
    #[serde(default)]
    tensor: Option<Value>,
    #[serde(default)]
    rows: Option<Value>,
    #[serde(default)]
    eval: Option<Value>,
    #[serde(default)]
    eval_every: Option<Value>,
    #[serde(default)]
    log_every: Option<Value>,
    #[serde(default)]
    fvu_ceiling: Option<Value>,
    #[serde(default)]
    b_dec_init: Option<Value>,
    #[serde(default)]
    dead_window: Option<Value>,
    #[serde(default)]
    device: Option<Value>,
    #[serde(default)]
    tf32: Option<Value>,
    #[serde(default)]
    resume_from: Option<Value>,
}

/// A positive or non-negative integer key (`min` the smallest allowed).
pub fn int_key(key: &str, v: &Value, min: u64) -> Result<u64, TrainerError> {
    match v.as_u64() {
        Some(n) if n >= min => Ok(n),
        _ => Err(TrainerError::config(
            key,
            format!("= {v} is invalid: must be an integer >= {min}"),
        )),
    }
}

/// A finite number key `> 0`.
pub fn positive_key(key: &str, v: &Value) -> Result<f64, TrainerError> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(TrainerError::config(
            key,
            format!("= {v} is invalid: must be a finite number > 0"),
        )),
    }
}

/// SAELens 6's `SAETrainer` clips the global gradient norm at 1 for every architecture; with SAELens's decoder
/// initialisation (row norm 0.1) it closed TopK's held-out FVU gap to SAELens (sae-topk's config module has the
/// figures), so every trainer clips at 1 by default.
pub const DEFAULT_GRAD_CLIP: f64 = 1.0;

/// The JSON Schema of every trainer's `grad_clip` key (read by [`grad_clip_key`]).
pub fn grad_clip_property() -> Value {
    json!({"type": ["number", "null"], "exclusiveMinimum": 0, "default": DEFAULT_GRAD_CLIP,
           "description": "clip the global L2 norm of all gradients to this value before each Adam step \
                           (SAELens clips at 1 for every architecture); null: no clipping (the older default)"})
}

/// The schema of the initialisation keys of the trainers whose encoder starts as a scaled copy of the decoder's
/// transpose (TopK, BatchTopK): `dec_init_norm` (default `dec_init_norm`), `enc_init_scale` and `grad_clip`.
pub fn insert_init_properties(props: &mut Map<String, Value>, dec_init_norm: f64) {
    props.insert(
        "dec_init_norm".into(),
        json!({"type": "number", "exclusiveMinimum": 0, "default": dec_init_norm,
               "description": "L2 norm of each initial decoder row (SAELens's decoder_init_norm, 0.1); the encoder \
                               starts as enc_init_scale times the decoder's transpose, so this also sets the \
                               encoder's initial scale (decoder rows are renormalised to 1 after every step). 1: \
                               the older default"}),
    );
    props.insert(
        "enc_init_scale".into(),
        json!({"type": "number", "exclusiveMinimum": 0, "default": 1.0,
               "description": "the encoder starts as enc_init_scale times the decoder's transpose"}),
    );
    props.insert("grad_clip".into(), grad_clip_property());
}

/// The family key `grad_clip` of `own`: absent is [`DEFAULT_GRAD_CLIP`], `null` is no clipping (the older
/// behaviour), else a finite number `> 0`.
pub fn grad_clip_key(own: &Map<String, Value>) -> Result<Option<f64>, TrainerError> {
    match own.get("grad_clip") {
        Some(Value::Null) => Ok(None),
        None => Ok(Some(DEFAULT_GRAD_CLIP)),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
            _ => Err(TrainerError::config(
                "grad_clip",
                format!("= {v} is invalid: must be a finite number > 0, or null for no clipping"),
            )),
        },
    }
}

fn row_range(key: &str, v: &Value) -> Result<RowRange, TrainerError> {
    let r: RowRange = serde_json::from_value(v.clone()).map_err(|e| {
        TrainerError::config(
            key,
            format!("= {v} is invalid: must be {{\"start\", \"end\"}} ({e})"),
        )
    })?;
    if r.start >= r.end {
        return Err(TrainerError::config(
            key,
            format!("= {v} is invalid: start must be below end"),
        ));
    }
    Ok(r)
}

fn present(v: Option<Value>) -> Option<Value> {
    v.filter(|v| !v.is_null())
}

impl CommonConfig {
    /// Parses the common half of a config (`common`, from [`split_family_keys`]); missing keys take their
    /// defaults, and every error names the key.
    pub fn parse(
        common: Map<String, Value>,
        defaults: &CommonDefaults,
    ) -> Result<Self, TrainerError> {
        let raw: Raw = serde_json::from_value(Value::Object(common))
            .map_err(|e| TrainerError::config("", e.to_string()))?;
        let d_sae = raw
            .d_sae
            .ok_or_else(|| TrainerError::config("d_sae", "is required (number of latents)"))?;
        let d_sae = int_key("d_sae", &d_sae, 1)? as usize;
        let seed = raw.seed.ok_or_else(|| {
            TrainerError::config("seed", "is required (the host sets it from --seed)")
        })?;
        let seed = int_key("seed", &seed, 0)?;
        if seed > MAX_SEED {
            return Err(TrainerError::config(
                "seed",
                format!("= {seed} is invalid: must be at most 2^53 - 1 = {MAX_SEED}"),
            ));
        }
        let length = match (present(raw.steps), present(raw.epochs)) {
            (Some(s), None) => Length::Steps(int_key("steps", &s, 1)?),
            (None, Some(e)) => Length::Epochs(positive_key("epochs", &e)?),
            (Some(_), Some(_)) => {
                return Err(TrainerError::config(
                    "steps",
                    "and `epochs` are both set; set exactly one of them",
                ));
            }
            (None, None) => {
                return Err(TrainerError::config(
                    "steps",
                    "is not set, nor is `epochs`; set exactly one of them (e.g. --set steps=1000)",
                ));
            }
        };
        let batch = match present(raw.batch) {
            Some(v) => int_key("batch", &v, 1)? as usize,
            None => defaults.batch,
        };
        let lr = match present(raw.lr) {
            Some(v) => positive_key("lr", &v)?,
            None => defaults.lr,
        };
        let tensor = match present(raw.tensor) {
            Some(Value::String(s)) => Some(s),
            Some(v) => {
                return Err(TrainerError::config(
                    "tensor",
                    format!("= {v} is invalid: must be a string or null"),
                ));
            }
            None => None,
        };
        let rows = present(raw.rows)
            .map(|v| row_range("rows", &v))
            .transpose()?;
        let eval = match present(raw.eval) {
            None => EvalSpec::Fraction(DEFAULT_EVAL_FRACTION),
            Some(v) => {
                let spec: EvalSpec = serde_json::from_value(v.clone()).map_err(|_| {
                    TrainerError::config(
                        "eval",
                        format!(
                            "= {v} is invalid: must be exactly one of {{\"fraction\": f}}, {{\"rows\": {{\"start\", \
                             \"end\"}}}}, {{\"data\": true}}"
                        ),
                    )
                })?;
                match spec {
                    EvalSpec::Fraction(f) if !(f > 0.0 && f < 1.0) => {
                        return Err(TrainerError::config(
                            "eval.fraction",
                            format!("= {f} is invalid: must be strictly between 0 and 1"),
                        ));
                    }
                    EvalSpec::Rows(_) => {
                        row_range("eval.rows", &v["rows"])?;
                    }
                    EvalSpec::Data(false) => {
                        return Err(TrainerError::config(
                            "eval.data",
                            "= false is invalid: only true (evaluate on the eval_activations input)",
                        ));
                    }
                    _ => {}
                }
                spec
            }
        };
        let eval_every = match present(raw.eval_every) {
            Some(v) => int_key("eval_every", &v, 0)?,
            None => DEFAULT_EVAL_EVERY,
        };
        let log_every = match present(raw.log_every) {
            Some(v) => int_key("log_every", &v, 1)?,
            None => DEFAULT_LOG_EVERY,
        };
        let fvu_ceiling = match present(raw.fvu_ceiling) {
            Some(v) => positive_key("fvu_ceiling", &v)?,
            None => DEFAULT_FVU_CEILING,
        };
        let b_dec_init = match present(raw.b_dec_init) {
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                TrainerError::config(
                    "b_dec_init",
                    format!(
                        "= {v} is invalid: must be one of \"zeros\", \"mean\", \"geometric_median\""
                    ),
                )
            })?,
            None => defaults.b_dec_init,
        };
        let dead_window = match present(raw.dead_window) {
            Some(v) => int_key("dead_window", &v, 1)?,
            None => DEFAULT_DEAD_WINDOW,
        };
        let device = match present(raw.device) {
            None => DeviceChoice::Auto,
            Some(v) => v.as_str().and_then(DeviceChoice::parse).ok_or_else(|| {
                TrainerError::config(
                    "device",
                    format!("= {v} is invalid: must be one of \"auto\", \"cpu\", \"cuda\""),
                )
            })?,
        };
        let tf32 = match present(raw.tf32) {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(v) => {
                return Err(TrainerError::config(
                    "tf32",
                    format!("= {v} is invalid: must be true or false"),
                ));
            }
        };
        let resume_from = match present(raw.resume_from) {
            Some(v @ Value::Object(_)) => Some(v),
            Some(v) => {
                return Err(TrainerError::config(
                    "resume_from",
                    format!("= {v} is invalid: must be an object or null (the host sets it)"),
                ));
            }
            None => None,
        };
        Ok(CommonConfig {
            d_sae,
            seed,
            length,
            batch,
            lr,
            tensor,
            rows,
            eval,
            eval_every,
            log_every,
            fvu_ceiling,
            b_dec_init,
            dead_window,
            device,
            tf32,
            resume_from,
        })
    }

    /// The effective config of the common keys (defaults filled in), as the host records it.
    pub fn to_json(&self) -> Map<String, Value> {
        let (steps, epochs) = match self.length {
            Length::Steps(s) => (json!(s), Value::Null),
            Length::Epochs(e) => (Value::Null, json!(e)),
        };
        let v = json!({
            "d_sae": self.d_sae,
            "seed": self.seed,
            "steps": steps,
            "epochs": epochs,
            "batch": self.batch,
            "lr": self.lr,
            "tensor": self.tensor,
            "rows": self.rows.map(RowRange::to_json),
            "eval": self.eval.to_json(),
            "eval_every": self.eval_every,
            "log_every": self.log_every,
            "fvu_ceiling": self.fvu_ceiling,
            "b_dec_init": self.b_dec_init.as_str(),
            "dead_window": self.dead_window,
            "device": self.device.as_str(),
            "tf32": self.tf32,
            "resume_from": self.resume_from,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!("a JSON object literal"),
        }
    }
}

/// The part of an effective config that a resumed run must share with the run it continues: everything except
/// `steps`, `epochs`, `resume_from` and `device` (a run may continue on another backend; the arithmetic is the
/// same), as compact JSON with object keys sorted at every level. `tf32` counts only when true, so that runs
/// recorded before the key existed (which never used TF32) still resume.
pub fn resume_fingerprint(effective: &Map<String, Value>) -> String {
    let mut m = effective.clone();
    for k in ["steps", "epochs", "resume_from", "device"] {
        m.remove(k);
    }
    if m.get("tf32") == Some(&Value::Bool(false)) {
        m.remove("tf32");
    }
    serde_json::to_string(&sorted(&Value::Object(m))).expect("JSON values serialise")
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Compares a resumed run's recorded fingerprint with this run's; the first key that differs is an error naming
/// both values.
pub fn check_resume_fingerprint(
    recorded: &str,
    current: &Map<String, Value>,
) -> Result<(), TrainerError> {
    let now = resume_fingerprint(current);
    if now == recorded {
        return Ok(());
    }
    let then: Map<String, Value> = serde_json::from_str(recorded).map_err(|e| {
        TrainerError::Input(format!(
            "the resumed run's trainer state holds a config that is not a JSON object ({e})"
        ))
    })?;
    let now: Map<String, Value> = serde_json::from_str(&now).expect("written above");
    let mut keys: Vec<&String> = then.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (a, b) = (then.get(k), now.get(k));
        if a != b {
            let show = |v: Option<&Value>| v.map_or("(absent)".to_string(), Value::to_string);
            return Err(TrainerError::config(
                k,
                format!(
                    "= {} differs from the resumed run's {}; a resumed run keeps every key but steps/epochs",
                    show(b),
                    show(a)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grad_clip_defaults_to_one_null_turns_it_off_and_bad_values_are_named() {
        let own = |v: Option<Value>| -> Map<String, Value> {
            v.map(|v| Map::from_iter([("grad_clip".to_owned(), v)]))
                .unwrap_or_default()
        };
        assert_eq!(grad_clip_key(&own(None)).unwrap(), Some(DEFAULT_GRAD_CLIP));
        assert_eq!(grad_clip_key(&own(Some(Value::Null))).unwrap(), None);
        assert_eq!(grad_clip_key(&own(Some(json!(0.5)))).unwrap(), Some(0.5));
        for bad in [json!(0), json!(-1), json!("1")] {
            let e = grad_clip_key(&own(Some(bad.clone())))
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                format!(
                    "config key `grad_clip` = {bad} is invalid: must be a finite number > 0, or null for no clipping"
                )
            );
        }
    }
}
