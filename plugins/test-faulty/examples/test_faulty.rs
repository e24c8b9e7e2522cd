//! A deliberately faulty plugin. Its request config (`mode`, or the environment variable `HUSAI_FAULTY_MODE` when
//! the config has no `mode`) picks how it misbehaves, so the host's tests can prove that a plugin failure never
//! takes the host down and never leaves a signed run behind:
//!
//! - `{"mode": "ok"}`: writes `out.txt` into the output directory and succeeds (the control case);
//! - `"error"`: returns a plugin error;
//! - `"panic"`: panics inside `run`;
//! - `"abort"`: calls `std::process::abort` (SIGABRT);
//! - `"segfault"`: writes to an unmapped address (SIGSEGV);
//! - `"exit"`: calls `std::process::exit(3)` without reporting a result;
//! - `"stdout"`: prints to stdout (which the host's protocol must survive), then succeeds like `"ok"`;
//! - `"hang"`: never returns (for the host's timeout, and for killing the host under it);
//! - `"wait-stop"`: waits until [`Progress::stop_requested`] (SIGINT/SIGTERM reached the child), then succeeds with
//!   `"stopped": true` (for the host's signal forwarding).
//!
//! Every failing mode first writes a file into the output directory, so a test can check that the host discarded
//! the partial output.

use husai_plugin_api::{
    Capability, Description, Plugin, PluginError, PluginKind, Progress, RunRequest,
};
use serde_json::json;

struct Faulty;

const MODES: [&str; 9] = [
    "ok",
    "error",
    "panic",
    "abort",
    "segfault",
    "exit",
    "stdout",
    "hang",
    "wait-stop",
];

impl Plugin for Faulty {
    fn describe() -> Description {
        Description {
            name: "test-faulty".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Trainer,
            architectures: vec!["faulty".into()],
            evals: vec![],
            config_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {"mode": {"enum": MODES}}
            }),
            capabilities: vec![Capability::Cpu],
        }
    }

    fn run(
        request: &RunRequest,
        progress: &mut Progress,
    ) -> Result<serde_json::Value, PluginError> {
        // `config.mode` when the caller controls the config; otherwise HUSAI_FAULTY_MODE, so that commands with a fixed
        // config shape (`husai-audit train`) can drive the same failures end to end.
        let env_mode = std::env::var("HUSAI_FAULTY_MODE").ok();
        let mode = match request.config.get("mode").and_then(|m| m.as_str()) {
            Some(m) => m,
            None => env_mode.as_deref().ok_or_else(|| {
                PluginError::invalid_config(format!(
                    "set config.mode or HUSAI_FAULTY_MODE to one of {MODES:?}"
                ))
            })?,
        };
        progress.report(0, 2, "starting");
        std::fs::write(request.output_dir.join("out.txt"), format!("mode {mode}\n"))
            .map_err(|e| PluginError::output(format!("cannot write out.txt: {e}")))?;
        progress.report(1, 2, "wrote out.txt");
        match mode {
            "ok" => {}
            "stdout" => println!("stray text on stdout that is not protocol JSON"),
            "error" => return Err(PluginError::failed("the faulty plugin failed on purpose")),
            "panic" => panic!("the faulty plugin panicked on purpose"),
            "abort" => {
                eprintln!("faulty plugin: aborting on purpose");
                std::process::abort()
            }
            "segfault" => {
                eprintln!("faulty plugin: writing to address 8 on purpose");
                // SAFETY: not safe at all; address 8 is never mapped, so this store raises SIGSEGV, which is the
                // point. A non-null address avoids debug builds' null-pointer check turning it into a panic.
                unsafe { std::ptr::write_volatile(std::ptr::without_provenance_mut::<u8>(8), 1) };
            }
            "exit" => std::process::exit(3),
            "hang" => {
                eprintln!("faulty plugin: hanging on purpose");
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
            "wait-stop" => {
                eprintln!("faulty plugin: waiting for a stop request");
                while !progress.stop_requested() {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                eprintln!("faulty plugin: stop requested, returning");
                progress.report(2, 2, "stopped");
                return Ok(json!({"mode": mode, "stopped": true, "outputs": ["out.txt"]}));
            }
            other => {
                return Err(PluginError::invalid_config(format!(
                    "config.mode {other:?} is not one of {MODES:?}"
                )));
            }
        }
        progress.report(2, 2, "done");
        Ok(json!({"mode": mode, "outputs": ["out.txt"]}))
    }
}

husai_plugin_api::export_plugin!(Faulty);
