//! The repository's own claims registry holds against the committed signed runs.

use std::path::Path;

use husai_core::claims::check_registry;
use husai_core::trust::TrustPolicy;

#[test]
fn repository_claims_verify() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let trust = TrustPolicy::load(root.join("keys")).unwrap();
    let report = check_registry(&root.join("claims.json"), &root.join("results"), &trust);
    assert!(report.passed(), "{report:#?}");
    assert!(report.claims.len() >= 4);
    assert!(report.spans_checked >= 4, "{report:#?}");
}
