//! Keys, DSSE envelopes and the trust policy: round trips, tampering, and every error message.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use husai_core::dsse::{
    Envelope, INTOTO_PAYLOAD_TYPE, SignatureError, pae, sign_envelope, verify_envelope,
};
use husai_core::keys::{self, KeyError, PublicKey, SigningKey, key_id, write_keypair};
use husai_core::trust::{TrustContext, TrustError, TrustPolicy};
use sha2::{Digest as _, Sha256};
use time::macros::datetime;

// ---------------------------------------------------------------------------------------------
// keys

#[test]
fn pem_round_trip_keeps_the_key_and_its_id() {
    let key = keys::generate();
    let pem = key.to_pkcs8_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
    let again = SigningKey::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(again.key_id(), key.key_id());
    assert_eq!(again.sign(b"m"), key.sign(b"m"));

    let pub_pem = key.public_key().to_spki_pem();
    assert!(pub_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let public = PublicKey::from_spki_pem(&pub_pem).unwrap();
    assert_eq!(public, key.public_key());
}

#[test]
fn key_id_is_sha256_of_the_spki_der() {
    let key = keys::generate();
    let public = key.public_key();
    let der = public.to_spki_der();
    assert_eq!(der.len(), 44);
    assert_eq!(&der[12..], public.as_bytes());
    let expected = hex::encode(Sha256::digest(&der));
    assert_eq!(key_id(&public), expected);
    assert_eq!(key.key_id(), expected);
    assert!(
        expected
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

/// RFC 8032 section 7.1, test 2: a fixed key gives a fixed signature, so our PEM encoding and
/// signing are the standard ones and not merely self-consistent.
#[test]
fn rfc8032_test_vector_through_pem() {
    let seed =
        hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb").unwrap();
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(&seed);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(&der)
    );
    let key = SigningKey::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(key.to_pkcs8_pem(), pem);
    assert_eq!(
        hex::encode(key.public_key().as_bytes()),
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
    );
    let sig = key.sign(&[0x72]);
    assert_eq!(
        hex::encode(sig),
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
         085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    );
    assert!(key.public_key().verify(&[0x72], &sig));
    assert!(!key.public_key().verify(&[0x73], &sig));
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn load_err(path: &Path) -> String {
    SigningKey::from_pkcs8_pem_file(path)
        .unwrap_err()
        .to_string()
}

#[test]
fn missing_private_key_file() {
    let dir = tmp();
    let path = dir.path().join("nope.pem");
    let err = SigningKey::from_pkcs8_pem_file(&path).unwrap_err();
    assert!(matches!(err, KeyError::Missing { .. }));
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(msg.contains("PKCS#8"), "{msg}");
}

#[test]
fn unreadable_key_file() {
    // A directory cannot be read as a file, even by root (so the test holds under any user).
    let dir = tmp();
    let err = SigningKey::from_pkcs8_pem_file(dir.path()).unwrap_err();
    assert!(matches!(err, KeyError::Unreadable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot read key file {}", dir.path().display())),
        "{msg}"
    );
}

#[test]
fn empty_key_file() {
    let dir = tmp();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "\n  \n").unwrap();
    let msg = load_err(&path);
    assert_eq!(
        msg,
        format!(
            "{} is empty; expected an ed25519 private key (PKCS#8 PEM, '-----BEGIN PRIVATE KEY-----')",
            path.display()
        )
    );
}

#[test]
fn garbage_key_file() {
    let dir = tmp();
    let path = dir.path().join("garbage.pem");
    std::fs::write(&path, "this is not a key\n").unwrap();
    let msg = load_err(&path);
    assert!(
        msg.starts_with(&format!("{} is not a PEM file (", path.display())),
        "{msg}"
    );
    assert!(msg.contains("expected an ed25519 private key"), "{msg}");

    let bin = dir.path().join("key.der");
    std::fs::write(&bin, [0x30, 0x2e, 0xff, 0xfe, 0x00]).unwrap();
    let msg = load_err(&bin);
    assert!(msg.contains("binary, not text"), "{msg}");
}

#[test]
fn public_key_given_as_private_and_the_reverse() {
    let dir = tmp();
    let key = keys::generate();
    let pub_path = dir.path().join("k.pub.pem");
    let priv_path = dir.path().join("k.pem");
    std::fs::write(&pub_path, key.public_key().to_spki_pem()).unwrap();
    std::fs::write(&priv_path, key.to_pkcs8_pem()).unwrap();

    let err = SigningKey::from_pkcs8_pem_file(&pub_path).unwrap_err();
    assert!(matches!(err, KeyError::PublicGivenAsPrivate { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "{} holds a public key, but a private key is needed",
            pub_path.display()
        )),
        "{msg}"
    );

    let err = PublicKey::from_spki_pem_file(&priv_path).unwrap_err();
    assert!(matches!(err, KeyError::PrivateGivenAsPublic { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "{} holds a private key where a public key is expected",
            priv_path.display()
        )),
        "{msg}"
    );
}

#[test]
fn malformed_der_inside_a_correct_label() {
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(b"not der at all")
    );
    let msg = SigningKey::from_pkcs8_pem(&pem).unwrap_err().to_string();
    assert!(
        msg.starts_with("PEM text is PEM-labelled correctly but its contents are malformed"),
        "{msg}"
    );
}

#[test]
fn other_pem_labels_get_a_hint() {
    let pem = format!(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{}\n-----END ENCRYPTED PRIVATE KEY-----\n",
        STANDARD.encode([0u8; 48])
    );
    let msg = SigningKey::from_pkcs8_pem(&pem).unwrap_err().to_string();
    assert!(msg.contains("labelled 'ENCRYPTED PRIVATE KEY'"), "{msg}");
    assert!(msg.contains("password-protected"), "{msg}");
}

#[test]
fn write_keypair_creates_0600_private_key_and_matching_public_key() {
    let dir = tmp();
    let priv_path = dir.path().join("me.pem");
    let pub_path = dir.path().join("me.pub.pem");
    let id = write_keypair(&priv_path, &pub_path).unwrap();

    let key = SigningKey::from_pkcs8_pem_file(&priv_path).unwrap();
    let public = PublicKey::from_spki_pem_file(&pub_path).unwrap();
    assert_eq!(key.public_key(), public);
    assert_eq!(id, key_id(&public));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&priv_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private key mode is {mode:o}");
    }
}

#[test]
fn write_keypair_refuses_to_overwrite_either_file() {
    let dir = tmp();
    let priv_path = dir.path().join("me.pem");
    let pub_path = dir.path().join("me.pub.pem");

    std::fs::write(&priv_path, "precious").unwrap();
    let err = write_keypair(&priv_path, &pub_path).unwrap_err();
    assert!(matches!(err, KeyError::AlreadyExists { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "refusing to overwrite existing key file {}; move it away or choose another path",
            priv_path.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&priv_path).unwrap(), "precious");
    assert!(!pub_path.exists(), "no half pair may be left behind");

    std::fs::remove_file(&priv_path).unwrap();
    std::fs::write(&pub_path, "precious too").unwrap();
    let msg = write_keypair(&priv_path, &pub_path)
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&pub_path.display().to_string()), "{msg}");
    assert_eq!(std::fs::read_to_string(&pub_path).unwrap(), "precious too");
    assert!(!priv_path.exists(), "no half pair may be left behind");
}

