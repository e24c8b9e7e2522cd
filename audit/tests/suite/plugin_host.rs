//! The plugin host against real plugin libraries: listing, load errors, and faulty plugins that panic, abort or
//! segfault in the child while the host carries on and records nothing.
//!
//! The libraries are gathered by `common::plugin_dir` (sae-topk from this crate's dev-dependencies, the test-only
//! plugins from plugins/test-faulty's cdylib examples).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Project, assert_success, plugin_dir, stderr, stdout};
use husai_core::digest::sha256_hex;
use husai_core::plugin::{PluginHost, PluginHostError, PluginSearch, RunRequest};
use serde_json::{Value, json};

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_husai-audit"))
}

fn lib(name: &str) -> PathBuf {
    common::plugin_lib(name)
}

fn host() -> PluginHost {
    PluginHost::new(exe(), PluginSearch::new(&[plugin_dir()], None, None))
}

#[test]
fn plugins_lists_sae_topk_with_the_sha256_of_its_library() {
    let p = Project::new();
    let dir = plugin_dir();
    let o = p.run(&["plugins", "--json", "--plugin-dir", dir.to_str().unwrap()]);
    assert_success(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let plugins = v["plugins"].as_array().unwrap();
    let topk = plugins
        .iter()
        .find(|p| p["name"] == "sae-topk")
        .expect("sae-topk is listed");
    let path = lib("husai_sae_topk");
    assert_eq!(topk["library_path"], json!(path));
    assert_eq!(
        topk["library_sha256"],
        json!(sha256_hex(&std::fs::read(&path).unwrap()))
    );
    assert_eq!(topk["kind"], "trainer");
    assert_eq!(topk["architectures"], json!(["topk"]));
    assert_eq!(topk["capabilities"], json!(["cpu"]));
    assert_eq!(topk["api_version"], 1);
    assert_eq!(v["searched"][0], json!(dir.display().to_string()));

    // The version-skewed library is listed with its error, and does not hide the others.
    let skew = plugins
        .iter()
        .find(|p| p["library_path"] == json!(lib("husai_plugin_faulty_skew")))
        .expect("the skewed library is listed");
    assert!(
        skew["error"]
            .as_str()
            .unwrap()
            .contains("speaks husai plugin API version 2"),
        "{skew}"
    );

    let o = p.run(&["plugins", "--plugin-dir", dir.to_str().unwrap()]);
    assert_success(&o);
    let text = stdout(&o);
    assert!(
        text.contains("sae-topk 0.1.0 (trainer, plugin API 1)"),
        "{text}"
    );
    assert!(
        text.contains(topk["library_sha256"].as_str().unwrap()),
        "{text}"
    );
}

#[test]
fn search_order_is_plugin_dir_then_env_then_exe_dir() {
    let p = Project::new();
    // A library in --plugin-dir hides one of the same file name in HUSAI_PLUGIN_PATH: put the faulty plugin there
    // under sae-topk's file name.
    let shadow = p.path("shadow");
    std::fs::create_dir(&shadow).unwrap();
    let so = std::env::consts::DLL_SUFFIX;
    std::fs::copy(
        lib("husai_plugin_faulty"),
        shadow.join(format!("libhusai_sae_topk{so}")),
    )
    .unwrap();
    let list = |args: &[&str]| -> Vec<Value> {
        let o = std::process::Command::new(exe())
            .args(args)
            .current_dir(p.dir.path())
            .env("HUSAI_PLUGIN_PATH", plugin_dir())
            .output()
            .unwrap();
        assert_success(&o);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["plugins"].as_array().unwrap().clone()
    };
    let by_env = list(&["plugins", "--json"]);
    let topk = by_env
        .iter()
        .find(|p| p["name"] == "sae-topk")
        .expect("found through HUSAI_PLUGIN_PATH");
    assert_eq!(topk["library_path"], json!(lib("husai_sae_topk")));

    let shadowed = list(&[
        "plugins",
        "--json",
        "--plugin-dir",
        shadow.to_str().unwrap(),
    ]);
    let entry = shadowed
        .iter()
        .find(|p| {
            p["library_path"]
                .as_str()
                .unwrap()
                .ends_with(&format!("libhusai_sae_topk{so}"))
        })
        .unwrap();
    assert_eq!(
        entry["library_path"],
        json!(shadow.join(format!("libhusai_sae_topk{so}")))
    );
    assert_eq!(entry["name"], "test-faulty");
    assert!(
        !shadowed.iter().any(|p| p["name"] == "sae-topk"),
        "the env copy is hidden: {shadowed:?}"
    );
}

#[test]
fn a_missing_library_is_named() {
    let missing = plugin_dir().join("libhusai_nonexistent.so");
    let msg = host().describe(&missing).unwrap_err().to_string();
    assert!(
        msg.contains(&format!(
            "plugin library {} does not exist",
            missing.display()
        )),
        "{msg}"
    );
}

#[test]
fn a_file_that_is_not_a_plugin_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libhusai_fake.so");
    std::fs::write(&fake, b"#!/bin/sh\necho not a library\n").unwrap();
    let msg = host().describe(&fake).unwrap_err().to_string();
    assert!(
        msg.contains(&format!(
            "{} is not a loadable shared library, so it is not a husai plugin",
            fake.display()
        )),
        "{msg}"
    );

    // A real shared library that is not a husai plugin: the C library this test process uses.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let libc = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libc.so"))
        })
        .expect("libc is mapped");
    let msg = host().describe(Path::new(libc)).unwrap_err().to_string();
    assert!(
        msg.contains(&format!(
            "{libc} is a shared library but not a husai plugin"
        )),
        "{msg}"
    );
}

