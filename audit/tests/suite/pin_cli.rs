//! `husai-audit pin` and plugins.lock: once the lock exists, train runs only pinned libraries, and
//! verify reports runs made by a library the lock does not pin.

use crate::common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

fn plugin_dir() -> PathBuf {
    common::plugin_dir()
}

fn synth(p: &Project) -> String {
    let o = p.run(&[
        "data",
        "synth",
        "--rows",
        "256",
        "--d-in",
        "8",
        "--n-features",
        "16",
        "--l0",
        "2",
        "--seed",
        "1",
        "--campaign",
        "data",
        "--key",
        "dev.pem",
        "--plugin-dir",
        plugin_dir().to_str().unwrap(),
        "--json",
    ]);
    assert_success(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    format!("{}/activations.npy", v["dir"].as_str().unwrap())
}

fn train(p: &Project, data: &str, plugin_dir: &str, envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_husai-audit"));
    cmd.args([
        "train",
        "--plugin",
        "sae-topk",
        "--data",
        data,
        "--set",
        "d_sae=16",
        "--set",
        "k=2",
        "--seed",
        "3",
        "--set",
        "batch=32",
        "--set",
        "steps=5",
        "--campaign",
        "sweep",
        "--key",
        "dev.pem",
        "--plugin-dir",
        plugin_dir,
        "--json",
    ])
    .current_dir(p.dir.path())
    .env_remove("HUSAI_SIGNING_KEY")
    .env_remove("HUSAI_ALLOW_UNPINNED_PLUGINS");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_pinned_plugin_runs_and_a_substituted_library_is_refused_and_reported() {
    let p = Project::new();
    let data = synth(&p);
    let real_dir = plugin_dir();
    let real = real_dir.to_str().unwrap();

    // Pin the real library.
    let o = p.run(&["pin", "sae-topk", "--plugin-dir", real]);
    assert_success(&o);
    assert!(stdout(&o).contains("pinned sae-topk"), "{}", stdout(&o));
    let lock: Value =
        serde_json::from_slice(&std::fs::read(p.path("keys/plugins.lock")).unwrap()).unwrap();
    assert_eq!(lock["plugins"][0]["name"], "sae-topk");
    assert_success(&train(&p, &data, real, &[]));
    assert_success(&p.run(&["verify"]));

    // A different library under the same name and version, ahead in the search path.
    let evil = p.path("evil");
    std::fs::create_dir_all(&evil).unwrap();
    let lib = std::fs::read_dir(&real_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap() == "libhusai_sae_topk.so")
        .unwrap();
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes.extend_from_slice(b"appended: another library, same name and version");
    std::fs::write(evil.join("libhusai_sae_topk.so"), bytes).unwrap();
    let o = train(&p, &data, evil.to_str().unwrap(), &[]);
    assert_fails_with(
        &o,
        2,
        &[
            "is not pinned in",
            "plugins.lock",
            "HUSAI_ALLOW_UNPINNED_PLUGINS=1",
            "refusing to run it",
        ],
    );
    // Explicitly allowed: it runs, and verify then reports the run as made by an unpinned library.
    assert_success(&train(
        &p,
        &data,
        evil.to_str().unwrap(),
        &[("HUSAI_ALLOW_UNPINNED_PLUGINS", "1")],
    ));
    assert_fails_with(
        &p.run(&["verify"]),
        1,
        &[
            "error[unpinned_plugin]",
            "does not pin",
            "another library made this run",
        ],
    );

    // A lock that does not list the plugin at all: a warning only (e.g. runs by an older release).
    std::fs::write(
        p.path("keys/plugins.lock"),
        "{\"schema_version\": \"1.0\", \"plugins\": []}",
    )
    .unwrap();
    let o = p.run(&["verify"]);
    assert_success(&o);
    assert!(
        stderr(&o).contains("warning[unpinned_plugin]"),
        "{}",
        stderr(&o)
    );
}

/// Without a lock, a library found through --plugin-dir (not installed beside husai-audit) is unknown: train refuses
/// it and says how to pin or allow it; allowed explicitly, it runs.
#[test]
fn without_a_lock_a_library_from_plugin_dir_is_refused_unless_allowed() {
    let p = Project::new();
    let data = synth(&p);
    let dir = plugin_dir();
    let dir = dir.to_str().unwrap();
    assert!(!p.path("keys/plugins.lock").exists());
    let o = train(&p, &data, dir, &[]);
    assert_fails_with(
        &o,
        2,
        &[
            "is not pinned in",
            "there is no lock, and the library is not one installed beside husai-audit",
            "--plugin-dir or HUSAI_PLUGIN_PATH",
            "husai-audit pin",
            "HUSAI_ALLOW_UNPINNED_PLUGINS=1",
        ],
    );
    assert!(
        !p.path("results/sweep").exists()
            || std::fs::read_dir(p.path("results/sweep"))
                .unwrap()
                .next()
                .is_none(),
        "a refused plugin left a run"
    );
    assert_success(&train(
        &p,
        &data,
        dir,
        &[("HUSAI_ALLOW_UNPINNED_PLUGINS", "1")],
    ));
}
