//! The claims registry file (`claims.json` at the repository root, schema `schemas/claims.v1.json`).
//!
//! ```json
//! {
//!   "schema_version": "1.1",
//!   "documents": ["docs/upstream-claims.md"],
//!   "claims": [{
//!     "id": "assignment-v2-internal-lcb",
//!     "statement": "Assignment-consistency v2 raises PWMCC: best conservative delta LCB is positive.",
//!     "level": "internal",
//!     "evidence": [{"run": "husai-evidence/<run_id>", "subject": "run_..._results.json",
//!                   "pointer": "/acceptance/best_delta_lcb", "comparator": ">", "value": 0.0}],
//!     "gate": null,
//!     "about": {"model": "the v2 run's TopK SAEs", "identity": {"d_sae": 128, "k": 32}}
//!   }]
//! }
//! ```
//!
//! `run` is `<campaign>/<run_id>` under the results root; `subject` is the file's signed name inside the run;
//! `pointer` is an RFC 6901 JSON Pointer into that file. `comparator` is one of `==`, `!=`, `>=`, `>`, `<=`, `<`;
//! `tolerance` (default 0) widens `==`/`!=` on numbers to `|actual − value| ≤ tolerance`. A claim at level `release`
//! names a signed strict gate run in `gate` (`<campaign>/<run_id>`). `documents` lists Markdown files or
//! directories (scanned recursively for `*.md`) whose claim tags are checked (see `tags`).
//!
//! `about` (optional, schema 1.1) names the model or candidate the claim is about: a name for messages and identity
//! fields (`model_name`, `architecture`, `d_model`, `d_sae`, `k`, `layer`, `modulus`, `sae_release`). The check
//! refuses the claim when a cited value measures a model whose recorded identity differs (see `about`). Registries
//! at schema 1.0 are read unchanged; `about` needs `"schema_version": "1.1"`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The registry's schema in the embedded schema registry (`schemas/claims.v1.json`).
pub const CLAIMS_SCHEMA_ID: &str = "claims.v1";
/// The registry's conventional file name at the repository root.
pub const REGISTRY_FILE: &str = "claims.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Exploratory,
    Internal,
    External,
    Release,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Exploratory => "exploratory",
            Level::Internal => "internal",
            Level::External => "external",
            Level::Release => "release",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
}

impl Comparator {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparator::Eq => "==",
            Comparator::Ne => "!=",
            Comparator::Ge => ">=",
            Comparator::Gt => ">",
            Comparator::Le => "<=",
            Comparator::Lt => "<",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub run: String,
    pub subject: String,
    pub pointer: String,
    pub comparator: Comparator,
    pub value: serde_json::Value,
    #[serde(default)]
    pub tolerance: Option<f64>,
}

impl Evidence {
    /// `(campaign, run_id)` from `run`.
    pub fn run_parts(&self) -> Option<(&str, &str)> {
        self.run.split_once('/')
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub id: String,
    pub statement: String,
    pub level: Level,
    pub evidence: Vec<Evidence>,
    #[serde(default)]
    pub gate: Option<String>,
    /// What the claim is about (schema 1.1); the check refuses evidence that names another model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<About>,
}

/// The model or candidate a claim is about (`about` in schema 1.1), by a name for messages and the identity fields
/// the evidence must not contradict (see [`crate::claims::about`] for the fields and where evidence names them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct About {
    pub model: String,
    pub identity: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub schema_version: String,
    #[serde(default)]
    pub documents: Vec<String>,
    pub claims: Vec<Claim>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read the claims registry {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the claims registry {} is not JSON: {source}", path.display())]
    NotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the claims registry {} does not match schemas/claims.v1.json:\n  {}", path.display(), violations.join("\n  "))]
    Schema {
        path: PathBuf,
        violations: Vec<String>,
    },
    #[error("the claims registry {} defines claim id {id:?} twice; ids must be unique", path.display())]
    DuplicateId { path: PathBuf, id: String },
}

/// Parses and validates a registry held in memory; `path` is used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Registry, RegistryError> {
    let value: serde_json::Value =
        // Strict: a duplicate key could hide a claim's first value from a reviewer.
        crate::untrusted::parse_json_str(text).map_err(|source| RegistryError::NotJson {
            path: path.to_path_buf(),
            source,
        })?;
    crate::schema::validate(CLAIMS_SCHEMA_ID, &value).map_err(|e| RegistryError::Schema {
        path: path.to_path_buf(),
        violations: e.violations,
    })?;
    let registry: Registry = serde_json::from_value(value).map_err(|e| RegistryError::Schema {
        path: path.to_path_buf(),
        violations: vec![e.to_string()],
    })?;
    if registry.schema_version == "1.0"
        && let Some(c) = registry.claims.iter().find(|c| c.about.is_some())
    {
        return Err(RegistryError::Schema {
            path: path.to_path_buf(),
            violations: vec![format!(
                "claim {:?} has `about`, which schema_version 1.0 does not define; set \"schema_version\": \"1.1\"",
                c.id
            )],
        });
    }
    let mut seen = std::collections::HashSet::new();
    for c in &registry.claims {
        if !seen.insert(c.id.as_str()) {
            return Err(RegistryError::DuplicateId {
                path: path.to_path_buf(),
                id: c.id.clone(),
            });
        }
    }
    Ok(registry)
}

pub fn load(path: &Path) -> Result<Registry, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}
