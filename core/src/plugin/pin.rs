//! Pinned plugins: `plugins.lock` beside the trust policy maps each plugin name and version to the
//! sha256 of the one library file allowed to run under that name.
//!
//! ```json
//! {"schema_version": "1.0",
//!  "plugins": [{"name": "sae-topk", "version": "0.3.0", "library_sha256": "<64 hex>"}]}
//! ```
//!
//! `husai-audit pin` writes it from the plugins the search path finds. Pinning is switched on per
//! keys directory by the file's existence: once `keys/plugins.lock` exists,
//!
//! * the train pipeline calls [`check_pinned`] before running a plugin, which refuses a library
//!   whose name, version and sha256 the lock does not list (a library put ahead of the installed
//!   one through `HUSAI_PLUGIN_PATH` or `--plugin-dir`), unless the setting
//!   [`ALLOW_UNPINNED_ENV`]`=1` explicitly allows it;
//! * verify reports every run whose manifest names a plugin the lock does not pin: an **error**
//!   when the lock pins that name and version to another sha256 (a substituted library), a
//!   **warning** when the lock does not list that name and version at all (for example a run made
//!   by an older plugin release before the lock was updated).
//!
//! The file is read like every trust input ([`crate::untrusted`]): a bounded regular file, strict
//! JSON (duplicate keys are errors), validated against its shape here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::untrusted::{self, ReadError};

/// File name of the lock inside the keys directory.
pub const LOCK_FILE_NAME: &str = "plugins.lock";
/// The lock's schema version.
pub const LOCK_VERSION: &str = "1.0";
/// Largest lock file read (1 MiB).
pub const MAX_LOCK_BYTES: u64 = 1 << 20;
/// The setting that lets an unpinned plugin run although a lock exists.
pub const ALLOW_UNPINNED_ENV: &str = "HUSAI_ALLOW_UNPINNED_PLUGINS";

/// One pinned library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedPlugin {
    pub name: String,
    pub version: String,
    pub library_sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    schema_version: String,
    plugins: Vec<PinnedPlugin>,
}

/// A loaded `plugins.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLock {
    path: PathBuf,
    pins: BTreeMap<(String, String), String>,
}

