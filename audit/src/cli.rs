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

/// `--rows` of `data encode` and `train`, one meaning for both: `START:END` (rows START up to END, END excluded) or
/// a count `N`, the same as `0:N`. Returns (start, end).
pub fn parse_rows(s: &str) -> Result<(usize, usize), String> {
    let bad = || {
        format!(
            "--rows {s:?}: use START:END (rows START up to END, END excluded, for example 0:1000) or a count N (the \
             first N rows, the same as 0:N)"
        )
    };
    let (start, end) = match s.split_once(':') {
        Some((a, b)) => (
            a.trim().parse::<usize>().map_err(|_| bad())?,
            b.trim().parse::<usize>().map_err(|_| bad())?,
        ),
        None => (0, s.trim().parse::<usize>().map_err(|_| bad())?),
    };
    if start >= end {
        return Err(format!(
            "{}: the range is empty (START must be below END)",
            bad()
        ));
    }
    Ok((start, end))
}

/// `path` relative to the current directory when it is below it, for shorter messages.
pub fn display_path(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument of every (sub)command, hidden ones excepted, with no help text: "command --name" strings.
    fn blank_helps(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.is_hide_set() || matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            let has_help = arg
                .get_help()
                .or(arg.get_long_help())
                .is_some_and(|h| !h.to_string().trim().is_empty());
            if !has_help {
                let name = arg
                    .get_long()
                    .map(|l| format!("--{l}"))
                    .unwrap_or_else(|| arg.get_id().to_string());
                out.push(format!("{path} {name}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                out.push(format!("{sub_path} (the subcommand itself)"));
            }
            blank_helps(sub, &sub_path, out);
        }
    }

    #[test]
    fn rows_is_a_range_or_a_leading_count() {
        assert_eq!(super::parse_rows("0:10"), Ok((0, 10)));
        assert_eq!(super::parse_rows("5:7"), Ok((5, 7)));
        assert_eq!(super::parse_rows("100"), Ok((0, 100)));
        for bad in ["", "a:b", "3:", ":3", "1:2:3", "-1:4", "x"] {
            let e = super::parse_rows(bad).unwrap_err();
            assert!(
                e.contains("use START:END") && e.contains("a count N"),
                "{bad}: {e}"
            );
        }
        for empty in ["4:4", "5:2", "0"] {
            let e = super::parse_rows(empty).unwrap_err();
            assert!(e.contains("the range is empty"), "{empty}: {e}");
        }
    }

    #[test]
    fn every_option_of_every_subcommand_has_help_text() {
        let cmd = crate::Cli::command();
        let mut blank = Vec::new();
        blank_helps(&cmd, "husai-audit", &mut blank);
        assert!(
            blank.is_empty(),
            "options without help text:\n  {}",
            blank.join("\n  ")
        );
    }

    #[test]
    fn the_exit_code_contract_is_in_the_top_level_help() {
        let help = crate::Cli::command().render_long_help().to_string();
        for line in [
            "0 everything checked passed",
            "1 a verification, gate or claim failure",
            "2 a usage or I/O error",
        ] {
            assert!(help.contains(line), "{line:?} missing from --help:\n{help}");
        }
    }
}
