//! Every way a run can be tampered with is caught, with its own message, without a panic.

mod common;

use std::path::Path;

use base64::Engine as _;
use common::*;
use husai_core::dsse::{self, Envelope};
use serde_json::Value;

const FILES: &[(&str, &[u8])] = &[
    ("metrics.json", b"{\"fvu\": 0.12}\n"),
    ("nested/summary.md", b"# summary\n\nall good\n"),
];

fn read_envelope(run: &Path) -> Envelope {
    serde_json::from_slice(&std::fs::read(run.join("husai.dsse.json")).unwrap()).unwrap()
}

fn payload_json(env: &Envelope) -> Value {
    serde_json::from_slice(&env.decode_payload().unwrap()).unwrap()
}

/// Rewrite the run's statement with `edit` and sign it again with the project's trusted key:
/// what a buggy or hostile producer holding a trusted key could write.
fn resign(p: &Project, run: &Path, edit: impl FnOnce(&mut Value)) {
    let mut statement = payload_json(&read_envelope(run));
    edit(&mut statement);
    let bytes = husai_core::canonical::to_canonical_vec(&statement).unwrap();
    let env = dsse::sign_envelope(dsse::INTOTO_PAYLOAD_TYPE, &bytes, &p.key);
    std::fs::write(
        run.join("husai.dsse.json"),
        serde_json::to_vec_pretty(&env).unwrap(),
    )
    .unwrap();
}

fn verify(p: &Project) -> std::process::Output {
    p.run(&["verify"])
}

#[test]
fn an_untouched_run_verifies() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let o = verify(&p);
    assert_success(&o);
    assert!(stdout(&o).contains("all good"), "{}", stdout(&o));
    assert!(stdout(&o).contains(&file_name(&run)));
    // --json is machine-readable and says the same.
    let o = p.run(&["verify", "--json"]);
    assert_success(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    assert_eq!(v["runs"][0]["subjects"], 2);
}

#[test]
fn a_flipped_byte_is_caught() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let f = run.join("metrics.json");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[3] ^= 0x01;
    std::fs::write(&f, bytes).unwrap();
    assert_fails_with(
        &verify(&p),
        1,
        &["metrics.json", "does not match its signed sha256 digest"],
    );
}

#[test]
fn a_truncated_file_is_caught() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let f = run.join("nested/summary.md");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..5]).unwrap();
    assert_fails_with(&verify(&p), 1, &["nested/summary.md", "(truncated)"]);
}

#[test]
fn a_deleted_output_is_caught() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    std::fs::remove_file(run.join("metrics.json")).unwrap();
    assert_fails_with(&verify(&p), 1, &["metrics.json", "signed but missing"]);
}

#[test]
fn an_extra_file_in_a_run_is_caught() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    std::fs::write(run.join("nested/sneaky.json"), b"{}").unwrap();
    assert_fails_with(
        &verify(&p),
        1,
        &["sneaky.json", "not covered by its signed statement"],
    );
}

#[test]
fn an_envelope_copied_from_another_run_is_caught() {
    let p = Project::new();
    let a = p.attest("a", "exp", FILES);
    let b = p.attest("b", "exp", FILES);
    std::fs::copy(a.join("husai.dsse.json"), b.join("husai.dsse.json")).unwrap();
    assert_fails_with(
        &verify(&p),
        1,
        &[&file_name(&b), "an envelope copied from another run"],
    );
}

#[test]
fn a_payload_edited_after_signing_is_caught() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let mut env = read_envelope(&run);
    let mut statement = payload_json(&env);
    statement["predicate"]["seeds"] = serde_json::json!([42]);
    env.payload =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&statement).unwrap());
    std::fs::write(
        run.join("husai.dsse.json"),
        serde_json::to_vec(&env).unwrap(),
    )
    .unwrap();
    assert_fails_with(
        &verify(&p),
        1,
        &[
            "husai.dsse.json",
            "does not verify",
            "altered after signing",
        ],
    );
}

#[test]
fn a_signature_by_an_unknown_key_is_caught() {
    let p = Project::new();
    let stranger = husai_core::keys::generate();
    std::fs::write(p.path("stranger.pem"), stranger.to_pkcs8_pem()).unwrap();
    let out = p.path("out/s");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("x.json"), b"{}").unwrap();
    assert_success(&p.run(&[
        "attest",
        out.to_str().unwrap(),
        "--campaign",
        "exp",
        "--key",
        "stranger.pem",
    ]));
    assert_fails_with(&verify(&p), 1, &["not in trust policy"]);
}

