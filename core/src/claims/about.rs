//! What a claim's evidence is about: the check behind a claim's `about` (registry schema 1.1).
//!
//! A claim says which model or candidate it is about (`about.model`, a name) and how to recognise it
//! (`about.identity`, a few of [`IDENTITY_FIELDS`]). For every cited value the check works out which model the value
//! measures, from the signed evidence alone:
//!
//! * by default, the model the cited document describes: the identity fields it records under `/sae_meta`, `/model`
//!   or `/config` (first found, in that order; see [`document_identity`]);
//! * for the upstream values that were copied from another file, the model that file describes. Upstream's
//!   assignment-consistency runs (`run_assignment_consistency_v2.py`) read their external delta from a static
//!   benchmark summary named at `/config/external_summary` and record it as `/acceptance/external_delta` and gate it
//!   as `/acceptance/gate_external` (reference `upstream-gates-selector-audit.md` §1, assignment v2 acceptance); those
//!   values, and that path, are about the summary's model, not the run's own SAEs ([`copied_from`]). The summary is
//!   looked up among the signed import runs under the results root by its upstream path
//!   (`docs/evidence/<group>/<file>` is subject `<file>` of an import run of group `<group>`).
//!
//! The claim is refused when a field both sides name differs, or when a value is copied from a file that no signed
//! run holds (its model cannot be shown to be the claimed one). A claim without `about` is taken to be about the
//! model each cited document describes, so citing a copied value without saying whose it is is refused too. The
//! message names both models.

use std::path::Path;

use super::check::{Outcome, Runs};
use super::registry::{About, Claim};
use crate::legacy::json::{self, LegacyValue};
use crate::manifest::RunKind;

/// The identity fields `about.identity` may name (the schema's `propertyNames`).
pub const IDENTITY_FIELDS: [&str; 8] = [
    "model_name",
    "architecture",
    "d_model",
    "d_sae",
    "k",
    "layer",
    "modulus",
    "sae_release",
];

/// Objects, in order, where a document records the identity of the model it describes.
const IDENTITY_HOMES: [&str; 3] = ["sae_meta", "model", "config"];

/// The pointer at which an upstream assignment-consistency run names the static summary its external values came from.
pub const EXTERNAL_SUMMARY_POINTER: &str = "/config/external_summary";
/// The values of such a run that are about that summary's model.
const COPIED_POINTERS: [&str; 3] = [
    "/acceptance/external_delta",
    "/acceptance/gate_external",
    EXTERNAL_SUMMARY_POINTER,
];

/// The identity fields `doc` records for the model it describes, in [`IDENTITY_FIELDS`] order.
pub fn document_identity(doc: &LegacyValue) -> Identity {
    IDENTITY_FIELDS
        .iter()
        .filter_map(|field| {
            IDENTITY_HOMES
                .iter()
                .find_map(|home| doc.get(home).and_then(|h| h.get(field)))
                .filter(|v| {
                    matches!(
                        v,
                        LegacyValue::Int(_)
                            | LegacyValue::Float(_)
                            | LegacyValue::String(_)
                            | LegacyValue::Bool(_)
                    )
                })
                .map(|v| (field.to_string(), v.to_json()))
        })
        .collect()
}

/// When the value at `pointer` of `doc` was copied from another file, the upstream path of that file.
pub fn copied_from(doc: &LegacyValue, pointer: &str) -> Option<String> {
    let source = doc.pointer(EXTERNAL_SUMMARY_POINTER)?.as_str()?;
    COPIED_POINTERS
        .iter()
        .any(|p| pointer == *p || pointer.starts_with(&format!("{p}/")))
        .then(|| source.to_string())
}

/// An identity: field name and recorded value, in [`IDENTITY_FIELDS`] order.
pub type Identity = Vec<(String, serde_json::Value)>;

fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The fields both identities name with different values: `(field, claimed, recorded)`.
pub fn contradictions<'a>(
    claimed: &'a Identity,
    recorded: &'a Identity,
) -> Vec<(&'a str, &'a serde_json::Value, &'a serde_json::Value)> {
    claimed
        .iter()
        .filter_map(|(field, c)| {
            recorded
                .iter()
                .find(|(f, _)| f == field)
                .filter(|(_, r)| !same(c, r))
                .map(|(_, r)| (field.as_str(), c, r))
        })
        .collect()
}

