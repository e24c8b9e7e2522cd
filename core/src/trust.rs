//! The trust policy: which public keys husai accepts signatures from, for which roles, when.
//!
//! The policy is `keys/trust-policy.json` (schema `schemas/trust-policy.v1.json`):
//!
//! ```json
//! {"schema_version": "1.0",
//!  "keys": [{"keyid": "<sha256 of SPKI DER>", "public_key": "ci.pub.pem", "roles": ["ci"],
//!            "not_before": "2026-01-01T00:00:00Z", "not_after": null, "revoked": null}]}
//! ```
//!
//! Semantics, checked in this order by [`TrustPolicy::check`]:
//! 1. a key id that the policy does not list is rejected;
//! 2. a revoked key is rejected whatever the signing time, because whoever holds a compromised
//!    key can write any time they like into the payload;
//! 3. the signing time recorded in the signed payload must lie in `[not_before, not_after]`
//!    (`not_after: null` means no end);
//! 4. when the caller names accepted roles, the key must hold at least one of them;
//! 5. when the signed artifact is a run, one of the key's roles must be allowed to sign that run
//!    kind (the `roles` table, below). Every consumer of a run goes through the verifier, which
//!    always passes the run's kind, so a role bound to `train` runs cannot sign a `gate` decision
//!    that a release claim relies on, whoever reads it.
//!
//! **Roles table (schema 1.1).** `"roles": {"ci": {"kinds": ["data", "train", ..., "gate"]},
//! "developer": {"kinds": ["external", "train", "eval"]}}` lists, per role, the run kinds its
//! keys may sign. With a table, every role a key holds must be defined there. A 1.0 policy (no
//! table) reads with the built-in table [`default_role_kinds`]: role `ci` may sign every kind,
//! any other role every kind except the decisions `select` and `gate`.
//!
//! Loading rejects a policy that does not match the schema, a schema major version other than 1,
//! a key file whose key id differs from the `keyid` written beside it, duplicate key ids, and
//! duplicate JSON keys (so `"revoked": {..}, "revoked": null` cannot un-revoke a key). The file
//! must be a regular file (no symlink, FIFO or device) of at most [`MAX_POLICY_BYTES`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::keys::{KeyError, KeyId, PublicKey, envelope_key_id, key_id};
use crate::manifest::RunKind;
use crate::plugin::pin::{PinError, PluginLock};
use crate::untrusted::{self, ReadError};

/// File name of the policy inside the keys directory.
pub const POLICY_FILE_NAME: &str = "trust-policy.json";
/// The schema major version this build reads.
pub const SUPPORTED_MAJOR: u64 = 1;
/// The version this husai writes (1.1 added the `roles` table).
pub const CURRENT_VERSION: &str = "1.1";
/// The largest trust policy read (1 MiB).
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

/// The role that may sign every kind in a 1.0 policy, which has no roles table.
pub const CI_ROLE: &str = "ci";

/// The roles table a 1.0 policy reads with: `ci` may sign every kind; a role not named here may
/// sign every kind but the decisions (`select`, `gate`).
pub fn default_role_kinds(role: &str) -> Vec<RunKind> {
    RunKind::ALL
        .into_iter()
        .filter(|k| role == CI_ROLE || !matches!(k, RunKind::Select | RunKind::Gate))
        .collect()
}

/// One trusted key, as loaded and checked.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The policy's id for the key (sha256 of the SPKI DER).
    pub keyid: KeyId,
    /// The keyid envelopes carry for it ([`crate::keys::envelope_key_id`]); a signature naming
    /// either id is checked against this key.
    pub envelope_keyid: KeyId,
    pub public_key: PublicKey,
    /// Where the PEM was loaded from (the policy's directory joined with its `public_key`).
    pub public_key_path: PathBuf,
    pub roles: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: Option<OffsetDateTime>,
    pub revoked: Option<Revocation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub at: OffsetDateTime,
    pub reason: String,
}

