//! The parent side: spawn the child, read its protocol stream, and turn whatever happened into a result.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use sha2::{Digest, Sha256};

use husai_plugin_api::{Description, PluginError, ProgressEvent, RunRequest};

use super::CHILD_SUBCOMMAND;
use super::discovery::PluginSearch;
use super::protocol::ChildMessage;

/// How many of the child's last stderr lines an error report carries.
const STDERR_TAIL_LINES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum PluginHostError {
    #[error("cannot start the plugin child process {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read plugin library {path}: {source}")]
    ReadLibrary {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The message comes from the loader and names the file (and both versions, for a version mismatch).
    #[error("{message}")]
    Load { path: PathBuf, message: String },
    #[error(
        "no plugin named {name:?} in the plugin search path ({searched}); plugins found: {available}. \
             Build it (cargo build --workspace) or point --plugin-dir / HUSAI_PLUGIN_PATH at its directory"
    )]
    NotFound {
        name: String,
        searched: String,
        available: String,
    },
    #[error("plugin {name} ({path}) {how}{}", stderr_report(.stderr_tail))]
    Crashed {
        name: String,
        path: PathBuf,
        how: String,
        stderr_tail: Vec<String>,
    },
    #[error("plugin {name} ({path}) failed: {error}")]
    Failed {
        name: String,
        path: PathBuf,
        error: PluginError,
    },
    #[error(
        "plugin {name} ({path}) ran longer than the {seconds} s limit and was killed; no run was recorded (raise --timeout if the work needs longer){}",
        stderr_report(.stderr_tail)
    )]
    TimedOut {
        name: String,
        path: PathBuf,
        seconds: f64,
        stderr_tail: Vec<String>,
    },
    #[error("plugin {name} ({path}) broke the host protocol: {detail}{}", stderr_report(.stderr_tail))]
    Protocol {
        name: String,
        path: PathBuf,
        detail: String,
        stderr_tail: Vec<String>,
    },
    #[error("the config for plugin {name} ({path}) does not match the plugin's config schema: {}", .errors.join("; "))]
    InvalidConfig {
        name: String,
        path: PathBuf,
        errors: Vec<String>,
    },
    #[error("plugin {name} ({path}) publishes a config schema that does not compile: {detail}")]
    BadSchema {
        name: String,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "plugin library {path} changed after it was described (sha256 {before}, now {after}); run the command again"
    )]
    LibraryChanged {
        path: PathBuf,
        before: String,
        after: String,
    },
}

fn stderr_report(tail: &[String]) -> String {
    if tail.is_empty() {
        return "; it wrote nothing to stderr".to_owned();
    }
    let mut s = format!("; last {} stderr line(s):", tail.len());
    for line in tail {
        s.push_str("\n  | ");
        s.push_str(line);
    }
    s
}

/// A plugin library that loaded and described itself, pinned by the sha256 of its file.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribedPlugin {
    pub description: Description,
    pub api_version: u32,
    /// Absolute path of the library file.
    pub library_path: PathBuf,
    /// Lowercase hex sha256 of the library file, computed by the host before the child loaded it.
    pub library_sha256: String,
}

/// Describes and runs plugins through child processes of `child_exe` (the `husai-audit` binary).
#[derive(Debug, Clone)]
pub struct PluginHost {
    child_exe: PathBuf,
    search: PluginSearch,
    /// Wall-clock limit for one child; `None` waits as long as the plugin runs.
    timeout: Option<Duration>,
}

/// What the child said, and how it ended.
struct ChildOutcome {
    messages: Vec<ChildMessage>,
    status: ExitStatus,
    stderr_tail: Vec<String>,
    bad_lines: Vec<String>,
}

impl PluginHost {
    pub fn new(child_exe: PathBuf, search: PluginSearch) -> Self {
        PluginHost {
            child_exe,
            search,
            timeout: None,
        }
    }

