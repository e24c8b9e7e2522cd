//! Readers for upstream HUSAI (Python) artifacts: the lenient JSON parser, Python-compatible formatting, artifact-kind
//! detection, and one typed reader per artifact kind that feeds selection, gating or claims.
//!
//! Every reader takes a parsed [`json::LegacyValue`] plus the path it came from (so callers read a file once and
//! dispatch on its detected kind) and returns a typed struct or a [`ReadError`] that names the file and the field.
//! Typed readers are strict: a number must be a JSON number (not a boolean) at the documented field. Upstream's own
//! looser extraction ("first numeric wins", bool-as-number) lives in `gate::parity`, not here.

pub mod assignment;
pub mod closure;
pub mod external;
pub mod frontier;
pub mod import;
pub mod json;
pub mod kind;
pub mod matryoshka;
pub mod ood;
pub mod phase4a;
pub mod pyrepr;
pub mod release_policy;
pub mod routed;
pub mod scaling;
pub mod selection;
pub mod transcoder;

use std::path::{Path, PathBuf};

use json::{LegacyJsonError, LegacyValue};
pub use kind::{ArtifactKind, DetectedKind, detect_kind};

/// Why a legacy artifact could not be read as the kind the caller needs.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Json(#[from] LegacyJsonError),
    #[error("{}: expected a {expected} artifact, but the file looks like {found}; pass the {expected} file instead", path.display())]
    WrongKind {
        path: PathBuf,
        expected: &'static str,
        found: String,
    },
    #[error("{}: required field `{field}` is missing (or null); the file is not a complete {kind} artifact", path.display())]
    MissingField {
        path: PathBuf,
        kind: &'static str,
        field: String,
    },
    #[error("{}: field `{field}` must be {expected}, found {found}", path.display())]
    WrongType {
        path: PathBuf,
        field: String,
        expected: &'static str,
        found: String,
    },
}

/// Typed field access on one artifact, with errors that name the file and the dotted field path.
pub struct Fields<'a> {
    pub path: &'a Path,
    pub root: &'a LegacyValue,
    /// Artifact kind name, for "missing field" messages.
    pub kind: &'static str,
}

impl<'a> Fields<'a> {
    pub fn new(path: &'a Path, root: &'a LegacyValue, kind: &'static str) -> Self {
        Fields { path, root, kind }
    }

    /// The value at `keys`, `None` when any step is missing or the value is null.
    pub fn opt(&self, keys: &[&str]) -> Option<&'a LegacyValue> {
        self.root.get_path(keys).filter(|v| !v.is_null())
    }

    pub fn require(&self, keys: &[&str]) -> Result<&'a LegacyValue, ReadError> {
        self.opt(keys).ok_or_else(|| ReadError::MissingField {
            path: self.path.to_path_buf(),
            kind: self.kind,
            field: keys.join("."),
        })
    }

    fn wrong_type(&self, keys: &[&str], expected: &'static str, found: &LegacyValue) -> ReadError {
        ReadError::WrongType {
            path: self.path.to_path_buf(),
            field: keys.join("."),
            expected,
            found: describe(found),
        }
    }

    /// A JSON number (int or float; NaN allowed, booleans rejected). `None` if missing or null.
    pub fn opt_f64(&self, keys: &[&str]) -> Result<Option<f64>, ReadError> {
        match self.opt(keys) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(keys, "a number", v)),
        }
    }

    pub fn f64(&self, keys: &[&str]) -> Result<f64, ReadError> {
        let v = self.require(keys)?;
        v.as_f64()
            .ok_or_else(|| self.wrong_type(keys, "a number", v))
    }

    /// A finite number: NaN or ±inf are rejected because a gate cannot compare them meaningfully.
    pub fn finite_f64(&self, keys: &[&str]) -> Result<f64, ReadError> {
        let v = self.require(keys)?;
        v.as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| self.wrong_type(keys, "a finite number", v))
    }

    pub fn opt_str(&self, keys: &[&str]) -> Result<Option<&'a str>, ReadError> {
        match self.opt(keys) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong_type(keys, "a string", v)),
        }
    }

    pub fn bool(&self, keys: &[&str]) -> Result<bool, ReadError> {
        let v = self.require(keys)?;
        v.as_bool()
            .ok_or_else(|| self.wrong_type(keys, "true or false", v))
    }

    pub fn opt_i64(&self, keys: &[&str]) -> Result<Option<i64>, ReadError> {
        match self.opt(keys) {
            None => Ok(None),
            Some(LegacyValue::Int(i)) => Ok(Some(*i)),
            Some(v) => Err(self.wrong_type(keys, "an integer", v)),
        }
    }

    /// Fails with [`ReadError::WrongKind`] unless the artifact was detected as `expected`.
    pub fn expect_kind(&self, expected: ArtifactKind) -> Result<DetectedKind, ReadError> {
        let detected = detect_kind(self.path, Some(self.root));
        if detected.kind == expected {
            Ok(detected)
        } else {
            Err(ReadError::WrongKind {
                path: self.path.to_path_buf(),
                expected: expected.as_str(),
                found: detected.kind.as_str().to_string(),
            })
        }
    }
}

/// "str 'abc'", "bool true", "float nan": short description of a value for type errors.
pub fn describe(v: &LegacyValue) -> String {
    let text = pyrepr::py_repr(v);
    let short: String = text.chars().take(40).collect();
    let ellipsis = if text.chars().count() > 40 { "..." } else { "" };
    format!("{} {short}{ellipsis}", v.type_name())
}

/// Reads a file and checks its detected kind, the common first step of every typed reader.
pub fn read_kind(path: &Path, expected: ArtifactKind) -> Result<LegacyValue, ReadError> {
    let value = json::read_file(path)?;
    Fields::new(path, &value, expected.as_str()).expect_kind(expected)?;
    Ok(value)
}
