//! Ed25519 signing keys and their PEM files.
//!
//! * Private keys are PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the format written by
//!   `openssl genpkey -algorithm ed25519`. We write PKCS#8 v1 (RFC 8410 section 7); we read v1 and
//!   v2 (the v2 form carries the public key too, which ed25519-dalek checks against the seed).
//! * Public keys are SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as written by `openssl pkey -pubout`.
//! * **Key id**: the lowercase hex SHA-256 of the public key's SPKI DER encoding (the 44 bytes
//!   `302a300506032b6570032100 || public key`). Anyone can recompute it from the `.pem` file with
//!   `openssl pkey -pubin -in key.pub.pem -outform DER | sha256sum`, and it names exactly one
//!   key, not a person or a role.
//!
//! Loading reports, per file, what was found and what was expected: a missing, unreadable or
//! empty file, text that is not PEM, a public key where a private key is needed (and the reverse),
//! a PKCS#1 / SEC1 / encrypted key, or a PKCS#8 key of another algorithm (RSA, EC, ...).

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, ObjectIdentifier, PrivateKeyInfo,
    spki::SubjectPublicKeyInfoRef, spki::der::pem,
};
use sha2::{Digest as _, Sha256};

/// Lowercase hex SHA-256 of a public key's SPKI DER encoding (see the module docs).
pub type KeyId = String;

/// DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410 section 4); the 32 key bytes follow.
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of a PKCS#8 v1 ed25519 private key (RFC 8410 section 7); the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Which half of a key pair a loader expected; used in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Private,
    Public,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Private => {
                "an ed25519 private key (PKCS#8 PEM, '-----BEGIN PRIVATE KEY-----')"
            }
            KeyKind::Public => "an ed25519 public key (SPKI PEM, '-----BEGIN PUBLIC KEY-----')",
        })
    }
}

/// Errors from loading or writing keys. `origin` is the file path, or `PEM text` for in-memory
/// input; every message says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {} does not exist; expected {expected} there (create a pair with `openssl genpkey -algorithm ed25519 -out key.pem`)", path.display())]
    Missing { path: PathBuf, expected: KeyKind },
    #[error("cannot read key file {}: {source}; expected {expected} that this user can read", path.display())]
    Unreadable {
        path: PathBuf,
        expected: KeyKind,
        #[source]
        source: io::Error,
    },
    #[error("{origin} is empty; expected {expected}")]
    Empty { origin: String, expected: KeyKind },
    #[error("{origin} is not a PEM file ({detail}); expected {expected}")]
    NotPem {
        origin: String,
        expected: KeyKind,
        detail: String,
    },
    #[error(
        "{origin} holds a public key, but a private key is needed to sign; pass the private half of the pair ({expected})"
    )]
    PublicGivenAsPrivate { origin: String, expected: KeyKind },
    #[error(
        "{origin} holds a private key where a public key is expected; pass the public half ({expected}), e.g. from `openssl pkey -in key.pem -pubout`, and never store private keys beside public ones"
    )]
    PrivateGivenAsPublic { origin: String, expected: KeyKind },
    #[error("{origin} holds a PEM block labelled '{label}'; expected {expected}{hint}")]
    WrongPemLabel {
        origin: String,
        label: String,
        expected: KeyKind,
        hint: &'static str,
    },
    #[error(
        "{origin} holds a {algorithm} key; husai signs and verifies with ed25519 only: expected {expected} (generate one with `openssl genpkey -algorithm ed25519`)"
    )]
    NotEd25519 {
        origin: String,
        algorithm: String,
        expected: KeyKind,
    },
    #[error(
        "{origin} is PEM-labelled correctly but its contents are malformed ({detail}); expected {expected}"
    )]
    Malformed {
        origin: String,
        expected: KeyKind,
        detail: String,
    },
    #[error("private key file {} is readable by {who} (mode {mode:04o}); a signing key must be private to its owner: run `chmod 600 {}`, or pass --allow-readable-key (or set HUSAI_ALLOW_READABLE_KEY=1) if it is deliberately shared, e.g. a read-only CI secret mount", path.display(), path.display())]
    ReadableByOthers {
        path: PathBuf,
        mode: u32,
        who: &'static str,
    },
    #[error("refusing to overwrite existing key file {}; move it away or choose another path", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("cannot write key file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An ed25519 private key.
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

/// An ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: ed25519_dalek::VerifyingKey,
}

// Debug shows only the key id: a private key must never end up in a log line.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("keyid", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("keyid", &key_id(self))
            .finish()
    }
}

/// Generates a fresh key from the operating system's random source.
pub fn generate() -> SigningKey {
    SigningKey {
        inner: ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng),
    }
}

