//! Importing an upstream evidence tree (upstream `docs/evidence/`) as signed runs of kind `import`.
//!
//! Granularity: **one run per top-level directory** of the tree (one upstream campaign or phase, e.g.
//! `cycle4_followups_run_20260215T190004Z`), plus one run named `_root` for files lying directly in the tree's root.
//! A top-level directory is the unit upstream itself produced and copied together, so a later decision cites "the
//! cycle-4 follow-ups import" by run id, and each file in it by subject path (relative to that directory) and digest.
//!
//! Every file is copied byte for byte. Each JSON file is parsed with the lenient reader; its detected artifact kind,
//! schema version, the JSON Pointers of its non-finite numbers, and (when it does not parse) its parse error are
//! recorded per file in the manifest's `extra.import.files`. Unparseable files are imported anyway, flagged. Each
//! run is committed atomically by the store; if a later directory fails, the runs already committed stay valid and
//! the error names the directory that failed.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::json;
use super::kind::detect_kind;
use crate::digest::sha256_hex;
use crate::keys::SigningKey;
use crate::manifest::{ManifestDraft, RunKind, ToolInfo};
use crate::store::{CommittedRun, RunStore, StoreError};

/// The `source` recorded for imports of upstream HUSAI evidence.
pub const SOURCE_HUSAI_EVIDENCE: &str = "husai-evidence";
/// The run holding files directly in the tree's root.
pub const ROOT_GROUP: &str = "_root";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: not a directory; pass the evidence tree's root (upstream docs/evidence)", .0.display())]
    NotADirectory(PathBuf),
    #[error("{}: {what}; an import holds regular files only (replace it with a copy of the file)", path.display())]
    NotARegularFile { path: PathBuf, what: &'static str },
    #[error("{}: file name is not valid UTF-8; subject names must be UTF-8", .0.display())]
    NonUtf8(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no files to import", .0.display())]
    Empty(PathBuf),
    #[error("{}: has no top-level directory named {name:?} (see `ls` of the tree; `_root` names its loose files)", root.display())]
    UnknownGroup { root: PathBuf, name: String },
    #[error("importing {group}: {source}")]
    Store {
        group: String,
        #[source]
        source: StoreError,
    },
}

/// One file to import and what was learned reading it.
#[derive(Debug, Clone)]
pub struct ImportFile {
    /// Subject name inside the run (relative to the group directory, '/' separated).
    pub subject: String,
    pub source: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub kind: &'static str,
    pub schema_version: &'static str,
    pub detected_by: String,
    pub parse_error: Option<String>,
    pub non_finite: Vec<String>,
}

/// One run-to-be: a top-level directory (or the root's loose files).
#[derive(Debug, Clone)]
pub struct ImportGroup {
    pub name: String,
    pub files: Vec<ImportFile>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn describe_file(source: &Path, subject: String) -> Result<ImportFile, ImportError> {
    let bytes = std::fs::read(source).map_err(io(source))?;
    let is_json = source
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let (value, parse_error) = if is_json {
        match json::parse_bytes(&bytes) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e.with_path(Path::new(&subject)).to_string())),
        }
    } else {
        (None, None)
    };
    let detected = detect_kind(source, value.as_ref());
    Ok(ImportFile {
        subject,
        source: source.to_path_buf(),
        sha256: sha256_hex(&bytes),
        size: bytes.len() as u64,
        kind: detected.kind.as_str(),
        schema_version: detected.schema_version,
        detected_by: detected.evidence,
        parse_error,
        non_finite: value.map(|v| v.non_finite_pointers()).unwrap_or_default(),
    })
}

fn check_regular(path: &Path) -> Result<bool, ImportError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        Err(ImportError::NotARegularFile {
            path: path.to_path_buf(),
            what: "a symbolic link",
        })
    } else if ft.is_dir() {
        Ok(false)
    } else if ft.is_file() {
        Ok(true)
    } else {
        Err(ImportError::NotARegularFile {
            path: path.to_path_buf(),
            what: "not a regular file",
        })
    }
}

fn utf8_name(path: &Path) -> Result<String, ImportError> {
    path.to_str()
        .map(|s| s.replace('\\', "/"))
        .ok_or_else(|| ImportError::NonUtf8(path.to_path_buf()))
}