/// What a verifier knows about one signature besides the key: the signing time recorded in the
/// signed payload, and which roles may sign this kind of artifact (`None`: any role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustContext {
    pub signed_at: OffsetDateTime,
    pub accepted_roles: Option<Vec<String>>,
    /// The kind of run the signature is for, when it is a run; `None` checks no kind.
    pub kind: Option<RunKind>,
}

/// A loaded, validated trust policy.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    path: PathBuf,
    keys: Vec<TrustedKey>,
    /// Run kinds per role; `None` for a 1.0 policy (see [`default_role_kinds`]).
    roles: Option<BTreeMap<String, Vec<RunKind>>>,
    /// `plugins.lock` beside the policy, when there is one (see [`crate::plugin::pin`]).
    plugins: Option<PluginLock>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trust policy {} not found; create it (see schemas/trust-policy.v1.json) or point husai at the keys directory that holds it", path.display())]
    PolicyMissing { path: PathBuf },
    #[error("cannot read trust policy {}: {source}", path.display())]
    PolicyUnreadable {
        path: PathBuf,
        #[source]
        source: ReadError,
    },
    #[error("trust policy {} is not valid JSON: {source}", path.display())]
    PolicyNotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("trust policy schema_version {found} is not supported by this husai (supports {SUPPORTED_MAJOR}.x) in {}; upgrade husai or rewrite the policy for version {SUPPORTED_MAJOR}.x", path.display())]
    UnsupportedVersion { path: PathBuf, found: String },
    #[error("trust policy {}: key {keyid} holds role {role:?}, which the policy's roles table does not define; add \"{role}\": {{\"kinds\": [...]}} under \"roles\" or remove the role", path.display())]
    UndefinedRole {
        path: PathBuf,
        keyid: String,
        role: String,
    },
    #[error("key {keyid} (roles [{}]) may not sign runs of kind {kind} under trust policy {}: only roles [{}] may; sign {kind} runs with such a key, or allow the kind for the role in the policy's roles table", key_roles.join(", "), path.display(), allowed.join(", "))]
    KindNotAllowed {
        path: PathBuf,
        keyid: String,
        key_roles: Vec<String>,
        kind: RunKind,
        allowed: Vec<String>,
    },
    #[error("{0}")]
    PluginLock(Box<PinError>),
    #[error("trust policy {} does not match schemas/trust-policy.v1.json:\n  {}", path.display(), errors.join("\n  "))]
    SchemaViolation { path: PathBuf, errors: Vec<String> },
    #[error("trust policy {}: key {keyid}: {field} {value:?} is not an RFC 3339 date-time ({detail}); write e.g. \"2026-01-01T00:00:00Z\"", path.display())]
    BadTimestamp {
        path: PathBuf,
        keyid: String,
        field: &'static str,
        value: String,
        detail: String,
    },
    #[error("trust policy {}: key {keyid}: not_after {not_after} is before not_before {not_before}; the window is empty", path.display())]
    EmptyWindow {
        path: PathBuf,
        keyid: String,
        not_before: String,
        not_after: String,
    },
    #[error("trust policy {}: key {keyid}: public_key {file:?} must be a relative path inside the keys directory, without '..'", path.display())]
    KeyPathOutsideDir {
        path: PathBuf,
        keyid: String,
        file: String,
    },
    #[error("trust policy {}: key {keyid}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        keyid: String,
        #[source]
        source: KeyError,
    },
    #[error("trust policy {}: keyid {keyid} does not match its public key file {} whose key id is {actual}; fix the keyid (sha256 of the SPKI DER) or the file", path.display(), file.display())]
    KeyIdMismatch {
        path: PathBuf,
        keyid: String,
        file: PathBuf,
        actual: String,
    },
    #[error("trust policy {}: keyid {keyid} is listed more than once; merge the entries", path.display())]
    DuplicateKeyId { path: PathBuf, keyid: String },
    #[error("key {keyid} is not in trust policy {}; only keys listed there are trusted", path.display())]
    UnknownKey { path: PathBuf, keyid: String },
    #[error("key {keyid} was revoked at {at} ({reason}) in trust policy {}; signatures by a revoked key are rejected whatever their signing time", path.display())]
    Revoked {
        path: PathBuf,
        keyid: String,
        at: String,
        reason: String,
    },
    #[error("key {keyid} was not yet valid at signing time {signed_at}: trust policy {} accepts it from {not_before}", path.display())]
    NotYetValid {
        path: PathBuf,
        keyid: String,
        signed_at: String,
        not_before: String,
    },
    #[error("key {keyid} had expired at signing time {signed_at}: trust policy {} accepts it until {not_after}", path.display())]
    Expired {
        path: PathBuf,
        keyid: String,
        signed_at: String,
        not_after: String,
    },
    #[error("key {keyid} holds roles [{}] in trust policy {}, none of which is accepted here (accepted: [{}])", key_roles.join(", "), path.display(), accepted.join(", "))]
    RoleNotAccepted {
        path: PathBuf,
        keyid: String,
        key_roles: Vec<String>,
        accepted: Vec<String>,
    },
}

