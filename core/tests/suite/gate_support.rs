//! Test support shared by the gate and claims tests: a throwaway signing key, a trust policy that trusts it, and a
//! helper that signs files into a run under a temporary results root.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use husai_core::keys::{self, SigningKey};
use husai_core::manifest::{ManifestDraft, RunKind, ToolInfo};
use husai_core::store::RunStore;
use husai_core::trust::TrustPolicy;

pub struct Signer {
    pub dir: tempfile::TempDir,
    pub key: SigningKey,
    pub trust: TrustPolicy,
}

impl Signer {
    pub fn new() -> Signer {
        let dir = tempfile::tempdir().unwrap();
        let key = keys::generate();
        let key_dir = dir.path().join("keys");
        std::fs::create_dir_all(&key_dir).unwrap();
        std::fs::write(key_dir.join("test.pub.pem"), key.public_key().to_spki_pem()).unwrap();
        let policy = format!(
            r#"{{"schema_version": "1.0", "keys": [{{"keyid": "{}", "public_key": "test.pub.pem", "roles": ["ci"],
                "not_before": "2020-01-01T00:00:00Z", "not_after": null, "revoked": null}}]}}"#,
            key.key_id()
        );
        std::fs::write(key_dir.join("trust-policy.json"), policy).unwrap();
        let trust = TrustPolicy::load(&key_dir).unwrap();
        Signer { dir, key, trust }
    }

    pub fn results(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    pub fn key_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// Signs `files` (name, bytes) as one run of `kind` in `campaign`; returns the run directory.
    pub fn sign(&self, campaign: &str, kind: RunKind, files: &[(&str, &[u8])]) -> PathBuf {
        let store = RunStore::open(self.results()).unwrap();
        let staged = store.stage(campaign, kind).unwrap();
        for (name, bytes) in files {
            let path = staged.dir().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let draft = ManifestDraft::new(ToolInfo {
            name: "husai-tests".into(),
            version: "0".into(),
            git_commit: None,
            git_dirty: None,
        });
        staged.commit(draft, &self.key, &|_| {}).unwrap().dir
    }

    /// Signs `files` as a gate run the way `husai-audit gate` records one (tool husai-audit, argv
    /// `husai-audit gate ...`): what a release claim accepts as its gate.
    pub fn sign_as_gate(&self, campaign: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let store = RunStore::open(self.results()).unwrap();
        let staged = store.stage(campaign, RunKind::Gate).unwrap();
        for (name, bytes) in files {
            std::fs::write(staged.dir().join(name), bytes).unwrap();
        }
        let mut draft = ManifestDraft::new(ToolInfo {
            name: "husai-audit".into(),
            version: "0".into(),
            git_commit: None,
            git_dirty: None,
        });
        draft.argv = vec!["husai-audit".into(), "gate".into(), "--strict".into()];
        staged.commit(draft, &self.key, &|_| {}).unwrap().dir
    }

    /// Signs one evidence fixture file (copied byte for byte) and returns the signed copy's path.
    pub fn sign_fixture(&self, rel: &str) -> PathBuf {
        let bytes = std::fs::read(evidence(rel)).unwrap();
        let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
        self.sign("evidence", RunKind::Import, &[(name, &bytes)])
            .join(name)
    }

    /// Signs JSON text as `name` and returns the signed file's path.
    pub fn sign_json(&self, name: &str, text: &str) -> PathBuf {
        self.sign("evidence", RunKind::Import, &[(name, text.as_bytes())])
            .join(name)
    }
}

pub fn evidence(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/husai-evidence")
        .join(rel)
}

/// A phase-4a file reproducing the values the upstream policies recorded, with a significant p-value.
pub const PHASE4A: &str = r#"{"comparison": {"difference": 0.0012296229600906594},
  "trained": {"mean": 0.3, "ci95_low": 6.183199584486321e-05, "ci95_high": 0.4},
  "random": {"mean": 0.2, "ci95_low": 0.0, "ci95_high": 0.0},
  "statistical_test": {"p_value": 0.0001649}}"#;

/// A husai trained-vs-random summary (schema trained-vs-random.v1) over `n` SAE seeds of one configuration:
/// runs `saes/sae-<i>`, the given means, lower bound and chance-normalised effect.
pub fn trained_vs_random(
    n: usize,
    trained: f64,
    random: f64,
    ci_low: Option<f64>,
    effect: f64,
) -> String {
    let runs: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"campaign": "saes", "run_id": "sae-{i}", "seed": {i}}}"#))
        .collect();
    let low = ci_low.map_or_else(|| "null".to_string(), |v| format!("{v:?}"));
    format!(
        r#"{{"schema": "trained-vs-random.v1", "schema_version": "1.0", "family": "sae-topk",
  "sae_runs": [{}],
  "trained": {{"n_seeds": {n}, "mean": {trained:?}}}, "random": {{"n_draws": 21, "mean": {random:?}}},
  "difference": {{"estimate": {:?}, "ci_low": {low}, "ci_high": 1.0}},
  "chance_normalised_effect": {effect:?},
  "mann_whitney": {{"u": 82.0, "p_value": 0.0073448, "method": "exact"}}}}"#,
        runs.join(", "),
        trained - random
    )
}

/// The identity of SAE run `saes/sae-<i>` (family sae-topk, one configuration unless `k` differs).
pub fn sae_run(i: usize, family: &str, k: u64) -> husai_core::gate::report::TrainRunIdentity {
    husai_core::gate::report::TrainRunIdentity {
        campaign: "saes".into(),
        run_id: format!("sae-{i}"),
        family: family.into(),
        configuration: serde_json::json!({"d_sae": 1024, "k": k}),
        seed: Some(i as u64),
        data_run: Some("toy/data-run".into()),
    }
}

/// random_model inputs that pass the strict gate: 8 seeds, a positive seed-level bound, an effect of 0.17, and the
/// candidate one of the covered runs.
pub fn passing_random_model(s: &Signer) -> husai_core::gate::strict::StrictInputs {
    let text = trained_vs_random(8, 0.42, 0.2985, Some(0.11), 0.173);
    husai_core::gate::strict::StrictInputs {
        phase4a: Some(
            husai_core::gate::source::read_verified(
                &s.sign_json("trained_vs_random.json", &text),
                &s.trust,
            )
            .unwrap(),
        ),
        random_model_runs: (0..8).map(|i| sae_run(i, "sae-topk", 32)).collect(),
        candidate_run: Some(sae_run(0, "sae-topk", 32)),
        ..Default::default()
    }
}
