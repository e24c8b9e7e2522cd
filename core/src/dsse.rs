//! DSSE v1 envelopes (<https://github.com/secure-systems-lab/dsse>), signed with plain ed25519.
//!
//! The signature covers the pre-authentication encoding (PAE) of the payload type and payload:
//!
//! ```text
//! PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
//! ```
//!
//! where `LEN` is the ASCII decimal byte length and `SP` one space. Because the signature is
//! plain ed25519 over these bytes, `openssl pkeyutl -verify -rawin` checks it too.
//!
//! The envelope is JSON: `{"payload": base64, "payloadType": ..., "signatures": [{"keyid", "sig"}]}`.
//! We write standard base64 with padding; we read standard or URL-safe, padded or not, as the
//! DSSE spec allows producers either.
//!
//! Verification takes keys from the [`TrustPolicy`] only. Each signature is tried against the one
//! policy key its `keyid` names and no other (a key is named by its securesystemslib default id,
//! which husai writes, or by its policy id, the SPKI sha256 that envelopes carried before): a signature without a keyid, or naming a key the
//! policy does not list, is refused without any signature work, so an envelope cannot make the
//! verifier try every key against every signature. An envelope may carry at most
//! [`MAX_SIGNATURES`] signatures; more are refused before any is checked.
//!
//! Verification runs in two steps. [`authenticate`] does the cryptography (which policy keys
//! signed these exact payload bytes); [`Authenticated::trust`] then applies the policy (revocation,
//! validity window at the signing time recorded in the now-authenticated payload, roles, and the
//! run kinds a role may sign). [`verify_envelope`] does both.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, SigningKey};

/// The most signatures an envelope may carry; an envelope with more is refused unread.
pub const MAX_SIGNATURES: usize = 16;
/// The largest envelope file verify reads (64 MiB: a payload of about 48 MiB, room for a
/// statement of several hundred thousand subjects). Larger files are refused before parsing.
pub const MAX_ENVELOPE_BYTES: u64 = 64 << 20;
use crate::trust::{TrustContext, TrustError, TrustPolicy, TrustedKey};

/// Payload type of an in-toto Statement.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// A DSSE envelope as it appears on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The payload, base64.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Key id hint (optional in DSSE, so it may be empty when read).
    #[serde(default)]
    pub keyid: String,
    /// The 64-byte ed25519 signature, base64.
    pub sig: String,
}

/// The result of a successful verification: the payload bytes the signature covers, and the
/// policy key id that signed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEnvelope {
    pub payload: Vec<u8>,
    pub keyid: KeyId,
}

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("envelope payload is not base64: {detail}")]
    PayloadNotBase64 { detail: String },
    #[error("envelope has no signatures; sign it with a key listed in the trust policy")]
    NoSignatures,
    #[error("envelope signature #{index} (keyid {keyid:?}) is not base64: {detail}")]
    SignatureNotBase64 {
        index: usize,
        keyid: String,
        detail: String,
    },
    #[error(
        "envelope signature #{index} (keyid {keyid:?}) is {len} bytes; an ed25519 signature is 64 bytes"
    )]
    SignatureWrongLength {
        index: usize,
        keyid: String,
        len: usize,
    },
    #[error(
        "envelope signature #{index} by key {keyid} does not verify: the payload, its type or the signature was altered after signing"
    )]
    DoesNotVerify { index: usize, keyid: String },
    #[error("envelope signature #{index} names key {keyid:?}, which is not in trust policy {}; only keys listed there are trusted, and a signature is checked only against the key its keyid names", policy.display())]
    UnknownKey {
        index: usize,
        keyid: String,
        policy: std::path::PathBuf,
    },
    #[error(
        "envelope signature #{index} has no keyid; husai checks a signature only against the policy key its keyid names (its securesystemslib default id, or its sha256 SPKI id), so sign with husai or set the keyid"
    )]
    MissingKeyId { index: usize },
    #[error(
        "envelope has {count} signatures; at most {MAX_SIGNATURES} are accepted (none was checked)"
    )]
    TooManySignatures { count: usize },
    #[error("envelope signature #{index} verifies, but {source}")]
    Untrusted {
        index: usize,
        // Boxed: a trust error carries several paths and strings, and every `Result` in this
        // module would otherwise be as large as it.
        #[source]
        source: Box<TrustError>,
    },
    #[error("no envelope signature is acceptable:\n  {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  "))]
    NoneAcceptable { errors: Vec<SignatureError> },
}

/// DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let body_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        10 + type_len.len() + payload_type.len() + body_len.len() + payload.len(),
    );
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(type_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` and wraps it in an envelope with one signature whose keyid is `key`'s
/// securesystemslib default id ([`crate::keys::envelope_key_id`]).
pub fn sign_envelope(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
    let sig = key.sign(&pae(payload_type, payload));
    Envelope {
        payload: STANDARD.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![EnvelopeSignature {
            keyid: crate::keys::envelope_key_id(&key.public_key()),
            sig: STANDARD.encode(sig),
        }],
    }
}

impl Envelope {
    /// The payload bytes, NOT verified. Use this only to read what is needed to build the
    /// [`TrustContext`] (the recorded signing time); [`verify_envelope`] then checks the signature
    /// over these same bytes, so a context read from a forged payload cannot pass.
    pub fn decode_payload(&self) -> Result<Vec<u8>, SignatureError> {
        decode_b64(&self.payload).map_err(|detail| SignatureError::PayloadNotBase64 { detail })
    }
}

/// The cryptographic half of verification: the payload bytes and every policy key whose
/// signature over them verified. No trust decision is made yet.
#[derive(Debug)]
pub struct Authenticated<'p> {
    pub payload: Vec<u8>,
    signers: Vec<(usize, &'p TrustedKey)>,
}

impl<'p> Authenticated<'p> {
    /// The key ids whose signatures verified, in envelope order.
    pub fn signers(&self) -> impl Iterator<Item = &str> {
        self.signers.iter().map(|(_, k)| k.keyid.as_str())
    }

    /// Applies the policy to each verified signer under `ctx`; the first that passes wins.
    pub fn trust(
        self,
        policy: &'p TrustPolicy,
        ctx: &TrustContext,
    ) -> Result<VerifiedEnvelope, SignatureError> {
        let mut errors = Vec::new();
        for (index, key) in &self.signers {
            match policy.check(&key.keyid, ctx) {
                Ok(k) => {
                    return Ok(VerifiedEnvelope {
                        payload: self.payload,
                        keyid: k.keyid.clone(),
                    });
                }
                Err(source) => errors.push(SignatureError::Untrusted {
                    index: *index,
                    source: Box::new(source),
                }),
            }
        }
        Err(one_or_all(errors))
    }
}

/// Checks the signatures of `env` (see the module docs): each against the policy key its keyid
/// names, at most [`MAX_SIGNATURES`] of them.
pub fn authenticate<'p>(
    env: &Envelope,
    policy: &'p TrustPolicy,
) -> Result<Authenticated<'p>, SignatureError> {
    if env.signatures.is_empty() {
        return Err(SignatureError::NoSignatures);
    }
    if env.signatures.len() > MAX_SIGNATURES {
        return Err(SignatureError::TooManySignatures {
            count: env.signatures.len(),
        });
    }
    let payload = env.decode_payload()?;
    let message = pae(&env.payload_type, &payload);
    let mut signers = Vec::new();
    let mut errors = Vec::new();
    for (index, s) in env.signatures.iter().enumerate() {
        match verify_one(index, s, &message, policy) {
            Ok(key) => signers.push((index, key)),
            Err(e) => errors.push(e),
        }
    }
    if signers.is_empty() {
        return Err(one_or_all(errors));
    }
    Ok(Authenticated { payload, signers })
}

/// Verifies `env` against `policy`: at least one signature must be valid ed25519 over the PAE by
/// the policy key its keyid names, and that key must pass [`TrustPolicy::check`] for `ctx`.
pub fn verify_envelope(
    env: &Envelope,
    policy: &TrustPolicy,
    ctx: &TrustContext,
) -> Result<VerifiedEnvelope, SignatureError> {
    authenticate(env, policy)?.trust(policy, ctx)
}

fn one_or_all(mut errors: Vec<SignatureError>) -> SignatureError {
    if errors.len() == 1 {
        errors.remove(0)
    } else {
        SignatureError::NoneAcceptable { errors }
    }
}

fn verify_one<'p>(
    index: usize,
    s: &EnvelopeSignature,
    message: &[u8],
    policy: &'p TrustPolicy,
) -> Result<&'p TrustedKey, SignatureError> {
    if s.keyid.is_empty() {
        return Err(SignatureError::MissingKeyId { index });
    }
    let Some(key) = policy.key_for_signature(&s.keyid) else {
        return Err(SignatureError::UnknownKey {
            index,
            keyid: s.keyid.clone(),
            policy: policy.path().to_owned(),
        });
    };
    let raw = decode_b64(&s.sig).map_err(|detail| SignatureError::SignatureNotBase64 {
        index,
        keyid: s.keyid.clone(),
        detail,
    })?;
    let sig: [u8; 64] =
        raw.as_slice()
            .try_into()
            .map_err(|_| SignatureError::SignatureWrongLength {
                index,
                keyid: s.keyid.clone(),
                len: raw.len(),
            })?;
    if key.public_key.verify(message, &sig) {
        Ok(key)
    } else {
        Err(SignatureError::DoesNotVerify {
            index,
            keyid: key.keyid.clone(),
        })
    }
}

fn decode_b64(text: &str) -> Result<Vec<u8>, String> {
    STANDARD_LENIENT
        .decode(text)
        .or_else(|_| URL_SAFE_LENIENT.decode(text))
        .map_err(|e| e.to_string())
}