#[test]
fn a_signature_by_a_revoked_key_is_caught() {
    let p = Project::new();
    p.attest("a", "exp", FILES);
    p.write_policy(&[PolicyKey {
        key: &p.key,
        file: "dev.pub.pem",
        roles: &["ci"],
        not_before: "2020-01-01T00:00:00Z",
        not_after: None,
        revoked: Some(("2020-06-01T00:00:00Z", "laptop stolen")),
    }]);
    assert_fails_with(&verify(&p), 1, &["revoked", "laptop stolen"]);
}

#[test]
fn a_signature_by_an_expired_key_is_caught() {
    let p = Project::new();
    p.attest("a", "exp", FILES);
    p.write_policy(&[PolicyKey {
        key: &p.key,
        file: "dev.pub.pem",
        roles: &["ci"],
        not_before: "2020-01-01T00:00:00Z",
        not_after: Some("2021-01-01T00:00:00Z"),
        revoked: None,
    }]);
    assert_fails_with(&verify(&p), 1, &["expired", "2021-01-01"]);
}

#[test]
fn a_role_that_is_not_accepted_is_caught() {
    let p = Project::new();
    p.attest("a", "exp", FILES);
    assert_success(&p.run(&["verify", "--role", "ci"]));
    assert_fails_with(
        &p.run(&["verify", "--role", "release"]),
        1,
        &["none of which is accepted"],
    );
}

#[test]
fn a_subject_path_with_dotdot_is_caught() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    resign(&p, &run, |s| {
        s["subject"][0]["name"] = "../escape.json".into();
    });
    assert_fails_with(&verify(&p), 1, &["../escape.json", "contains '..'"]);
}

#[test]
fn an_absolute_subject_path_is_caught() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    resign(&p, &run, |s| {
        s["subject"][0]["name"] = "/etc/hostname".into();
    });
    assert_fails_with(&verify(&p), 1, &["/etc/hostname", "is absolute"]);
}

#[test]
fn a_symlink_pointing_outside_is_caught() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let outside = p.path("outside.json");
    std::fs::copy(run.join("metrics.json"), &outside).unwrap();
    std::fs::remove_file(run.join("metrics.json")).unwrap();
    std::os::unix::fs::symlink(&outside, run.join("metrics.json")).unwrap();
    assert_fails_with(
        &verify(&p),
        1,
        &[
            "metrics.json",
            "symbolic link leading out of the run directory",
        ],
    );
}

#[test]
fn a_manifest_that_breaks_its_schema_is_caught() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    resign(&p, &run, |s| {
        s["predicate"]["kind"] = "vibes".into();
        s["predicate"].as_object_mut().unwrap().remove("seeds");
    });
    assert_fails_with(
        &verify(&p),
        1,
        &["does not match schema run-manifest.v1", "/kind", "seeds"],
    );
}

#[test]
fn an_unknown_major_schema_version_is_rejected_clearly() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    resign(&p, &run, |s| {
        s["predicate"]["schema_version"] = "2.0".into();
    });
    assert_fails_with(
        &verify(&p),
        1,
        &["schema_version \"2.0\"", "reads major 1 only"],
    );
}

#[test]
fn malformed_nan_empty_and_missing_envelopes_are_caught() {
    let p = Project::new();
    let cases: [(&str, &[u8], &str); 3] = [
        ("m", b"{\"payload\": ", "is not valid JSON"),
        ("n", b"{\"payload\": NaN}", "bare NaN/Infinity token"),
        ("e", b"", "is empty"),
    ];
    for (name, bytes, needle) in cases {
        let run = p.attest(name, "exp", FILES);
        std::fs::write(run.join("husai.dsse.json"), bytes).unwrap();
        let o = verify(&p);
        assert_fails_with(&o, 1, &[needle, &file_name(&run)]);
        std::fs::remove_dir_all(&run).unwrap();
    }
    let run = p.attest("x", "exp", FILES);
    std::fs::remove_file(run.join("husai.dsse.json")).unwrap();
    assert_fails_with(&verify(&p), 1, &["has no envelope husai.dsse.json"]);
}

#[test]
fn every_failure_is_reported_not_just_the_first() {
    let p = Project::new();
    let a = p.attest("a", "exp", FILES);
    let b = p.attest("b", "exp", FILES);
    std::fs::remove_file(a.join("metrics.json")).unwrap();
    std::fs::write(a.join("extra.txt"), b"x").unwrap();
    std::fs::write(b.join("nested/summary.md"), b"changed").unwrap();
    let o = p.run(&["verify", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let codes: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"missing_output"), "{codes:?}");
    assert!(codes.contains(&"unattested_file"), "{codes:?}");
    assert!(codes.contains(&"size_mismatch"), "{codes:?}");
    assert_eq!(v["passed"], false);
}

#[test]
fn a_file_outside_any_run_is_unattested() {
    let p = Project::new();
    p.attest("a", "exp", FILES);
    std::fs::write(p.path("results/exp/notes.txt"), b"loose").unwrap();
    assert_fails_with(&verify(&p), 1, &["notes.txt", "is not inside any run"]);
}