// ---------------------------------------------------------------------------------------------
// trust policy fixtures

struct Fixture {
    dir: tempfile::TempDir,
    keys: Vec<SigningKey>,
}

impl Fixture {
    /// `n` keys; key i's PEM is `k{i}.pub.pem`.
    fn new(n: usize) -> Fixture {
        let dir = tmp();
        let keys: Vec<SigningKey> = (0..n).map(|_| keys::generate()).collect();
        for (i, k) in keys.iter().enumerate() {
            std::fs::write(
                dir.path().join(format!("k{i}.pub.pem")),
                k.public_key().to_spki_pem(),
            )
            .unwrap();
        }
        Fixture { dir, keys }
    }

    fn entry(&self, i: usize) -> serde_json::Value {
        serde_json::json!({
            "keyid": self.keys[i].key_id(),
            "public_key": format!("k{i}.pub.pem"),
            "roles": ["ci"],
            "not_before": "2026-01-01T00:00:00Z",
            "not_after": "2027-01-01T00:00:00Z",
            "revoked": null
        })
    }

    fn write(&self, policy: &serde_json::Value) -> PathBuf {
        let path = self.dir.path().join("trust-policy.json");
        std::fs::write(&path, serde_json::to_string_pretty(policy).unwrap()).unwrap();
        path
    }

