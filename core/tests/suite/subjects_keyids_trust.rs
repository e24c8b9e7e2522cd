//! Plain sha256 on every subject with the sharded digest in annotations; the legacy sharded form
//! still verifies; envelope key ids; trust-policy editing; one-key policies; report paths.

use std::path::{Path, PathBuf};

use husai_core::digest::{self, DigestMethod};
use husai_core::dsse::Envelope;
use husai_core::keys::{self, PublicKey};
use husai_core::manifest::{ManifestDraft, RunKind, ToolInfo};
use husai_core::statement::{SHARDED_ANNOTATION, Statement};
use husai_core::store::RunStore;
use husai_core::trust::{self, AddKeyError, TrustPolicy};
use husai_core::verify::{self, VerifyOptions};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn legacy_fixture() -> PathBuf {
    repo().join("core/tests/fixtures/legacy-sharded")
}

fn statement_of(run: &Path) -> Statement {
    let env: Envelope =
        serde_json::from_slice(&std::fs::read(run.join("husai.dsse.json")).unwrap()).unwrap();
    serde_json::from_slice(&env.decode_payload().unwrap()).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let t = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&t).unwrap();
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

fn tool() -> ToolInfo {
    ToolInfo {
        name: "husai-audit".into(),
        version: "0.0.0".into(),
        git_commit: None,
        git_dirty: None,
    }
}

/// A store with 1 KiB shards, a policy trusting `key`, and one committed run holding a 3000-byte
/// file (three shards) and a small one.
fn small_shard_run(key: &keys::SigningKey) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let kdir = t.path().join("keys");
    std::fs::create_dir_all(&kdir).unwrap();
    std::fs::write(kdir.join("k.pub.pem"), key.public_key().to_spki_pem()).unwrap();
    std::fs::write(
        kdir.join("trust-policy.json"),
        serde_json::json!({"schema_version": "1.0", "keys": [{"keyid": key.key_id(), "public_key": "k.pub.pem",
            "roles": ["ci"], "not_before": "2020-01-01T00:00:00Z", "not_after": null, "revoked": null}]})
        .to_string(),
    )
    .unwrap();
    let store = RunStore::open(t.path().join("results"))
        .unwrap()
        .with_digest_method(DigestMethod::Sha256Sharded { shard_size: 1024 });
    let staged = store.stage("c", RunKind::External).unwrap();
    let big: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(staged.dir().join("big.bin"), &big).unwrap();
    std::fs::write(staged.dir().join("small.txt"), b"small").unwrap();
    let run = staged
        .commit(ManifestDraft::new(tool()), key, &|_| {})
        .unwrap();
    (t, run.dir)
}

fn verify_tree(root: &Path, keys_dir: &Path) -> verify::VerifyReport {
    let policy = TrustPolicy::load(keys_dir).unwrap();
    verify::verify_paths(&[root.to_path_buf()], &policy, VerifyOptions::default())
}

#[test]
fn every_subject_carries_plain_sha256_and_a_big_file_its_sharded_digest_in_annotations() {
    let key = keys::generate();
    let (t, run) = small_shard_run(&key);
    let st = statement_of(&run);
    let big = st.subject.iter().find(|s| s.name == "big.bin").unwrap();
    let small = st.subject.iter().find(|s| s.name == "small.txt").unwrap();
    let plain = digest::digest_file(&run.join("big.bin"), DigestMethod::Sha256).unwrap();
    let sharded = digest::digest_file(
        &run.join("big.bin"),
        DigestMethod::Sha256Sharded { shard_size: 1024 },
    )
    .unwrap();
    assert_eq!(sharded.algorithm, "sha256-sharded");
    assert_eq!(big.digest.len(), 1);
    assert_eq!(big.sha256(), Some(plain.hex.as_str()));
    assert_eq!(big.annotations.get(SHARDED_ANNOTATION), Some(&sharded.hex));
    assert_eq!(small.digest.keys().collect::<Vec<_>>(), ["sha256"]);
    assert!(small.annotations.is_empty());
    let r = verify_tree(&t.path().join("results"), &t.path().join("keys"));
    assert!(r.passed(), "{:?}", r.findings);
    assert_eq!(r.runs.len(), 1);

    // A change inside the big file is caught through the sharded digest.
    let mut bytes = std::fs::read(run.join("big.bin")).unwrap();
    bytes[2500] ^= 1;
    std::fs::write(run.join("big.bin"), bytes).unwrap();
    let r = verify_tree(&t.path().join("results"), &t.path().join("keys"));
    let f = r
        .findings
        .iter()
        .find(|f| f.code == "digest_mismatch")
        .unwrap();
    assert!(f.message.contains("sha256-sharded"), "{}", f.message);
}

