//! Mutation testing of the verifier: random byte edits to a signed run's envelope and outputs,
//! plus committed corpora of hostile inputs (fuzz/corpus/{envelope,payload,trust-policy}/) and
//! property tests of the envelope, payload and trust-policy parsers on arbitrary bytes. The
//! verifier must never panic, it may pass only when the edit left the signed content intact, and
//! every parser finishes in bounded time on inputs up to its size cap.

use std::path::{Path, PathBuf};

use husai_core::dsse::Envelope;
use husai_core::keys::{self, SigningKey};
use husai_core::manifest::{ManifestDraft, RunKind, ToolInfo};
use husai_core::store::RunStore;
use husai_core::trust::TrustPolicy;
use husai_core::verify::{self, VerifyOptions};
use proptest::prelude::*;

struct Fixture {
    _dir: tempfile::TempDir,
    results: PathBuf,
    run: PathBuf,
    policy: TrustPolicy,
    envelope: Vec<u8>,
    metrics: Vec<u8>,
}

fn trusted_policy(dir: &Path, key: &SigningKey) -> TrustPolicy {
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    std::fs::write(keys_dir.join("k.pub.pem"), key.public_key().to_spki_pem()).unwrap();
    let policy = serde_json::json!({"schema_version": "1.0", "keys": [{
        "keyid": key.key_id(), "public_key": "k.pub.pem", "roles": ["ci"],
        "not_before": "2020-01-01T00:00:00Z", "not_after": null, "revoked": null}]});
    std::fs::write(keys_dir.join("trust-policy.json"), policy.to_string()).unwrap();
    TrustPolicy::load(&keys_dir).unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = keys::generate();
    let policy = trusted_policy(dir.path(), &key);
    let results = dir.path().join("results");
    let store = RunStore::open(&results).unwrap();
    let staged = store.stage("fuzz", RunKind::External).unwrap();
    std::fs::write(
        staged.dir().join("metrics.json"),
        b"{\"fvu\":0.125,\"l0\":32}",
    )
    .unwrap();
    let draft = ManifestDraft::new(ToolInfo {
        name: "test".into(),
        version: "0".into(),
        git_commit: None,
        git_dirty: None,
    });
    let run = staged.commit(draft, &key, &|_| {}).unwrap().dir;
    let envelope = std::fs::read(run.join("husai.dsse.json")).unwrap();
    let metrics = std::fs::read(run.join("metrics.json")).unwrap();
    Fixture {
        _dir: dir,
        results,
        run,
        policy,
        envelope,
        metrics,
    }
}

fn passes(f: &Fixture) -> bool {
    let report = verify::verify_paths(
        std::slice::from_ref(&f.results),
        &f.policy,
        VerifyOptions::default(),
    );
    report.passed()
}

fn same_envelope(a: &[u8], b: &[u8]) -> bool {
    match (
        serde_json::from_slice::<Envelope>(a),
        serde_json::from_slice::<Envelope>(b),
    ) {
        (Ok(x), Ok(y)) => x.payload == y.payload && x.payload_type == y.payload_type,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn envelope_byte_edits_never_panic_and_never_forge(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let f = fixture();
        let mut bytes = f.envelope.clone();
        for (at, value) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        std::fs::write(f.run.join("husai.dsse.json"), &bytes).unwrap();
        if passes(&f) {
            // Only edits that leave the signed payload and its type as they were may pass
            // (white space, or a change inside a signature that still names a valid one).
            prop_assert!(same_envelope(&bytes, &f.envelope), "an edited envelope verified");
        }
    }

    #[test]
    fn output_byte_edits_are_always_caught(at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let f = fixture();
        let mut bytes = f.metrics.clone();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        std::fs::write(f.run.join("metrics.json"), &bytes).unwrap();
        prop_assert!(!passes(&f));
    }
}

#[test]
fn the_hostile_envelope_corpus_is_rejected_without_panic() {
    let corpus = corpus_dir("envelope");
    let mut n = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let f = fixture();
        std::fs::copy(&path, f.run.join("husai.dsse.json")).unwrap();
        let report = verify::verify_paths(
            std::slice::from_ref(&f.results),
            &f.policy,
            VerifyOptions::default(),
        );
        assert!(!report.passed(), "{} verified", path.display());
        assert!(
            report
                .errors()
                .all(|e| e.file.is_some() && !e.message.is_empty()),
            "{}: a finding without a file or message",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 8, "corpus has only {n} entries");
}

/// An output rewritten in place while verify hashes it, with the same size and its mtime set
/// back (what `touch -r` or `utimes` can do), is reported: the inode change time moved.
#[test]
fn a_file_rewritten_during_verify_with_its_mtime_restored_is_caught() {
    let f = fixture();
    let target = f.run.join("metrics.json");
    let mtime = std::fs::metadata(&target).unwrap().modified().unwrap();
    // Coarse kernel timestamps: leave time for the rewrite's ctime to differ from the listing's.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let done = std::sync::atomic::AtomicBool::new(false);
    let rewrite = |_: u64| {
        if !done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let mut forged = f.metrics.clone();
            forged[8] = if forged[8] == b'9' { b'8' } else { b'9' };
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, &forged, 0).unwrap();
            file.set_modified(mtime).unwrap();
        }
    };
    let report = verify::verify_paths(
        std::slice::from_ref(&f.results),
        &f.policy,
        VerifyOptions {
            on_bytes: &rewrite,
            ..VerifyOptions::default()
        },
    );
    assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(
        std::fs::metadata(&target).unwrap().modified().unwrap(),
        mtime,
        "the mtime was restored"
    );
    assert!(!report.passed(), "a rewrite during verify went unnoticed");
    let finding = report.errors().next().unwrap();
    assert_eq!(finding.code, "changed_during_verify", "{finding:?}");
    assert!(
        finding
            .message
            .contains("changed while it was being verified")
    );
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Every file of a corpus, sorted; files named `valid-*` or `committed-*` must be accepted, every
/// other one refused.
fn replay(target: &str, accept: impl Fn(&[u8]) -> bool) -> usize {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(path).unwrap();
        let t0 = std::time::Instant::now();
        let accepted = accept(&bytes);
        assert!(t0.elapsed().as_secs() < 5, "{name} took {:?}", t0.elapsed());
        let want = name.starts_with("valid-") || name.starts_with("committed-");
        assert_eq!(accepted, want, "{target}/{name}: accepted = {accepted}");
    }
    files.len()
}