/// How a plugin stands against the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinStatus {
    /// Name, version and sha256 are pinned.
    Pinned,
    /// The lock pins this name and version to another library.
    Mismatch { pinned_sha256: String },
    /// The lock does not list this name and version.
    Unlisted,
}

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("cannot read plugin lock: {0}")]
    Read(#[from] ReadError),
    #[error("plugin lock {} is not valid: {detail}; rewrite it with `husai-audit pin`", path.display())]
    Invalid { path: PathBuf, detail: String },
    #[error("plugin lock {}: {name} {version} is pinned twice; keep one entry", path.display())]
    Duplicate {
        path: PathBuf,
        name: String,
        version: String,
    },
    #[error(transparent)]
    Unpinned(Box<Unpinned>),
    #[error("cannot write plugin lock {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A plugin library the lock does not pin (boxed in [`PinError`] to keep results small).
#[derive(Debug, thiserror::Error)]
#[error("plugin {name} {version} at {} (sha256 {sha256}) is not pinned in {}: {why}; refusing to run it. Pin it with `husai-audit pin` if you trust this library, or set {ALLOW_UNPINNED_ENV}=1 to run it once unpinned", library.display(), lock.display())]
pub struct Unpinned {
    pub name: String,
    pub version: String,
    pub library: PathBuf,
    pub sha256: String,
    pub lock: PathBuf,
    pub why: String,
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl PluginLock {
    /// Loads `keys_dir/plugins.lock`; `Ok(None)` when there is none (pinning is off).
    pub fn load(keys_dir: &Path) -> Result<Option<PluginLock>, PinError> {
        let path = keys_dir.join(LOCK_FILE_NAME);
        let bytes = match untrusted::read_regular_file(&path, MAX_LOCK_BYTES) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Self::parse(&bytes, &path).map(Some)
    }

    /// Parses a lock held in memory; `path` is used in messages.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<PluginLock, PinError> {
        let invalid = |detail: String| PinError::Invalid {
            path: path.to_path_buf(),
            detail,
        };
        let file: LockFile = untrusted::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if file.schema_version.split('.').next() != Some("1") {
            return Err(invalid(format!(
                "schema_version {:?} is not supported (this husai reads 1.x)",
                file.schema_version
            )));
        }
        let mut pins = BTreeMap::new();
        for p in file.plugins {
            if p.name.is_empty() || p.version.is_empty() || !is_sha256_hex(&p.library_sha256) {
                return Err(invalid(format!(
                    "entry {:?} {:?} needs a name, a version and a lowercase hex sha256",
                    p.name, p.version
                )));
            }
            if pins
                .insert((p.name.clone(), p.version.clone()), p.library_sha256)
                .is_some()
            {
                return Err(PinError::Duplicate {
                    path: path.to_path_buf(),
                    name: p.name,
                    version: p.version,
                });
            }
        }
        Ok(PluginLock {
            path: path.to_path_buf(),
            pins,
        })
    }

    /// An empty lock to be written at `keys_dir/plugins.lock`.
    pub fn empty(keys_dir: &Path) -> PluginLock {
        PluginLock {
            path: keys_dir.join(LOCK_FILE_NAME),
            pins: BTreeMap::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every pin, sorted by name and version.
    pub fn pins(&self) -> Vec<PinnedPlugin> {
        self.pins
            .iter()
            .map(|((name, version), sha)| PinnedPlugin {
                name: name.clone(),
                version: version.clone(),
                library_sha256: sha.clone(),
            })
            .collect()
    }

    /// Adds or replaces the pin for `p.name` and `p.version`.
    pub fn pin(&mut self, p: PinnedPlugin) {
        self.pins.insert((p.name, p.version), p.library_sha256);
    }

    /// How `name` `version` with this library digest stands against the lock.
    pub fn status(&self, name: &str, version: &str, sha256: &str) -> PinStatus {
        match self.pins.get(&(name.to_owned(), version.to_owned())) {
            Some(pinned) if pinned == sha256 => PinStatus::Pinned,
            Some(pinned) => PinStatus::Mismatch {
                pinned_sha256: pinned.clone(),
            },
            None => PinStatus::Unlisted,
        }
    }

    /// The lock as pretty JSON, one entry per plugin, sorted.
    pub fn to_json(&self) -> String {
        let file = LockFile {
            schema_version: LOCK_VERSION.to_owned(),
            plugins: self.pins(),
        };
        let mut text = serde_json::to_string_pretty(&file).expect("lock types always serialise");
        text.push('\n');
        text
    }

    /// Writes the lock to its path (via a temporary file and a rename).
    pub fn write(&self) -> Result<(), PinError> {
        let tmp = self.path.with_extension("lock.tmp");
        let write = || -> std::io::Result<()> {
            std::fs::write(&tmp, self.to_json())?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|source| PinError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Whether [`ALLOW_UNPINNED_ENV`] is set to a true value (`1`, `true`, `yes`).
pub fn allow_unpinned_from_env() -> bool {
    std::env::var(ALLOW_UNPINNED_ENV)
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// The check the train pipeline makes before running a plugin: with a lock in `keys_dir`, the
/// plugin's name, version and library sha256 must be pinned, unless `allow_unpinned`. Without a
/// lock, only the libraries installed beside the husai-audit executable run (plugin builds differ per
/// machine, so no lock is committed); any other library needs a lock entry or `allow_unpinned`.
pub fn check_pinned(
    keys_dir: &Path,
    plugin: &super::DescribedPlugin,
    allow_unpinned: bool,
) -> Result<(), PinError> {
    let Some(lock) = PluginLock::load(keys_dir)? else {
        // No lock: the plugins installed beside the husai-audit executable (by the same build or install) are the
        // trusted set; a library found anywhere else (--plugin-dir, HUSAI_PLUGIN_PATH) is unknown and refused.
        if allow_unpinned || installed_beside_executable(&plugin.library_path) {
            return Ok(());
        }
        return Err(PinError::Unpinned(Box::new(Unpinned {
            name: plugin.description.name.clone(),
            version: plugin.description.version.clone(),
            library: plugin.library_path.clone(),
            sha256: plugin.library_sha256.clone(),
            lock: keys_dir.join(LOCK_FILE_NAME),
            why: "there is no lock, and the library is not one installed beside husai-audit (it was found through \
                  --plugin-dir or HUSAI_PLUGIN_PATH)"
                .to_owned(),
        })));
    };
    let (name, version) = (&plugin.description.name, &plugin.description.version);
    let why = match lock.status(name, version, &plugin.library_sha256) {
        PinStatus::Pinned => return Ok(()),
        PinStatus::Mismatch { pinned_sha256 } => {
            format!("the lock pins {name} {version} to sha256 {pinned_sha256}")
        }
        PinStatus::Unlisted => format!("the lock lists no {name} {version}"),
    };
    if allow_unpinned {
        return Ok(());
    }
    Err(PinError::Unpinned(Box::new(Unpinned {
        name: name.clone(),
        version: version.clone(),
        library: plugin.library_path.clone(),
        sha256: plugin.library_sha256.clone(),
        lock: lock.path().to_path_buf(),
        why,
    })))
}

/// Whether `library` sits in the directory of the running executable (the install's own plugins).
fn installed_beside_executable(library: &Path) -> bool {
    let dir_of = |p: &Path| p.parent().and_then(|d| std::fs::canonicalize(d).ok());
    match (std::env::current_exe(), dir_of(library)) {
        (Ok(exe), Some(lib_dir)) => dir_of(&exe) == Some(lib_dir),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn lock() -> PluginLock {
        let mut l = PluginLock::empty(Path::new("keys"));
        l.pin(PinnedPlugin {
            name: "sae-topk".into(),
            version: "0.3.0".into(),
            library_sha256: SHA_A.into(),
        });
        l
    }

    #[test]
    fn status_distinguishes_pinned_mismatched_and_unlisted() {
        let l = lock();
        assert_eq!(l.status("sae-topk", "0.3.0", SHA_A), PinStatus::Pinned);
        assert_eq!(
            l.status("sae-topk", "0.3.0", SHA_B),
            PinStatus::Mismatch {
                pinned_sha256: SHA_A.into()
            }
        );
        assert_eq!(l.status("sae-topk", "0.4.0", SHA_A), PinStatus::Unlisted);
    }

    #[test]
    fn the_lock_round_trips_and_refuses_bad_or_duplicate_entries() {
        let l = lock();
        let back = PluginLock::parse(l.to_json().as_bytes(), l.path()).unwrap();
        assert_eq!(back, l);
        let dup = l.to_json().replacen(
            "\"name\": \"sae-topk\"",
            "\"name\": \"sae-topk\", \"name\": \"evil\"",
            1,
        );
        let e = PluginLock::parse(dup.as_bytes(), l.path()).unwrap_err();
        assert!(e.to_string().contains("duplicate key \"name\""), "{e}");
        let bad = l.to_json().replace(SHA_A, "zz");
        let e = PluginLock::parse(bad.as_bytes(), l.path()).unwrap_err();
        assert!(e.to_string().contains("lowercase hex sha256"), "{e}");
        let twice = format!(
            "{{\"schema_version\":\"1.0\",\"plugins\":[{0},{0}]}}",
            serde_json::to_string(&l.pins()[0]).unwrap()
        );
        let e = PluginLock::parse(twice.as_bytes(), l.path()).unwrap_err();
        assert!(matches!(e, PinError::Duplicate { .. }), "{e}");
    }
}
