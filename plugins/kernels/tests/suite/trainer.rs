//! The family-agnostic trainer half (`husai_kernels::trainer`) driven with TopK on the engine: the metric stream's
//! fields, held-out rows, divergence, interruption and exact continuation.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use husai_kernels::engine::{EngineConfig, FamilyTrainer, InitConfig};
use husai_kernels::families::TopK;
use husai_kernels::synth::{SynthConfig, generate};
use husai_kernels::trainer::config::CommonDefaults;
use husai_kernels::trainer::{
    CommonConfig, Dataset, Digests, Hooks, MetricStream, Plan, Silent, Status, TrainerError, drive,
};
use husai_kernels::{AuxKConfig, activations, bdec::BDecInit};
use serde_json::{Value, json};

const D_IN: usize = 32;

struct Bank {
    _dir: tempfile::TempDir,
    path: PathBuf,
    out: PathBuf,
}

fn bank(rows: usize) -> Bank {
    bank_shifted(rows, 0.0)
}

/// The synthetic bank with `shift` added to every value.
fn bank_shifted(rows: usize, shift: f32) -> Bank {
    let mut data = generate(&SynthConfig {
        rows,
        d_in: D_IN,
        n_features: 96,
        l0: 3,
        coef_min: 0.5,
        coef_max: 1.5,
        seed: 4,
    })
    .unwrap();
    data.x.iter_mut().for_each(|v| *v += shift);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.npy");
    activations::write_npy_f32(&path, rows, D_IN, &data.x).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    Bank {
        _dir: dir,
        path,
        out,
    }
}

const DEFAULTS: CommonDefaults = CommonDefaults {
    batch: 64,
    lr: 1e-3,
    b_dec_init: BDecInit::Mean,
    b_dec_init_why: "test",
};

fn common(v: Value) -> CommonConfig {
    CommonConfig::parse(v.as_object().unwrap().clone(), &DEFAULTS).unwrap()
}

fn load(b: &Bank, cfg: &CommonConfig) -> Result<(Dataset, Digests), TrainerError> {
    let inputs = BTreeMap::from([("activations".to_string(), b.path.clone())]);
    let mut digests = Digests::new();
    Dataset::load(&inputs, cfg, None, &mut digests).map(|d| (d, digests))
}

fn trainer(cfg: &CommonConfig, data: &Dataset) -> FamilyTrainer<TopK> {
    let engine = EngineConfig {
        batch: cfg.batch,
        seed: cfg.seed,
        threads: 2,
        adam: husai_kernels::adam::AdamConfig {
            lr: cfg.lr as f32,
            ..Default::default()
        },
        aux_k: Some(AuxKConfig {
            k_aux: 16,
            coeff: 1.0 / 32.0,
        }),
        dead_window: cfg.dead_window,
        b_dec_init: cfg.b_dec_init,
        init: InitConfig {
            dec_norm: 1.0,
            enc_scale: 1.0,
        },
        grad_clip: None,
        ..EngineConfig::new(cfg.d_sae)
    };
    let mut t = FamilyTrainer::new(engine, TopK::new(4, cfg.d_sae), D_IN, false).unwrap();
    t.init_b_dec(&data.train).unwrap();
    t
}

fn plan(cfg: &CommonConfig, steps: u64) -> Plan {
    Plan {
        total_steps: steps,
        batch: cfg.batch,
        lr: cfg.lr,
        eval_every: cfg.eval_every,
        log_every: cfg.log_every,
        fvu_ceiling: cfg.fvu_ceiling,
    }
}

