//! `husai-audit pin`: write keys/plugins.lock, pinning plugin libraries by sha256.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use husai_core::plugin::PluginHost;
use husai_core::plugin::pin::{PinnedPlugin, PluginLock};

use crate::cli;

/// Pin the plugins found in the search path (or only those named) in DIR/plugins.lock.
///
/// Each library is described in a child process and recorded by name, version and the sha256 of
/// its file. Existing pins for other plugins or versions are kept. Once the lock exists, `train`
/// runs only pinned libraries (HUSAI_ALLOW_UNPINNED_PLUGINS=1 overrides), and `verify` reports runs
/// made by a library the lock does not pin: an error when the lock pins that name and version to
/// another library, a warning when it does not list them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plugin names to pin [default: every plugin found].
    names: Vec<String>,
    /// Keys directory: the lock is written beside its trust-policy.json.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Directory to search first (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::plugins::check_plugin_dirs(&args.plugin_dirs)?;
    if !args.keys.is_dir() {
        bail!(
            "keys directory {} does not exist; pass --keys DIR (the directory holding trust-policy.json)",
            args.keys.display()
        );
    }
    let host = PluginHost::for_current_exe(&args.plugin_dirs)?;
    let mut lock = PluginLock::load(&args.keys)?.unwrap_or_else(|| PluginLock::empty(&args.keys));
    let mut pinned = Vec::new();
    for (path, described) in host.list() {
        let p = match described {
            Ok(p) => p,
            Err(e) if args.names.is_empty() => {
                eprintln!("warning: not pinned: {}: {e}", path.display());
                continue;
            }
            Err(_) => continue,
        };
        if !args.names.is_empty() && !args.names.contains(&p.description.name) {
            continue;
        }
        // The first library in search order wins, as it would at run time.
        if pinned.contains(&p.description.name) {
            continue;
        }
        println!(
            "pinned {} {}  sha256 {}  ({})",
            p.description.name,
            p.description.version,
            p.library_sha256,
            cli::display_path(&p.library_path).display()
        );
        pinned.push(p.description.name.clone());
        lock.pin(PinnedPlugin {
            name: p.description.name,
            version: p.description.version,
            library_sha256: p.library_sha256,
        });
    }
    if let Some(missing) = args.names.iter().find(|n| !pinned.contains(n)) {
        bail!("no loadable plugin named {missing:?} in the search path; nothing was written");
    }
    if pinned.is_empty() {
        bail!("no loadable plugin in the search path; nothing was written");
    }
    lock.write()?;
    println!("wrote {}", lock.path().display());
    Ok(cli::EXIT_OK)
}
