//! `trust add`/`trust list`, `verify --key`, and what `verify` says when it fails or finds nothing.

use crate::common;

use common::*;

/// A project whose keys/ has a policy with a roles table (ci, developer), and a key pair `me`.
fn project_with_me() -> (Project, husai_core::keys::SigningKey) {
    let p = Project::new();
    let o = p.run(&["keygen", "me"]);
    assert_success(&o);
    let me = husai_core::keys::SigningKey::from_pkcs8_pem_file(p.path("me.pem")).unwrap();
    (p, me)
}

#[test]
fn keygen_prints_a_real_not_before_and_the_trust_add_command() {
    let (p, _) = project_with_me();
    let o = p.run(&["keygen", "other"]);
    let out = stdout(&o);
    assert!(!out.contains("<now"), "{out}");
    assert!(out.contains("husai-audit trust add"), "{out}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("{\"keyid\""))
        .expect("an entry line");
    let entry: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let nb = entry["not_before"].as_str().unwrap();
    assert!(husai_core::store::parse_timestamp(nb).is_some(), "{nb}");
}

#[test]
fn trust_add_then_attest_then_verify_works_and_list_shows_the_key() {
    let (p, me) = project_with_me();
    // A fresh keys directory: trust add creates the policy.
    let o = p.run(&[
        "trust",
        "add",
        "me.pub.pem",
        "--role",
        "developer",
        "--keys",
        "k2",
    ]);
    assert_success(&o);
    let out = stdout(&o);
    assert!(out.contains("created"), "{out}");
    assert!(out.contains(&me.key_id()), "{out}");
    assert!(out.contains("modification time"), "{out}");
    assert!(p.path("k2/me.pub.pem").is_file());
    std::fs::create_dir_all(p.path("out")).unwrap();
    std::fs::write(p.path("out/m.json"), b"{}").unwrap();
    assert_success(&p.run(&[
        "attest",
        "out",
        "--campaign",
        "c",
        "--kind",
        "external",
        "--key",
        "me.pem",
    ]));
    let o = p.run(&["verify", "--keys", "k2"]);
    assert_success(&o);
    assert!(stdout(&o).contains("all good"), "{}", stdout(&o));

    let o = p.run(&["trust", "list", "--keys", "k2"]);
    assert_success(&o);
    let out = stdout(&o);
    assert!(out.contains(&me.key_id()), "{out}");
    assert!(out.contains("developer"), "{out}");
    assert!(
        out.contains(&husai_core::keys::envelope_key_id(&me.public_key())),
        "{out}"
    );

    // Adding it twice is refused, and the policy is unchanged.
    let before = std::fs::read(p.path("k2/trust-policy.json")).unwrap();
    let o = p.run(&[
        "trust",
        "add",
        "me.pub.pem",
        "--role",
        "developer",
        "--keys",
        "k2",
    ]);
    assert_fails_with(&o, 2, &["already in trust policy"]);
    assert_eq!(
        std::fs::read(p.path("k2/trust-policy.json")).unwrap(),
        before
    );
}

#[test]
fn trust_add_refuses_bad_input_with_a_reason() {
    let (p, _) = project_with_me();
    assert_success(&p.run(&[
        "trust",
        "add",
        "me.pub.pem",
        "--role",
        "developer",
        "--keys",
        "k2",
    ]));
    assert_success(&p.run(&["keygen", "two"]));
    // Unknown role: the table lists ci and developer.
    let o = p.run(&[
        "trust",
        "add",
        "two.pub.pem",
        "--role",
        "admin",
        "--keys",
        "k2",
    ]);
    assert_fails_with(&o, 2, &["unknown role \"admin\"", "ci, developer"]);
    // Unreadable key.
    let o = p.run(&[
        "trust",
        "add",
        "nope.pub.pem",
        "--role",
        "ci",
        "--keys",
        "k2",
    ]);
    assert_fails_with(&o, 2, &["nope.pub.pem", "does not exist"]);
    std::fs::write(p.path("junk.pub.pem"), b"not a key").unwrap();
    let o = p.run(&[
        "trust",
        "add",
        "junk.pub.pem",
        "--role",
        "ci",
        "--keys",
        "k2",
    ]);
    assert_fails_with(&o, 2, &["junk.pub.pem", "not a PEM file"]);
    // A private key is not a public key.
    let o = p.run(&["trust", "add", "two.pem", "--role", "ci", "--keys", "k2"]);
    assert_fails_with(&o, 2, &["two.pem"]);
    // Malformed --not-before.
    let o = p.run(&[
        "trust",
        "add",
        "two.pub.pem",
        "--role",
        "ci",
        "--not-before",
        "yesterday",
        "--keys",
        "k2",
    ]);
    assert_fails_with(&o, 2, &["--not-before", "\"yesterday\"", "RFC 3339"]);
    // A good --not-before is written as given.
    let o = p.run(&[
        "trust",
        "add",
        "two.pub.pem",
        "--role",
        "ci",
        "--not-before",
        "2026-02-03T04:05:06Z",
        "--keys",
        "k2",
    ]);
    assert_success(&o);
    let policy = std::fs::read_to_string(p.path("k2/trust-policy.json")).unwrap();
    assert!(policy.contains("2026-02-03T04:05:06Z"), "{policy}");
}

