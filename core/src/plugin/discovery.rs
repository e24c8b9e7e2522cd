//! Where plugin libraries are looked for, in order: each `--plugin-dir`, then each directory in
//! `HUSAI_PLUGIN_PATH` (`:`-separated, like `PATH`), then the directory holding the running executable, so that
//! `cargo build --release --workspace && target/release/husai-audit ...` finds the plugins cargo built beside it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment variable holding extra plugin directories.
pub const PLUGIN_PATH_ENV: &str = "HUSAI_PLUGIN_PATH";

/// File name prefix and suffix of a plugin library (`libhusai_<crate>.so` on Linux).
const LIB_PREFIX: &str = "libhusai_";
const LIB_SUFFIX: &str = std::env::consts::DLL_SUFFIX;

/// An ordered list of directories to search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSearch {
    dirs: Vec<PathBuf>,
}

impl PluginSearch {
    /// The search path from explicit directories, the value of [`PLUGIN_PATH_ENV`] and the executable's directory.
    /// Empty entries are skipped; a directory that appears twice is searched once, at its first position.
    pub fn new(cli_dirs: &[PathBuf], env_value: Option<&OsString>, exe_dir: Option<&Path>) -> Self {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let env_dirs = env_value.map(std::env::split_paths).into_iter().flatten();
        let all = cli_dirs
            .iter()
            .cloned()
            .chain(env_dirs)
            .chain(exe_dir.map(Path::to_path_buf));
        for dir in all {
            if dir.as_os_str().is_empty() || dirs.contains(&dir) {
                continue;
            }
            dirs.push(dir);
        }
        PluginSearch { dirs }
    }

    /// The search path of this process: `cli_dirs`, then `HUSAI_PLUGIN_PATH`, then the executable's directory.
    pub fn from_env(cli_dirs: &[PathBuf]) -> Self {
        let env_value = std::env::var_os(PLUGIN_PATH_ENV);
        let exe = std::env::current_exe().ok();
        let exe_dir = exe.as_deref().and_then(Path::parent);
        Self::new(cli_dirs, env_value.as_ref(), exe_dir)
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Every plugin library file in the search path, in search order. Within a directory, files are sorted by name.
    /// A file name found in an earlier directory hides the same name later (as `PATH` does), so a plugin in
    /// `--plugin-dir` overrides the one built beside the executable. Unreadable or missing directories are skipped:
    /// the default path names directories that need not exist.
    pub fn candidates(&self) -> Vec<PathBuf> {
        let mut seen_names: Vec<OsString> = Vec::new();
        let mut out = Vec::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| is_plugin_file_name(p) && p.is_file())
                .collect();
            files.sort();
            for file in files {
                let name = file.file_name().map(OsString::from).unwrap_or_default();
                if seen_names.contains(&name) {
                    continue;
                }
                seen_names.push(name);
                out.push(file);
            }
        }
        out
    }
}

fn is_plugin_file_name(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        n.starts_with(LIB_PREFIX)
            && n.ends_with(LIB_SUFFIX)
            && n.len() > LIB_PREFIX.len() + LIB_SUFFIX.len()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn order_is_cli_then_env_then_exe_dir_without_duplicates() {
        let env = std::env::join_paths(["/e1", "", "/cli", "/e2"]).unwrap();
        let search = PluginSearch::new(
            &[PathBuf::from("/cli")],
            Some(&env),
            Some(Path::new("/exe")),
        );
        let want: Vec<PathBuf> = ["/cli", "/e1", "/e2", "/exe"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(search.dirs(), want.as_slice());
    }

    #[test]
    fn candidates_are_plugin_libraries_and_earlier_dirs_win() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let so = LIB_SUFFIX;
        touch(&a.path().join(format!("libhusai_b{so}")));
        touch(&b.path().join(format!("libhusai_b{so}")));
        touch(&b.path().join(format!("libhusai_a{so}")));
        touch(&b.path().join(format!("libother{so}")));
        touch(&b.path().join("libhusai_c.rlib"));
        touch(&b.path().join(format!("libhusai_{so}")));
        std::fs::create_dir(b.path().join(format!("libhusai_dir{so}"))).unwrap();
        let search = PluginSearch::new(
            &[
                a.path().to_path_buf(),
                b.path().to_path_buf(),
                PathBuf::from("/does/not/exist"),
            ],
            None,
            None,
        );
        assert_eq!(
            search.candidates(),
            vec![
                a.path().join(format!("libhusai_b{so}")),
                b.path().join(format!("libhusai_a{so}"))
            ]
        );
    }
}