    fn policy(&self, entries: Vec<serde_json::Value>) -> TrustPolicy {
        self.write(&serde_json::json!({"schema_version": "1.0", "keys": entries}));
        TrustPolicy::load(self.dir.path()).unwrap()
    }

    fn load_err(&self, policy: serde_json::Value) -> (PathBuf, TrustError) {
        let path = self.write(&policy);
        (path, TrustPolicy::load(self.dir.path()).unwrap_err())
    }
}

fn ctx_at(t: time::OffsetDateTime) -> TrustContext {
    TrustContext {
        signed_at: t,
        accepted_roles: None,
        kind: None,
    }
}

fn in_window() -> TrustContext {
    ctx_at(datetime!(2026-06-01 12:00 UTC))
}

// ---------------------------------------------------------------------------------------------
// trust policy loading

#[test]
fn loads_a_valid_policy() {
    let fx = Fixture::new(2);
    let mut e1 = fx.entry(1);
    e1["not_after"] = serde_json::Value::Null;
    e1["roles"] = serde_json::json!(["researcher", "gate"]);
    let policy = fx.policy(vec![fx.entry(0), e1]);
    assert_eq!(policy.keys().len(), 2);
    let k1 = policy.key(&fx.keys[1].key_id()).unwrap();
    assert_eq!(k1.roles, ["researcher", "gate"]);
    assert_eq!(k1.not_after, None);
    assert_eq!(k1.public_key, fx.keys[1].public_key());
    assert_eq!(policy.path(), fx.dir.path().join("trust-policy.json"));
}

#[test]
fn the_repositorys_policy_loads() {
    let keys_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys");
    let policy = TrustPolicy::load(&keys_dir).unwrap();
    assert!(!policy.keys().is_empty());
}

#[test]
fn missing_policy() {
    let fx = Fixture::new(0);
    let err = TrustPolicy::load(fx.dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "trust policy {} not found",
            fx.dir.path().join("trust-policy.json").display()
        )),
        "{msg}"
    );
}

#[test]
fn policy_that_is_not_json() {
    let fx = Fixture::new(0);
    std::fs::write(fx.dir.path().join("trust-policy.json"), "{\"keys\": [").unwrap();
    let msg = TrustPolicy::load(fx.dir.path()).unwrap_err().to_string();
    assert!(msg.contains("trust-policy.json is not valid JSON"), "{msg}");
}