#[test]
fn verify_key_checks_one_key_and_says_it_bypasses_the_policy() {
    let (p, me) = project_with_me();
    let run = p.attest("a", "c", &[("m.json", b"{}")]);
    // The project's key signed it; checked against that key alone.
    std::fs::write(p.path("dev.pub.pem"), p.key.public_key().to_spki_pem()).unwrap();
    let o = p.run(&["verify", "--key", "dev.pub.pem", run.to_str().unwrap()]);
    assert_success(&o);
    assert!(
        stderr(&o).contains("BYPASSING the trust policy"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("trust policy BYPASSED"),
        "{}",
        stdout(&o)
    );
    let o = p.run(&["verify", "--help"]);
    assert!(
        stdout(&o).contains("BYPASSING the trust policy"),
        "{}",
        stdout(&o)
    );
    // Another key: refused, with a FAILED line.
    std::fs::write(p.path("me.pub.pem"), me.public_key().to_spki_pem()).unwrap();
    let o = p.run(&["verify", "--key", "me.pub.pem", run.to_str().unwrap()]);
    assert_fails_with(&o, 1, &["error[signature]", "FAILED: 1 of 1 runs failed"]);
    // An unreadable key.
    let o = p.run(&["verify", "--key", "missing.pub.pem", run.to_str().unwrap()]);
    assert_fails_with(&o, 2, &["--key missing.pub.pem"]);
}

#[test]
fn verify_on_a_tree_without_runs_fails_unless_allowed() {
    let p = Project::new();
    std::fs::create_dir_all(p.path("empty")).unwrap();
    let o = p.run(&["verify", "empty"]);
    assert_fails_with(
        &o,
        1,
        &["FAILED: no runs found under empty", "--allow-empty"],
    );
    assert!(!stdout(&o).contains("all good"), "{}", stdout(&o));
    assert_success(&p.run(&["verify", "empty", "--allow-empty"]));
    // A path that does not exist is an I/O error, and still ends with FAILED.
    let o = p.run(&["verify", "no-such-dir"]);
    assert_fails_with(&o, 2, &["FAILED"]);
}

#[test]
fn a_failed_claims_check_ends_with_a_failed_line() {
    let p = Project::new();
    p.attest("a", "c", &[("m.json", b"{}")]);
    std::fs::write(p.path("claims.json"), b"{not json").unwrap();
    let o = p.run(&["verify", "results", "--claims", "claims.json"]);
    assert_fails_with(
        &o,
        2,
        &["FAILED: claims registry claims.json cannot be used"],
    );
}

#[test]
fn verify_json_paths_are_relative_to_the_results_root() {
    let p = Project::new();
    let run = p.attest("a", "c", &[("m.json", b"{}")]);
    std::fs::write(run.join("extra.txt"), b"x").unwrap();
    let root = p.path("results");
    for arg in [root.to_str().unwrap(), "results", run.to_str().unwrap()] {
        let o = p.run(&["verify", "--json", arg]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let id = file_name(&run);
        assert_eq!(v["runs"][0]["dir"], format!("c/{id}"), "{v}");
        let f = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "unattested_file")
            .unwrap();
        assert_eq!(f["file"], format!("c/{id}/extra.txt"), "{v}");
        assert_eq!(f["run"], format!("c/{id}"), "{v}");
        assert_eq!(v["passed"], false);
        assert_eq!(v["trust"]["policy_bypassed"], false);
    }
}
