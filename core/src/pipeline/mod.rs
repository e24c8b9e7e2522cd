//! The pipeline: request -> verified inputs -> plugin -> staging -> digests -> manifest -> signature -> publish.
//!
//! `husai-audit train`, `attest` and `data synth` are thin layers over this module, and a research cycle that drives
//! many runs calls the same code. A [`Pipeline`] holds what every run needs (the run store, the signing key, where
//! the trust policy lives, the tool identity); each kind of run is one method:
//!
//! - [`Pipeline::train`] ([`train`]): a trainer plugin on an activation bank, with the effective config built from
//!   the plugin's own schema ([`config`]), the plugin's reported read digests checked against the host's, and the
//!   run's status (`ok`, `diverged`, `interrupted`) signed into the manifest (docs/trainer-contract.md).
//! - [`Pipeline::produce`] ([`produce`]): a data plugin (a generator) whose outputs become a signed `data` run.
//! - [`Pipeline::eval`] ([`eval`]): an eval plugin on verified runs, whose schema'd summary is signed as an `eval`
//!   run (docs/eval-contract.md).
//! - [`Pipeline::attest`] ([`attest`]): files any tool produced, optionally by a command the pipeline runs.
//!
//! Every one of them stages its outputs in the run store and commits through [`Pipeline::sign`]; a failure at any
//! point drops the staged run, which removes its directory, so no half-finished run is ever left.

pub mod attest;
pub mod config;
pub mod eval;
pub mod produce;
pub mod train;

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::digest::{self, DigestMethod};
use crate::inputs::{self, InputError};
use crate::keys::SigningKey;
use crate::manifest::{InputRef, ManifestDraft, ToolInfo};
use crate::plugin::PluginHostError;
use crate::store::{CommittedRun, RunStore, StagedRun, StoreError};
use crate::trust::{TrustError, TrustPolicy};
use crate::verify;

pub use attest::AttestRequest;
pub use config::{ConfigError, ConfigSources};
pub use eval::{EvalRequest, EvaluatedRun};
pub use produce::ProduceRequest;
pub use train::{TrainRequest, TrainedRun};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(Box<StoreError>),
    /// `attest -- COMMAND` ran the command and it failed: a failure of the work attested, not of the tool.
    #[error("command {command:?} failed ({status}); nothing was attested")]
    CommandFailed { command: String, status: String },
    #[error(transparent)]
    Host(Box<PluginHostError>),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pin(Box<crate::plugin::pin::PinError>),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("cannot use the trust policy in {} (pass --keys DIR to use another): {source}", dir.display())]
    Trust {
        dir: PathBuf,
        #[source]
        source: Box<TrustError>,
    },
    #[error("plugin {name} ({}) is a {kind} plugin; {needed}", path.display())]
    WrongKind {
        name: String,
        path: PathBuf,
        kind: String,
        needed: &'static str,
    },
    /// The plugin refused the config (a rule its schema cannot state); nothing was recorded.
    #[error("plugin {plugin} refused the config: {message}; no run was recorded")]
    PluginRejectedConfig { plugin: String, message: String },
    #[error("--resume {}: {reason}", dir.display())]
    Resume { dir: PathBuf, reason: String },
    #[error(
        "--resume: config key {key} was {recorded} in the resumed run but is given as {given}; a resumed run keeps \
         its config (only steps or epochs may change). Drop the setting, or start a fresh run"
    )]
    ResumeConflict {
        key: String,
        recorded: Box<serde_json::Value>,
        given: Box<serde_json::Value>,
    },
    #[error("plugin {plugin}: {detail}; no run was recorded")]
    BadResult { plugin: String, detail: String },
    #[error(
        "input {role} ({}) changed while plugin {plugin} ran: the host recorded sha256 {recorded} before the run, but \
         the plugin read bytes with sha256 {read}. Nothing was signed; make sure nothing writes to the file during \
         training and run again", path.display()
    )]
    ReadMismatch {
        plugin: String,
        role: String,
        path: PathBuf,
        recorded: String,
        read: String,
    },
    #[error("cannot hash {what} {}: {source}", path.display())]
    Hash {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "input {} changed while its run was being verified (sha256 {before} before, {after} after); nothing was \
         signed. Make sure nothing writes to it and run again", path.display()
    )]
    ChangedDuringVerification {
        path: PathBuf,
        before: String,
        after: String,
    },
    #[error("{0}")]
    Attest(String),
    /// An eval's inputs or summary broke the eval contract (docs/eval-contract.md); nothing was signed.
    #[error("{0}")]
    Eval(String),
}

impl From<StoreError> for PipelineError {
    fn from(e: StoreError) -> Self {
        PipelineError::Store(Box::new(e))
    }
}

impl From<PluginHostError> for PipelineError {
    fn from(e: PluginHostError) -> Self {
        PipelineError::Host(Box::new(e))
    }
}

/// What every run needs: where runs go, who signs, where the trust policy is, and which tool is recording.
pub struct Pipeline {
    store: RunStore,
    key: SigningKey,
    keys_dir: PathBuf,
    tool: ToolInfo,
    /// Loaded the first time an input turns out to be inside a run.
    policy: OnceCell<TrustPolicy>,
}