    /// Kill any child that runs longer than `limit` (a hung plugin would otherwise hang the host).
    pub fn with_timeout(mut self, limit: Option<Duration>) -> Self {
        self.timeout = limit;
        self
    }

    /// A host that re-executes the running binary, with the search path of this process (see [`PluginSearch`]).
    pub fn for_current_exe(cli_dirs: &[PathBuf]) -> Result<Self, PluginHostError> {
        let exe = std::env::current_exe().map_err(|source| PluginHostError::Spawn {
            exe: PathBuf::from("<current executable>"),
            source,
        })?;
        Ok(PluginHost::new(exe, PluginSearch::from_env(cli_dirs)))
    }

    pub fn search(&self) -> &PluginSearch {
        &self.search
    }

    /// Describes every plugin library in the search path, each in its own child; one entry per file, in search
    /// order, so a broken library is reported without hiding the others.
    pub fn list(&self) -> Vec<(PathBuf, Result<DescribedPlugin, PluginHostError>)> {
        self.search
            .candidates()
            .into_iter()
            .map(|p| {
                let r = self.describe(&p);
                (p, r)
            })
            .collect()
    }

    /// Finds the first plugin in search order whose description has this name.
    pub fn find(&self, name: &str) -> Result<DescribedPlugin, PluginHostError> {
        let mut available = Vec::new();
        for (path, described) in self.list() {
            match described {
                Ok(p) if p.description.name == name => return Ok(p),
                Ok(p) => available.push(format!("{} ({})", p.description.name, path.display())),
                Err(_) => available.push(format!("<unloadable> ({})", path.display())),
            }
        }
        let searched = self
            .search
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(PluginHostError::NotFound {
            name: name.to_owned(),
            searched: if searched.is_empty() {
                "no directories".to_owned()
            } else {
                searched
            },
            available: if available.is_empty() {
                "none".to_owned()
            } else {
                available.join(", ")
            },
        })
    }

    /// Loads `library` in a child and asks it to describe itself.
    pub fn describe(&self, library: &Path) -> Result<DescribedPlugin, PluginHostError> {
        let library_path = std::path::absolute(library).unwrap_or_else(|_| library.to_path_buf());
        if !library_path.exists() {
            // Let the loader's own message speak (it names the file and the fix); no child needed.
            return Err(PluginHostError::Load {
                path: library_path.clone(),
                message: husai_plugin_api::host::LoadError::Missing { path: library_path }
                    .to_string(),
            });
        }
        let library_sha256 = sha256_file(&library_path)?;
        let args = [
            OsString::from("describe"),
            library_path.clone().into_os_string(),
        ];
        let label = file_label(&library_path);
        let outcome = self.spawn(&args, None, &label, &library_path, &mut |_| {})?;
        for msg in &outcome.messages {
            match msg {
                ChildMessage::Described {
                    api_version,
                    description,
                } => {
                    return Ok(DescribedPlugin {
                        description: description.clone(),
                        api_version: *api_version,
                        library_path,
                        library_sha256,
                    });
                }
                ChildMessage::LoadFailed { message } => {
                    return Err(PluginHostError::Load {
                        path: library_path,
                        message: message.clone(),
                    });
                }
                ChildMessage::PluginFailed { error } => {
                    return Err(PluginHostError::Failed {
                        name: label,
                        path: library_path,
                        error: error.clone(),
                    });
                }
                _ => {}
            }
        }
        Err(unexplained(
            outcome,
            label,
            library_path,
            "describing itself",
        ))
    }

