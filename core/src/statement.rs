//! The in-toto Statement v1 that a run's envelope signs.
//!
//! Subjects are the run's output files, by path relative to the run directory, with their digest.
//! The predicate is the run manifest.
//!
//! Every subject carries plain `sha256`, the one algorithm every in-toto consumer knows (the spec
//! lets consumers ignore algorithms they do not, and some reject the whole statement). A file larger
//! than one shard also carries its `sha256-sharded` digest (see [`crate::digest`], shard size from
//! the manifest's `digest` method) in the subject's `annotations` under [`SHARDED_ANNOTATION`]:
//! signed like the rest, it lets verify hash one big file on every core.
//!
//! **Legacy form.** Runs signed before this (manifest schema 1.0 and 1.1) recorded a big file's
//! subject digest as `{"sha256-sharded": hex}` alone, with no plain `sha256`. They stay readable:
//! [`Subject::legacy_sharded`] returns that digest and verify checks the file against it
//! (`core/tests/fixtures/legacy-sharded` is such a run). husai no longer writes this form. Subject paths are checked here, once, for every reader:
//! a path must be relative, normalised (no `.`/`..`/empty segments, no backslashes) and UTF-8,
//! so that it can only name a file inside the run directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const MANIFEST_PREDICATE_TYPE: &str = "https://husai.dev/run-manifest/v1";

/// The annotation key under which a subject carries its sharded digest.
pub const SHARDED_ANNOTATION: &str = "husai.dev/sha256-sharded";

/// One attested file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    /// Algorithm name to lowercase hex: `{"sha256": hex}` (or, in the legacy form,
    /// `{"sha256-sharded": hex}`).
    pub digest: BTreeMap<String, String>,
    /// in-toto ResourceDescriptor annotations; husai writes only [`SHARDED_ANNOTATION`], and only
    /// for a file larger than one shard.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Subject {
    /// A subject with plain sha256 and, for a file of more than one shard, its sharded digest.
    pub fn new(name: String, sha256: String, sharded: Option<String>) -> Subject {
        Subject {
            name,
            digest: BTreeMap::from([("sha256".to_owned(), sha256)]),
            annotations: sharded
                .map(|h| BTreeMap::from([(SHARDED_ANNOTATION.to_owned(), h)]))
                .unwrap_or_default(),
        }
    }

    /// The plain sha256 (absent only in the legacy form).
    pub fn sha256(&self) -> Option<&str> {
        self.digest.get("sha256").map(String::as_str)
    }

    /// The sharded digest from the annotations.
    pub fn sharded_annotation(&self) -> Option<&str> {
        self.annotations.get(SHARDED_ANNOTATION).map(String::as_str)
    }

    /// The legacy form's sharded subject digest.
    pub fn legacy_sharded(&self) -> Option<&str> {
        self.digest.get("sha256-sharded").map(String::as_str)
    }

    /// The single (algorithm, hex) pair this subject carries. Statements we write always have
    /// exactly one; the schema enforces it on read.
    pub fn digest_pair(&self) -> Option<(&str, &str)> {
        let mut it = self.digest.iter();
        let (alg, hex) = it.next()?;
        if it.next().is_some() {
            return None;
        }
        Some((alg.as_str(), hex.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Manifest,
}

impl Statement {
    pub fn new(mut subject: Vec<Subject>, manifest: Manifest) -> Statement {
        subject.sort_by(|a, b| a.name.cmp(&b.name));
        Statement {
            statement_type: STATEMENT_TYPE.to_string(),
            subject,
            predicate_type: MANIFEST_PREDICATE_TYPE.to_string(),
            predicate: manifest,
        }
    }
}

/// Why a subject path is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectPathError {
    #[error("subject path is empty")]
    Empty,
    #[error("subject path {0:?} is absolute; subjects must be relative to the run directory")]
    Absolute(String),
    #[error("subject path {0:?} contains '..'; subjects must stay inside the run directory")]
    ParentDir(String),
    #[error("subject path {0:?} is not normalised (empty or '.' segment, or a backslash)")]
    NotNormalised(String),
}

/// Check that `name` is a relative, normalised path with '/' separators.
pub fn check_subject_path(name: &str) -> Result<(), SubjectPathError> {
    if name.is_empty() {
        return Err(SubjectPathError::Empty);
    }
    if name.starts_with('/') || name.starts_with('\\') || has_drive_prefix(name) {
        return Err(SubjectPathError::Absolute(name.to_string()));
    }
    if name.split('/').any(|seg| seg == "..") {
        return Err(SubjectPathError::ParentDir(name.to_string()));
    }
    if name.contains('\\') || name.split('/').any(|seg| seg.is_empty() || seg == ".") {
        return Err(SubjectPathError::NotNormalised(name.to_string()));
    }
    Ok(())
}

fn has_drive_prefix(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_paths_must_be_relative_and_normalised() {
        assert!(check_subject_path("metrics.json").is_ok());
        assert!(check_subject_path("ckpt/sae_weights.safetensors").is_ok());
        assert_eq!(check_subject_path(""), Err(SubjectPathError::Empty));
        assert!(matches!(
            check_subject_path("/etc/passwd"),
            Err(SubjectPathError::Absolute(_))
        ));
        assert!(matches!(
            check_subject_path("C:/x"),
            Err(SubjectPathError::Absolute(_))
        ));
        assert!(matches!(
            check_subject_path("../other/metrics.json"),
            Err(SubjectPathError::ParentDir(_))
        ));
        assert!(matches!(
            check_subject_path("a/../../b"),
            Err(SubjectPathError::ParentDir(_))
        ));
        for bad in ["a//b", "./a", "a/", "a\\b", "a/./b"] {
            assert!(
                matches!(
                    check_subject_path(bad),
                    Err(SubjectPathError::NotNormalised(_))
                ),
                "{bad}"
            );
        }
    }
}
