//! `husai-audit train` against the trainer contract (docs/trainer-contract.md), end to end with `test-trainer`, a
//! trainer that exists only in the tests and has options no real plugin has: the config comes from the plugin's
//! schema (so core and audit hold no family option), bad values are refused by key with exit 2 and no run, a
//! diverged or interrupted run is signed with its status and exit 1, an interrupted run resumes to the same bytes as
//! an uninterrupted one, resume conflicts are named, --eval-data is recorded, and an input that changes under the run
//! is never signed.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use common::{Project, assert_fails_with, assert_success, plugin_dir, stderr, stdout};
use husai_core::digest::sha256_hex;
use husai_kernels::activations::write_npy_f32;
use serde_json::{Value, json};

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_husai-audit"))
}

/// A small bank: 64 rows of width 4, values varying by row and column.
fn bank(p: &Project, name: &str, rows: usize) -> String {
    let x: Vec<f32> = (0..rows * 4)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    write_npy_f32(&p.path(name), rows, 4, &x).unwrap();
    name.to_owned()
}

fn train_args<'a>(data: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "--plugin",
        "test-trainer",
        "--data",
        data,
        "--campaign",
        "c",
        "--key",
        "dev.pem",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push("--plugin-dir".into());
    a.push(plugin_dir().display().to_string());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn train(p: &Project, data: &str, extra: &[&str]) -> std::process::Output {
    let a = train_args(data, extra);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    p.run(&a)
}