#[derive(Deserialize)]
struct RawPolicy {
    keys: Vec<RawKey>,
    #[serde(default)]
    roles: Option<BTreeMap<String, RawRole>>,
}

#[derive(Deserialize)]
struct RawRole {
    kinds: Vec<RunKind>,
}

#[derive(Deserialize)]
struct RawKey {
    keyid: String,
    public_key: String,
    roles: Vec<String>,
    not_before: String,
    not_after: Option<String>,
    revoked: Option<RawRevocation>,
}

#[derive(Deserialize)]
struct RawRevocation {
    at: String,
    reason: String,
}

impl TrustPolicy {
    /// Loads `dir/trust-policy.json` and every public key file it names (relative to `dir`).
    pub fn load(dir: impl AsRef<Path>) -> Result<TrustPolicy, TrustError> {
        let dir = dir.as_ref();
        let path = dir.join(POLICY_FILE_NAME);
        let bytes = untrusted::read_regular_file(&path, MAX_POLICY_BYTES).map_err(|source| {
            if source.is_not_found() {
                TrustError::PolicyMissing { path: path.clone() }
            } else {
                TrustError::PolicyUnreadable {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let mut policy = Self::from_json_bytes(&bytes, dir, &path)?;
        policy.plugins = PluginLock::load(dir).map_err(|e| TrustError::PluginLock(Box::new(e)))?;
        Ok(policy)
    }

    /// The `plugins.lock` loaded beside the policy, if any.
    pub fn plugin_lock(&self) -> Option<&PluginLock> {
        self.plugins.as_ref()
    }

    /// Parses a policy held in memory. `key_dir` resolves the `public_key` paths; `path` is only
    /// used in messages.
    pub fn from_json_str(
        text: &str,
        key_dir: &Path,
        path: &Path,
    ) -> Result<TrustPolicy, TrustError> {
        Self::from_json_bytes(text.as_bytes(), key_dir, path)
    }

    /// [`TrustPolicy::from_json_str`] for bytes (strict JSON: duplicate keys are refused).
    pub fn from_json_bytes(
        bytes: &[u8],
        key_dir: &Path,
        path: &Path,
    ) -> Result<TrustPolicy, TrustError> {
        let path = path.to_owned();
        let value: serde_json::Value =
            untrusted::parse_json(bytes).map_err(|source| TrustError::PolicyNotJson {
                path: path.clone(),
                source,
            })?;
        // The version is checked before the schema so that a policy written for a newer husai
        // gets a message about versions rather than a list of unknown fields.
        if let Some(version) = value.get("schema_version").and_then(|v| v.as_str()) {
            let major = version
                .split('.')
                .next()
                .and_then(|m| m.parse::<u64>().ok());
            if major != Some(SUPPORTED_MAJOR) {
                return Err(TrustError::UnsupportedVersion {
                    path,
                    found: version.to_owned(),
                });
            }
        }
        validate_schema(&value, &path)?;
        let raw: RawPolicy =
            serde_json::from_value(value).map_err(|e| TrustError::SchemaViolation {
                path: path.clone(),
                errors: vec![e.to_string()],
            })?;

        let mut seen = HashSet::new();
        let mut keys = Vec::with_capacity(raw.keys.len());
        for rk in raw.keys {
            if !seen.insert(rk.keyid.clone()) {
                return Err(TrustError::DuplicateKeyId {
                    path,
                    keyid: rk.keyid,
                });
            }
            keys.push(load_key(rk, key_dir, &path)?);
        }
        let roles: Option<BTreeMap<String, Vec<RunKind>>> = raw
            .roles
            .map(|t| t.into_iter().map(|(r, v)| (r, v.kinds)).collect());
        if let Some(table) = &roles {
            for k in &keys {
                if let Some(role) = k.roles.iter().find(|r| !table.contains_key(*r)) {
                    return Err(TrustError::UndefinedRole {
                        path,
                        keyid: k.keyid.clone(),
                        role: role.clone(),
                    });
                }
            }
        }
        Ok(TrustPolicy {
            path,
            keys,
            roles,
            plugins: None,
        })
    }

    /// The run kinds `role` may sign under this policy.
    pub fn kinds_for_role(&self, role: &str) -> Vec<RunKind> {
        match &self.roles {
            Some(table) => table.get(role).cloned().unwrap_or_default(),
            None => default_role_kinds(role),
        }
    }

    /// Whether the policy has an explicit roles table (schema 1.1), or reads with the default.
    pub fn has_roles_table(&self) -> bool {
        self.roles.is_some()
    }

    /// Checks that `key` holds a role allowed to sign runs of `kind`.
    pub fn check_kind(&self, key: &TrustedKey, kind: RunKind) -> Result<(), TrustError> {
        if key
            .roles
            .iter()
            .any(|r| self.kinds_for_role(r).contains(&kind))
        {
            return Ok(());
        }
        let mut allowed: Vec<String> = match &self.roles {
            Some(table) => table
                .iter()
                .filter(|(_, kinds)| kinds.contains(&kind))
                .map(|(r, _)| r.clone())
                .collect(),
            None if matches!(kind, RunKind::Select | RunKind::Gate) => vec![CI_ROLE.to_string()],
            None => vec!["any".to_string()],
        };
        if allowed.is_empty() {
            allowed.push("none".to_string());
        }
        Err(TrustError::KindNotAllowed {
            path: self.path.clone(),
            keyid: key.keyid.clone(),
            key_roles: key.roles.clone(),
            kind,
            allowed,
        })
    }

    /// The policy file this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every listed key, in file order.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// The entry for `keyid`, whatever its status.
    pub fn key(&self, keyid: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.keyid == keyid)
    }

    /// The entry a signature's keyid names: the policy key id (envelopes signed before the switch
    /// to the securesystemslib default id) or the key's [`TrustedKey::envelope_keyid`].
    pub fn key_for_signature(&self, keyid: &str) -> Option<&TrustedKey> {
        self.keys
            .iter()
            .find(|k| k.keyid == keyid || k.envelope_keyid == keyid)
    }

    /// Applies the policy (see the module docs) to a signature by `keyid` made under `ctx`.
    pub fn check(&self, keyid: &str, ctx: &TrustContext) -> Result<&TrustedKey, TrustError> {
        let key = self.key(keyid).ok_or_else(|| TrustError::UnknownKey {
            path: self.path.clone(),
            keyid: keyid.to_owned(),
        })?;
        if let Some(rev) = &key.revoked {
            return Err(TrustError::Revoked {
                path: self.path.clone(),
                keyid: keyid.to_owned(),
                at: fmt_time(rev.at),
                reason: rev.reason.clone(),
            });
        }
        if ctx.signed_at < key.not_before {
            return Err(TrustError::NotYetValid {
                path: self.path.clone(),
                keyid: keyid.to_owned(),
                signed_at: fmt_time(ctx.signed_at),
                not_before: fmt_time(key.not_before),
            });
        }
        if let Some(not_after) = key.not_after.filter(|&na| ctx.signed_at > na) {
            return Err(TrustError::Expired {
                path: self.path.clone(),
                keyid: keyid.to_owned(),
                signed_at: fmt_time(ctx.signed_at),
                not_after: fmt_time(not_after),
            });
        }
        if let Some(accepted) = ctx
            .accepted_roles
            .as_ref()
            .filter(|accepted| !key.roles.iter().any(|r| accepted.contains(r)))
        {
            return Err(TrustError::RoleNotAccepted {
                path: self.path.clone(),
                keyid: keyid.to_owned(),
                key_roles: key.roles.clone(),
                accepted: accepted.clone(),
            });
        }
        if let Some(kind) = ctx.kind {
            self.check_kind(key, kind)?;
        }
        Ok(key)
    }
}

fn validate_schema(value: &serde_json::Value, path: &Path) -> Result<(), TrustError> {
    crate::schema::validate("trust-policy.v1", value).map_err(|e| TrustError::SchemaViolation {
        path: path.to_owned(),
        errors: e.violations.iter().map(|v| format!("at {v}")).collect(),
    })
}

fn load_key(rk: RawKey, key_dir: &Path, path: &Path) -> Result<TrustedKey, TrustError> {
    let parse = |field: &'static str, value: &str| {
        OffsetDateTime::parse(value, &Rfc3339).map_err(|e| TrustError::BadTimestamp {
            path: path.to_owned(),
            keyid: rk.keyid.clone(),
            field,
            value: value.to_owned(),
            detail: e.to_string(),
        })
    };
    let not_before = parse("not_before", &rk.not_before)?;
    let not_after = rk
        .not_after
        .as_deref()
        .map(|v| parse("not_after", v))
        .transpose()?;
    let revoked = rk
        .revoked
        .as_ref()
        .map(|r| {
            Ok::<_, TrustError>(Revocation {
                at: parse("revoked.at", &r.at)?,
                reason: r.reason.clone(),
            })
        })
        .transpose()?;
    if let Some(na) = not_after.filter(|&na| na < not_before) {
        return Err(TrustError::EmptyWindow {
            path: path.to_owned(),
            keyid: rk.keyid,
            not_before: fmt_time(not_before),
            not_after: fmt_time(na),
        });
    }

    let rel = Path::new(&rk.public_key);
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(TrustError::KeyPathOutsideDir {
            path: path.to_owned(),
            keyid: rk.keyid,
            file: rk.public_key,
        });
    }
    let file = key_dir.join(rel);
    let public_key =
        PublicKey::from_spki_pem_file(&file).map_err(|source| TrustError::KeyFile {
            path: path.to_owned(),
            keyid: rk.keyid.clone(),
            source,
        })?;
    let actual = key_id(&public_key);
    if actual != rk.keyid {
        return Err(TrustError::KeyIdMismatch {
            path: path.to_owned(),
            keyid: rk.keyid,
            file,
            actual,
        });
    }
    Ok(TrustedKey {
        keyid: rk.keyid,
        envelope_keyid: envelope_key_id(&public_key),
        public_key,
        public_key_path: file,
        roles: rk.roles,
        not_before,
        not_after,
        revoked,
    })
}

/// A key [`add_key`] wrote into a policy.
#[derive(Debug, Clone)]
pub struct AddedKey {
    pub keyid: KeyId,
    pub envelope_keyid: KeyId,
    /// The public key's file name inside the keys directory.
    pub public_key: String,
    /// Whether the PEM was copied into the keys directory (false: it was already there).
    pub copied: bool,
    pub role: String,
    pub not_before: OffsetDateTime,
    /// Where `not_before` came from, for the user (the flag, or the key file's modification time).
    pub not_before_source: &'static str,
    /// The entry as written, one line of JSON.
    pub entry: serde_json::Value,
    /// Whether the policy file was created.
    pub created_policy: bool,
}

/// Why [`add_key`] refused.
#[derive(Debug, thiserror::Error)]
pub enum AddKeyError {
    #[error("cannot use public key {}: {source}", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
    #[error("cannot read the modification time of {} to default --not-before: {source}; pass --not-before TIME", path.display())]
    KeyTime {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown role {role:?}: trust policy {} defines roles [{}]; use one of them, or define the role under \"roles\" first", path.display(), defined.join(", "))]
    UnknownRole {
        path: PathBuf,
        role: String,
        defined: Vec<String>,
    },
    #[error("key {keyid} is already in trust policy {} (as {file}); edit that entry instead", path.display())]
    AlreadyListed {
        path: PathBuf,
        keyid: String,
        file: String,
    },
    #[error("{} already exists in the keys directory and holds another key; rename {} before adding it", existing.display(), source_path.display())]
    NameTaken {
        existing: PathBuf,
        source_path: PathBuf,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] TrustError),
}

