//! `husai-audit import husai-evidence` on the upstream evidence tree.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use husai_core::trust::TrustPolicy;
use husai_core::verify::load_verified_run;

fn evidence() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/husai-evidence")
}

/// A scratch project with a throwaway trusted key (tests/common), and its trust policy.
fn setup() -> (tempfile::TempDir, TrustPolicy) {
    let p = common::Project::new();
    let trust = TrustPolicy::load(p.path("keys")).unwrap();
    (p.dir, trust)
}

fn import(dir: &Path, source: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_husai-audit"))
        .args(["import", "husai-evidence"])
        .arg(source)
        .args([
            "--campaign",
            "husai-evidence",
            "--results",
            "results",
            "--key",
            "dev.pem",
        ])
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn imports_one_run_per_top_level_directory_and_flags_the_empty_file() {
    let (dir, trust) = setup();
    let out = import(dir.path(), &evidence(), &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let top_dirs = std::fs::read_dir(evidence())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(
        lines.len(),
        top_dirs + 1,
        "one run per top-level directory plus _root"
    );
    assert_eq!(lines[0]["group"], "_root");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("run_20260218T024225Z_results.json is empty (0 bytes)"),
        "{stderr}"
    );

    let cycle10 = lines
        .iter()
        .find(|l| l["group"] == "cycle10_live_snapshot_20260218T0332Z")
        .unwrap();
    assert_eq!(cycle10["parse_errors"], 1);
    let run =
        load_verified_run(&dir.path().join(cycle10["dir"].as_str().unwrap()), &trust).unwrap();
    let files = &run.manifest.extra["import"]["files"];
    let empty = &files["assignment/run_20260218T024225Z_results.json"];
    assert_eq!(empty["size"], 0);
    assert!(empty["parse_error"].as_str().unwrap().contains("empty"));
    let ok = &files["assignment/run_20260218T004251Z_results.json"];
    assert_eq!(ok["kind"], "assignment_v3_results");
    assert_eq!(ok["parse_error"], serde_json::Value::Null);
    // The imported bytes are the upstream bytes.
    let subject = run
        .subject("assignment/run_20260218T004251Z_results.json")
        .unwrap();
    let upstream =
        std::fs::read(evidence().join(
            "cycle10_live_snapshot_20260218T0332Z/assignment/run_20260218T004251Z_results.json",
        ))
        .unwrap();
    assert_eq!(
        subject.digest["sha256"],
        husai_core::digest::sha256_hex(&upstream)
    );

    let cycle4 = lines
        .iter()
        .find(|l| l["group"] == "cycle4_followups_run_20260215T190004Z")
        .unwrap();
    let run = load_verified_run(&dir.path().join(cycle4["dir"].as_str().unwrap()), &trust).unwrap();
    let files = &run.manifest.extra["import"]["files"];
    assert_eq!(
        files["release_gate/release_policy.json"]["kind"],
        "release_policy"
    );
    assert_eq!(
        files["release_gate/release_policy.json"]["schema_version"],
        "v3-lcb"
    );
    assert!(
        !files["known_circuit/closure_summary.json"]["non_finite_pointers"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let verify = Command::new(env!("CARGO_BIN_EXE_husai-audit"))
        .args(["verify", "results", "--keys", "keys"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn only_selects_top_level_directories() {
    let (dir, _) = setup();
    let out = import(
        dir.path(),
        &evidence(),
        &[
            "--only",
            "phase4d_assignment_consistency_v2",
            "--only",
            "_root",
            "--json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["group"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(groups, ["_root", "phase4d_assignment_consistency_v2"]);
}

#[test]
fn bad_trees_are_refused_before_anything_is_written() {
    let (dir, _) = setup();
    let out = import(dir.path(), &dir.path().join("absent"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));

    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("a")).unwrap();
    std::fs::write(tree.join("a/ok.json"), "{}").unwrap();
    std::fs::create_dir_all(tree.join("b")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", tree.join("b/link.json")).unwrap();
    let out = import(dir.path(), &tree, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("link.json") && err.contains("symbolic link"),
        "{err}"
    );
    assert!(
        !dir.path().join("results/husai-evidence").exists()
            || std::fs::read_dir(dir.path().join("results/husai-evidence"))
                .unwrap()
                .count()
                == 0
    );

    std::fs::remove_file(tree.join("b/link.json")).unwrap();
    let out = import(dir.path(), &tree, &["--only", "c"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no top-level directory named \"c\""));

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = import(dir.path(), &empty, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no files to import"));
}

#[test]
fn importing_the_same_directory_twice_says_so_and_does_nothing_unless_again() {
    let (dir, _trust) = setup();
    let only = ["--only", "_root", "--json"];
    let first = import(dir.path(), &evidence(), &only);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let runs = || {
        std::fs::read_dir(dir.path().join("results/husai-evidence"))
            .unwrap()
            .count()
    };
    assert_eq!(runs(), 1);

    let again = import(dir.path(), &evidence(), &["--only", "_root"]);
    assert_eq!(again.status.code(), Some(0));
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        text.contains(&format!(
            "already imported as run husai-evidence/{}; nothing done (--again imports it anyway)",
            first["run_id"].as_str().unwrap()
        )),
        "{text}"
    );
    assert_eq!(runs(), 1, "a second import of the same files writes no run");
    let json = import(dir.path(), &evidence(), &only);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["already_imported"], first["run_id"]);

    let forced = import(dir.path(), &evidence(), &["--only", "_root", "--again"]);
    assert_eq!(forced.status.code(), Some(0));
    assert_eq!(runs(), 2, "--again imports it anyway");

    // A changed tree is a new import: copy the root's files, change one, and import the copy.
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for e in std::fs::read_dir(evidence()).unwrap() {
        let path = e.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    assert_eq!(
        import(dir.path(), &copy, &["--only", "_root"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(runs(), 3, "another source root is not the same import");
    std::fs::write(copy.join("extra-note.md"), "changed\n").unwrap();
    let changed = import(dir.path(), &copy, &["--only", "_root"]);
    assert!(!String::from_utf8_lossy(&changed.stdout).contains("already imported"));
    assert_eq!(runs(), 4, "changed files are a new import");
}
