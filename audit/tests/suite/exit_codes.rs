//! One exit-code contract for every subcommand (issue #9 item 8): 0 everything checked passed; 1 a verification,
//! gate or claim failure; 2 a usage or I/O error. Each subcommand is driven to each code it can give, in one
//! scratch project.

use crate::common;

use common::{Project, assert_fails_with, assert_success};

/// Attests `dir` (holding one small JSON file) as a run of campaign `c`; returns the run directory.
fn attested(p: &Project, dir: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(p.path(dir)).unwrap();
    std::fs::write(p.path(&format!("{dir}/out.json")), "{\"x\": 1}\n").unwrap();
    let o = p.run(&[
        "attest",
        dir,
        "--campaign",
        "c",
        "--key",
        "dev.pem",
        "--json",
    ]);
    assert_success(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    p.dir.path().join(v["dir"].as_str().unwrap())
}

#[test]
fn every_subcommand_keeps_one_exit_code_contract() {
    let p = Project::new();
    let run = attested(&p, "out");
    let run_s = run.to_str().unwrap().to_owned();

    // 0: a run that verifies.
    assert_success(&p.run(&["verify"]));
    assert_success(&p.run(&["show", &run_s]));

    // 2: usage errors, whatever the subcommand (clap's own and husai's).
    for args in [
        vec!["verify", "--no-such-flag"],
        vec!["gate", "--min-ood-drop"],
        vec![
            "train",
            "--plugin",
            "x",
            "--data",
            "d.npy",
            "--seed",
            "0",
            "--campaign",
            "c",
            "--rows",
            "9:3",
        ],
        vec![
            "data",
            "encode",
            "--checkpoint",
            "ck",
            "--data",
            "d.npy",
            "--out",
            "e.npy",
            "--rows",
            "a:b",
        ],
        vec!["attest", "out", "--campaign", "c"],
        vec!["show", "not-a-run"],
        vec![
            "import",
            "husai-evidence",
            "no-such-dir",
            "--campaign",
            "i",
            "--key",
            "dev.pem",
        ],
    ] {
        let o = p.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", common::stderr(&o));
    }
    let o = p.run(&["gate", "--phase4a", "missing.json", "--key", "dev.pem"]);
    assert_fails_with(&o, 2, &["missing.json: no such file"]);

    // 1: the attested command failed.
    let o = p.run(&[
        "attest",
        "gen",
        "--campaign",
        "c",
        "--key",
        "dev.pem",
        "--",
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_fails_with(&o, 1, &["failed", "nothing was attested"]);

    // 1: an unsigned input, the same from gate, select and data encode.
    std::fs::write(p.path("plain.json"), "{\"x\": 1}\n").unwrap();
    let o = p.run(&["gate", "--phase4a", "plain.json", "--key", "dev.pem"]);
    assert_fails_with(&o, 1, &["not inside a signed run", "gate: FAILED"]);
    let o = p.run(&["select", "--input", "plain.json", "--key", "dev.pem"]);
    assert_fails_with(&o, 1, &["not inside a signed run"]);
    std::fs::create_dir_all(p.path("ck")).unwrap();
    let o = p.run(&[
        "data",
        "encode",
        "--checkpoint",
        "ck",
        "--data",
        "d.npy",
        "--out",
        "e.npy",
    ]);
    assert_fails_with(
        &o,
        1,
        &[
            "checkpoint ck is not inside a signed run",
            "data encode: FAILED",
        ],
    );
    assert!(!p.path("e.npy").exists());

    // 1: a run changed after signing, seen by verify and show alike.
    std::fs::write(run.join("out.json"), "{\"x\": 2}\n").unwrap();
    let o = p.run(&["verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", common::stdout(&o));
    let o = p.run(&["show", &run_s]);
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
}

#[test]
fn the_contract_is_in_the_top_level_help() {
    let p = Project::new();
    let o = p.run(&["--help"]);
    assert_success(&o);
    let help = common::stdout(&o);
    for line in [
        "Exit codes, the same for every subcommand",
        "0 everything checked passed",
        "1 a verification, gate or claim failure",
        "2 a usage or I/O error",
    ] {
        assert!(help.contains(line), "{line:?} missing:\n{help}");
    }
}