#[test]
fn an_unreadable_path_exits_2_and_names_it() {
    let p = Project::new();
    assert_fails_with(
        &p.run(&["verify", "no/such/dir"]),
        2,
        &["no/such/dir", "cannot read"],
    );
}

#[test]
fn a_leftover_staging_directory_is_reported_not_verified() {
    let p = Project::new();
    p.attest("a", "exp", FILES);
    let staging = p.path("results/exp/.staging-20261128T052501Z-9f3a1c2b7d4e6a80-999999");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("half.bin"), b"half").unwrap();
    let o = verify(&p);
    assert_success(&o);
    assert!(stderr(&o).contains("staging directory of an interrupted"));
    assert!(stdout(&o).contains("verified 1 runs"));
}

#[test]
fn the_provenance_chain_is_followed() {
    let p = Project::new();
    let a = p.attest("a", "exp", FILES);
    let out = p.path("out/b");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("derived.json"), b"{\"from\": \"a\"}").unwrap();
    let input = a.join("metrics.json");
    let o = p.run(&[
        "attest",
        out.to_str().unwrap(),
        "--campaign",
        "derived",
        "--key",
        "dev.pem",
        "--input",
        input.to_str().unwrap(),
        "--json",
    ]);
    assert_success(&o);
    let b: Value = serde_json::from_slice(&o.stdout).unwrap();
    let b_dir = b["dir"].as_str().unwrap().to_string();
    assert_success(&verify(&p));
    // The chain is recorded in the signed manifest.
    let shown = p.run(&["show", &b_dir, "--json"]);
    assert_success(&shown);
    let m: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        m["predicate"]["inputs"][0]["run"]["run_id"],
        file_name(&a).as_str()
    );

    // Verifying only the derived run still checks its ancestor.
    std::fs::write(&input, b"{\"fvu\": 0.99}\n").unwrap();
    assert_fails_with(
        &p.run(&["verify", &b_dir]),
        1,
        &["fails verification", &file_name(&a)],
    );
    std::fs::remove_dir_all(&a).unwrap();
    assert_fails_with(
        &p.run(&["verify", &b_dir]),
        1,
        &["which is not present under"],
    );
}

#[test]
fn an_input_that_differs_from_its_runs_signed_output_is_refused_at_attest() {
    let p = Project::new();
    let a = p.attest("a", "exp", FILES);
    std::fs::write(a.join("metrics.json"), b"{\"fvu\": 0.5}\n").unwrap();
    let out = p.path("out/b");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("d.json"), b"{}").unwrap();
    let o = p.run(&[
        "attest",
        out.to_str().unwrap(),
        "--campaign",
        "derived",
        "--key",
        "dev.pem",
        "--input",
        a.join("metrics.json").to_str().unwrap(),
    ]);
    assert_fails_with(&o, 2, &["inside a run that fails verification"]);
    assert!(
        !p.path("results/derived").exists()
            || std::fs::read_dir(p.path("results/derived"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn verify_checks_the_claims_registry_against_verified_runs() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let run_ref = format!("exp/{}", file_name(&run));
    let registry = |value: f64| {
        serde_json::json!({
            "schema_version": "1.0",
            "documents": ["notes.md"],
            "claims": [{
                "id": "fvu-small",
                "statement": "The FVU is below a fifth.",
                "level": "internal",
                "evidence": [{"run": run_ref, "subject": "metrics.json", "pointer": "/fvu",
                              "comparator": "<", "value": value}]
            }]
        })
    };
    std::fs::write(
        p.path("notes.md"),
        "FVU <!-- claim:fvu-small -->0.12<!-- /claim -->\n",
    )
    .unwrap();
    std::fs::write(p.path("claims.json"), registry(0.2).to_string()).unwrap();
    let o = verify(&p);
    assert_success(&o);
    assert!(stdout(&o).contains("ok    fvu-small"), "{}", stdout(&o));

    // The evidence no longer supports the claim.
    std::fs::write(p.path("claims.json"), registry(0.1).to_string()).unwrap();
    assert_fails_with(&verify(&p), 1, &["FAIL  fvu-small"]);

    // The document drifted from the evidence.
    std::fs::write(p.path("claims.json"), registry(0.2).to_string()).unwrap();
    std::fs::write(
        p.path("notes.md"),
        "FVU <!-- claim:fvu-small -->0.21<!-- /claim -->\n",
    )
    .unwrap();
    assert_fails_with(&verify(&p), 1, &["notes.md:1"]);
    assert_success(&p.run(&["verify", "--no-claims"]));

    // A registry named explicitly must be readable.
    assert_fails_with(
        &p.run(&["verify", "--claims", "missing.json"]),
        2,
        &["missing.json"],
    );
}