impl Pipeline {
    pub fn new(
        store: RunStore,
        key: SigningKey,
        keys_dir: impl Into<PathBuf>,
        tool: ToolInfo,
    ) -> Self {
        Pipeline {
            store,
            key,
            keys_dir: keys_dir.into(),
            tool,
            policy: OnceCell::new(),
        }
    }

    pub fn store(&self) -> &RunStore {
        &self.store
    }

    /// With `keys/plugins.lock` present, only pinned plugin libraries run (docs/threat-model.md);
    /// `HUSAI_ALLOW_UNPINNED_PLUGINS=1` overrides, as the refusal says.
    pub fn check_pinned(
        &self,
        plugin: &crate::plugin::DescribedPlugin,
    ) -> Result<(), PipelineError> {
        crate::plugin::pin::check_pinned(
            &self.keys_dir,
            plugin,
            crate::plugin::pin::allow_unpinned_from_env(),
        )
        .map_err(|e| PipelineError::Pin(Box::new(e)))
    }

    /// The trust policy, loaded once, on first use (a run whose inputs are plain files never needs it).
    pub fn policy(&self) -> Result<&TrustPolicy, PipelineError> {
        if let Some(p) = self.policy.get() {
            return Ok(p);
        }
        let p = TrustPolicy::load(&self.keys_dir).map_err(|source| PipelineError::Trust {
            dir: self.keys_dir.clone(),
            source: Box::new(source),
        })?;
        Ok(self.policy.get_or_init(|| p))
    }

    /// A manifest draft for this tool.
    pub fn draft(&self) -> ManifestDraft {
        ManifestDraft::new(self.tool.clone())
    }

    /// Commits a staged run: hash, manifest, signature, atomic publish. `on_bytes` counts hashed bytes.
    pub fn sign(
        &self,
        staged: StagedRun,
        draft: ManifestDraft,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<CommittedRun, PipelineError> {
        Ok(staged.commit(draft, &self.key, on_bytes)?)
    }

    /// Records a file the run reads: linked to its run (with the signed digest) when it lies inside a verified
    /// run, else by plain sha256. Also returns the file's plain sha256, which is what a plugin reports having read.
    ///
    /// The plain sha256 of a run-linked input is a second reading of the file (verification may have hashed it by
    /// its sharded digest, and runs signed before manifest schema 1.2 carry only that one). It is taken before and
    /// after the run is verified and must not change, so the plain digest is that of the very bytes verification
    /// accepted.
    pub fn record_input(
        &self,
        path: &Path,
        what: &'static str,
    ) -> Result<(InputRef, String), PipelineError> {
        let spec = path.display().to_string();
        if !path.exists() {
            return Err(InputError::Missing(spec).into());
        }
        if verify::enclosing_run(path).is_none() {
            let sha256 = plain_sha256(path, what)?;
            let input = InputRef {
                path: spec,
                digest: BTreeMap::from([("sha256".to_owned(), sha256.clone())]),
                run: None,
            };
            return Ok((input, sha256));
        }
        let before = plain_sha256(path, what)?;
        let mut refs = inputs::resolve(&spec, self.store.root(), self.policy()?)?;
        let input = refs
            .pop()
            .ok_or_else(|| InputError::Missing(spec.clone()))?;
        let after = plain_sha256(path, what)?;
        unchanged(path, &before, &after)?;
        Ok((input, after))
    }
}

/// The plain sha256 of a file.
pub(crate) fn plain_sha256(path: &Path, what: &'static str) -> Result<String, PipelineError> {
    digest::digest_file(path, DigestMethod::Sha256)
        .map(|d| d.hex)
        .map_err(|source| PipelineError::Hash {
            what,
            path: path.to_path_buf(),
            source,
        })
}

/// A file read twice around its verification must read the same.
pub(crate) fn unchanged(path: &Path, before: &str, after: &str) -> Result<(), PipelineError> {
    if before == after {
        Ok(())
    } else {
        Err(PipelineError::ChangedDuringVerification {
            path: path.to_path_buf(),
            before: before.to_owned(),
            after: after.to_owned(),
        })
    }
}

/// The plugin's result must list the files it wrote, and they must be there: a plugin that claims outputs it did not
/// write is broken, and signing would hide that.
pub(crate) fn check_outputs(
    plugin: &str,
    dir: &Path,
    result: &serde_json::Value,
) -> Result<(), PipelineError> {
    let bad = |detail: String| PipelineError::BadResult {
        plugin: plugin.to_owned(),
        detail,
    };
    let outputs = result
        .get("outputs")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad(format!("the result has no \"outputs\" list: {result}")))?;
    for o in outputs {
        let name = o
            .as_str()
            .ok_or_else(|| bad(format!("the result lists a non-string output {o}")))?;
        if !dir.join(name).is_file() {
            return Err(bad(format!(
                "it reported output {name:?} but did not write it"
            )));
        }
    }
    Ok(())
}