#[test]
fn a_run_signed_in_the_legacy_sharded_form_still_verifies_and_tampering_is_caught() {
    let fx = legacy_fixture();
    let st = statement_of(
        &std::fs::read_dir(fx.join("results/legacy"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    );
    let big = st.subject.iter().find(|s| s.name == "big.bin").unwrap();
    assert!(big.legacy_sharded().is_some() && big.sha256().is_none());
    let r = verify_tree(&fx.join("results"), &fx.join("keys"));
    assert!(r.passed(), "{:?}", r.findings);
    assert_eq!(r.runs.len(), 1);

    let t = tempfile::tempdir().unwrap();
    copy_dir(&fx, t.path());
    let run = std::fs::read_dir(t.path().join("results/legacy"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(run.join("big.bin")).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(run.join("big.bin"), bytes).unwrap();
    let r = verify_tree(&t.path().join("results"), &t.path().join("keys"));
    assert!(
        r.findings.iter().any(|f| f.code == "digest_mismatch"),
        "{:?}",
        r.findings
    );
}

#[test]
fn the_legacy_sharded_form_is_refused_in_a_run_whose_manifest_is_schema_1_2() {
    // A run written now (manifest 1.2), re-signed by its own trusted key with the big file's subject rewritten to
    // the pre-1.2 form: only runs older than 1.2 may name a file by its sharded digest alone.
    let key = keys::generate();
    let (t, run) = small_shard_run(&key);
    let mut st: serde_json::Value = serde_json::to_value(statement_of(&run)).unwrap();
    assert_eq!(st["predicate"]["schema_version"], "1.2");
    for s in st["subject"].as_array_mut().unwrap() {
        if s["name"] == "big.bin" {
            let hex = s["annotations"][SHARDED_ANNOTATION].clone();
            s["digest"] = serde_json::json!({ "sha256-sharded": hex });
            s.as_object_mut().unwrap().remove("annotations");
        }
    }
    let payload = serde_json::to_vec(&st).unwrap();
    let env =
        husai_core::dsse::sign_envelope(husai_core::dsse::INTOTO_PAYLOAD_TYPE, &payload, &key);
    std::fs::write(
        run.join("husai.dsse.json"),
        serde_json::to_vec(&env).unwrap(),
    )
    .unwrap();
    let r = verify_tree(&t.path().join("results"), &t.path().join("keys"));
    assert!(!r.passed());
    let f = r
        .findings
        .iter()
        .find(|f| f.code == "subject_digest")
        .unwrap_or_else(|| panic!("{:?}", r.findings));
    assert!(
        f.message
            .contains("subject big.bin must carry exactly one digest, sha256")
            && f.message.contains("this run's manifest is schema 1.2"),
        "{}",
        f.message
    );
}

#[test]
fn envelopes_carry_the_securesystemslib_key_id_and_old_ids_still_verify() {
    // securesystemslib 1.6 (SSlibKey.from_crypto) gives keys/ci.pub.pem this key id.
    let ci = PublicKey::from_spki_pem_file(repo().join("keys/ci.pub.pem")).unwrap();
    assert_eq!(
        keys::envelope_key_id(&ci),
        "586c90bc405f8269422358a30c6425aead61d3e674b2a828e4141f6d6975ee9b"
    );
    let key = keys::generate();
    let (_t, run) = small_shard_run(&key);
    let env: Envelope =
        serde_json::from_slice(&std::fs::read(run.join("husai.dsse.json")).unwrap()).unwrap();
    assert_eq!(
        env.signatures[0].keyid,
        keys::envelope_key_id(&key.public_key())
    );
    // The legacy fixture's envelope names its key by the SPKI id and verifies (test above); so
    // do the committed results.
    let fx_env: Envelope = serde_json::from_slice(
        &std::fs::read(
            std::fs::read_dir(legacy_fixture().join("results/legacy"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path()
                .join("husai.dsse.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let policy = TrustPolicy::load(legacy_fixture().join("keys")).unwrap();
    assert_eq!(fx_env.signatures[0].keyid, policy.keys()[0].keyid);
}

#[test]
fn trust_add_creates_a_policy_defaults_not_before_to_the_key_files_mtime_and_refuses_bad_input() {
    let t = tempfile::tempdir().unwrap();
    let key = keys::generate();
    let pem = t.path().join("me.pub.pem");
    std::fs::write(&pem, key.public_key().to_spki_pem()).unwrap();
    let mtime = time::OffsetDateTime::from(std::fs::metadata(&pem).unwrap().modified().unwrap());
    let kdir = t.path().join("keys");
    let added = trust::add_key(&kdir, &pem, "developer", None).unwrap();
    assert!(added.created_policy && added.copied);
    assert!(added.not_before <= mtime && mtime - added.not_before < time::Duration::seconds(1));
    let policy = TrustPolicy::load(&kdir).unwrap();
    assert_eq!(policy.keys().len(), 1);
    assert_eq!(policy.keys()[0].roles, ["developer"]);
    assert!(
        policy
            .kinds_for_role("developer")
            .contains(&RunKind::External)
    );

    let err = trust::add_key(&kdir, &pem, "developer", None).unwrap_err();
    assert!(matches!(err, AddKeyError::AlreadyListed { .. }), "{err}");
    let other = keys::generate();
    let pem2 = t.path().join("two.pub.pem");
    std::fs::write(&pem2, other.public_key().to_spki_pem()).unwrap();
    let err = trust::add_key(&kdir, &pem2, "root", None).unwrap_err();
    assert!(err.to_string().contains("unknown role \"root\""), "{err}");
    let err = trust::add_key(&kdir, &t.path().join("none.pem"), "ci", None).unwrap_err();
    assert!(err.to_string().contains("none.pem"), "{err}");
    let e = trust::parse_not_before("2026-13-01").unwrap_err();
    assert!(e.contains("RFC 3339"), "{e}");
    let nb = trust::parse_not_before("2026-02-03T04:05:06Z").unwrap();
    trust::add_key(&kdir, &pem2, "ci", Some(nb)).unwrap();
    let policy = TrustPolicy::load(&kdir).unwrap();
    assert_eq!(policy.keys().len(), 2);
    assert_eq!(policy.keys()[1].not_before, nb);

    // A file of the same name holding another key is not overwritten.
    let elsewhere = t.path().join("sub");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(
        elsewhere.join("me.pub.pem"),
        keys::generate().public_key().to_spki_pem(),
    )
    .unwrap();
    let err = trust::add_key(&kdir, &elsewhere.join("me.pub.pem"), "ci", None).unwrap_err();
    assert!(matches!(err, AddKeyError::NameTaken { .. }), "{err}");
}

#[test]
fn a_single_key_policy_accepts_that_key_for_every_kind_and_nothing_else() {
    let key = keys::generate();
    let (t, _run) = small_shard_run(&key);
    let pem = t.path().join("keys/k.pub.pem");
    let one = TrustPolicy::single_key(&pem).unwrap();
    let r = verify::verify_paths(&[t.path().join("results")], &one, VerifyOptions::default());
    assert!(r.passed(), "{:?}", r.findings);
    let other = t.path().join("other.pub.pem");
    std::fs::write(&other, keys::generate().public_key().to_spki_pem()).unwrap();
    let r = verify::verify_paths(
        &[t.path().join("results")],
        &TrustPolicy::single_key(&other).unwrap(),
        VerifyOptions::default(),
    );
    assert!(
        r.findings.iter().any(|f| f.code == "signature"),
        "{:?}",
        r.findings
    );
    assert!(TrustPolicy::single_key(&t.path().join("missing.pem")).is_err());
}

#[test]
fn report_paths_become_relative_to_the_results_root() {
    let key = keys::generate();
    let (t, run) = small_shard_run(&key);
    std::fs::write(run.join("stray"), b"x").unwrap();
    let root = t.path().join("results");
    assert_eq!(
        std::fs::canonicalize(verify::results_root_of(&run)).unwrap(),
        std::fs::canonicalize(&root).unwrap()
    );
    assert_eq!(verify::results_root_of(&root.join("c")), root);
    assert_eq!(verify::results_root_of(&root), root);
    let mut r = verify_tree(&root, &t.path().join("keys"));
    r.make_paths_relative(&root);
    let id = run.file_name().unwrap().to_str().unwrap();
    assert_eq!(r.runs[0].dir, Path::new("c").join(id));
    let f = r
        .findings
        .iter()
        .find(|f| f.code == "unattested_file")
        .unwrap();
    assert_eq!(
        f.file.as_deref(),
        Some(Path::new("c").join(id).join("stray").as_path())
    );
}