#[test]
fn unsupported_major_version() {
    let fx = Fixture::new(1);
    let (path, err) =
        fx.load_err(serde_json::json!({"schema_version": "2.0", "keys": [], "new_field": 1}));
    assert!(matches!(err, TrustError::UnsupportedVersion { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "trust policy schema_version 2.0 is not supported by this husai (supports 1.x)"
        ),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn schema_violations_are_listed_with_their_location() {
    let fx = Fixture::new(1);
    let mut e = fx.entry(0);
    e["revokd"] = serde_json::json!({"at": "2026-02-01T00:00:00Z", "reason": "typo"});
    e["roles"] = serde_json::json!([]);
    let (path, err) = fx.load_err(serde_json::json!({"schema_version": "1.0", "keys": [e]}));
    let TrustError::SchemaViolation { errors, .. } = &err else {
        panic!("expected a schema violation, got {err:?}");
    };
    assert_eq!(errors.len(), 2, "{errors:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "trust policy {} does not match schemas/trust-policy.v1.json",
            path.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("at /keys/0: ") && msg.contains("revokd"),
        "{msg}"
    );
    assert!(msg.contains("at /keys/0/roles: "), "{msg}");
}

#[test]
fn keyid_must_match_the_public_key_file() {
    let fx = Fixture::new(2);
    let mut e = fx.entry(0);
    e["public_key"] = "k1.pub.pem".into();
    let (_, err) = fx.load_err(serde_json::json!({"schema_version": "1.0", "keys": [e]}));
    let msg = err.to_string();
    assert!(matches!(err, TrustError::KeyIdMismatch { .. }));
    assert!(
        msg.contains(&format!(
            "keyid {} does not match its public key file",
            fx.keys[0].key_id()
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("whose key id is {}", fx.keys[1].key_id())),
        "{msg}"
    );
    assert!(msg.contains("k1.pub.pem"), "{msg}");
}

#[test]
fn duplicate_keyids_are_rejected() {
    let fx = Fixture::new(1);
    let (_, err) = fx
        .load_err(serde_json::json!({"schema_version": "1.0", "keys": [fx.entry(0), fx.entry(0)]}));
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "keyid {} is listed more than once",
            fx.keys[0].key_id()
        )),
        "{msg}"
    );
}

#[test]
fn impossible_dates_and_empty_windows() {
    let fx = Fixture::new(1);
    let mut e = fx.entry(0);
    e["not_before"] = "2026-13-45T00:00:00Z".into();
    let (_, err) = fx.load_err(serde_json::json!({"schema_version": "1.0", "keys": [e]}));
    let msg = err.to_string();
    assert!(
        msg.contains("not_before \"2026-13-45T00:00:00Z\" is not an RFC 3339 date-time"),
        "{msg}"
    );

    let mut e = fx.entry(0);
    e["not_after"] = "2025-01-01T00:00:00Z".into();
    let (_, err) = fx.load_err(serde_json::json!({"schema_version": "1.0", "keys": [e]}));
    assert!(err.to_string().contains("is before not_before"), "{err}");
}

#[test]
fn key_files_must_stay_inside_the_keys_directory() {
    let fx = Fixture::new(1);
    let mut e = fx.entry(0);
    e["public_key"] = "../k0.pub.pem".into();
    let (_, err) = fx.load_err(serde_json::json!({"schema_version": "1.0", "keys": [e]}));
    assert!(
        err.to_string()
            .contains("must be a relative path inside the keys directory"),
        "{err}"
    );
}

#[test]
fn missing_key_file_names_the_key_and_the_file() {
    let fx = Fixture::new(1);
    let mut e = fx.entry(0);
    e["public_key"] = "gone.pub.pem".into();
    let (path, err) = fx.load_err(serde_json::json!({"schema_version": "1.0", "keys": [e]}));
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "trust policy {}: key {}: key file",
            path.display(),
            fx.keys[0].key_id()
        )),
        "{msg}"
    );
    assert!(msg.contains("gone.pub.pem does not exist"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// trust checks

#[test]
fn trust_check_semantics() {
    let fx = Fixture::new(3);
    let mut revoked = fx.entry(1);
    revoked["revoked"] =
        serde_json::json!({"at": "2026-09-01T00:00:00Z", "reason": "laptop stolen"});
    let mut researcher = fx.entry(2);
    researcher["roles"] = serde_json::json!(["researcher"]);
    let policy = fx.policy(vec![fx.entry(0), revoked, researcher]);
    let [k0, k1, k2] = [0, 1, 2].map(|i| fx.keys[i].key_id());
    let pol = policy.path().display().to_string();

    assert_eq!(policy.check(&k0, &in_window()).unwrap().keyid, k0);
    // The window is inclusive at both ends.
    policy
        .check(&k0, &ctx_at(datetime!(2026-01-01 00:00 UTC)))
        .unwrap();
    policy
        .check(&k0, &ctx_at(datetime!(2027-01-01 00:00 UTC)))
        .unwrap();

    let msg = policy
        .check(&"ab".repeat(32), &in_window())
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        format!(
            "key {} is not in trust policy {pol}; only keys listed there are trusted",
            "ab".repeat(32)
        )
    );

    // Revoked in September, but a signature "made" in June is still rejected: the signer chose
    // that time.
    let msg = policy.check(&k1, &in_window()).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!(
            "key {k1} was revoked at 2026-09-01T00:00:00Z (laptop stolen) in trust policy {pol}"
        )),
        "{msg}"
    );

    let msg = policy
        .check(&k0, &ctx_at(datetime!(2025-12-31 23:59:59 UTC)))
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        format!(
            "key {k0} was not yet valid at signing time 2025-12-31T23:59:59Z: trust policy {pol} accepts it from 2026-01-01T00:00:00Z"
        )
    );
    let msg = policy
        .check(&k0, &ctx_at(datetime!(2027-01-01 00:00:01 UTC)))
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        format!(
            "key {k0} had expired at signing time 2027-01-01T00:00:01Z: trust policy {pol} accepts it until 2027-01-01T00:00:00Z"
        )
    );

    let gate_only = TrustContext {
        signed_at: datetime!(2026-06-01 12:00 UTC),
        accepted_roles: Some(vec!["ci".into(), "gate".into()]),
        kind: None,
    };
    policy.check(&k0, &gate_only).unwrap();
    let msg = policy.check(&k2, &gate_only).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "key {k2} holds roles [researcher] in trust policy {pol}, none of which is accepted here (accepted: [ci, gate])"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// DSSE

