//! Every way a run can be tampered with is caught, with its own message, without a panic.

use crate::common;

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
    write_private_key(&p.path("stranger.pem"), &stranger);
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
fn a_leftover_staging_directory_fails_unless_allowed() {
    let p = Project::new();
    p.attest("a", "exp", FILES);
    let staging = p.path("results/exp/.staging-20261128T052501Z-9f3a1c2b7d4e6a80-999999");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("half.bin"), b"half").unwrap();
    // It could hide any file, so it fails verification...
    assert_fails_with(
        &verify(&p),
        1,
        &[
            "error[leftover_staging]",
            "staging directory of an interrupted",
            "--allow-staging",
        ],
    );
    // ...unless the caller says a run may be in flight.
    let o = p.run(&["verify", "--allow-staging"]);
    assert_success(&o);
    assert!(
        stderr(&o).contains("warning[leftover_staging]"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("verified 1 runs"));
}

#[test]
fn a_staging_name_the_store_never_makes_fails_always() {
    let p = Project::new();
    p.attest("a", "exp", FILES);
    for name in [
        ".staging-evil",
        ".staging-20261128T052501Z-9f3a1c2b7d4e6a80-x",
    ] {
        let d = p.path(&format!("results/exp/{name}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("payload.bin"), b"anything").unwrap();
        assert_fails_with(
            &p.run(&["verify", "--allow-staging"]),
            1,
            &["error[bad_staging_name]", name, "husai never made it"],
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// A policy trusting the project's key as `ci` and a second key as `developer`; the developer's
/// private key is written to dev2.pem. `table` is the 1.1 roles table, or `None` for a 1.0
/// policy (default table).
fn policy_with_developer(p: &Project, table: Option<Value>) -> husai_core::keys::SigningKey {
    let dev = husai_core::keys::generate();
    write_private_key(&p.path("dev2.pem"), &dev);
    p.write_policy(&[
        PolicyKey {
            key: &p.key,
            file: "dev.pub.pem",
            roles: &["ci"],
            not_before: "2020-01-01T00:00:00Z",
            not_after: None,
            revoked: None,
        },
        PolicyKey {
            key: &dev,
            file: "dev2.pub.pem",
            roles: &["developer"],
            not_before: "2020-01-01T00:00:00Z",
            not_after: None,
            revoked: None,
        },
    ]);
    if let Some(table) = table {
        let path = p.path("keys/trust-policy.json");
        let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        doc["schema_version"] = "1.1".into();
        doc["roles"] = table;
        std::fs::write(&path, doc.to_string()).unwrap();
    }
    dev
}

fn attest_as(
    p: &Project,
    name: &str,
    key: &str,
    kind: &str,
    files: &[(&str, &[u8])],
) -> std::path::PathBuf {
    let out = p.path(&format!("out/{name}"));
    for (rel, bytes) in files {
        let f = out.join(rel);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, bytes).unwrap();
    }
    let o = p.run(&[
        "attest",
        out.to_str().unwrap(),
        "--campaign",
        "exp",
        "--kind",
        kind,
        "--key",
        key,
        "--json",
    ]);
    assert_success(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    p.dir.path().join(v["dir"].as_str().unwrap())
}

const PASSING_REPORT: &[u8] = br#"{"pass_all": true, "hand": "edited"}"#;

#[test]
fn a_developer_key_cannot_sign_a_gate_run_for_any_consumer() {
    let p = Project::new();
    policy_with_developer(&p, None);
    let gate = attest_as(
        &p,
        "g",
        "dev2.pem",
        "gate",
        &[("gate-report.json", PASSING_REPORT)],
    );
    let msg = "may not sign runs of kind gate";
    // verify, without any --role.
    assert_fails_with(
        &verify(&p),
        1,
        &["error[role_kind]", msg, "only roles [ci] may"],
    );
    // Input resolution refuses it too (the shared verified-run loader).
    let o = p.run(&[
        "attest",
        "out/g",
        "--campaign",
        "exp",
        "--key",
        "dev.pem",
        "--input",
        gate.join("gate-report.json").to_str().unwrap(),
    ]);
    assert_fails_with(&o, 2, &[msg]);
    // show (also the shared loader).
    assert_fails_with(&p.run(&["show", gate.to_str().unwrap()]), 1, &[msg]);
    // The same developer key may still sign an ordinary run.
    let p2 = Project::new();
    policy_with_developer(&p2, None);
    attest_as(&p2, "e", "dev2.pem", "external", FILES);
    assert_success(&verify(&p2));
}

#[test]
fn the_roles_table_binds_each_role_to_its_kinds() {
    let p = Project::new();
    let table = serde_json::json!({
        "ci": {"kinds": ["external", "data", "train", "eval", "import", "select", "gate"]},
        "developer": {"kinds": ["train"]}
    });
    policy_with_developer(&p, Some(table));
    attest_as(&p, "e", "dev2.pem", "external", FILES);
    assert_fails_with(
        &verify(&p),
        1,
        &[
            "error[role_kind]",
            "may not sign runs of kind external",
            "roles [developer]",
        ],
    );
    // A role a key holds must be defined when there is a table.
    let path = p.path("keys/trust-policy.json");
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    doc["roles"].as_object_mut().unwrap().remove("developer");
    std::fs::write(&path, doc.to_string()).unwrap();
    assert_fails_with(
        &verify(&p),
        2,
        &["holds role \"developer\", which the policy's roles table does not define"],
    );
}

/// A release claim relying on the gate run `gate` (campaign exp) and citing `cited`.
fn release_registry(p: &Project, gate: &std::path::Path, cited: &std::path::Path) {
    let registry = serde_json::json!({
        "schema_version": "1.0",
        "documents": [],
        "claims": [{
            "id": "release-x",
            "statement": "x is released.",
            "level": "release",
            "gate": format!("exp/{}", file_name(gate)),
            "evidence": [{"run": format!("exp/{}", file_name(cited)), "subject": "metrics.json",
                          "pointer": "/fvu", "comparator": "<", "value": 1}]
        }]
    });
    std::fs::write(p.path("claims.json"), registry.to_string()).unwrap();
}

#[test]
fn a_release_claim_needs_a_report_the_gate_produced() {
    let p = Project::new();
    let cited = p.attest("a", "exp", FILES);
    // A hand-edited report attested as kind gate with the trusted ci key: not made by the gate.
    let gate = attest_as(
        &p,
        "g",
        "dev.pem",
        "gate",
        &[("gate-report.json", PASSING_REPORT)],
    );
    release_registry(&p, &gate, &cited);
    assert_fails_with(
        &verify(&p),
        1,
        &[
            "ERROR release-x",
            "was not produced by the release gate",
            "\"attest\"",
        ],
    );
    // Re-signed to look as if `husai-audit gate` made it: the report must still match its schema.
    resign(&p, &gate, |st| {
        st["predicate"]["argv"] = serde_json::json!(["husai-audit", "gate", "--strict"]);
    });
    assert_fails_with(
        &verify(&p),
        1,
        &[
            "ERROR release-x",
            "gate-report.json is not a gate report",
            "does not match schema gate-report.v1",
        ],
    );
}

#[test]
fn a_postdated_or_impossible_signing_time_is_an_error() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let postdated = husai_core::store::format_timestamp(tomorrow);
    resign(&p, &run, |st| {
        st["predicate"]["finished_at"] = postdated.clone().into()
    });
    assert_fails_with(
        &verify(&p),
        1,
        &[
            "error[signing_time]",
            &postdated,
            "after this verifier's clock",
            "300 s",
        ],
    );
    // A key not yet valid today cannot sign today by postdating past its not_before either.
    p.write_policy(&[PolicyKey {
        key: &p.key,
        file: "dev.pub.pem",
        roles: &["ci"],
        not_before: &husai_core::store::format_timestamp(tomorrow - time::Duration::hours(1)),
        not_after: None,
        revoked: None,
    }]);
    assert_fails_with(&verify(&p), 1, &["error[signing_time]"]);

    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    resign(&p, &run, |st| {
        st["predicate"]["finished_at"] = "2026-02-30T10:00:00.000Z".into()
    });
    assert_fails_with(
        &verify(&p),
        1,
        &[
            "error[signing_time]",
            "2026-02-30T10:00:00.000Z",
            "not a valid RFC 3339 date-time",
        ],
    );
}

#[test]
fn duplicate_json_keys_are_errors_in_policy_envelope_and_payload() {
    // The policy: a revocation followed by "revoked": null must not un-revoke the key.
    let p = Project::new();
    p.attest("a", "exp", FILES);
    let path = p.path("keys/trust-policy.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "\"revoked\": null",
        "\"revoked\": {\"at\": \"2020-06-01T00:00:00Z\", \"reason\": \"stolen\"}, \"revoked\": null",
        1,
    );
    std::fs::write(&path, text).unwrap();
    assert_fails_with(
        &verify(&p),
        2,
        &["trust-policy.json", "duplicate key \"revoked\""],
    );

    // The envelope.
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let env_path = run.join("husai.dsse.json");
    let text = std::fs::read_to_string(&env_path).unwrap();
    let text = text.replacen('{', "{\"payloadType\": \"x\",", 1);
    std::fs::write(&env_path, text).unwrap();
    assert_fails_with(
        &verify(&p),
        1,
        &["error[malformed_envelope]", "duplicate key \"payloadType\""],
    );

    // The signed payload (a signer cannot make two readers see two different manifests).
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let statement = payload_json(&read_envelope(&run));
    let canonical = husai_core::canonical::to_canonical_vec(&statement).unwrap();
    let text = String::from_utf8(canonical).unwrap();
    let doubled = text.replacen("{", "{\"_type\":\"x\",", 1);
    let env = dsse::sign_envelope(dsse::INTOTO_PAYLOAD_TYPE, doubled.as_bytes(), &p.key);
    std::fs::write(env_path_of(&run), serde_json::to_vec_pretty(&env).unwrap()).unwrap();
    assert_fails_with(
        &verify(&p),
        1,
        &["error[malformed_payload]", "duplicate key \"_type\""],
    );
}

fn env_path_of(run: &std::path::Path) -> std::path::PathBuf {
    run.join("husai.dsse.json")
}

#[test]
fn an_envelope_that_is_a_symlink_fifo_or_huge_is_refused_without_reading_it() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let env = env_path_of(&run);
    std::fs::remove_file(&env).unwrap();
    // A symlink to /dev/zero: refused at open, not read.
    std::os::unix::fs::symlink("/dev/zero", &env).unwrap();
    let t0 = std::time::Instant::now();
    assert_fails_with(
        &verify(&p),
        1,
        &["error[symlink]", "is a symbolic link", "not followed"],
    );
    assert!(t0.elapsed().as_secs() < 20);
    std::fs::remove_file(&env).unwrap();

    // A FIFO: refused, and verify does not block on it.
    let c = std::ffi::CString::new(env.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc_mkfifo(c.as_ptr(), 0o644) }, 0);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_husai-audit"))
        .arg("verify")
        .current_dir(p.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() > 20 {
            let _ = child.kill();
            panic!("verify blocked on a FIFO envelope");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert_fails_with(&o, 1, &["error[not_a_file]", "a FIFO (named pipe)"]);
    std::fs::remove_file(&env).unwrap();

    // Over the size cap: refused before parsing.
    let f = std::fs::File::create(&env).unwrap();
    f.set_len(husai_core::dsse::MAX_ENVELOPE_BYTES + 1).unwrap();
    assert_fails_with(
        &verify(&p),
        1,
        &["error[envelope_too_large]", "67108864-byte limit"],
    );
}

unsafe extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}

#[test]
fn thousands_of_signatures_are_refused_before_any_is_checked() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let mut env = read_envelope(&run);
    let junk = env.signatures[0].clone();
    env.signatures = vec![junk; 20_000];
    std::fs::write(env_path_of(&run), serde_json::to_vec(&env).unwrap()).unwrap();
    let t0 = std::time::Instant::now();
    assert_fails_with(
        &verify(&p),
        1,
        &["error[signature]", "20000 signatures; at most 16"],
    );
    assert!(t0.elapsed().as_secs() < 20);
}

#[test]
fn a_run_copied_deeper_into_the_tree_is_caught_and_not_counted() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let copy = p.path(&format!("results/x/exp/{}", file_name(&run)));
    std::fs::create_dir_all(copy.join("nested")).unwrap();
    for f in ["husai.dsse.json", "metrics.json", "nested/summary.md"] {
        std::fs::copy(run.join(f), copy.join(f)).unwrap();
    }
    let o = p.run(&["verify", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 1, "counted once");
    let f = &v["findings"][0];
    assert_eq!(f["code"], "run_location");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("runs live exactly at <results>/<campaign>/<run_id>")
    );
    // Named twice on the command line, in two places: the second is a duplicate.
    let elsewhere = p.path(&format!("other/exp/{}", file_name(&run)));
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    std::fs::rename(&copy, &elsewhere).unwrap();
    assert_fails_with(
        &p.run(&["verify", "results", "other"]),
        1,
        &["error[duplicate_run]", "appears twice"],
    );
}

#[test]
fn control_characters_in_file_names_are_escaped() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    let evil = "x\n\u{1b}[2Kok    fake-run  all good\nverified 9 runs: all good\u{7}";
    std::fs::write(run.join(evil), b"").unwrap();
    let o = verify(&p);
    assert_fails_with(&o, 1, &["error[unattested_file]", "x\\u{a}\\u{1b}[2Kok"]);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!all.contains('\u{1b}') && !all.contains('\u{7}'), "{all:?}");
    assert!(
        !all.lines().any(|l| l.starts_with("verified 9 runs")),
        "{all}"
    );
}