#[test]
fn an_api_version_mismatch_names_the_file_and_both_versions() {
    let skew = lib("husai_plugin_faulty_skew");
    let err = host().describe(&skew).unwrap_err();
    assert!(matches!(err, PluginHostError::Load { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "plugin {} speaks husai plugin API version 2, but this host speaks API version 1",
            skew.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("rebuild the plugin against husai-plugin-api"),
        "{msg}"
    );
}

#[test]
fn train_with_an_unknown_plugin_says_what_was_searched() {
    let p = Project::new();
    husai_kernels::activations::write_npy_f32(&p.path("x.npy"), 8, 4, &[0.5; 32]).unwrap();
    let dir = plugin_dir();
    let o = p.run(&[
        "train",
        "--plugin",
        "sae-nonexistent",
        "--data",
        "x.npy",
        "--set",
        "d_sae=8",
        "--seed",
        "1",
        "--campaign",
        "c",
        "--key",
        "dev.pem",
        "--plugin-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("no plugin named \"sae-nonexistent\""), "{err}");
    assert!(err.contains("sae-topk ("), "{err}");
}

/// Runs `husai-audit train` with the faulty plugin in `mode`; returns the output.
fn train_faulty(p: &Project, mode: &str) -> std::process::Output {
    train_faulty_with(p, mode, &[])
}

fn train_faulty_with(p: &Project, mode: &str, extra: &[&str]) -> std::process::Output {
    common::faulty_train_command(p, mode)
        .args(extra)
        .output()
        .unwrap()
}

/// Every entry under results/ (campaign directories are created when a run is staged).
fn results_entries(p: &Project) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(campaigns) = std::fs::read_dir(p.path("results")) {
        for c in campaigns {
            let c = c.unwrap().path();
            out.extend(std::fs::read_dir(&c).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

#[test]
fn faulty_plugins_fail_clearly_and_leave_no_run() {
    let faulty = lib("husai_plugin_faulty");
    let cases = [
        (
            "panic",
            "failed: panic: the faulty plugin panicked on purpose",
            None,
        ),
        (
            "abort",
            "was killed by signal 6 (SIGABRT, aborted",
            Some("faulty plugin: aborting on purpose"),
        ),
        (
            "segfault",
            "was killed by signal 11 (SIGSEGV, segmentation fault",
            Some("faulty plugin: writing to address 8 on purpose"),
        ),
        (
            "exit",
            "exited with code 3 while running, without reporting an outcome",
            None,
        ),
        (
            "error",
            "failed: failed: the faulty plugin failed on purpose",
            None,
        ),
    ];
    for (mode, want, tail) in cases {
        let p = Project::new();
        let o = train_faulty(&p, mode);
        let err = stderr(&o);
        // The host itself exits normally, with the usage/IO code, and says which plugin failed and how.
        assert_eq!(o.status.code(), Some(2), "{mode}: {err}");
        assert!(
            err.contains(&format!("plugin test-faulty ({})", faulty.display())),
            "{mode}: {err}"
        );
        assert!(err.contains(want), "{mode}: {err}");
        if let Some(line) = tail {
            assert!(
                err.contains(&format!("  | {line}")),
                "{mode}: the stderr tail is reported: {err}"
            );
        }
        assert!(
            results_entries(&p).is_empty(),
            "{mode}: left {:?}",
            results_entries(&p)
        );
    }
}

#[test]
fn the_host_api_reports_crashes_and_survives_them() {
    let h = host();
    let plugin = h.describe(&lib("husai_plugin_faulty")).unwrap();
    assert_eq!(plugin.description.name, "test-faulty");
    let run = |mode: &str| {
        let out = tempfile::tempdir().unwrap();
        let request = RunRequest {
            config: json!({"mode": mode}),
            inputs: BTreeMap::new(),
            output_dir: out.path().to_path_buf(),
        };
        let mut events = Vec::new();
        let r = h.run(&plugin, &request, &mut |e| events.push(e.clone()));
        (r, events)
    };
    let (r, events) = run("ok");
    assert_eq!(r.unwrap(), json!({"mode": "ok", "outputs": ["out.txt"]}));
    let dones: Vec<u64> = events.iter().map(|e| e.done).collect();
    assert_eq!(dones, [0, 1, 2]);
    // Stray stdout from the plugin goes to stderr, not into the protocol.
    assert_eq!(run("stdout").0.unwrap()["mode"], "stdout");
    match run("segfault").0.unwrap_err() {
        PluginHostError::Crashed {
            name,
            how,
            stderr_tail,
            ..
        } => {
            assert_eq!(name, "test-faulty");
            assert!(how.contains("SIGSEGV"), "{how}");
            assert!(
                stderr_tail
                    .iter()
                    .any(|l| l.contains("writing to address 8")),
                "{stderr_tail:?}"
            );
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    // The schema the plugin publishes is enforced before it runs.
    let msg = run("explode").0.unwrap_err().to_string();
    assert!(
        msg.contains("does not match the plugin's config schema") && msg.contains("config/mode"),
        "{msg}"
    );
    // And the host is still fine: the next run works.
    assert!(run("ok").0.is_ok());
}

#[test]
fn a_plugin_dir_that_does_not_exist_is_refused() {
    let p = Project::new();
    let o = p.run(&["plugins", "--plugin-dir", "no-such-dir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--plugin-dir no-such-dir is not a directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn sae_topk_refuses_bad_requests_before_training() {
    let h = host();
    let plugin = h.describe(&lib("husai_sae_topk")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("x.npy");
    husai_kernels::activations::write_npy_f32(&data, 8, 4, &[0.5; 32]).unwrap();
    let run = |config: Value, inputs: &[(&str, &Path)]| {
        let out = tempfile::tempdir().unwrap();
        let request = RunRequest {
            config,
            inputs: inputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_path_buf()))
                .collect::<BTreeMap<_, _>>(),
            output_dir: out.path().to_path_buf(),
        };
        h.run(&plugin, &request, &mut |_| {})
            .unwrap_err()
            .to_string()
    };
    let good = json!({"d_sae": 8, "k": 2, "seed": 1, "steps": 1, "batch": 4});
    // The published schema is enforced by the host: a missing field and an unknown one are both named.
    let msg = run(
        json!({"d_sae": 8, "k": 2, "steps": 1, "colour": "red"}),
        &[("activations", &data)],
    );
    assert!(
        msg.contains("does not match the plugin's config schema"),
        "{msg}"
    );
    assert!(msg.contains("\"seed\" is a required property"), "{msg}");
    assert!(msg.contains("colour"), "{msg}");
    // Cross-field rules are the plugin's: k may not exceed d_sae.
    let msg = run(
        json!({"d_sae": 8, "k": 9, "seed": 1, "steps": 1, "batch": 4}),
        &[("activations", &data)],
    );
    assert!(
        msg.contains(
            "invalid config: sae-topk config key `k` = 9 is invalid: must be <= d_sae (8)"
        ),
        "{msg}"
    );
    let msg = run(good.clone(), &[]);
    assert!(
        msg.contains("the request names no \"activations\" input file"),
        "{msg}"
    );
    let msg = run(good.clone(), &[("activations", &data), ("labels", &data)]);
    assert!(
        msg.contains(
            "takes the inputs \"activations\" and, optionally, \"eval_activations\" and \"resume\""
        ),
        "{msg}"
    );
    // A resume input that is not a checkpoint directory.
    let msg = run(good, &[("activations", &data), ("resume", &data)]);
    assert!(
        msg.contains("failed: invalid input: input resume/cfg.json")
            && msg.contains("cfg.json: cannot read it"),
        "{msg}"
    );
}

#[test]
fn a_hung_plugin_is_killed_at_the_timeout_and_leaves_no_run() {
    let p = Project::new();
    let started = std::time::Instant::now();
    let o = train_faulty_with(&p, "hang", &["--timeout", "1.5"]);
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("ran longer than the 1.5 s limit and was killed; no run was recorded"),
        "{err}"
    );
    assert!(err.contains("faulty plugin: hanging on purpose"), "{err}");
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
    assert!(results_entries(&p).is_empty(), "{:?}", results_entries(&p));
    let o = train_faulty_with(&p, "ok", &["--timeout", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("0 must be a positive number of seconds"),
        "{}",
        stderr(&o)
    );
}