fn repo_keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys")
}

#[test]
fn the_payload_corpus_is_replayed() {
    assert!(replay("payload", husai_core::__fuzz::payload) >= 10);
}

#[test]
fn the_trust_policy_corpus_is_replayed() {
    let keys = repo_keys();
    assert!(
        replay("trust-policy", |b| husai_core::__fuzz::trust_policy(
            b, &keys
        )) >= 10
    );
}

#[test]
fn the_envelope_corpus_is_refused_by_the_parser_too() {
    let policy = TrustPolicy::load(repo_keys()).unwrap();
    assert!(replay("envelope", |b| husai_core::__fuzz::envelope(b, &policy)) >= 8);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes: no parser panics, each finishes quickly, and random bytes are never a
    /// valid envelope, payload or policy.
    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let policy = TrustPolicy::load(repo_keys()).unwrap();
        let keys = repo_keys();
        let t0 = std::time::Instant::now();
        prop_assert!(!husai_core::__fuzz::envelope(&bytes, &policy));
        prop_assert!(!husai_core::__fuzz::payload(&bytes));
        prop_assert!(!husai_core::__fuzz::trust_policy(&bytes, &keys));
        prop_assert!(t0.elapsed().as_secs() < 2);
    }

    /// Byte edits of real documents (JSON-shaped inputs reach deeper stages than random bytes).
    #[test]
    fn parsers_never_panic_on_edited_documents(
        which in 0usize..3,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let policy = TrustPolicy::load(repo_keys()).unwrap();
        let keys = repo_keys();
        let names = ["envelope/extra-field.json", "payload/valid-statement.json", "trust-policy/committed-1.1.json"];
        let mut bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(names[which])).unwrap();
        for (at, v) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *v;
        }
        let _ = husai_core::__fuzz::envelope(&bytes, &policy);
        let _ = husai_core::__fuzz::payload(&bytes);
        let _ = husai_core::__fuzz::trust_policy(&bytes, &keys);
    }
}

/// An input at the envelope size cap: parsed and refused in bounded time (one pass, one
/// signature tried against the one key it names).
#[test]
fn an_envelope_at_the_size_cap_is_handled_in_bounded_time() {
    let policy = TrustPolicy::load(repo_keys()).unwrap();
    let keyid = policy.keys()[0].keyid.clone();
    let overhead = 400;
    let payload_len = (husai_core::dsse::MAX_ENVELOPE_BYTES as usize - overhead) / 4 * 4;
    let mut text = String::with_capacity(husai_core::dsse::MAX_ENVELOPE_BYTES as usize);
    text.push_str("{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"");
    text.push_str(&"QUFB".repeat(payload_len / 4));
    text.push_str(&format!(
        "\",\"signatures\":[{{\"keyid\":\"{keyid}\",\"sig\":\"{}\"}}]}}",
        "A".repeat(86) + "=="
    ));
    assert!(
        text.len() as u64 <= husai_core::dsse::MAX_ENVELOPE_BYTES,
        "{}",
        text.len()
    );
    let t0 = std::time::Instant::now();
    assert!(!husai_core::__fuzz::envelope(text.as_bytes(), &policy));
    assert!(t0.elapsed().as_secs() < 30, "took {:?}", t0.elapsed());
}
