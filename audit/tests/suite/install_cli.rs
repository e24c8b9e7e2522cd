//! scripts/install.sh (issue #9 item 9): the installed husai-audit finds the installed plugins, and only those.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// target/<profile>/ of this build (the directory holding husai-audit).
fn profile_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_husai-audit"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn install(root: &Path, target: &Path, extra: &[&str]) -> std::process::Output {
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

/// A target directory holding what `cargo build --release` would put in target/release, assembled from this test
/// build: the binary under test and the plugin cdylibs that `cargo test` builds into deps/ (as dev-dependencies of
/// this crate). `cargo test` runs before `cargo build` in CI, so target/release itself may not hold them yet.
fn assembled_target() -> tempfile::TempDir {
    let target = tempfile::tempdir().unwrap();
    let o = install(Path::new("/nonexistent"), target.path(), &["--list"]);
    common::assert_success(&o);
    let release = target.path().join("release");
    std::fs::create_dir_all(&release).unwrap();
    for line in common::stdout(&o).lines() {
        let dst = PathBuf::from(line);
        assert_eq!(dst.parent(), Some(release.as_path()), "{line}");
        let name = dst.file_name().unwrap();
        let src = if name == "husai-audit" {
            profile_dir().join(name)
        } else {
            profile_dir().join("deps").join(name)
        };
        assert!(
            src.is_file(),
            "{} is missing: is its crate a dev-dependency of husai-audit?",
            src.display()
        );
        std::fs::copy(&src, &dst).unwrap();
    }
    target
}

#[test]
fn installed_binary_lists_the_installed_plugins() {
    let target = assembled_target();
    let root = tempfile::tempdir().unwrap();
    let o = install(root.path(), target.path(), &[]);
    common::assert_success(&o);
    let bin = root.path().join("bin");
    assert!(common::stdout(&o).contains(&format!(
        "installed husai-audit and 13 plugins into {}",
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
    let only: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    // Every real plugin, and none of the test plugins (plugins/test-faulty's examples).
    assert_eq!(
        only,
        [
            "data",
            "known-circuit",
            "ood-stress",
            "sae-batchtopk",
            "sae-hierarchical-topk",
            "sae-jumprelu",
            "sae-matryoshka",
            "sae-relu",
            "sae-routed",
            "sae-topk",
            "toy-modadd",
            "trained-vs-random",
            "transcoder-stress"
        ]
    );
    for (_, path) in &names {
        assert!(path.starts_with(&bin.display().to_string()), "{path}");
    }
}

#[test]
fn install_refuses_bad_arguments_and_missing_builds() {
    let root = tempfile::tempdir().unwrap();
    let o = install(root.path(), &profile_dir(), &["--bogus"]);
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
