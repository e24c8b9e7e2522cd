//! The child side: what `husai-audit __plugin-child ...` runs.
//!
//! `describe <library>` loads the library and reports its description; `run <library> <request.json | ->` loads
//! it, runs the request (read from the file, or from stdin for `-`) and reports progress and the outcome. Exit
//! status: 0 success, 1 the library could not be loaded or the plugin failed (reported on the protocol stream
//! first), 2 the child itself was misused. A crash shows up to the host as a signal instead.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use husai_plugin_api::RunRequest;
use husai_plugin_api::host;

use super::protocol::ChildMessage;

/// Runs the child and returns its exit status. `args` are the arguments after the hidden subcommand.
pub fn child_main(args: &[OsString]) -> i32 {
    let mut out = match take_stdout_for_protocol() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("husai plugin child: cannot set up the protocol stream: {e}");
            return 2;
        }
    };
    let args: Vec<&str> = match args.iter().map(|a| a.to_str()).collect::<Option<Vec<_>>>() {
        Some(a) => a,
        None => return usage(&mut out, "arguments must be valid UTF-8"),
    };
    match args.as_slice() {
        ["describe", lib] => describe(&mut out, Path::new(lib)),
        ["run", lib, request] => run(&mut out, Path::new(lib), request),
        _ => usage(
            &mut out,
            "expected `describe <library>` or `run <library> <request.json|->` (this subcommand is internal)",
        ),
    }
}

fn send(out: &mut File, msg: &ChildMessage) {
    // One write per line, so the host never sees half a message. If the host is gone there is nobody to tell.
    let _ = out.write_all(msg.to_line().as_bytes());
}

fn usage(out: &mut File, message: &str) -> i32 {
    send(
        out,
        &ChildMessage::Usage {
            message: message.to_owned(),
        },
    );
    2
}

fn describe(out: &mut File, lib: &Path) -> i32 {
    let plugin = match host::load(lib) {
        Ok(p) => p,
        Err(e) => {
            send(
                out,
                &ChildMessage::LoadFailed {
                    message: e.to_string(),
                },
            );
            return 1;
        }
    };
    match plugin.describe() {
        Ok(description) => {
            send(
                out,
                &ChildMessage::Described {
                    api_version: plugin.api_version(),
                    description,
                },
            );
            0
        }
        Err(error) => {
            send(out, &ChildMessage::PluginFailed { error });
            1
        }
    }
}

fn run(out: &mut File, lib: &Path, request_arg: &str) -> i32 {
    let mut text = String::new();
    let read = if request_arg == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(request_arg).map(|t| text = t)
    };
    if let Err(e) = read {
        return usage(
            out,
            &format!("cannot read the run request {request_arg}: {e}"),
        );
    }
    let request: RunRequest = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            return usage(
                out,
                &format!("the run request {request_arg} is not valid request JSON: {e}"),
            );
        }
    };
    let plugin = match host::load(lib) {
        Ok(p) => p,
        Err(e) => {
            send(
                out,
                &ChildMessage::LoadFailed {
                    message: e.to_string(),
                },
            );
            return 1;
        }
    };
    let mut progress_out = match out.try_clone() {
        Ok(f) => f,
        Err(e) => return usage(out, &format!("cannot duplicate the protocol stream: {e}")),
    };
    let outcome = plugin.run(&request, &mut |event| {
        send(&mut progress_out, &ChildMessage::Progress(event))
    });
    match outcome {
        Ok(result) => {
            send(out, &ChildMessage::Finished { result });
            0
        }
        Err(error) => {
            send(out, &ChildMessage::PluginFailed { error });
            1
        }
    }
}

/// Moves the protocol stream off file descriptor 1 and points fd 1 at stderr, so that anything the plugin prints
/// (a stray `println!`) lands in the stderr the host keeps for error reports instead of corrupting the protocol.
#[cfg(unix)]
fn take_stdout_for_protocol() -> std::io::Result<File> {
    use std::os::fd::FromRawFd;
    std::io::stdout().flush()?;
    // SAFETY: plain descriptor calls on this process's own standard streams. F_DUPFD_CLOEXEC keeps the protocol
    // descriptor out of any process the plugin might spawn.
    let proto = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    if proto < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above; fd 2 is open (the host always gives the child a stderr pipe).
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `proto` is a fresh descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(proto) })
}

#[cfg(not(unix))]
fn take_stdout_for_protocol() -> std::io::Result<File> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the plugin child needs a Unix platform (descriptor redirection)",
    ))
}