/// Parses a `--not-before` value: RFC 3339 (`2026-01-01T00:00:00Z`).
pub fn parse_not_before(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        format!(
            "--not-before {text:?} is not an RFC 3339 date-time ({e}); write e.g. 2026-01-01T00:00:00Z"
        )
    })
}

/// Adds the public key at `pem` to the policy in `dir` with one role, copying the PEM into `dir`
/// when it is not there. The policy is created (schema 1.1, roles `ci` and `developer` with their
/// built-in kinds) when `dir` has none.
///
/// `not_before` defaults to the key file's modification time, which for a file `husai-audit
/// keygen` wrote is when the key was made: runs the key signed since then verify, and a signing
/// time claimed before the key existed is refused. (Defaulting to "now" would reject every run
/// the key signed before it was trusted, which is how the quick-start used to break.)
///
/// The new policy text is loaded and checked like any policy before it replaces the old one, and
/// the replacement is a rename, so a failure leaves the old policy as it was.
pub fn add_key(
    dir: &Path,
    pem: &Path,
    role: &str,
    not_before: Option<OffsetDateTime>,
) -> Result<AddedKey, AddKeyError> {
    let public_key = PublicKey::from_spki_pem_file(pem).map_err(|source| AddKeyError::Key {
        path: pem.to_owned(),
        source,
    })?;
    let keyid = key_id(&public_key);
    let (not_before, not_before_source) = match not_before {
        Some(t) => (t, "--not-before"),
        None => {
            let modified = std::fs::metadata(pem)
                .and_then(|m| m.modified())
                .map_err(|source| AddKeyError::KeyTime {
                    path: pem.to_owned(),
                    source,
                })?;
            // Whole seconds, rounded down, so the entry reads cleanly and still precedes any
            // signature made after the file was written.
            let t = OffsetDateTime::from(modified);
            (
                t.replace_nanosecond(0).unwrap_or(t),
                "the key file's modification time (when keygen wrote it)",
            )
        }
    };
    let policy_path = dir.join(POLICY_FILE_NAME);
    let (mut doc, created_policy) =
        match untrusted::read_regular_file(&policy_path, MAX_POLICY_BYTES) {
            Ok(bytes) => {
                // Load it fully first: a policy that does not load is not edited.
                TrustPolicy::from_json_bytes(&bytes, dir, &policy_path)?;
                let doc =
                    untrusted::parse_json(&bytes).map_err(|source| TrustError::PolicyNotJson {
                        path: policy_path.clone(),
                        source,
                    })?;
                (doc, false)
            }
            Err(e) if e.is_not_found() => (new_policy_doc(), true),
            Err(source) => {
                return Err(TrustError::PolicyUnreadable {
                    path: policy_path,
                    source,
                }
                .into());
            }
        };
    if let Some(table) = doc.get("roles").and_then(|r| r.as_object())
        && !table.contains_key(role)
    {
        return Err(AddKeyError::UnknownRole {
            path: policy_path,
            role: role.to_owned(),
            defined: table.keys().cloned().collect(),
        });
    }
    if let Some(existing) = doc["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["keyid"] == keyid.as_str())
    {
        return Err(AddKeyError::AlreadyListed {
            path: policy_path,
            keyid,
            file: existing["public_key"].as_str().unwrap_or("?").to_owned(),
        });
    }
    let file_name = pem
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{}.pub.pem", &keyid[..16]));
    let target = dir.join(&file_name);
    let same_file = match (std::fs::canonicalize(&target), std::fs::canonicalize(pem)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let copied = if same_file {
        false
    } else if target.exists() {
        match PublicKey::from_spki_pem_file(&target) {
            Ok(k) if key_id(&k) == keyid => false,
            _ => {
                return Err(AddKeyError::NameTaken {
                    existing: target,
                    source_path: pem.to_owned(),
                });
            }
        }
    } else {
        std::fs::create_dir_all(dir).map_err(|source| AddKeyError::Write {
            path: dir.to_owned(),
            source,
        })?;
        std::fs::write(&target, public_key.to_spki_pem()).map_err(|source| AddKeyError::Write {
            path: target.clone(),
            source,
        })?;
        true
    };
    let entry = serde_json::json!({
        "keyid": keyid,
        "public_key": file_name,
        "roles": [role],
        "not_before": fmt_time(not_before),
        "not_after": null,
        "revoked": null,
    });
    doc["keys"]
        .as_array_mut()
        .expect("a loaded policy has a keys array")
        .push(entry.clone());
    let mut text = serde_json::to_vec_pretty(&doc).expect("JSON values serialise");
    text.push(b'\n');
    TrustPolicy::from_json_bytes(&text, dir, &policy_path)?;
    let tmp = dir.join(format!(".{POLICY_FILE_NAME}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, &policy_path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            AddKeyError::Write {
                path: policy_path.clone(),
                source,
            }
        })?;
    Ok(AddedKey {
        envelope_keyid: envelope_key_id(&public_key),
        keyid,
        public_key: file_name,
        copied,
        role: role.to_owned(),
        not_before,
        not_before_source,
        entry,
        created_policy,
    })
}

/// A policy for a keys directory that has none.
fn new_policy_doc() -> serde_json::Value {
    let kinds = |role: &str| -> Vec<&'static str> {
        default_role_kinds(role)
            .into_iter()
            .map(RunKind::as_str)
            .collect()
    };
    serde_json::json!({
        "schema_version": CURRENT_VERSION,
        "roles": {
            CI_ROLE: {"kinds": kinds(CI_ROLE)},
            "developer": {"kinds": kinds("developer")},
        },
        "keys": [],
    })
}

