//! `husai-audit plugins`: list the plugins in the search path; and the hidden `__plugin-child` subcommand in
//! which husai-audit loads and runs one plugin on behalf of a parent husai-audit.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use husai_core::plugin::{self, PluginHost};
use serde_json::json;

use crate::cli;

/// List the plugins found in --plugin-dir, HUSAI_PLUGIN_PATH and the directory of this executable.
///
/// Each plugin is loaded in a child process and asked to describe itself; a library that cannot be loaded is
/// listed with the reason. The sha256 is the one a training run records for the plugin.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to search first (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    plugin_dirs: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<PluginsCommand>,
}

#[derive(Debug, clap::Subcommand)]
enum PluginsCommand {
    Show(ShowArgs),
}

/// Print every option of one plugin's config, from the schema it publishes: type, default, range, description.
///
/// These are the keys `train --config FILE` and `--set KEY=VALUE` accept (nested keys dotted).
#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The plugin's name (as `husai-audit plugins` lists it).
    name: String,
}

/// An explicitly named plugin directory must exist (the default search path may name ones that do not).
pub fn check_plugin_dirs(dirs: &[PathBuf]) -> anyhow::Result<()> {
    for d in dirs {
        if !d.is_dir() {
            anyhow::bail!("--plugin-dir {} is not a directory", d.display());
        }
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    check_plugin_dirs(&args.plugin_dirs)?;
    let host = PluginHost::for_current_exe(&args.plugin_dirs)?;
    if let Some(PluginsCommand::Show(show)) = &args.command {
        return show_plugin(&host, &show.name, args.json);
    }
    let listed = host.list();
    if args.json {
        let items: Vec<serde_json::Value> = listed
            .iter()
            .map(|(path, r)| match r {
                Ok(p) => json!({
                    "name": p.description.name,
                    "version": p.description.version,
                    "kind": p.description.kind,
                    "architectures": p.description.architectures,
                    "evals": p.description.evals,
                    "capabilities": p.description.capabilities,
                    "api_version": p.api_version,
                    "library_path": p.library_path,
                    "library_sha256": p.library_sha256,
                }),
                Err(e) => json!({"library_path": path, "error": e.to_string()}),
            })
            .collect();
        let dirs: Vec<String> = host
            .search()
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"searched": dirs, "plugins": items}))?
        );
        return Ok(cli::EXIT_OK);
    }
    if listed.is_empty() {
        let dirs: Vec<String> = host
            .search()
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        println!(
            "no plugins found (searched: {}); build them with `cargo build --workspace` or pass --plugin-dir",
            dirs.join(", ")
        );
        return Ok(cli::EXIT_OK);
    }
    for (path, r) in &listed {
        match r {
            Ok(p) => {
                let d = &p.description;
                let list = |v: &[String]| {
                    if v.is_empty() {
                        "-".to_owned()
                    } else {
                        v.join(", ")
                    }
                };
                let caps: Vec<String> = d.capabilities.iter().map(ToString::to_string).collect();
                println!(
                    "{} {} ({}, plugin API {})",
                    d.name, d.version, d.kind, p.api_version
                );
                if !d.architectures.is_empty() || d.kind == plugin::PluginKind::Trainer {
                    println!("  architectures: {}", list(&d.architectures));
                }
                if !d.evals.is_empty() {
                    println!("  evals:         {}", list(&d.evals));
                }
                println!("  capabilities:  {}", list(&caps));
                println!("  library:       {}", p.library_path.display());
                println!("  sha256:        {}", p.library_sha256);
            }
            Err(e) => {
                println!("unusable library {}", path.display());
                for line in e.to_string().lines() {
                    println!("  {line}");
                }
            }
        }
    }
    Ok(cli::EXIT_OK)
}

fn show_plugin(host: &PluginHost, name: &str, json_out: bool) -> anyhow::Result<ExitCode> {
    let p = host.find(name)?;
    let d = &p.description;
    let options = husai_core::pipeline::config::options(&d.config_schema);
    if json_out {
        let items: Vec<serde_json::Value> = options
            .iter()
            .map(|o| {
                json!({"key": o.key, "type": o.kind, "default": o.default, "range": o.range,
                       "description": o.description, "required": o.required})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "name": d.name, "version": d.version, "kind": d.kind, "library_path": p.library_path,
                "library_sha256": p.library_sha256, "options": items, "config_schema": d.config_schema,
            }))?
        );
        return Ok(cli::EXIT_OK);
    }
    println!(
        "{} {} ({}, {})",
        d.name,
        d.version,
        d.kind,
        p.library_path.display()
    );
    if options.is_empty() {
        println!("  (its schema lists no options)");
    }
    for o in &options {
        let default = match (&o.default, o.required) {
            (_, true) => "required".to_owned(),
            (Some(v), false) => format!("default {v}"),
            (None, false) => "no default".to_owned(),
        };
        let range = if o.range.is_empty() {
            String::new()
        } else {
            format!(", {}", o.range)
        };
        println!("  {}  ({}{range}; {default})", o.key, o.kind);
        if !o.description.is_empty() {
            println!("      {}", o.description);
        }
    }
    Ok(cli::EXIT_OK)
}

/// Internal: run as a plugin child (`describe LIB` or `run LIB REQUEST|-`). Not for direct use.
#[derive(Debug, clap::Args)]
pub struct ChildArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

pub fn run_child(args: ChildArgs) -> ExitCode {
    let code = plugin::child_main(&args.args);
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}