/// The key id of `key`: lowercase hex SHA-256 of its SPKI DER encoding. This is how the trust
/// policy names a key, and what signatures carried as their keyid before envelopes switched to
/// [`envelope_key_id`].
pub fn key_id(key: &PublicKey) -> KeyId {
    hex::encode(Sha256::digest(key.to_spki_der()))
}

/// The keyid husai writes into envelope signatures: the TUF/securesystemslib default key id of an
/// ed25519 key, lowercase hex SHA-256 of the canonical JSON
/// `{"keytype":"ed25519","keyval":{"public":"<64 hex>"},"scheme":"ed25519"}`. With it,
/// securesystemslib's `Envelope.verify` (which skips a signature whose keyid differs from the
/// key's) accepts a husai envelope given just the public key, by its default path
/// (docs/third-party-verify.md). The document has only ASCII keys and a hex string, so it is the
/// same under RFC 8785 and securesystemslib's canonical JSON.
pub fn envelope_key_id(key: &PublicKey) -> KeyId {
    let doc = format!(
        r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#,
        hex::encode(key.as_bytes())
    );
    hex::encode(Sha256::digest(doc.as_bytes()))
}

impl SigningKey {
    /// Loads a PKCS#8 PEM ed25519 private key from `path`.
    pub fn from_pkcs8_pem_file(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
        let path = path.as_ref();
        let text = read_key_file(path, KeyKind::Private)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Loads the private key a command signs with: like [`SigningKey::from_pkcs8_pem_file`], but
    /// the file must be a regular file (a symlink to it is fine; a FIFO or device is not) and,
    /// unless `allow_readable`, not readable by group or others.
    pub fn load_for_signing(
        path: impl AsRef<Path>,
        allow_readable: bool,
    ) -> Result<SigningKey, KeyError> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                KeyError::Missing {
                    path: path.to_owned(),
                    expected: KeyKind::Private,
                }
            } else {
                KeyError::Unreadable {
                    path: path.to_owned(),
                    expected: KeyKind::Private,
                    source,
                }
            }
        })?;
        if !meta.is_file() {
            return Err(KeyError::Unreadable {
                path: path.to_owned(),
                expected: KeyKind::Private,
                source: io::Error::other(format!(
                    "it is {}",
                    crate::untrusted::describe_file_type(meta.file_type())
                )),
            });
        }
        #[cfg(unix)]
        if !allow_readable {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o7777;
            let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
                (true, true) => Some("group and others"),
                (true, false) => Some("its group"),
                (false, true) => Some("others"),
                (false, false) => None,
            };
            if let Some(who) = who {
                return Err(KeyError::ReadableByOthers {
                    path: path.to_owned(),
                    mode,
                    who,
                });
            }
        }
        #[cfg(not(unix))]
        let _ = allow_readable;
        Self::from_pkcs8_pem_file(path)
    }

    /// Parses a PKCS#8 PEM ed25519 private key.
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<SigningKey, KeyError> {
        Self::parse(pem_text, "PEM text")
    }

    fn parse(pem_text: &str, origin: &str) -> Result<SigningKey, KeyError> {
        let expected = KeyKind::Private;
        let der = decode_pem(pem_text, origin, expected)?;
        let info = PrivateKeyInfo::try_from(der.as_slice()).map_err(|e| KeyError::Malformed {
            origin: origin.to_owned(),
            expected,
            detail: e.to_string(),
        })?;
        check_algorithm(info.algorithm.oid, origin, expected)?;
        let inner =
            ed25519_dalek::SigningKey::from_pkcs8_der(&der).map_err(|e| KeyError::Malformed {
                origin: origin.to_owned(),
                expected,
                detail: e.to_string(),
            })?;
        Ok(SigningKey { inner })
    }

    /// PKCS#8 v1 PEM encoding, as `openssl genpkey -algorithm ed25519` writes it.
    pub fn to_pkcs8_pem(&self) -> String {
        let mut der = Vec::with_capacity(48);
        der.extend_from_slice(&PKCS8_ED25519_PREFIX);
        der.extend_from_slice(self.inner.as_bytes());
        pem_encode("PRIVATE KEY", &der)
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: self.inner.verifying_key(),
        }
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> KeyId {
        key_id(&self.public_key())
    }

    /// Plain ed25519 (RFC 8032 Ed25519, not Ed25519ph) signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.inner.sign(message).to_bytes()
    }
}