#[test]
fn a_non_utf8_name_is_reported_even_when_its_lossy_form_is_attested() {
    use std::os::unix::ffi::OsStrExt as _;
    let p = Project::new();
    let run = p.attest("a", "exp", &[("a\u{fffd}.txt", b"ok")]);
    std::fs::write(run.join(std::ffi::OsStr::from_bytes(b"a\xff.txt")), b"evil").unwrap();
    assert_fails_with(
        &verify(&p),
        1,
        &["error[unattested_file]", "a\\xff.txt", "not UTF-8"],
    );
    // --json still reports (exit 1, not 2), with the bytes escaped.
    let o = p.run(&["verify", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["findings"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("a\\xff.txt"),
        "{v}"
    );
}

#[test]
fn permission_errors_are_not_reported_as_missing_outputs() {
    use std::os::unix::fs::PermissionsExt as _;
    if unsafe { libc_geteuid() } == 0 {
        eprintln!("skipped: root reads files whatever their mode, so EACCES cannot be produced");
        return;
    }
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    std::fs::set_permissions(run.join("nested"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let o = verify(&p);
    std::fs::set_permissions(run.join("nested"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_fails_with(&o, 2, &["permission_denied", "permission denied"]);
    assert!(!stderr(&o).contains("signed but missing"), "{}", stderr(&o));
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
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

#[test]
fn show_escapes_control_characters_from_the_signed_manifest() {
    let p = Project::new();
    let run = p.attest("a", "exp", FILES);
    resign(&p, &run, |st| {
        st["predicate"]["argv"] =
            serde_json::json!(["husai-audit", "x\u{1b}[2K\rverified: all good"]);
    });
    let o = p.run(&["show", run.to_str().unwrap()]);
    assert_success(&o);
    let out = stdout(&o);
    assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out:?}");
    assert!(out.contains("x\\u{1b}[2K\\u{d}verified: all good"), "{out}");
}
