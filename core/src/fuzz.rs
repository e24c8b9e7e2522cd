//! Entry points for fuzzing and property tests of the parsers that see hostile bytes before any
//! signature is trusted. Each takes raw bytes, runs the same code the verifier and the policy
//! loader run, and returns whether the input was accepted; none may panic, and each is bounded in
//! time and memory by its input (which the callers cap: [`crate::dsse::MAX_ENVELOPE_BYTES`],
//! [`crate::trust::MAX_POLICY_BYTES`]). The corpora live in `fuzz/corpus/<target>/` and are
//! replayed by `cargo test` (core/tests/suite/verify_mutations.rs).

use std::path::Path;

use crate::trust::TrustPolicy;

/// An envelope file's bytes: strict JSON, schema, decoding, then the signature checks against
/// `policy` (cryptography only: no trust decision needs a payload here).
pub fn envelope(bytes: &[u8], policy: &TrustPolicy) -> bool {
    match crate::verify::decode_envelope(bytes, "fuzz") {
        Ok(env) => crate::dsse::authenticate(&env, policy).is_ok(),
        Err(_) => false,
    }
}

/// A signed payload's bytes: strict JSON, Statement and manifest schemas, decoding, and the
/// signing time.
pub fn payload(bytes: &[u8]) -> bool {
    match crate::verify::decode_statement(bytes, "fuzz") {
        Ok(st) => crate::store::parse_timestamp(&st.predicate.finished_at).is_some(),
        Err(_) => false,
    }
}

/// A trust policy's bytes, with public keys looked up in `key_dir`.
pub fn trust_policy(bytes: &[u8], key_dir: &Path) -> bool {
    TrustPolicy::from_json_bytes(bytes, key_dir, &key_dir.join("trust-policy.json")).is_ok()
}