fn lines(b: &Bank) -> Vec<Value> {
    std::fs::read_to_string(b.out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Stops after the step at which `stop_requested` is asked for the `after`-th time.
struct StopAfter {
    asked: Cell<u64>,
    after: u64,
    reports: Vec<(u64, u64, String)>,
}

impl Hooks for StopAfter {
    fn report(&mut self, done: u64, total: u64, message: &str) {
        self.reports.push((done, total, message.to_string()));
    }
    fn stop_requested(&self) -> bool {
        self.asked.set(self.asked.get() + 1);
        self.asked.get() >= self.after
    }
}

#[test]
fn every_stream_line_has_exactly_the_contract_fields_and_types() {
    let b = bank(1000);
    let cfg = common(
        json!({"d_sae": 512, "seed": 1, "steps": 25, "log_every": 4, "eval_every": 10,
                            "dead_window": 2}),
    );
    let (data, _) = load(&b, &cfg).unwrap();
    let mut t = trainer(&cfg, &data);
    let mut stream = MetricStream::create(&b.out.join("metrics.jsonl")).unwrap();
    let mut hooks = StopAfter {
        asked: Cell::new(0),
        after: u64::MAX,
        reports: vec![],
    };
    let out = drive(&mut t, &plan(&cfg, 25), &data, &mut stream, &mut hooks).unwrap();
    drop(stream);
    assert_eq!((out.status, out.steps_done), (Status::Ok, 25));
    let lines = lines(&b);
    let steps: Vec<u64> = lines.iter().map(|l| l["step"].as_u64().unwrap()).collect();
    // Every 4th step, the evaluation steps 10 and 20, and the last.
    assert_eq!(steps, [4, 8, 10, 12, 16, 20, 24, 25]);
    let number = |v: &Value| v.is_f64() || v.is_u64();
    for l in &lines {
        let o = l.as_object().unwrap();
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        keys.sort();
        let step = l["step"].as_u64().unwrap();
        let mut want = vec![
            "dead_fraction",
            "elapsed_s",
            "l0",
            "loss",
            "lr",
            "mse",
            "rows_per_s",
            "step",
        ];
        if step % 10 == 0 {
            want.insert(2, "eval");
            let e = l["eval"].as_object().unwrap();
            assert_eq!(e.keys().collect::<Vec<_>>(), ["mse", "fvu", "l0"]);
            assert!(e.values().all(number), "{l}");
        }
        assert_eq!(keys, want, "line {l}");
        for k in [
            "elapsed_s",
            "rows_per_s",
            "lr",
            "mse",
            "l0",
            "dead_fraction",
        ] {
            assert!(number(&l[k]), "{k} in {l}");
        }
        let loss = l["loss"].as_object().unwrap();
        assert_eq!(loss.keys().collect::<Vec<_>>(), ["mse", "aux"]);
        assert!(loss.values().all(number));
        // One set of units: the stream's mse is the per-element loss term.
        assert_eq!(l["mse"], l["loss"]["mse"]);
        assert!((0.0..=1.0).contains(&l["dead_fraction"].as_f64().unwrap()));
    }
    assert!(
        lines
            .iter()
            .any(|l| l["loss"]["aux"].as_f64().unwrap() > 0.0),
        "AuxK never engaged with dead_window 2"
    );
    // Progress text carries the same quantities, and the last report is the last step.
    let (done, total, msg) = hooks.reports.last().unwrap();
    assert_eq!((*done, *total), (25, 25));
    let last = lines.last().unwrap();
    let short = husai_kernels::trainer::stream::short(last["mse"].as_f64().unwrap());
    assert!(msg.starts_with(&format!("mse {short} aux ")), "{msg}");
    assert!(msg.contains(" l0 4.0 dead "), "{msg}");
    // The stream costs little even at one line every 4 steps.
    assert!(
        out.stream_s < out.wall_s,
        "{} vs {}",
        out.stream_s,
        out.wall_s
    );
}

#[test]
fn held_out_rows_are_the_last_tenth_and_never_trained_on() {
    let b = bank(1000);
    let cfg = common(json!({"d_sae": 64, "seed": 1, "steps": 5}));
    let (data, digests) = load(&b, &cfg).unwrap();
    assert_eq!(
        (
            data.train_rows.start,
            data.train_rows.end,
            data.eval_rows.start,
            data.eval_rows.end
        ),
        (0, 900, 900, 1000)
    );
    assert_eq!(data.eval_source, "activations");
    assert_eq!(digests.keys().collect::<Vec<_>>(), ["activations"]);
    // The rows of a selection, explicit eval rows, and the errors that name the key.
    let cfg = common(
        json!({"d_sae": 64, "seed": 1, "steps": 5, "rows": {"start": 100, "end": 600},
                            "eval": {"rows": {"start": 800, "end": 1000}}}),
    );
    let (data, _) = load(&b, &cfg).unwrap();
    assert_eq!((data.train_rows.start, data.train_rows.end), (100, 600));
    assert_eq!(data.eval.len(), 200 * D_IN);
    let cfg = common(
        json!({"d_sae": 64, "seed": 1, "steps": 5, "eval": {"rows": {"start": 800, "end": 1000}}}),
    );
    let e = load(&b, &cfg).unwrap_err().to_string();
    assert!(
        e.starts_with("config key `eval.rows` = 800..1000 overlaps the training rows 0..1000"),
        "{e}"
    );
    let cfg = common(json!({"d_sae": 64, "seed": 1, "steps": 5, "batch": 950}));
    let e = load(&b, &cfg).unwrap_err().to_string();
    assert!(
        e.starts_with("config key `batch` = 950 is more than the 900 training rows"),
        "{e}"
    );
    let cfg = common(json!({"d_sae": 64, "seed": 1, "steps": 5, "eval": {"data": true}}));
    let e = load(&b, &cfg).unwrap_err().to_string();
    assert!(e.contains("names no \"eval_activations\" input"), "{e}");
}

#[test]
fn an_interrupted_drive_resumed_from_its_snapshot_matches_one_uninterrupted_run() {
    let b = bank(1000);
    let cfg =
        common(json!({"d_sae": 64, "seed": 2, "steps": 30, "dead_window": 2, "log_every": 1}));
    let (data, _) = load(&b, &cfg).unwrap();
    let mut straight = trainer(&cfg, &data);
    let mut stream = MetricStream::create(&b.out.join("a.jsonl")).unwrap();
    drive(
        &mut straight,
        &plan(&cfg, 30),
        &data,
        &mut stream,
        &mut Silent,
    )
    .unwrap();

    let mut first = trainer(&cfg, &data);
    let mut stream = MetricStream::create(&b.out.join("metrics.jsonl")).unwrap();
    let mut hooks = StopAfter {
        asked: Cell::new(0),
        after: 12,
        reports: vec![],
    };
    let out = drive(&mut first, &plan(&cfg, 30), &data, &mut stream, &mut hooks).unwrap();
    drop(stream);
    assert_eq!(
        (out.status, out.steps_done, out.detail),
        (Status::Interrupted, 12, None)
    );
    assert_eq!(
        lines(&b).last().unwrap()["step"],
        12,
        "the stop step is logged"
    );
    let mut resumed = FamilyTrainer::from_snapshot(
        first.config().clone(),
        TopK::new(4, cfg.d_sae),
        first.model().clone(),
        first.snapshot(),
        false,
    )
    .unwrap();
    let mut stream = MetricStream::create(&b.out.join("b.jsonl")).unwrap();
    let out = drive(
        &mut resumed,
        &plan(&cfg, 30),
        &data,
        &mut stream,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(
        (out.status, out.steps_done, out.steps_here),
        (Status::Ok, 30, 18)
    );
    assert_eq!(resumed.model(), straight.model());
    assert_eq!(resumed.snapshot(), straight.snapshot());
}

#[test]
fn a_huge_learning_rate_diverges_with_the_step_and_quantity() {
    let b = bank(1000);
    let cfg = common(json!({"d_sae": 64, "seed": 1, "steps": 50, "lr": 1e9, "eval_every": 5}));
    let (data, _) = load(&b, &cfg).unwrap();
    let mut t = trainer(&cfg, &data);
    let mut stream = MetricStream::create(&b.out.join("metrics.jsonl")).unwrap();
    let out = drive(&mut t, &plan(&cfg, 50), &data, &mut stream, &mut Silent).unwrap();
    drop(stream);
    assert_eq!(out.status, Status::Diverged);
    let d = out.detail.clone().unwrap();
    assert!(d.step <= 5 && d.step == out.steps_done, "{d:?}");
    assert!(
        [
            "loss.mse", "loss.aux", "w_enc", "b_enc", "w_dec", "b_dec", "eval.fvu"
        ]
        .contains(&d.quantity.as_str()),
        "{d:?}"
    );
    let summary = out.summary_json(&data);
    assert_eq!(summary["status"], "diverged");
    assert_eq!(lines(&b).last().unwrap()["step"], d.step);
    // The same run with a sane lr stays ok.
    let cfg = common(json!({"d_sae": 64, "seed": 1, "steps": 50, "eval_every": 5}));
    let mut t = trainer(&cfg, &data);
    let mut stream = MetricStream::create(&b.out.join("ok.jsonl")).unwrap();
    let out = drive(&mut t, &plan(&cfg, 50), &data, &mut stream, &mut Silent).unwrap();
    assert_eq!((out.status, out.steps_done), (Status::Ok, 50));
    // A ceiling below the FVU reached is no divergence while the run improves on where it started.
    let cfg =
        common(json!({"d_sae": 64, "seed": 1, "steps": 50, "eval_every": 10, "fvu_ceiling": 1e-6}));
    let mut t = trainer(&cfg, &data);
    let mut stream = MetricStream::create(&b.out.join("c.jsonl")).unwrap();
    let out = drive(&mut t, &plan(&cfg, 50), &data, &mut stream, &mut Silent).unwrap();
    assert_eq!(
        (out.status, out.steps_done),
        (Status::Ok, 50),
        "{:?}",
        out.detail
    );
}

/// A finite held-out FVU that rises above both the ceiling and the FVU the run started from ends it as diverged at
/// the check, naming both.
#[test]
fn a_held_out_fvu_above_the_ceiling_and_the_start_is_a_divergence() {
    let b = bank(1000);
    let cfg = common(json!({"d_sae": 64, "seed": 1, "steps": 50, "lr": 0.5, "eval_every": 10}));
    let (data, _) = load(&b, &cfg).unwrap();
    let mut t = trainer(&cfg, &data);
    let start = t.evaluate(&data.eval).unwrap().reconstruction.fvu;
    let mut stream = MetricStream::create(&b.out.join("metrics.jsonl")).unwrap();
    let out = drive(&mut t, &plan(&cfg, 50), &data, &mut stream, &mut Silent).unwrap();
    let d = out.detail.unwrap();
    assert_eq!(
        (out.status, d.step, d.quantity.as_str()),
        (Status::Diverged, 10, "eval.fvu"),
        "{}",
        d.message
    );
    let fvu = d.value.unwrap();
    assert!(fvu > 1.0 && fvu > start, "fvu {fvu}, start {start}");
    assert!(
        d.message.contains(
            "above fvu_ceiling 1 (worse than predicting the column means when 1) and above the"
        ) && d
            .message
            .contains(&format!("{start:.4} this run started from")),
        "{}",
        d.message
    );
}

/// An untrained model can start above the ceiling: with b_dec = 0 on rows whose mean is far from 0 the held-out FVU
/// starts well above 1, and a short run that improves on it ends ok.
#[test]
fn a_short_run_that_starts_above_the_ceiling_and_improves_is_ok() {
    let b = bank_shifted(1000, 5.0);
    let cfg =
        common(json!({"d_sae": 64, "seed": 1, "steps": 3, "lr": 1e-3, "b_dec_init": "zeros"}));
    let (data, _) = load(&b, &cfg).unwrap();
    let mut t = trainer(&cfg, &data);
    let start = t.evaluate(&data.eval).unwrap().reconstruction.fvu;
    let mut stream = MetricStream::create(&b.out.join("metrics.jsonl")).unwrap();
    let out = drive(&mut t, &plan(&cfg, 3), &data, &mut stream, &mut Silent).unwrap();
    let end = t.evaluate(&data.eval).unwrap().reconstruction.fvu;
    assert!(
        start > 1.0 && end > 1.0 && end < start,
        "start {start}, end {end}"
    );
    assert_eq!(
        (out.status, out.steps_done),
        (Status::Ok, 3),
        "{:?}",
        out.detail
    );
}

#[test]
fn device_and_tf32_parse_with_defaults_and_named_errors() {
    let base = json!({"d_sae": 8, "seed": 0, "steps": 10});
    let c = common(base.clone());
    assert_eq!(c.device, husai_kernels::backend::DeviceChoice::Auto);
    assert!(!c.tf32);
    let j = c.to_json();
    assert_eq!(
        (j["device"].clone(), j["tf32"].clone()),
        (json!("auto"), json!(false))
    );
    let mut v = base.clone();
    v["device"] = json!("cpu");
    v["tf32"] = json!(true);
    let c = common(v);
    assert_eq!(c.device, husai_kernels::backend::DeviceChoice::Cpu);
    assert!(c.tf32);
    for (key, value, want) in [
        (
            "device",
            json!("gpu"),
            "config key `device` = \"gpu\" is invalid: must be one of \"auto\", \"cpu\", \"cuda\"",
        ),
        (
            "device",
            json!(1),
            "config key `device` = 1 is invalid: must be one of",
        ),
        (
            "tf32",
            json!("yes"),
            "config key `tf32` = \"yes\" is invalid: must be true or false",
        ),
    ] {
        let mut v = base.clone();
        v[key] = value;
        let e = CommonConfig::parse(v.as_object().unwrap().clone(), &DEFAULTS).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
    }
}

#[test]
fn a_resumed_run_may_change_device_but_not_tf32() {
    use husai_kernels::trainer::config::{check_resume_fingerprint, resume_fingerprint};
    let base = common(json!({"d_sae": 8, "seed": 0, "steps": 10})).to_json();
    let recorded = resume_fingerprint(&base);
    let mut moved = base.clone();
    moved.insert("device".into(), json!("cuda"));
    check_resume_fingerprint(&recorded, &moved).unwrap();
    // A run recorded before the keys existed (no device, no tf32) resumes with their defaults.
    let mut old = base.clone();
    old.remove("device");
    old.remove("tf32");
    check_resume_fingerprint(&resume_fingerprint(&old), &base).unwrap();
    let mut tf32 = base.clone();
    tf32.insert("tf32".into(), json!(true));
    let e = check_resume_fingerprint(&recorded, &tf32).unwrap_err();
    assert!(
        e.to_string()
            .contains("config key `tf32` = true differs from the resumed run's (absent)"),
        "{e}"
    );
}