fn json_out(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

fn run_dir(p: &Project, v: &Value) -> PathBuf {
    p.dir.path().join(v["dir"].as_str().unwrap())
}

fn manifest(dir: &Path) -> Value {
    let env: Value =
        serde_json::from_slice(&std::fs::read(dir.join("husai.dsse.json")).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice::<Value>(&payload).unwrap()["predicate"].clone()
}

/// Every entry under results/c/ (runs and staging directories alike).
fn entries(p: &Project) -> Vec<PathBuf> {
    match std::fs::read_dir(p.path("results/c")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn bytes(dir: &Path, f: &str) -> Vec<u8> {
    std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{}/{f}: {e}", dir.display()))
}

const CHECKPOINT: [&str; 4] = [
    "cfg.json",
    "sae_weights.safetensors",
    "trainer_state.safetensors",
    "metrics.jsonl",
];

#[test]
fn a_plugin_with_its_own_options_trains_through_the_ordinary_command() {
    let p = Project::new();
    let data = bank(&p, "x.npy", 64);
    std::fs::write(
        p.path("opts.toml"),
        "d_sae = 6\nwobble = 0.25\n[eval]\nfraction = 0.25\n",
    )
    .unwrap();
    let o = train(
        &p,
        &data,
        &[
            "--config",
            "opts.toml",
            "--set",
            "steps=5",
            "--set",
            "shards=3",
            "--seed",
            "9",
            "--json",
        ],
    );
    assert_success(&o);
    let v = json_out(&o);
    assert_eq!(v["status"], "ok");
    let dir = run_dir(&p, &v);
    let m = manifest(&dir);
    assert_eq!(m["status"], "ok");
    let c = &m["config"];
    // The user's values, the flag, and the schema's defaults for everything else: the effective config is recorded.
    assert_eq!(
        (c["d_sae"].clone(), c["wobble"].clone(), c["shards"].clone()),
        (json!(6), json!(0.25), json!(3))
    );
    assert_eq!(
        (c["steps"].clone(), c["epochs"].clone(), c["seed"].clone()),
        (json!(5), Value::Null, json!(9))
    );
    assert_eq!(
        (c["batch"].clone(), c["lr"].clone(), c["eval"].clone()),
        (json!(4), json!(0.01), json!({"fraction": 0.25}))
    );
    assert_eq!(
        m["config_sha256"],
        Value::from(husai_core::canonical::canonical_sha256_hex(c).unwrap())
    );
    assert_eq!(m["seeds"], json!([9]));
    // The dataset block is what the plugin read, with the host's digest of the file.
    assert_eq!(
        m["dataset"]["sha256"],
        Value::from(sha256_hex(&std::fs::read(p.path(&data)).unwrap()))
    );
    assert_eq!(m["dataset"]["shape"], json!([64, 4]));
    assert_eq!(
        (
            m["dataset"]["format"].clone(),
            m["dataset"]["dtype"].clone()
        ),
        (json!("npy"), json!("float32"))
    );
    assert_eq!(m["plugin"]["name"], "test-trainer");
    for f in ["metrics.json", "metrics.jsonl", "trainer_state.safetensors"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        5
    );
    assert_eq!(v["metrics"]["eval"]["source"], "activations");
    assert_success(&p.run(&["verify"]));

    // The text summary prints the plugin's metrics generically, whatever keys they have.
    let o = train(
        &p,
        &data,
        &["--config", "opts.toml", "--set", "steps=5", "--seed", "9"],
    );
    assert_success(&o);
    let out = stdout(&o);
    assert!(out.contains("(status ok)"), "{out}");
    assert!(
        out.contains("train.mse") && out.contains("eval.source") && out.contains("steps_done"),
        "{out}"
    );
    // Off a terminal, progress is plain log lines (the first and the last report at least).
    let err = stderr(&o);
    assert!(
        err.contains("training: step 1/5 mse") && err.contains("training: step 5/5 mse"),
        "{err}"
    );

    // epochs instead of steps: giving one clears the other.
    let v = json_out(&train(
        &p,
        &data,
        &[
            "--set", "d_sae=6", "--set", "epochs=1", "--seed", "1", "--json",
        ],
    ));
    let c = manifest(&run_dir(&p, &v))["config"].clone();
    assert_eq!(
        (c["epochs"].clone(), c["steps"].clone()),
        (json!(1), Value::Null)
    );
    // 64 rows, 10 % held out (6 rows): 58 training rows in batches of 4 is 15 steps.
    assert_eq!(v["steps_done"], 15);
}

#[test]
fn schema_violations_name_the_key_and_record_no_run() {
    let p = Project::new();
    let data = bank(&p, "x.npy", 32);
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["--set", "colour=red"],
            &[
                "config key /colour = \"red\": unknown key",
                "allowed: only the keys d_sae, seed",
            ],
        ),
        (
            &["--set", "d_sae=wide"],
            &["config key /d_sae = \"wide\"", "allowed: integer >= 1"],
        ),
        (
            &["--set", "wobble=2"],
            &["config key /wobble = 2", "allowed: number 0..=1"],
        ),
        (
            &["--set", "lr=-0.001"],
            &["config key /lr = -0.001", "allowed: number > 0"],
        ),
        (&["--set", "steps=0"], &["config key /steps = 0"]),
        (
            &["--set", "eval_every=-1"],
            &["config key /eval_every = -1"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["--set", "d_sae=4", "--set", "steps=2", "--seed", "1"];
        args.extend_from_slice(extra);
        let o = train(&p, &data, &args);
        assert_fails_with(&o, 2, needles);
        assert_fails_with(&o, 2, &["see `husai-audit plugins show test-trainer`"]);
        assert!(entries(&p).is_empty(), "{extra:?} left {:?}", entries(&p));
    }
    // A required key missing, and a rule the schema cannot state (the plugin's own check): both exit 2, no run.
    let o = train(&p, &data, &["--set", "steps=2", "--seed", "1"]);
    assert_fails_with(
        &o,
        2,
        &["config key /d_sae is required but was not given; allowed: integer"],
    );
    let o = train(
        &p,
        &data,
        &[
            "--set", "d_sae=2", "--set", "shards=3", "--set", "steps=2", "--seed", "1",
        ],
    );
    assert_fails_with(
        &o,
        2,
        &[
            "plugin test-trainer refused the config",
            "/shards = 3 must be at most d_sae = 2",
            "no run was recorded",
        ],
    );
    assert!(entries(&p).is_empty(), "{:?}", entries(&p));
    // A malformed --set and a config file of the wrong kind.
    assert_fails_with(
        &train(&p, &data, &["--set", "d_sae", "--seed", "1"]),
        2,
        &["--set \"d_sae\": expected KEY=VALUE"],
    );
    std::fs::write(p.path("c.yaml"), "d_sae: 4").unwrap();
    assert_fails_with(
        &train(&p, &data, &["--config", "c.yaml", "--seed", "1"]),
        2,
        &["must end in .toml or .json"],
    );
    assert!(!p.path("results/c").exists() || entries(&p).is_empty());
}

#[test]
fn plugins_show_lists_every_option_of_the_schema() {
    let p = Project::new();
    let dir = plugin_dir().display().to_string();
    let o = p.run(&["plugins", "show", "test-trainer", "--plugin-dir", &dir]);
    assert_success(&o);
    let out = stdout(&o);
    assert!(
        out.contains("  wobble  (number, 0..=1; default 0.5)"),
        "{out}"
    );
    assert!(
        out.contains("how far one step moves the state (test-trainer only)"),
        "{out}"
    );
    assert!(out.contains("  d_sae  (integer, >= 1; required)"), "{out}");
    assert!(out.contains("  lr  (number, > 0; default 0.01)"), "{out}");
    let v: Value = serde_json::from_slice(
        &p.run(&[
            "plugins",
            "--plugin-dir",
            &dir,
            "show",
            "test-trainer",
            "--json",
        ])
        .stdout,
    )
    .unwrap();
    let opts = v["options"].as_array().unwrap();
    let shards = opts.iter().find(|o| o["key"] == "shards").unwrap();
    assert_eq!(
        (
            shards["type"].clone(),
            shards["range"].clone(),
            shards["default"].clone()
        ),
        (json!("integer"), json!("1..=8"), json!(1))
    );
    assert_fails_with(
        &p.run(&["plugins", "show", "sae-nothing", "--plugin-dir", &dir]),
        2,
        &["no plugin named \"sae-nothing\""],
    );
}

#[test]
fn a_diverged_run_is_signed_with_its_status_and_exits_1() {
    let p = Project::new();
    let data = bank(&p, "x.npy", 32);
    let o = train(
        &p,
        &data,
        &[
            "--set",
            "d_sae=4",
            "--set",
            "steps=10",
            "--set",
            "diverge_at_step=3",
            "--seed",
            "1",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("error: training diverged: loss.mse became non-finite at step 3 (step 3, loss.mse = non-finite)"),
        "{}",
        stderr(&o)
    );
    let v = json_out(&o);
    let m = manifest(&run_dir(&p, &v));
    assert_eq!(m["status"], "diverged");
    assert_eq!(m["status_detail"]["step"], 3);
    assert_eq!(m["status_detail"]["quantity"], "loss.mse");
    assert_eq!(m["extra"]["steps_done"], 3);
    assert_success(&p.run(&["verify"]));
    // A diverged run cannot be resumed.
    let o = train(&p, &data, &["--resume", v["dir"].as_str().unwrap()]);
    assert_fails_with(
        &o,
        2,
        &["ended diverged at step 3; only an ok or interrupted run can be resumed"],
    );
}

#[test]
fn an_input_rewritten_under_the_run_is_refused_naming_the_file_and_both_digests() {
    // issue #8 item 2: a plugin (or anything else) rewrites the data after the host hashed it, and puts the mtime
    // back. The host must not sign a run that claims the old digest for data the plugin never read.
    let p = Project::new();
    let data = bank(&p, "x.npy", 32);
    let before = sha256_hex(&std::fs::read(p.path(&data)).unwrap());
    let mtime = std::fs::metadata(p.path(&data))
        .unwrap()
        .modified()
        .unwrap();
    let o = train(
        &p,
        &data,
        &[
            "--set",
            "d_sae=4",
            "--set",
            "steps=2",
            "--set",
            "tamper=true",
            "--seed",
            "1",
        ],
    );
    let after = sha256_hex(&std::fs::read(p.path(&data)).unwrap());
    assert_ne!(before, after, "the test plugin rewrote the file");
    assert_eq!(
        std::fs::metadata(p.path(&data))
            .unwrap()
            .modified()
            .unwrap(),
        mtime,
        "mtime restored"
    );
    let abs = std::path::absolute(p.path(&data)).unwrap();
    assert_fails_with(
        &o,
        2,
        &[
            &format!(
                "input activations ({}) changed while plugin test-trainer ran",
                abs.display()
            ),
            &format!("the host recorded sha256 {before} before the run"),
            &format!("the plugin read bytes with sha256 {after}"),
            "Nothing was signed",
        ],
    );
    assert!(entries(&p).is_empty(), "{:?}", entries(&p));
}

#[test]
fn resume_continues_bit_exactly_and_names_conflicts() {
    let p = Project::new();
    let data = bank(&p, "x.npy", 48);
    let base = [
        "--set",
        "d_sae=5",
        "--set",
        "wobble=0.75",
        "--seed",
        "3",
        "--json",
    ];
    let with = |extra: &[&'static str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        a
    };
    let six = run_dir(
        &p,
        &json_out(&train(&p, &data, &with(&["--set", "steps=6"]))),
    );
    let ten = run_dir(
        &p,
        &json_out(&train(&p, &data, &with(&["--set", "steps=10"]))),
    );
    let six_s = six.display().to_string();
    let o = train(
        &p,
        &data,
        &["--resume", &six_s, "--set", "steps=10", "--json"],
    );
    assert_success(&o);
    let resumed = run_dir(&p, &json_out(&o));
    for f in &CHECKPOINT[..3] {
        // Not metrics.jsonl: its lines hold wall-clock times.
        assert_eq!(
            bytes(&resumed, f),
            bytes(&ten, f),
            "{f}: 6 steps then 4 resumed = 10 in one go"
        );
    }
    let m = manifest(&resumed);
    let six_m = manifest(&six);
    assert_eq!(m["config"]["resume_from"]["run_id"], six_m["run_id"]);
    assert_eq!(m["config"]["resume_from"]["campaign"], "c");
    assert_eq!(
        m["config"]["wobble"], 0.75,
        "the recorded config is the starting point"
    );
    let linked: Vec<(&str, &str)> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| Some((i["run"]["run_id"].as_str()?, i["run"]["subject"].as_str()?)))
        .collect();
    let id = six_m["run_id"].as_str().unwrap();
    assert_eq!(linked, CHECKPOINT.map(|f| (id, f)));
    assert_ne!(m["config_sha256"], manifest(&ten)["config_sha256"]);
    assert_success(&p.run(&["verify"]));

    // Any other key with another value is refused, naming both values; the same value is fine.
    assert_fails_with(
        &train(
            &p,
            &data,
            &[
                "--resume",
                &six_s,
                "--set",
                "steps=10",
                "--set",
                "wobble=0.5",
            ],
        ),
        2,
        &[
            "config key /wobble was 0.75 in the resumed run but is given as 0.5",
            "only steps or epochs may change",
        ],
    );
    assert_fails_with(
        &train(
            &p,
            &data,
            &["--resume", &six_s, "--set", "steps=10", "--seed", "4"],
        ),
        2,
        &["/seed was 3", "given as 4"],
    );
    assert_success(&train(
        &p,
        &data,
        &[
            "--resume",
            &six_s,
            "--set",
            "steps=8",
            "--seed",
            "3",
            "--set",
            "wobble=0.75",
        ],
    ));
    // Not beyond the steps already done: the plugin refuses.
    assert_fails_with(
        &train(&p, &data, &["--resume", &six_s]),
        2,
        &["/steps = 6 is not beyond the 6 steps"],
    );
    // Not a run, and not a train run.
    assert_fails_with(
        &train(&p, &data, &["--resume", "x.npy", "--set", "steps=10"]),
        2,
        &["is not a run directory"],
    );
    let attested = p.attest("a", "c", &[("f.txt", b"x")]);
    assert_fails_with(
        &train(
            &p,
            &data,
            &["--resume", attested.to_str().unwrap(), "--set", "steps=10"],
        ),
        2,
        &["is a external run; resume from a train run"],
    );
}

#[test]
fn eval_data_is_a_recorded_input_and_sets_the_eval_config() {
    let p = Project::new();
    let data = bank(&p, "x.npy", 32);
    let held = p.attest(
        "held",
        "d",
        &[(
            "held.npy",
            &std::fs::read(p.path(&bank(&p, "h.npy", 12))).unwrap(),
        )],
    );
    let held_file = held.join("held.npy");
    let o = train(
        &p,
        &data,
        &[
            "--set",
            "d_sae=4",
            "--set",
            "steps=3",
            "--seed",
            "1",
            "--eval-data",
            held_file.to_str().unwrap(),
            "--json",
        ],
    );
    assert_success(&o);
    let v = json_out(&o);
    let m = manifest(&run_dir(&p, &v));
    assert_eq!(m["config"]["eval"], json!({"data": true}));
    let input = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["run"]["subject"] == "held.npy")
        .expect("linked");
    assert_eq!(input["run"]["campaign"], "d");
    assert_eq!(v["metrics"]["eval"]["source"], "eval_activations");
    assert_success(&p.run(&["verify"]));
}

#[test]
fn sigint_to_the_process_group_signs_an_interrupted_run_that_resumes_to_the_same_bytes() {
    let p = Project::new();
    let data = bank(&p, "x.npy", 48);
    let cfg = [
        "--set",
        "d_sae=5",
        "--set",
        "steps=40",
        "--set",
        "step_ms=100",
        "--seed",
        "2",
    ];
    let mut cmd = Command::new(exe());
    cmd.args(train_args(&data, &cfg))
        .arg("--json")
        .current_dir(p.dir.path())
        .env_remove("HUSAI_SIGNING_KEY")
        .env(common::ALLOW_UNPINNED, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().unwrap();
    let pgid = child.id();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.starts_with("training: step") {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("training: step"), "no progress line: {seen}");
    // What a terminal's Ctrl-C does: SIGINT to the whole foreground process group (host and plugin child).
    let k = Command::new("kill")
        .args(["-INT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(k.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{seen}{rest}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "interrupted");
    let done = v["steps_done"].as_u64().unwrap();
    assert!(done < 40, "stopped early, at {done}");
    let dir = run_dir(&p, &v);
    let m = manifest(&dir);
    assert_eq!(m["status"], "interrupted");
    assert_eq!(m["status_detail"]["step"], done);
    let resume_cmd = v["resume_command"].as_str().unwrap();
    assert!(
        rest.contains("training was interrupted: stopped by a signal"),
        "{rest}"
    );
    assert!(
        rest.contains(&format!("continue with:\n  {resume_cmd}")),
        "{rest}"
    );
    assert!(
        resume_cmd.contains(&format!("--resume {}", v["dir"].as_str().unwrap())),
        "{resume_cmd}"
    );
    assert_success(&p.run(&["verify"]));

    // The printed command, run as printed, continues to the same bytes as an uninterrupted run.
    let words: Vec<&str> = resume_cmd.split(' ').skip(1).collect();
    let mut words = words.to_vec();
    words.push("--json");
    let o = p.run(&words);
    assert_success(&o);
    let resumed = run_dir(&p, &json_out(&o));
    let whole = run_dir(
        &p,
        &json_out(&train(&p, &data, &[&cfg[..], &["--json"]].concat())),
    );
    for f in &CHECKPOINT[..3] {
        // Not metrics.jsonl: its lines hold wall-clock times.
        assert_eq!(
            bytes(&resumed, f),
            bytes(&whole, f),
            "{f}: interrupted at {done} then resumed = uninterrupted"
        );
    }
}
