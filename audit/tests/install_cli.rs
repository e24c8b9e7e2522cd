//! scripts/install.sh (issue #9 item 9): the installed husai-audit finds the installed plugins, and only those.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// target/ of this build (the directory above target/release/husai-audit).
fn target_dir() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_husai-audit"));
    exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf()
}

fn install(
    root: &std::path::Path,
    target: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/install.sh"
        ))
        .args(["--no-build", "--root"])
        .arg(root)
        .args(extra)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap()
}

#[test]
fn installed_binary_lists_the_installed_plugins() {
    let root = tempfile::tempdir().unwrap();
    let o = install(root.path(), &target_dir(), &[]);
    common::assert_success(&o);
    let bin = root.path().join("bin");
    assert!(common::stdout(&o).contains(&format!(
        "installed husai-audit and 2 plugins into {}",
        bin.display()
    )));

    // From an unrelated directory, with no plugin path from the environment: the plugins beside the binary.
    let elsewhere = tempfile::tempdir().unwrap();
    let o = Command::new(bin.join("husai-audit"))
        .args(["plugins", "--json"])
        .current_dir(elsewhere.path())
        .env_remove("HUSAI_PLUGIN_PATH")
        .output()
        .unwrap();
    common::assert_success(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["searched"],
        serde_json::json!([bin.display().to_string()])
    );
    let mut names: Vec<(String, String)> = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("<unusable>").to_owned(),
                p["library_path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        (names[0].0.as_str(), names[1].0.as_str()),
        ("data", "sae-topk")
    );
    for (_, path) in &names {
        assert!(path.starts_with(&bin.display().to_string()), "{path}");
    }
}

#[test]
fn install_refuses_bad_arguments_and_missing_builds() {
    let root = tempfile::tempdir().unwrap();
    let o = install(root.path(), &target_dir(), &["--bogus"]);
    common::assert_fails_with(
        &o,
        2,
        &[
            "install.sh: unknown argument --bogus",
            "Usage: scripts/install.sh",
        ],
    );
    let empty = tempfile::tempdir().unwrap();
    let o = install(root.path(), empty.path(), &[]);
    common::assert_fails_with(&o, 2, &["husai-audit is missing; build it first"]);
    assert!(!root.path().join("bin/husai-audit").exists());
}
