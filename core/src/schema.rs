//! JSON Schemas (draft 2020-12) for every artifact kind, compiled into the binary.
//!
//! The files live in the repository's `schemas/` directory, one per kind and major version
//! (`<kind>.v<major>.json`), and are embedded here with `include_str!`, so a husai binary never
//! reads schemas from disk or the network. Validators are compiled once, on first use.

use std::sync::OnceLock;

use serde_json::Value;

/// Every schema husai knows, by id (`<kind>.v<major>`).
pub const SCHEMAS: &[(&str, &str)] = &[
    (
        "run-manifest.v1",
        include_str!("../../schemas/run-manifest.v1.json"),
    ),
    (
        "statement.v1",
        include_str!("../../schemas/statement.v1.json"),
    ),
    (
        "dsse-envelope.v1",
        include_str!("../../schemas/dsse-envelope.v1.json"),
    ),
    (
        "trust-policy.v1",
        include_str!("../../schemas/trust-policy.v1.json"),
    ),
    (
        "selection.v1",
        include_str!("../../schemas/selection.v1.json"),
    ),
    (
        "gate-report.v1",
        include_str!("../../schemas/gate-report.v1.json"),
    ),
    ("claims.v1", include_str!("../../schemas/claims.v1.json")),
    (
        "metrics-line.v1",
        include_str!("../../schemas/metrics-line.v1.json"),
    ),
    (
        "eval-summary.v1",
        include_str!("../../schemas/eval-summary.v1.json"),
    ),
    (
        "closure-summary.v1",
        include_str!("../../schemas/closure-summary.v1.json"),
    ),
    (
        "trained-vs-random.v1",
        include_str!("../../schemas/trained-vs-random.v1.json"),
    ),
    (
        "ood-stress.v1",
        include_str!("../../schemas/ood-stress.v1.json"),
    ),
    (
        "transcoder-stress.v1",
        include_str!("../../schemas/transcoder-stress.v1.json"),
    ),
];

/// A document that does not satisfy its schema. Holds every violation, not only the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("does not match schema {schema}: {}", .violations.join("; "))]
pub struct SchemaError {
    pub schema: String,
    /// One line per violation: `<json pointer>: <message>`.
    pub violations: Vec<String>,
}

type Compiled = Vec<(&'static str, jsonschema::Validator)>;

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        SCHEMAS
            .iter()
            .map(|(id, text)| {
                // The schemas are part of the source tree and covered by tests; a broken one is a
                // build defect, not a runtime condition.
                let doc: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("embedded schema {id} is not JSON: {e}"));
                let validator = jsonschema::draft202012::new(&doc)
                    .unwrap_or_else(|e| panic!("embedded schema {id} does not compile: {e}"));
                (*id, validator)
            })
            .collect()
    })
}

/// The raw text of an embedded schema.
pub fn schema_text(id: &str) -> Option<&'static str> {
    SCHEMAS.iter().find(|(k, _)| *k == id).map(|(_, t)| *t)
}

/// Validate `doc` against the embedded schema `id`.
///
/// # Panics
/// If `id` is not an embedded schema: callers name schemas with constants, so that is a bug.
pub fn validate(id: &str, doc: &Value) -> Result<(), SchemaError> {
    let validator = compiled()
        .iter()
        .find(|(k, _)| *k == id)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no embedded schema named {id}"));
    let violations: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            format!("{at}: {e}")
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(SchemaError {
            schema: id.to_string(),
            violations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_schema_compiles_and_is_named_by_convention() {
        for (id, _) in SCHEMAS {
            let (kind, major) = id.rsplit_once(".v").expect("id is <kind>.v<major>");
            assert!(!kind.is_empty());
            assert!(major.parse::<u32>().is_ok(), "{id}");
            assert!(schema_text(id).is_some());
        }
        assert_eq!(compiled().len(), SCHEMAS.len());
    }

    #[test]
    fn violations_name_the_pointer() {
        let doc = serde_json::json!({"payload": 3, "payloadType": "x", "signatures": []});
        let err = validate("dsse-envelope.v1", &doc).unwrap_err();
        assert!(err.violations.iter().any(|v| v.starts_with("/payload:")));
        assert!(
            err.violations
                .iter()
                .any(|v| v.starts_with("/payloadType:"))
        );
        assert!(err.violations.iter().any(|v| v.starts_with("/signatures:")));
    }
}