impl PublicKey {
    /// Loads an SPKI PEM ed25519 public key from `path`.
    pub fn from_spki_pem_file(path: impl AsRef<Path>) -> Result<PublicKey, KeyError> {
        let path = path.as_ref();
        let text = read_key_file(path, KeyKind::Public)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses an SPKI PEM ed25519 public key.
    pub fn from_spki_pem(pem_text: &str) -> Result<PublicKey, KeyError> {
        Self::parse(pem_text, "PEM text")
    }

    fn parse(pem_text: &str, origin: &str) -> Result<PublicKey, KeyError> {
        let expected = KeyKind::Public;
        let der = decode_pem(pem_text, origin, expected)?;
        let info =
            SubjectPublicKeyInfoRef::try_from(der.as_slice()).map_err(|e| KeyError::Malformed {
                origin: origin.to_owned(),
                expected,
                detail: e.to_string(),
            })?;
        check_algorithm(info.algorithm.oid, origin, expected)?;
        let inner = ed25519_dalek::VerifyingKey::from_public_key_der(&der).map_err(|e| {
            KeyError::Malformed {
                origin: origin.to_owned(),
                expected,
                detail: e.to_string(),
            }
        })?;
        Ok(PublicKey { inner })
    }

    /// Builds a key from its 32 raw bytes (RFC 8032 encoding); `None` if they are not a valid
    /// curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<PublicKey> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .ok()
            .map(|inner| PublicKey { inner })
    }

    /// The 32 raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.inner.as_bytes()
    }

    /// SPKI DER encoding (the bytes the key id hashes).
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut der = Vec::with_capacity(44);
        der.extend_from_slice(&SPKI_ED25519_PREFIX);
        der.extend_from_slice(self.inner.as_bytes());
        der
    }

    /// SPKI PEM encoding, as `openssl pkey -pubout` writes it.
    pub fn to_spki_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.to_spki_der())
    }

    /// The key id (see the module docs).
    pub fn key_id(&self) -> KeyId {
        key_id(self)
    }

    /// Checks a plain ed25519 signature. Uses ed25519-dalek's strict verification, which also
    /// rejects small-order keys and non-canonical encodings, so that one signature cannot be
    /// valid for two different messages or keys.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.inner.verify_strict(message, &sig).is_ok()
    }
}

/// Does the file at `path` hold a PEM private key (a `-----BEGIN ... PRIVATE KEY-----` line of any
/// kind: PKCS#8, encrypted, RSA, EC, OpenSSH)? The whole file is scanned, in chunks.
pub fn file_holds_private_key(path: &Path) -> io::Result<bool> {
    use std::io::Read as _;
    const NEEDLE: &[u8] = b"PRIVATE KEY-----";
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    // Bytes kept from the previous chunk so that a header split across chunks is found.
    let keep = 128;
    let mut filled = 0;
    loop {
        let n = f.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(false);
        }
        filled += n;
        if holds_private_key_header(&buf[..filled], NEEDLE) {
            return Ok(true);
        }
        if filled > keep {
            buf.copy_within(filled - keep..filled, 0);
            filled = keep;
        }
    }
}

fn holds_private_key_header(hay: &[u8], needle: &[u8]) -> bool {
    let mut from = 0;
    while let Some(pos) = hay[from..].iter().position(|&b| b == b'-') {
        let at = from + pos;
        if hay[at..].starts_with(b"-----BEGIN ") {
            let line_end = hay[at..]
                .iter()
                .take(100)
                .position(|&b| b == b'\n' || b == b'\r')
                .map_or(hay.len().min(at + 100), |p| at + p);
            if hay[at..line_end].windows(needle.len()).any(|w| w == needle) {
                return true;
            }
        }
        from = at + 1;
    }
    false
}

/// Generates a key pair and writes it: the private key (PKCS#8 PEM) to `private_path` with mode
/// 0600, the public key (SPKI PEM) to `public_path`. Neither file may exist already; an existing
/// file is never overwritten. The private file is created with its final mode in the same
/// `open(2)` call (`O_CREAT|O_EXCL`, mode 0600), so it is never readable by others, even briefly.
pub fn write_keypair(private_path: &Path, public_path: &Path) -> Result<KeyId, KeyError> {
    for path in [private_path, public_path] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyError::AlreadyExists {
                path: path.to_owned(),
            });
        }
    }
    let key = generate();
    let public = key.public_key();
    let mut private_file = create_new(private_path, 0o600)?;
    // If the public file cannot be created (e.g. it appeared meanwhile), remove the private file we
    // just created so that a retry does not trip over half a pair.
    let mut public_file = match create_new(public_path, 0o644) {
        Ok(f) => f,
        Err(e) => {
            drop(private_file);
            let _ = std::fs::remove_file(private_path);
            return Err(e);
        }
    };
    write_all_synced(
        &mut private_file,
        private_path,
        key.to_pkcs8_pem().as_bytes(),
    )?;
    write_all_synced(
        &mut public_file,
        public_path,
        public.to_spki_pem().as_bytes(),
    )?;
    Ok(key_id(&public))
}