#[test]
fn pae_matches_the_dsse_spec_example() {
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
    assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    // Lengths are bytes, not characters.
    assert_eq!(
        pae("é", "ü".as_bytes()),
        "DSSEv1 2 é 2 ü".as_bytes().to_vec()
    );
}

#[test]
fn envelope_json_shape() {
    let key = keys::generate();
    let env = sign_envelope(INTOTO_PAYLOAD_TYPE, b"{\"a\":1}", &key);
    let json: serde_json::Value = serde_json::to_value(&env).unwrap();
    let obj = json.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        ["payload", "payloadType", "signatures"]
    );
    assert_eq!(json["payload"], "eyJhIjoxfQ==");
    assert_eq!(json["payloadType"], INTOTO_PAYLOAD_TYPE);
    // The securesystemslib default key id (docs/third-party-verify.md), not the policy's SPKI id.
    assert_eq!(
        json["signatures"][0]["keyid"],
        keys::envelope_key_id(&key.public_key())
    );
    let sig = STANDARD
        .decode(json["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    assert_eq!(sig.len(), 64);
    assert!(key.public_key().verify(
        &pae(INTOTO_PAYLOAD_TYPE, b"{\"a\":1}"),
        &sig.try_into().unwrap()
    ));
    let back: Envelope = serde_json::from_value(json).unwrap();
    assert_eq!(back, env);
}

#[test]
fn sign_and_verify() {
    let fx = Fixture::new(1);
    let policy = fx.policy(vec![fx.entry(0)]);
    let env = sign_envelope(INTOTO_PAYLOAD_TYPE, b"statement bytes", &fx.keys[0]);
    let ok = verify_envelope(&env, &policy, &in_window()).unwrap();
    assert_eq!(ok.payload, b"statement bytes");
    assert_eq!(ok.keyid, fx.keys[0].key_id());
}

#[test]
fn tampering_is_detected() {
    let fx = Fixture::new(1);
    let policy = fx.policy(vec![fx.entry(0)]);
    let env = sign_envelope(INTOTO_PAYLOAD_TYPE, b"statement bytes", &fx.keys[0]);
    let kid = fx.keys[0].key_id();

    let mut bad = env.clone();
    bad.payload = STANDARD.encode(b"statement bytez");
    let err = verify_envelope(&bad, &policy, &in_window()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "envelope signature #0 by key {kid} does not verify: the payload, its type or the signature was altered after signing"
        )
    );

    let mut bad = env.clone();
    bad.payload_type = "application/json".into();
    assert!(matches!(
        verify_envelope(&bad, &policy, &in_window()),
        Err(SignatureError::DoesNotVerify { .. })
    ));

    let mut bad = env.clone();
    let mut sig = STANDARD.decode(&bad.signatures[0].sig).unwrap();
    sig[10] ^= 1;
    bad.signatures[0].sig = STANDARD.encode(&sig);
    assert!(matches!(
        verify_envelope(&bad, &policy, &in_window()),
        Err(SignatureError::DoesNotVerify { .. })
    ));
}