/// Reads the tree and plans one group per top-level directory (sorted by name), `_root` first when present.
pub fn plan(root: &Path) -> Result<Vec<ImportGroup>, ImportError> {
    if !root.is_dir() {
        return Err(ImportError::NotADirectory(root.to_path_buf()));
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(io(root))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(root))?;
    entries.sort();
    let mut root_files = Vec::new();
    let mut groups = Vec::new();
    for entry in entries {
        let name = utf8_name(entry.strip_prefix(root).unwrap_or(&entry))?;
        if check_regular(&entry)? {
            root_files.push(describe_file(&entry, name)?);
            continue;
        }
        let mut files = Vec::new();
        let mut walk: Vec<PathBuf> = walkdir::WalkDir::new(&entry)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.map(|e| e.into_path()))
            .collect::<Result<_, _>>()
            .map_err(|e| ImportError::Io {
                path: e.path().unwrap_or(&entry).to_path_buf(),
                source: e.into(),
            })?;
        walk.sort();
        for path in walk {
            if check_regular(&path)? {
                let subject = utf8_name(path.strip_prefix(&entry).unwrap_or(&path))?;
                files.push(describe_file(&path, subject)?);
            }
        }
        if !files.is_empty() {
            groups.push(ImportGroup { name, files });
        }
    }
    if !root_files.is_empty() {
        groups.insert(
            0,
            ImportGroup {
                name: ROOT_GROUP.to_string(),
                files: root_files,
            },
        );
    }
    if groups.is_empty() {
        return Err(ImportError::Empty(root.to_path_buf()));
    }
    Ok(groups)
}

/// The per-file import record kept in the manifest's `extra.import.files`.
pub fn file_record(f: &ImportFile) -> Value {
    json!({
        "sha256": f.sha256,
        "size": f.size,
        "kind": f.kind,
        "schema_version": f.schema_version,
        "detected_by": f.detected_by,
        "parse_error": f.parse_error,
        "non_finite_pointers": f.non_finite,
    })
}

/// Copies one group into a staged run and commits it. The copied bytes are re-hashed and must equal the planned
/// digest, so a file changing during the import is an error rather than a silently different record.
pub fn commit_group(
    store: &RunStore,
    campaign: &str,
    source_root: &Path,
    group: &ImportGroup,
    mut draft: ManifestDraft,
    key: &SigningKey,
) -> Result<CommittedRun, ImportError> {
    let store_err = |source| ImportError::Store {
        group: group.name.clone(),
        source,
    };
    let staged = store.stage(campaign, RunKind::Import).map_err(store_err)?;
    let mut records = serde_json::Map::new();
    for f in &group.files {
        let target = staged.dir().join(&f.subject);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let bytes = std::fs::read(&f.source).map_err(io(&f.source))?;
        if sha256_hex(&bytes) != f.sha256 {
            return Err(ImportError::Io {
                path: f.source.clone(),
                source: std::io::Error::other(
                    "the file changed while it was being imported; re-run the import",
                ),
            });
        }
        std::fs::write(&target, &bytes).map_err(io(&target))?;
        records.insert(f.subject.clone(), file_record(f));
    }
    let parse_errors = group
        .files
        .iter()
        .filter(|f| f.parse_error.is_some())
        .count();
    draft.config = Some(json!({"source": SOURCE_HUSAI_EVIDENCE, "group": group.name}));
    draft.extra = json!({
        "import": {
            "source": SOURCE_HUSAI_EVIDENCE,
            "source_root": source_root.display().to_string(),
            "group": group.name,
            "granularity": "one run per top-level directory of the evidence tree; `_root` holds the root's own files",
            "file_count": group.files.len(),
            "parse_error_count": parse_errors,
            "files": records,
        }
    });
    staged.commit(draft, key, &|_| {}).map_err(store_err)
}

/// What `import_tree_once` did: the groups it committed, and the groups an earlier import already holds (with that
/// run's id), which it left alone.
#[derive(Debug)]
pub struct ImportOutcome {
    pub imported: Vec<(ImportGroup, CommittedRun)>,
    pub already_imported: Vec<(ImportGroup, String)>,
}