    /// Runs `request` with `plugin` in a child. `on_progress` sees every progress report as it arrives. On any
    /// failure the caller must discard `request.output_dir` (a run store staging directory does that on drop).
    pub fn run(
        &self,
        plugin: &DescribedPlugin,
        request: &RunRequest,
        on_progress: &mut dyn FnMut(&ProgressEvent),
    ) -> Result<serde_json::Value, PluginHostError> {
        let path = &plugin.library_path;
        let now = sha256_file(path)?;
        if now != plugin.library_sha256 {
            return Err(PluginHostError::LibraryChanged {
                path: path.clone(),
                before: plugin.library_sha256.clone(),
                after: now,
            });
        }
        check_config(plugin, &request.config)?;
        // Serialising a RunRequest (paths and a JSON value) cannot fail.
        let request_json = serde_json::to_vec(request).unwrap_or_default();
        let args = [
            OsString::from("run"),
            path.clone().into_os_string(),
            OsString::from("-"),
        ];
        let name = plugin.description.name.clone();
        // Ctrl-C reaches the whole foreground process group: the child turns it into a stop request and returns an
        // interrupted result, so the host must survive it to sign that result (docs/trainer-contract.md §6).
        let _ignore = IgnoreSigint::new();
        let outcome = self.spawn(&args, Some(&request_json), &name, path, &mut |msg| {
            if let ChildMessage::Progress(event) = msg {
                on_progress(event);
            }
        })?;
        for msg in &outcome.messages {
            match msg {
                ChildMessage::Finished { result } if outcome.status.success() => {
                    return Ok(result.clone());
                }
                ChildMessage::PluginFailed { error } => {
                    return Err(PluginHostError::Failed {
                        name,
                        path: path.clone(),
                        error: error.clone(),
                    });
                }
                ChildMessage::LoadFailed { message } => {
                    return Err(PluginHostError::Load {
                        path: path.clone(),
                        message: message.clone(),
                    });
                }
                _ => {}
            }
        }
        Err(unexplained(outcome, name, path.clone(), "running"))
    }

    /// Starts the child, feeds it `stdin`, collects its protocol messages (passing each to `on_message` as it
    /// arrives) and the tail of its stderr, and waits for it.
    fn spawn(
        &self,
        args: &[OsString],
        stdin: Option<&[u8]>,
        name: &str,
        library: &Path,
        on_message: &mut dyn FnMut(&ChildMessage),
    ) -> Result<ChildOutcome, PluginHostError> {
        let mut child = Command::new(&self.child_exe)
            .arg(CHILD_SUBCOMMAND)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| PluginHostError::Spawn {
                exe: self.child_exe.clone(),
                source,
            })?;

        // Feed stdin and drain stderr on their own threads so that neither pipe can fill up and stall the child
        // while this thread reads the protocol stream.
        let feeder = match (stdin, child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => {
                let bytes = bytes.to_vec();
                // A child that dies early closes the pipe; its exit status then explains what happened.
                Some(std::thread::spawn(move || {
                    let _ = pipe.write_all(&bytes);
                }))
            }
            _ => None,
        };
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
        let stderr_thread = child.stderr.take().map(|pipe| {
            let tail = Arc::clone(&tail);
            std::thread::spawn(move || collect_tail(pipe, &tail))
        });