#[test]
fn keys_come_from_the_policy_not_the_envelope() {
    let fx = Fixture::new(2);
    let policy = fx.policy(vec![fx.entry(0)]);

    // Signed by a key the policy does not list: refused by its keyid, with no signature work.
    let mut env = sign_envelope(INTOTO_PAYLOAD_TYPE, b"p", &fx.keys[1]);
    let err = verify_envelope(&env, &policy, &in_window()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "envelope signature #0 names key \"{}\", which is not in trust policy {}; only keys listed there are trusted, and a signature is checked only against the key its keyid names",
            keys::envelope_key_id(&fx.keys[1].public_key()),
            policy.path().display()
        )
    );
    env.signatures[0].keyid = fx.keys[0].key_id();
    assert!(matches!(
        verify_envelope(&env, &policy, &in_window()),
        Err(SignatureError::DoesNotVerify { .. })
    ));

    // A signature without a keyid is refused, not tried against every policy key, even when a
    // policy key would verify it.
    let mut env = sign_envelope(INTOTO_PAYLOAD_TYPE, b"p", &fx.keys[0]);
    env.signatures[0].keyid = String::new();
    let err = verify_envelope(&env, &policy, &in_window()).unwrap_err();
    assert!(
        matches!(err, SignatureError::MissingKeyId { index: 0 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("has no keyid"), "{err}");
}

#[test]
fn signatures_are_capped_and_each_is_tried_only_against_its_named_key() {
    let fx = Fixture::new(2);
    let policy = fx.policy(vec![fx.entry(0), fx.entry(1)]);
    let env = sign_envelope(INTOTO_PAYLOAD_TYPE, b"p", &fx.keys[0]);

    // More than MAX_SIGNATURES: refused before any is checked, even though one is valid.
    let mut many = env.clone();
    for _ in 0..husai_core::dsse::MAX_SIGNATURES {
        many.signatures.push(env.signatures[0].clone());
    }
    let err = verify_envelope(&many, &policy, &in_window()).unwrap_err();
    assert!(
        matches!(err, SignatureError::TooManySignatures { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("at most 16 are accepted"), "{err}");

    // A valid signature labelled with the other policy key's id does not verify: it is checked
    // against key 1 only.
    let mut relabelled = env.clone();
    relabelled.signatures[0].keyid = fx.keys[1].key_id();
    let err = verify_envelope(&relabelled, &policy, &in_window()).unwrap_err();
    assert!(
        matches!(&err, SignatureError::DoesNotVerify { keyid, .. } if *keyid == fx.keys[1].key_id()),
        "{err:?}"
    );

    // Exactly MAX_SIGNATURES, the last one valid: accepted.
    let mut full = env.clone();
    full.signatures = vec![relabelled.signatures[0].clone(); husai_core::dsse::MAX_SIGNATURES - 1];
    full.signatures.push(env.signatures[0].clone());
    assert_eq!(
        verify_envelope(&full, &policy, &in_window()).unwrap().keyid,
        fx.keys[0].key_id()
    );
}

#[test]
fn trust_failures_surface_through_verification() {
    let fx = Fixture::new(1);
    let mut e = fx.entry(0);
    e["revoked"] = serde_json::json!({"at": "2026-09-01T00:00:00Z", "reason": "rotated"});
    let policy = fx.policy(vec![e]);
    let env = sign_envelope(INTOTO_PAYLOAD_TYPE, b"p", &fx.keys[0]);
    let err = verify_envelope(&env, &policy, &in_window()).unwrap_err();
    let SignatureError::Untrusted { source, .. } = &err else {
        panic!("expected an untrusted-key error, got {err:?}");
    };
    assert!(matches!(**source, TrustError::Revoked { .. }), "{source:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "envelope signature #0 verifies, but key {} was revoked",
            fx.keys[0].key_id()
        )),
        "{msg}"
    );
}

#[test]
fn malformed_envelopes() {
    let fx = Fixture::new(1);
    let policy = fx.policy(vec![fx.entry(0)]);
    let env = sign_envelope(INTOTO_PAYLOAD_TYPE, b"p", &fx.keys[0]);

    let mut bad = env.clone();
    bad.signatures.clear();
    assert_eq!(
        verify_envelope(&bad, &policy, &in_window())
            .unwrap_err()
            .to_string(),
        "envelope has no signatures; sign it with a key listed in the trust policy"
    );

    let mut bad = env.clone();
    bad.payload = "***".into();
    assert!(
        verify_envelope(&bad, &policy, &in_window())
            .unwrap_err()
            .to_string()
            .starts_with("envelope payload is not base64: ")
    );

    let mut bad = env.clone();
    bad.signatures[0].sig = STANDARD.encode([0u8; 63]);
    assert!(
        verify_envelope(&bad, &policy, &in_window())
            .unwrap_err()
            .to_string()
            .contains("is 63 bytes; an ed25519 signature is 64 bytes")
    );

    let mut bad = env.clone();
    bad.signatures[0].sig = "!!".into();
    assert!(
        verify_envelope(&bad, &policy, &in_window())
            .unwrap_err()
            .to_string()
            .contains("is not base64")
    );

    // Two bad signatures: both are reported.
    let mut bad = env.clone();
    bad.signatures[0].sig = "!!".into();
    bad.signatures.push(bad.signatures[0].clone());
    let msg = verify_envelope(&bad, &policy, &in_window())
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("no envelope signature is acceptable:\n  envelope signature #0"),
        "{msg}"
    );
    assert!(msg.contains("\n  envelope signature #1"), "{msg}");
}