/// The identity `about` claims, in [`IDENTITY_FIELDS`] order.
pub fn claimed_identity(about: &About) -> Identity {
    IDENTITY_FIELDS
        .iter()
        .filter_map(|f| about.identity.get(*f).map(|v| (f.to_string(), v.clone())))
        .collect()
}

fn show_identity(identity: &Identity) -> String {
    if identity.is_empty() {
        return "no identity fields".into();
    }
    identity
        .iter()
        .map(|(f, v)| format!("{f} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(group, subject)` of an upstream evidence path: `.../evidence/<group>/<subject...>`, else the last two parts.
fn upstream_location(path: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(i) = parts.iter().position(|p| *p == "evidence")
        && parts.len() > i + 2
    {
        return Some((parts[i + 1].to_string(), parts[i + 2..].join("/")));
    }
    match parts.as_slice() {
        [.., group, file] => Some((group.to_string(), file.to_string())),
        _ => None,
    }
}

/// The signed import run (`campaign/run_id`) that holds upstream file `path`, if any.
fn find_import(runs: &mut Runs, path: &str) -> Result<Option<(String, String)>, String> {
    let Some((group, subject)) = upstream_location(path) else {
        return Ok(None);
    };
    let mut candidates = Vec::new();
    let mut campaigns: Vec<_> = std::fs::read_dir(runs.results_root)
        .map_err(|e| format!("cannot list {}: {e}", runs.results_root.display()))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    campaigns.sort_by_key(|e| e.file_name());
    for campaign in campaigns {
        let mut dirs: Vec<_> = std::fs::read_dir(campaign.path())
            .map_err(|e| format!("cannot list {}: {e}", campaign.path().display()))?
            .flatten()
            .filter(|e| e.path().join(&subject).is_file())
            .collect();
        dirs.sort_by_key(|e| e.file_name());
        for d in dirs {
            let label = format!(
                "{}/{}",
                campaign.file_name().to_string_lossy(),
                d.file_name().to_string_lossy()
            );
            let Ok(run) = runs.get(&label) else { continue };
            let group_matches = run.manifest.kind == RunKind::Import
                && run
                    .manifest
                    .config
                    .as_ref()
                    .and_then(|c| c.get("group"))
                    .and_then(|g| g.as_str())
                    == Some(group.as_str());
            if group_matches && run.subject(&subject).is_some() {
                candidates.push(label);
            }
        }
    }
    Ok(candidates.into_iter().next().map(|run| (run, subject)))
}

/// The model a cited value measures: a description for messages and its recorded identity (`None`: unknown).
struct Measured {
    what: String,
    identity: Option<Identity>,
}

/// The model a cited value measures and the identity its own document records (they differ for copied values).
fn measured(
    runs: &mut Runs,
    run: &str,
    subject: &str,
    pointer: &str,
) -> Result<(Measured, Identity), String> {
    let doc = read_doc(runs, run, subject)?;
    let own = document_identity(&doc);
    let Some(path) = copied_from(&doc, pointer) else {
        let m = Measured {
            what: format!("the model {run}:{subject} describes"),
            identity: Some(own.clone()),
        };
        return Ok((m, own));
    };
    let what = format!(
        "the model of {path} (named at {EXTERNAL_SUMMARY_POINTER} of {subject}; {pointer} is about that file)"
    );
    let m = match find_import(runs, &path)? {
        Some((source_run, source_subject)) => {
            let source = read_doc(runs, &source_run, &source_subject)?;
            Measured {
                what: format!("{what}, signed in {source_run}"),
                identity: Some(document_identity(&source)),
            }
        }
        None => Measured {
            what: format!(
                "{what}; no signed import run under {} holds that file, so its model is unknown (import its directory)",
                runs.results_root.display()
            ),
            identity: None,
        },
    };
    Ok((m, own))
}

fn read_doc(runs: &mut Runs, run: &str, subject: &str) -> Result<LegacyValue, String> {
    let (bytes, _) = runs.subject_bytes(run, subject)?;
    json::parse_bytes(&bytes).map_err(|e| e.with_path(Path::new(subject)).to_string())
}

/// Checks what every cited value of `claim` measures. With `about`, the value's model must not contradict the claimed
/// identity. Without it, the claim is taken to be about the model each cited document describes, so a value copied
/// from another model's file is refused until `about` says which model the claim is about. Messages go to `messages`.
pub(super) fn check_about(runs: &mut Runs, claim: &Claim, messages: &mut Vec<String>) -> Outcome {
    let mut outcome = Outcome::Pass;
    for ev in &claim.evidence {
        let cited = format!("{}:{}{}", ev.run, ev.subject, ev.pointer);
        // Unreadable evidence is reported by the evidence check already.
        let Ok((m, own)) = measured(runs, &ev.run, &ev.subject, &ev.pointer) else {
            continue;
        };
        let (claimed, claimed_text, fix) = match &claim.about {
            Some(about) => {
                let identity = claimed_identity(about);
                let text = format!("{} ({})", about.model, show_identity(&identity));
                let fix = format!("cite evidence about {} or correct `about`", about.model);
                (identity, text, fix)
            }
            None => {
                let text = format!(
                    "the model {}:{} describes ({}), having no `about`",
                    ev.run,
                    ev.subject,
                    show_identity(&own)
                );
                let fix = "say which model the claim is about with `about` (registry schema 1.1) and word the statement for that model".to_string();
                (own, text, fix)
            }
        };
        let refusal = match &m.identity {
            None => Some(format!(
                "claim `{}` is about {claimed_text}, but {cited} measures {}; {fix}",
                claim.id, m.what
            )),
            Some(recorded) => {
                let differ = contradictions(&claimed, recorded);
                (!differ.is_empty()).then(|| {
                    let details: Vec<String> = differ
                        .iter()
                        .map(|(f, c, r)| format!("{f} {r} there, {c} claimed"))
                        .collect();
                    format!(
                        "claim `{}` is about {claimed_text}, but {cited} measures another model: {} ({}); {}; {fix}",
                        claim.id,
                        m.what,
                        show_identity(recorded),
                        details.join(", ")
                    )
                })
            }
        };
        if let Some(message) = refusal {
            messages.push(message);
            outcome = Outcome::Fail;
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::json::parse_str;

    #[test]
    fn identity_is_read_from_the_first_home_that_has_the_field() {
        let doc = parse_str(
            r#"{"config": {"d_sae": 128, "k": 32, "model_name": "x"}, "sae_meta": {"d_sae": 1024, "d_model": 512},
                "d_sae": 7}"#,
        )
        .unwrap();
        assert_eq!(
            document_identity(&doc),
            vec![
                ("model_name".to_string(), serde_json::json!("x")),
                ("d_model".to_string(), serde_json::json!(512)),
                ("d_sae".to_string(), serde_json::json!(1024)),
                ("k".to_string(), serde_json::json!(32)),
            ]
        );
    }

    #[test]
    fn only_the_external_values_are_copied() {
        let doc = parse_str(
            r#"{"config": {"external_summary": "docs/evidence/g/f.json"}, "acceptance": {"external_delta": -0.1}}"#,
        )
        .unwrap();
        assert_eq!(
            copied_from(&doc, "/acceptance/external_delta").as_deref(),
            Some("docs/evidence/g/f.json")
        );
        assert_eq!(copied_from(&doc, "/acceptance/best_delta_lcb"), None);
        assert_eq!(copied_from(&doc, "/acceptance/external_delta_x"), None);
        assert_eq!(
            upstream_location("docs/evidence/g/sub/f.json"),
            Some(("g".into(), "sub/f.json".into()))
        );
        assert_eq!(
            upstream_location("/abs/g/f.json"),
            Some(("g".into(), "f.json".into()))
        );
        assert_eq!(upstream_location("f.json"), None);
    }

    #[test]
    fn contradictions_compare_numbers_by_value_and_strings_exactly() {
        use serde_json::json;
        let about = About {
            model: "m".into(),
            identity: [
                ("d_sae".to_string(), json!(128)),
                ("architecture".to_string(), json!("topk")),
                ("layer".to_string(), json!(1)),
            ]
            .into_iter()
            .collect(),
        };
        let claimed = claimed_identity(&about);
        assert_eq!(claimed[0].0, "architecture", "IDENTITY_FIELDS order");
        let recorded = vec![
            ("architecture".to_string(), json!("TopK")),
            ("d_sae".to_string(), json!(128.0)),
        ];
        let c = contradictions(&claimed, &recorded);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].0, "architecture");
    }
}