/// The role a one-off key gets in [`TrustPolicy::single_key`].
pub const ONE_OFF_ROLE: &str = "one-off";

impl TrustPolicy {
    /// A policy of exactly one key, `pem`, valid at any time for every run kind: what `verify
    /// --key` checks against, bypassing the trust policy (as `cosign verify-blob --key` does).
    pub fn single_key(pem: &Path) -> Result<TrustPolicy, TrustError> {
        let public_key =
            PublicKey::from_spki_pem_file(pem).map_err(|source| TrustError::KeyFile {
                path: pem.to_owned(),
                keyid: "(--key)".to_owned(),
                source,
            })?;
        Ok(TrustPolicy {
            path: pem.to_owned(),
            keys: vec![TrustedKey {
                keyid: key_id(&public_key),
                envelope_keyid: envelope_key_id(&public_key),
                public_key,
                public_key_path: pem.to_owned(),
                roles: vec![ONE_OFF_ROLE.to_owned()],
                not_before: OffsetDateTime::UNIX_EPOCH,
                not_after: None,
                revoked: None,
            }],
            roles: Some(BTreeMap::from([(
                ONE_OFF_ROLE.to_owned(),
                RunKind::ALL.to_vec(),
            )])),
            plugins: None,
        })
    }
}

/// RFC 3339 for messages; falls back to `time`'s own format for years RFC 3339 cannot express.
fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

impl fmt::Display for TrustContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signed at {}", fmt_time(self.signed_at))?;
        if let Some(roles) = &self.accepted_roles {
            write!(f, ", accepting roles [{}]", roles.join(", "))?;
        }
        if let Some(kind) = self.kind {
            write!(f, ", for a run of kind {kind}")?;
        }
        Ok(())
    }
}