#[test]
fn url_safe_unpadded_base64_from_other_producers_is_accepted() {
    let fx = Fixture::new(1);
    let policy = fx.policy(vec![fx.entry(0)]);
    // Payload chosen so that standard and URL-safe base64 differ ('+' / '/').
    let payload = [0xfbu8, 0xff, 0xbf, 0x00];
    let mut env = sign_envelope(INTOTO_PAYLOAD_TYPE, &payload, &fx.keys[0]);
    let sig = STANDARD.decode(&env.signatures[0].sig).unwrap();
    env.payload = URL_SAFE_NO_PAD.encode(payload);
    env.signatures[0].sig = URL_SAFE_NO_PAD.encode(sig);
    assert_eq!(
        verify_envelope(&env, &policy, &in_window())
            .unwrap()
            .payload,
        payload
    );
}

// ---------------------------------------------------------------------------------------------
// roles bound to run kinds, strict and bounded policy reading

fn for_kind(kind: husai_core::manifest::RunKind) -> TrustContext {
    TrustContext {
        kind: Some(kind),
        ..in_window()
    }
}

#[test]
fn a_1_0_policy_lets_only_ci_sign_decisions() {
    use husai_core::manifest::RunKind;
    let fx = Fixture::new(2);
    let mut e1 = fx.entry(1);
    e1["roles"] = serde_json::json!(["developer"]);
    let policy = fx.policy(vec![fx.entry(0), e1]);
    assert!(!policy.has_roles_table());
    let (k0, k1) = (fx.keys[0].key_id(), fx.keys[1].key_id());
    for kind in RunKind::ALL {
        policy.check(&k0, &for_kind(kind)).unwrap();
    }
    policy.check(&k1, &for_kind(RunKind::Train)).unwrap();
    for kind in [RunKind::Gate, RunKind::Select] {
        let msg = policy.check(&k1, &for_kind(kind)).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "key {k1} (roles [developer]) may not sign runs of kind {kind} under trust policy {}: only roles [ci] may; sign {kind} runs with such a key, or allow the kind for the role in the policy's roles table",
                policy.path().display()
            )
        );
    }
}