        // The watchdog kills a child that outlives the limit. It kills through the shared `Child`, which knows
        // whether the process was already reaped, so it can never signal a recycled pid.
        let stdout = child.stdout.take();
        let child = Arc::new(Mutex::new(child));
        let timed_out = Arc::new(AtomicBool::new(false));
        let (finished, finished_rx) = mpsc::channel::<()>();
        let watchdog = self.timeout.map(|limit| {
            let child = Arc::clone(&child);
            let timed_out = Arc::clone(&timed_out);
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = finished_rx.recv_timeout(limit) {
                    timed_out.store(true, Ordering::SeqCst);
                    if let Ok(mut c) = child.lock() {
                        let _ = c.kill();
                    }
                }
            })
        });

        let mut messages = Vec::new();
        let mut bad_lines = Vec::new();
        if let Some(stdout) = stdout {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<ChildMessage>(&line) {
                    Ok(msg) => {
                        on_message(&msg);
                        if !matches!(msg, ChildMessage::Progress(_)) {
                            messages.push(msg);
                        }
                    }
                    Err(_) => bad_lines.push(String::from_utf8_lossy(&line).into_owned()),
                }
            }
        }
        // Poll rather than block in wait(), so that the watchdog can still take the lock to kill a child that
        // closed its stdout but did not exit.
        let status = loop {
            let polled = child.lock().map(|mut c| c.try_wait());
            match polled {
                Ok(Ok(Some(status))) => break status,
                Ok(Ok(None)) => std::thread::sleep(Duration::from_millis(5)),
                Ok(Err(source)) => {
                    return Err(PluginHostError::Protocol {
                        name: name.to_owned(),
                        path: library.to_owned(),
                        detail: format!("cannot wait for the child process: {source}"),
                        stderr_tail: Vec::new(),
                    });
                }
                Err(_) => {
                    return Err(PluginHostError::Protocol {
                        name: name.to_owned(),
                        path: library.to_owned(),
                        detail: "the watchdog thread panicked".to_owned(),
                        stderr_tail: Vec::new(),
                    });
                }
            }
        };
        drop(finished);
        if let Some(t) = watchdog {
            let _ = t.join();
        }
        if let Some(t) = feeder {
            let _ = t.join();
        }
        if let Some(t) = stderr_thread {
            let _ = t.join();
        }
        let stderr_tail: Vec<String> = tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        if timed_out.load(Ordering::SeqCst) {
            return Err(PluginHostError::TimedOut {
                name: name.to_owned(),
                path: library.to_owned(),
                seconds: self.timeout.map_or(0.0, |t| t.as_secs_f64()),
                stderr_tail,
            });
        }
        Ok(ChildOutcome {
            messages,
            status,
            stderr_tail,
            bad_lines,
        })
    }
}

/// Ignores SIGINT in this process while it lives, restoring the previous disposition on drop. The child is spawned
/// while SIGINT is ignored and inherits that, but the plugin API's export shim installs its own handler in the child
/// before `run`, so the child still sees Ctrl-C as a stop request.
struct IgnoreSigint {
    #[cfg(unix)]
    previous: libc::sighandler_t,
}

impl IgnoreSigint {
    fn new() -> Self {
        #[cfg(unix)]
        {
            // SAFETY: setting a standard disposition (SIG_IGN) for SIGINT; no handler code runs.
            let previous = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
            IgnoreSigint { previous }
        }
        #[cfg(not(unix))]
        IgnoreSigint {}
    }
}

impl Drop for IgnoreSigint {
    fn drop(&mut self) {
        #[cfg(unix)]
        if self.previous != libc::SIG_ERR {
            // SAFETY: restoring the disposition `signal` returned above.
            unsafe { libc::signal(libc::SIGINT, self.previous) };
        }
    }
}

/// Validates `config` against the plugin's published JSON Schema before anything runs, so a bad config is refused
/// with every violation named instead of failing somewhere inside the plugin.
fn check_config(
    plugin: &DescribedPlugin,
    config: &serde_json::Value,
) -> Result<(), PluginHostError> {
    let name = || plugin.description.name.clone();
    let path = || plugin.library_path.clone();
    let validator =
        jsonschema::draft202012::new(&plugin.description.config_schema).map_err(|e| {
            PluginHostError::BadSchema {
                name: name(),
                path: path(),
                detail: e.to_string(),
            }
        })?;
    let errors: Vec<String> = validator
        .iter_errors(config)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                format!("{e}")
            } else {
                format!("{e} (at config{at})")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PluginHostError::InvalidConfig {
            name: name(),
            path: path(),
            errors,
        })
    }
}

