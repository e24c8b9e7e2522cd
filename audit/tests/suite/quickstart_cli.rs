//! The README's quick-start, run as written: the fenced block under "## Quick start" is extracted
//! from README.md and executed by bash in a scratch directory, with this build's husai-audit first
//! on PATH. README and test cannot drift apart.

use crate::common;

use common::*;

/// The first ```sh block after the "## Quick start" heading.
fn quickstart_block() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split_once("\n## Quick start\n")
        .expect("README.md has a '## Quick start' section")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("the quick-start has a ```sh block")
        .1;
    block
        .split_once("\n```")
        .expect("the block is closed")
        .0
        .to_string()
}

#[test]
fn the_readme_quick_start_works_as_written() {
    let script = quickstart_block();
    assert!(script.contains("husai-audit keygen") && script.contains("husai-audit verify"));
    let scratch = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_husai-audit"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(scratch.path())
        .env("PATH", path)
        .env_remove("HUSAI_SIGNING_KEY")
        .env_remove("HUSAI_PLUGIN_PATH")
        .output()
        .unwrap();
    assert_success(&o);
    let out = stdout(&o);
    assert!(out.contains("verified 1 runs"), "{out}");
    assert!(out.contains("all good"), "{out}");
    let run_dir = std::fs::read_dir(scratch.path().join("husai-quickstart/results/quickstart"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read_to_string(run_dir.join("metrics.json")).unwrap(),
        "{\"accuracy\": 0.93}\n"
    );
}