/// The id of a run in `campaign` that already imports `group` of the tree at `source_root` with exactly these files
/// (same subject names, same sha256): the group is then already imported. Reads the statements without verifying
/// them: this decides only whether to skip work, never what is trusted (`verify` checks every run on its own).
pub fn previous_import(
    store: &RunStore,
    campaign: &str,
    source_root: &Path,
    group: &ImportGroup,
) -> Option<String> {
    let planned: std::collections::BTreeMap<&str, &str> = group
        .files
        .iter()
        .map(|f| (f.subject.as_str(), f.sha256.as_str()))
        .collect();
    let root_text = source_root.display().to_string();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(store.root().join(campaign))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    dirs.into_iter().find_map(|dir| {
        let bytes = std::fs::read(dir.join(crate::store::ENVELOPE_FILE)).ok()?;
        let envelope: crate::dsse::Envelope = serde_json::from_slice(&bytes).ok()?;
        let statement: Value = serde_json::from_slice(&envelope.decode_payload().ok()?).ok()?;
        let predicate = statement.get("predicate")?;
        let import = predicate.pointer("/extra/import")?;
        let same_source = predicate.get("kind")? == "import"
            && import.get("source")? == SOURCE_HUSAI_EVIDENCE
            && import.get("source_root")?.as_str()? == root_text
            && import.get("group")?.as_str()? == group.name;
        if !same_source {
            return None;
        }
        let signed: std::collections::BTreeMap<&str, &str> = statement
            .get("subject")?
            .as_array()?
            .iter()
            .filter_map(|s| {
                Some((
                    s.get("name")?.as_str()?,
                    s.pointer("/digest/sha256")?.as_str()?,
                ))
            })
            .collect();
        (signed == planned).then(|| predicate.get("run_id")?.as_str().map(str::to_owned))?
    })
}

/// `import_tree`, except that a group an earlier import in `campaign` already holds unchanged (same source root,
/// group, file names and digests) is skipped and reported, unless `again`.
#[allow(clippy::too_many_arguments)]
pub fn import_tree_once(
    store: &RunStore,
    campaign: &str,
    root: &Path,
    only: &[String],
    key: &SigningKey,
    tool: &ToolInfo,
    argv: &[String],
    again: bool,
) -> Result<ImportOutcome, ImportError> {
    let groups = selected_groups(root, only)?;
    let source_root = std::fs::canonicalize(root).map_err(io(root))?;
    let mut outcome = ImportOutcome {
        imported: Vec::new(),
        already_imported: Vec::new(),
    };
    for group in groups {
        if !again {
            if let Some(run_id) = previous_import(store, campaign, &source_root, &group) {
                outcome.already_imported.push((group, run_id));
                continue;
            }
        }
        let mut draft = ManifestDraft::new(tool.clone());
        draft.argv = argv.to_vec();
        let run = commit_group(store, campaign, &source_root, &group, draft, key)?;
        outcome.imported.push((group, run));
    }
    Ok(outcome)
}

/// The planned groups, narrowed to `only` when it is not empty (an unknown name is an error).
fn selected_groups(root: &Path, only: &[String]) -> Result<Vec<ImportGroup>, ImportError> {
    let mut groups = plan(root)?;
    if let Some(name) = only.iter().find(|n| !groups.iter().any(|g| &g.name == *n)) {
        return Err(ImportError::UnknownGroup {
            root: root.to_path_buf(),
            name: name.clone(),
        });
    }
    if !only.is_empty() {
        groups.retain(|g| only.contains(&g.name));
    }
    Ok(groups)
}

/// Plans and commits every group (or only the groups named in `only`, when it is not empty); returns the committed
/// runs in plan order. Unknown names in `only` are an error before anything is written.
pub fn import_tree(
    store: &RunStore,
    campaign: &str,
    root: &Path,
    only: &[String],
    key: &SigningKey,
    tool: &ToolInfo,
    argv: &[String],
) -> Result<Vec<(ImportGroup, CommittedRun)>, ImportError> {
    Ok(import_tree_once(store, campaign, root, only, key, tool, argv, true)?.imported)
}