/// The child ended without a message that explains the outcome: it crashed, exited early, or talked nonsense.
fn unexplained(outcome: ChildOutcome, name: String, path: PathBuf, doing: &str) -> PluginHostError {
    let ChildOutcome {
        messages,
        status,
        stderr_tail,
        bad_lines,
    } = outcome;
    if let Some(usage) = messages.iter().find_map(|m| match m {
        ChildMessage::Usage { message } => Some(message.clone()),
        _ => None,
    }) {
        return PluginHostError::Protocol {
            name,
            path,
            detail: format!("the child refused its arguments: {usage}"),
            stderr_tail,
        };
    }
    if !status.success() {
        return PluginHostError::Crashed {
            name,
            path,
            how: describe_status(status, doing),
            stderr_tail,
        };
    }
    let detail = if let Some(bad) = bad_lines.first() {
        format!("it wrote a line that is not a protocol message: {bad:?}")
    } else {
        format!("it exited successfully while {doing} but never reported an outcome")
    };
    PluginHostError::Protocol {
        name,
        path,
        detail,
        stderr_tail,
    }
}

fn describe_status(status: ExitStatus, doing: &str) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            return format!(
                "was killed by signal {sig} ({}{core}) while {doing}",
                signal_name(sig)
            );
        }
    }
    match status.code() {
        Some(code) => {
            format!("exited with code {code} while {doing}, without reporting an outcome")
        }
        None => format!("ended abnormally ({status}) while {doing}"),
    }
}

#[cfg(unix)]
fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV, segmentation fault",
        libc::SIGABRT => "SIGABRT, aborted",
        libc::SIGBUS => "SIGBUS, bus error",
        libc::SIGILL => "SIGILL, illegal instruction",
        libc::SIGFPE => "SIGFPE, arithmetic fault",
        libc::SIGKILL => "SIGKILL, killed (out of memory?)",
        libc::SIGTERM => "SIGTERM, terminated",
        libc::SIGINT => "SIGINT, interrupted",
        libc::SIGPIPE => "SIGPIPE, broken pipe",
        libc::SIGTRAP => "SIGTRAP, trace trap",
        _ => "unnamed signal",
    }
}

fn collect_tail(pipe: impl Read, tail: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(pipe).split(b'\n') {
        let Ok(line) = line else { break };
        if let Ok(mut t) = tail.lock() {
            if t.len() == STDERR_TAIL_LINES {
                t.pop_front();
            }
            t.push_back(String::from_utf8_lossy(&line).trim_end().to_owned());
        }
    }
}

/// A name for a library that has not described itself yet: its file name.
fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn sha256_file(path: &Path) -> Result<String, PluginHostError> {
    let bytes = std::fs::read(path).map_err(|source| PluginHostError::ReadLibrary {
        path: path.to_owned(),
        source,
    })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describing_a_missing_library_names_the_file() {
        let host = PluginHost::new(
            PathBuf::from("/nonexistent/husai-audit"),
            PluginSearch::new(&[], None, None),
        );
        let err = host
            .describe(Path::new("/nonexistent/libhusai_x.so"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/libhusai_x.so") && msg.contains("does not exist"),
            "{msg}"
        );
    }

    #[test]
    fn a_missing_child_binary_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libhusai_x.so");
        std::fs::write(&lib, b"not a library").unwrap();
        let host = PluginHost::new(
            dir.path().join("no-such-exe"),
            PluginSearch::new(&[], None, None),
        );
        let msg = host.describe(&lib).unwrap_err().to_string();
        assert!(
            msg.starts_with("cannot start the plugin child process") && msg.contains("no-such-exe"),
            "{msg}"
        );
    }

    #[test]
    fn find_reports_what_it_searched() {
        let dir = tempfile::tempdir().unwrap();
        let host = PluginHost::new(
            PathBuf::from("/bin/false"),
            PluginSearch::new(&[dir.path().to_path_buf()], None, None),
        );
        let msg = host.find("sae-topk").unwrap_err().to_string();
        assert!(msg.contains("no plugin named \"sae-topk\""), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains("plugins found: none"), "{msg}");
    }

    #[test]
    fn stderr_report_shows_lines_or_says_there_were_none() {
        assert_eq!(stderr_report(&[]), "; it wrote nothing to stderr");
        assert_eq!(
            stderr_report(&["a".into(), "b".into()]),
            "; last 2 stderr line(s):\n  | a\n  | b"
        );
    }
}
