//! Our keys, key ids and DSSE signatures against OpenSSL, the standard tool a third party would
//! use to check them. These tests need the `openssl` command (3.x); without it they fail with a
//! message saying so rather than passing silently.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use husai_core::dsse::{INTOTO_PAYLOAD_TYPE, pae, sign_envelope};
use husai_core::keys::{self, KeyError, PublicKey, SigningKey};

fn openssl(args: &[&str], dir: &Path) -> Output {
    match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run `openssl {}`: {e}. These interoperability tests need the OpenSSL 3 command-line tool: \
             install it (Debian/Ubuntu: `apt-get install openssl`, macOS: `brew install openssl@3`) and rerun.",
            args.join(" ")
        ),
    }
}

fn openssl_ok(args: &[&str], dir: &Path) -> Output {
    let out = openssl(args, dir);
    assert!(
        out.status.success(),
        "`openssl {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn verify_with_openssl(dir: &Path) -> bool {
    openssl(
        &[
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "pae.bin",
            "-sigfile", "sig.bin",
        ],
        dir,
    )
    .status
    .success()
}

#[test]
fn openssl_verifies_our_dsse_signature() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keys::generate();
    let payload = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#;
    let env = sign_envelope(INTOTO_PAYLOAD_TYPE, payload, &key);
    let sig = STANDARD.decode(&env.signatures[0].sig).unwrap();
    assert_eq!(sig.len(), 64);

    std::fs::write(d.join("pub.pem"), key.public_key().to_spki_pem()).unwrap();
    std::fs::write(d.join("pae.bin"), pae(&env.payload_type, payload)).unwrap();
    std::fs::write(d.join("sig.bin"), &sig).unwrap();
    assert!(
        verify_with_openssl(d),
        "openssl rejected a signature husai made"
    );

    // One flipped bit in the signed bytes, then in the signature: both rejected.
    let mut tampered = pae(&env.payload_type, payload);
    tampered[20] ^= 1;
    std::fs::write(d.join("pae.bin"), &tampered).unwrap();
    assert!(!verify_with_openssl(d), "openssl accepted altered bytes");
    std::fs::write(d.join("pae.bin"), pae(&env.payload_type, payload)).unwrap();
    let mut bad_sig = sig.clone();
    bad_sig[0] ^= 1;
    std::fs::write(d.join("sig.bin"), &bad_sig).unwrap();
    assert!(
        !verify_with_openssl(d),
        "openssl accepted an altered signature"
    );
}

#[test]
fn our_private_key_pem_is_what_openssl_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keys::generate();
    std::fs::write(d.join("key.pem"), key.to_pkcs8_pem()).unwrap();
    // openssl re-encodes the key it parsed; identical text means identical encoding.
    let out = openssl_ok(&["pkey", "-in", "key.pem"], d);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), key.to_pkcs8_pem());
    let out = openssl_ok(&["pkey", "-in", "key.pem", "-pubout"], d);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        key.public_key().to_spki_pem()
    );
}

#[test]
fn openssl_key_loads_and_its_signature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_ok(&["genpkey", "-algorithm", "ed25519", "-out", "key.pem"], d);
    openssl_ok(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"], d);
    std::fs::write(
        d.join("msg.bin"),
        pae(INTOTO_PAYLOAD_TYPE, b"payload from elsewhere"),
    )
    .unwrap();
    openssl_ok(
        &[
            "pkeyutl", "-sign", "-inkey", "key.pem", "-rawin", "-in", "msg.bin", "-out", "sig.bin",
        ],
        d,
    );

    let key = SigningKey::from_pkcs8_pem_file(d.join("key.pem")).unwrap();
    let public = PublicKey::from_spki_pem_file(d.join("pub.pem")).unwrap();
    assert_eq!(key.public_key(), public);
    let msg = std::fs::read(d.join("msg.bin")).unwrap();
    let sig: [u8; 64] = std::fs::read(d.join("sig.bin"))
        .unwrap()
        .try_into()
        .unwrap();
    assert!(public.verify(&msg, &sig));
    // Ed25519 is deterministic: we sign the same bytes to the same signature.
    assert_eq!(key.sign(&msg), sig);

    // The key id is sha256 of the SPKI DER exactly as openssl encodes it.
    let der = openssl_ok(&["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"], d).stdout;
    assert_eq!(public.key_id(), husai_core::digest::sha256_hex(&der));
}

fn expect_not_ed25519(path: &Path, algorithm: &str) {
    let err = SigningKey::from_pkcs8_pem_file(path).unwrap_err();
    assert!(matches!(err, KeyError::NotEd25519 { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "{} holds a {algorithm} key; husai signs and verifies with ed25519 only: expected an ed25519 private key",
            path.display()
        )),
        "{msg}"
    );
}

#[test]
fn rsa_and_ec_keys_are_refused_with_their_algorithm_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_ok(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            "rsa.pem",
        ],
        d,
    );
    openssl_ok(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.pem",
        ],
        d,
    );
    openssl_ok(&["genpkey", "-algorithm", "ed448", "-out", "ed448.pem"], d);
    expect_not_ed25519(&d.join("rsa.pem"), "RSA");
    expect_not_ed25519(&d.join("ec.pem"), "EC (ECDSA)");
    expect_not_ed25519(&d.join("ed448.pem"), "Ed448");

    // Their public halves are refused as trusted public keys too.
    openssl_ok(
        &["pkey", "-in", "rsa.pem", "-pubout", "-out", "rsa.pub.pem"],
        d,
    );
    let msg = PublicKey::from_spki_pem_file(d.join("rsa.pub.pem"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("holds a RSA key") && msg.contains("expected an ed25519 public key"),
        "{msg}"
    );

    // A traditional SEC1 EC key (as `openssl ecparam -genkey` writes) has its own label.
    openssl_ok(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "sec1.pem",
        ],
        d,
    );
    let msg = SigningKey::from_pkcs8_pem_file(d.join("sec1.pem"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("labelled 'EC PRIVATE KEY'") && msg.contains("this is an EC key"),
        "{msg}"
    );
}
