//! Pieces every subcommand shares: exit codes, where keys and policies come from, the tool's
//! identity, progress bars.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use husai_core::keys::SigningKey;
use husai_core::manifest::ToolInfo;
use husai_core::pipeline::Pipeline;
use husai_core::store::RunStore;
use husai_core::trust::TrustPolicy;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Everything checked out.
pub const EXIT_OK: ExitCode = ExitCode::SUCCESS;

/// A verification or gate failure.
pub fn exit_fail() -> ExitCode {
    ExitCode::from(1)
}

/// A usage or I/O error.
pub fn exit_usage() -> ExitCode {
    ExitCode::from(2)
}

/// The signing key named by `--key` or `HUSAI_SIGNING_KEY` (clap fills `path` from either).
pub fn signing_key(path: Option<&Path>) -> anyhow::Result<SigningKey> {
    let path = path.ok_or_else(|| {
        anyhow!(
            "no signing key: pass --key FILE or set HUSAI_SIGNING_KEY to an ed25519 private key \
             in PKCS#8 PEM form (make one with `husai-audit keygen NAME`)"
        )
    })?;
    Ok(SigningKey::load_for_signing(
        path,
        ALLOW_READABLE_KEY.load(std::sync::atomic::Ordering::Relaxed),
    )?)
}

/// Set from the global `--allow-readable-key` flag (or HUSAI_ALLOW_READABLE_KEY): accept a
/// signing key file that group or others can read.
pub static ALLOW_READABLE_KEY: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The trust policy in `dir` (default `./keys`).
pub fn trust_policy(dir: &Path) -> anyhow::Result<TrustPolicy> {
    TrustPolicy::load(dir).with_context(|| {
        format!(
            "cannot use the trust policy in {} (pass --keys DIR to use another)",
            dir.display()
        )
    })
}

/// husai-audit's own identity, as recorded in manifests.
pub fn tool_info() -> ToolInfo {
    ToolInfo {
        name: "husai-audit".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: option_env!("HUSAI_GIT_COMMIT").map(str::to_string),
        git_dirty: option_env!("HUSAI_GIT_DIRTY").map(|d| d == "true"),
    }
}

/// A byte-count progress bar on stderr, hidden when stderr is not a terminal.
pub fn bytes_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), draw_target());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Whether stderr is a terminal (bars then; plain log lines or nothing otherwise).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// The pipeline for commands that sign runs: the store at `results`, the key, the trust policy in `keys` (read when
/// an input turns out to be inside a run), and this tool's identity.
pub fn pipeline(key: SigningKey, results: &Path, keys: &Path) -> anyhow::Result<Pipeline> {
    let store = RunStore::open(results)?;
    Ok(Pipeline::new(store, key, keys, tool_info()))
}

/// Progress goes to stderr on a terminal and nowhere otherwise (logs and pipes stay clean).
pub fn draw_target() -> ProgressDrawTarget {
    if stderr_is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// Human-readable byte count.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `path` relative to the current directory when it is below it, for shorter messages.
pub fn display_path(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}