fn create_new(path: &Path, mode: u32) -> Result<std::fs::File, KeyError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            KeyError::AlreadyExists {
                path: path.to_owned(),
            }
        } else {
            KeyError::Write {
                path: path.to_owned(),
                source,
            }
        }
    })
}

fn write_all_synced(file: &mut std::fs::File, path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Write {
            path: path.to_owned(),
            source,
        })
}

fn read_key_file(path: &Path, expected: KeyKind) -> Result<String, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            KeyError::Missing {
                path: path.to_owned(),
                expected,
            }
        } else {
            KeyError::Unreadable {
                path: path.to_owned(),
                expected,
                source,
            }
        }
    })?;
    // A key file that is not UTF-8 is certainly not PEM (PEM is ASCII); DER files end up here.
    String::from_utf8(bytes).map_err(|_| KeyError::NotPem {
        origin: path.display().to_string(),
        expected,
        detail: "the file is binary, not text; a DER file must be converted to PEM first".into(),
    })
}

/// Decodes one PEM block and checks its label against what the caller expects.
fn decode_pem(text: &str, origin: &str, expected: KeyKind) -> Result<Vec<u8>, KeyError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(KeyError::Empty {
            origin: origin.to_owned(),
            expected,
        });
    }
    // The RFC 7468 decoder is strict about surrounding whitespace; accept what editors add.
    let normalised = format!("{trimmed}\n");
    let label = pem::decode_label(normalised.as_bytes()).map_err(|e| KeyError::NotPem {
        origin: origin.to_owned(),
        expected,
        detail: e.to_string(),
    })?;
    let want = match expected {
        KeyKind::Private => "PRIVATE KEY",
        KeyKind::Public => "PUBLIC KEY",
    };
    if label != want {
        let origin = origin.to_owned();
        return Err(match (expected, label) {
            (KeyKind::Private, "PUBLIC KEY") => KeyError::PublicGivenAsPrivate { origin, expected },
            (KeyKind::Public, l) if l.contains("PRIVATE KEY") => {
                KeyError::PrivateGivenAsPublic { origin, expected }
            }
            (_, l) => KeyError::WrongPemLabel {
                origin,
                label: l.to_owned(),
                expected,
                hint: label_hint(l),
            },
        });
    }
    let (_, der) = pem::decode_vec(normalised.as_bytes()).map_err(|e| KeyError::NotPem {
        origin: origin.to_owned(),
        expected,
        detail: e.to_string(),
    })?;
    Ok(der)
}

fn label_hint(label: &str) -> &'static str {
    match label {
        "ENCRYPTED PRIVATE KEY" => {
            " (this key is password-protected; husai needs an unencrypted key, e.g. `openssl pkey -in enc.pem -out key.pem`)"
        }
        "RSA PRIVATE KEY" | "RSA PUBLIC KEY" => {
            " (this is an RSA key; husai signs with ed25519 only)"
        }
        "EC PRIVATE KEY" => " (this is an EC key; husai signs with ed25519 only)",
        "OPENSSH PRIVATE KEY" => {
            " (this is an OpenSSH key; generate a PKCS#8 one with `openssl genpkey -algorithm ed25519`)"
        }
        "CERTIFICATE" => " (this is an X.509 certificate, not a bare key)",
        _ => "",
    }
}

fn check_algorithm(oid: ObjectIdentifier, origin: &str, expected: KeyKind) -> Result<(), KeyError> {
    if oid == ED25519_OID {
        return Ok(());
    }
    let algorithm = match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA".to_owned(),
        "1.2.840.113549.1.1.10" => "RSASSA-PSS".to_owned(),
        "1.2.840.10045.2.1" => "EC (ECDSA)".to_owned(),
        "1.3.101.110" => "X25519".to_owned(),
        "1.3.101.111" => "X448".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        other => format!("unknown-algorithm (OID {other})"),
    };
    Err(KeyError::NotEd25519 {
        origin: origin.to_owned(),
        algorithm,
        expected,
    })
}

/// RFC 7468 PEM with 64-column base64 lines and LF endings, byte-identical to OpenSSL's output.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // base64 output is ASCII, so every byte offset is a char boundary.
    let mut start = 0;
    while start < b64.len() {
        let end = (start + 64).min(b64.len());
        out.push_str(&b64[start..end]);
        out.push('\n');
        start = end;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