#[test]
fn a_1_1_roles_table_is_enforced_and_must_define_every_role() {
    use husai_core::manifest::RunKind;
    let fx = Fixture::new(2);
    let mut e1 = fx.entry(1);
    e1["roles"] = serde_json::json!(["developer"]);
    let doc = |roles: serde_json::Value| serde_json::json!({"schema_version": "1.1", "roles": roles, "keys": [fx.entry(0), e1.clone()]});
    fx.write(&doc(serde_json::json!({
        "ci": {"kinds": ["gate", "select"]},
        "developer": {"kinds": ["train", "eval"]}
    })));
    let policy = TrustPolicy::load(fx.dir.path()).unwrap();
    assert!(policy.has_roles_table());
    let (k0, k1) = (fx.keys[0].key_id(), fx.keys[1].key_id());
    policy.check(&k0, &for_kind(RunKind::Gate)).unwrap();
    assert!(matches!(
        policy.check(&k0, &for_kind(RunKind::Train)),
        Err(TrustError::KindNotAllowed { .. })
    ));
    policy.check(&k1, &for_kind(RunKind::Eval)).unwrap();
    let msg = policy
        .check(&k1, &for_kind(RunKind::Gate))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("only roles [ci] may"), "{msg}");
    // No kind (not a run): roles are not consulted.
    policy.check(&k1, &in_window()).unwrap();

    // Every role a key holds must be defined.
    let (_, err) = fx.load_err(doc(serde_json::json!({"ci": {"kinds": ["gate"]}})));
    assert!(
        matches!(err, TrustError::UndefinedRole { ref role, .. } if role == "developer"),
        "{err}"
    );
    // Unknown kinds and misspelt fields are schema errors.
    let (_, err) = fx.load_err(doc(
        serde_json::json!({"ci": {"kinds": ["gates"]}, "developer": {"kinds": []}}),
    ));
    assert!(matches!(err, TrustError::SchemaViolation { .. }), "{err}");
    let (_, err) = fx.load_err(doc(
        serde_json::json!({"ci": {"kind": ["gate"]}, "developer": {"kinds": []}}),
    ));
    assert!(matches!(err, TrustError::SchemaViolation { .. }), "{err}");
}

#[test]
fn the_committed_policy_is_1_1_and_its_ci_key_signs_every_kind() {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys");
    let policy = TrustPolicy::load(&keys).unwrap();
    assert!(policy.has_roles_table());
    let ci = &policy.keys()[0];
    assert_eq!(ci.roles, ["ci"]);
    for kind in husai_core::manifest::RunKind::ALL {
        policy.check_kind(ci, kind).unwrap();
    }
}

#[test]
fn a_duplicate_key_in_the_policy_cannot_unrevoke() {
    let fx = Fixture::new(1);
    let entry = serde_json::to_string(&fx.entry(0)).unwrap().replacen(
        "\"revoked\":null",
        "\"revoked\":{\"at\":\"2026-02-01T00:00:00Z\",\"reason\":\"stolen\"},\"revoked\":null",
        1,
    );
    assert!(entry.contains("stolen"), "{entry}");
    let text = format!("{{\"schema_version\":\"1.0\",\"keys\":[{entry}]}}");
    std::fs::write(fx.dir.path().join("trust-policy.json"), text).unwrap();
    let err = TrustPolicy::load(fx.dir.path()).unwrap_err();
    assert!(matches!(err, TrustError::PolicyNotJson { .. }), "{err:?}");
    assert!(
        err.to_string().contains("duplicate key \"revoked\""),
        "{err}"
    );
}

#[test]
fn a_policy_that_is_a_fifo_symlink_or_huge_is_refused() {
    let fx = Fixture::new(1);
    let path = fx.write(&serde_json::json!({"schema_version": "1.0", "keys": [fx.entry(0)]}));
    let real = fx.dir.path().join("real.json");
    std::fs::rename(&path, &real).unwrap();
    std::os::unix::fs::symlink(&real, &path).unwrap();
    let err = TrustPolicy::load(fx.dir.path()).unwrap_err().to_string();
    assert!(err.contains("is a symbolic link"), "{err}");
    std::fs::remove_file(&path).unwrap();
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(husai_core::trust::MAX_POLICY_BYTES + 1).unwrap();
    let err = TrustPolicy::load(fx.dir.path()).unwrap_err().to_string();
    assert!(err.contains("larger than the 1048576-byte limit"), "{err}");
}
