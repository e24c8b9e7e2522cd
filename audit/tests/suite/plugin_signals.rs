//! Signals and the plugin host (docs/trainer-contract.md §6): a Ctrl-C to the whole process group stops the plugin
//! after its step and the host survives it; a SIGTERM sent to the host alone reaches the child; a second interrupt
//! kills a child that does not stop; the host's own dispositions come back afterwards; and a host killed with
//! SIGKILL takes its child with it (issue #8 item 10: the child used to keep running and writing into the dead
//! staging directory).
//!
//! The host under test is this test binary itself, re-executed to run only [`host_process_entry`] in a process
//! group of its own, so that signals sent to it (or to its group) cannot reach the test runner.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use husai_core::plugin::{PluginHost, PluginSearch, RunRequest};
use serde_json::{Value, json};

/// Set in a re-executed copy of this binary: the faulty plugin's mode for the host process to run.
const ROLE_MODE: &str = "HUSAI_TEST_HOST_MODE";
/// The directory where the host process writes `ready` (the child is running) and `outcome.json`.
const ROLE_OUT: &str = "HUSAI_TEST_HOST_OUT";
/// How many runs the host process makes at once (default 1).
const ROLE_RUNS: &str = "HUSAI_TEST_HOST_RUNS";
/// When set, the host process ignores SIGINT before it runs anything.
const ROLE_IGNORE_INT: &str = "HUSAI_TEST_HOST_IGNORE_INT";

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_husai-audit"))
}

fn plugin_dir() -> PathBuf {
    common::plugin_dir()
}

fn faulty_lib() -> PathBuf {
    plugin_dir().join(format!(
        "libhusai_plugin_faulty{}",
        std::env::consts::DLL_SUFFIX
    ))
}

static NOTED: AtomicBool = AtomicBool::new(false);

extern "C" fn note_sigterm(_: libc::c_int) {
    NOTED.store(true, Ordering::SeqCst);
}

/// The handler address installed for `signal` (SIG_DFL is 0).
fn disposition(signal: libc::c_int) -> libc::sighandler_t {
    // SAFETY: reading the current disposition into a zeroed struct.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// The body of the host process the tests below start; it does nothing when run as an ordinary test.
///
/// It installs a SIGTERM handler of its own (so the test can see that the host puts it back), ignores SIGINT when
/// `ROLE_IGNORE_INT` is set (as a background job or `nohup` does), runs the faulty plugin in `ROLE_MODE` through the
/// host API (`ROLE_RUNS` runs at once, each on its own thread), and writes what happened to `ROLE_OUT/outcome.json`.
#[test]
fn host_process_entry() {
    let Ok(mode) = std::env::var(ROLE_MODE) else {
        return;
    };
    let out = PathBuf::from(std::env::var(ROLE_OUT).unwrap());
    let runs: usize = std::env::var(ROLE_RUNS).map_or(1, |n| n.parse().unwrap());
    // SAFETY: installing a handler that only stores to an atomic, and ignoring SIGINT.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = note_sigterm as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
        if std::env::var_os(ROLE_IGNORE_INT).is_some() {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
        }
    }
    let before = (disposition(libc::SIGINT), disposition(libc::SIGTERM));

    let host = PluginHost::new(exe(), PluginSearch::new(&[plugin_dir()], None, None));
    let plugin = host.describe(&faulty_lib()).unwrap();
    let started = AtomicUsize::new(0);
    let during = std::sync::Mutex::new(None);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..runs)
            .map(|i| {
                let (host, plugin, out, started, during) =
                    (&host, &plugin, &out, &started, &during);
                let mode = mode.clone();
                scope.spawn(move || {
                    let staging = out.join(format!("staging-{i}"));
                    std::fs::create_dir(&staging).unwrap();
                    let request = RunRequest {
                        config: json!({"mode": mode}),
                        inputs: BTreeMap::new(),
                        output_dir: staging,
                    };
                    let mut seen = false;
                    host.run(plugin, &request, &mut |event| {
                        // done 1: the child wrote out.txt and is about to hang or wait for its stop request.
                        if event.done == 1 && !seen {
                            seen = true;
                            if started.fetch_add(1, Ordering::SeqCst) + 1 == runs {
                                *during.lock().unwrap() =
                                    Some((disposition(libc::SIGINT), disposition(libc::SIGTERM)));
                                std::fs::write(out.join("ready"), b"").unwrap();
                            }
                        }
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let after = (disposition(libc::SIGINT), disposition(libc::SIGTERM));
    let during = during
        .into_inner()
        .unwrap()
        .expect("every child reported progress");
    let outcome = json!({
        "result": results[0].as_ref().ok(),
        "error": results[0].as_ref().err().map(|e| e.to_string()),
        "results": results.iter().map(|r| r.as_ref().ok()).collect::<Vec<_>>(),
        "sigint_caught_during_run": during.0 != before.0,
        "sigterm_caught_during_run": during.1 != before.1,
        "sigint_ignored_after_run": after.0 == libc::SIG_IGN,
        "restored_after_run": after == before,
        "own_handler_called": NOTED.load(Ordering::SeqCst),
    });
    std::fs::write(out.join("outcome.json"), outcome.to_string()).unwrap();
}

/// A host process (this binary, running only [`host_process_entry`]) in a new process group, running the faulty
/// plugin in `mode`.
struct HostProcess {
    child: Child,
    out: tempfile::TempDir,
}

impl HostProcess {
    fn start(mode: &str) -> HostProcess {
        Self::start_with(mode, &[])
    }

    fn start_with(mode: &str, env: &[(&str, &str)]) -> HostProcess {
        let out = tempfile::tempdir().unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "plugin_signals::host_process_entry",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ROLE_MODE, mode)
            .env(ROLE_OUT, out.path())
            .envs(env.iter().copied())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let h = HostProcess { child, out };
        wait_until(Duration::from_secs(60), "the plugin child started", || {
            h.out.path().join("ready").exists()
        });
        h
    }

    fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// Waits (bounded) for the host to exit; returns whether it exited with status 0, and its outcome.
    fn finish(mut self) -> (std::process::ExitStatus, Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the host process did not exit within 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let outcome = std::fs::read(self.out.path().join("outcome.json"))
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or(Value::Null);
        (status, outcome)
    }
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn send(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: signalling a process (or, for a negative pid, a process group) this test started.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}

/// `(state, ppid)` of a process from /proc/<pid>/stat; `None` once it is gone entirely.
fn proc_stat(pid: libc::pid_t) -> Option<(char, libc::pid_t)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn alive(pid: libc::pid_t) -> bool {
    matches!(proc_stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// The running plugin child of `host` (a `__plugin-child run` process, not a describe child).
fn run_child_of(host: libc::pid_t) -> Option<libc::pid_t> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: libc::pid_t = e.file_name().to_str()?.parse().ok()?;
        let (_, ppid) = proc_stat(pid)?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let is_run = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == b"__plugin-child")
            && cmdline.split(|b| *b == 0).any(|arg| arg == b"run");
        (ppid == host && is_run && alive(pid)).then_some(pid)
    })
}

/// Kills the host with SIGKILL and checks that `child` goes with it within two seconds.
fn assert_child_dies_with(host: libc::pid_t, child: libc::pid_t) {
    assert!(alive(child), "the plugin child {child} is running");
    send(host, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(child) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if alive(child) {
        send(child, libc::SIGKILL);
        panic!("the plugin child {child} outlived its killed host by more than 2 s");
    }
}

#[test]
fn ctrl_c_to_the_process_group_stops_the_plugin_and_the_host_survives() {
    let host = HostProcess::start("wait-stop");
    // What a terminal does on Ctrl-C: SIGINT to every process of the foreground group, host and child alike.
    send(-host.pid(), libc::SIGINT);
    let (status, outcome) = host.finish();
    assert!(status.success(), "the host survived SIGINT: {status:?}");
    assert_eq!(
        outcome["result"],
        json!({"mode": "wait-stop", "stopped": true, "outputs": ["out.txt"]}),
        "{outcome}"
    );
    assert_eq!(outcome["sigint_caught_during_run"], true, "{outcome}");
    assert_eq!(outcome["sigterm_caught_during_run"], true, "{outcome}");
    assert_eq!(outcome["restored_after_run"], true, "{outcome}");
}

#[test]
fn sigterm_to_the_host_alone_is_forwarded_to_the_plugin() {
    let host = HostProcess::start("wait-stop");
    send(host.pid(), libc::SIGTERM);
    let (status, outcome) = host.finish();
    assert!(status.success(), "the host survived SIGTERM: {status:?}");
    assert_eq!(outcome["result"]["stopped"], true, "{outcome}");
    assert_eq!(
        outcome["own_handler_called"], false,
        "the host's own SIGTERM handler was set aside while the child ran: {outcome}"
    );
    assert_eq!(outcome["restored_after_run"], true, "{outcome}");
}

#[test]
fn every_concurrent_run_gets_the_stop_signal() {
    let host = HostProcess::start_with("wait-stop", &[(ROLE_RUNS, "3")]);
    send(host.pid(), libc::SIGTERM);
    let (status, outcome) = host.finish();
    assert!(status.success(), "{status:?}");
    let stopped = json!({"mode": "wait-stop", "stopped": true, "outputs": ["out.txt"]});
    assert_eq!(
        outcome["results"],
        json!([stopped, stopped, stopped]),
        "{outcome}"
    );
    assert_eq!(outcome["restored_after_run"], true, "{outcome}");
}

#[test]
fn an_ignored_sigint_stays_ignored_and_is_not_forwarded() {
    let host = HostProcess::start_with("wait-stop", &[(ROLE_IGNORE_INT, "1")]);
    // A host started with SIGINT ignored (a background job, nohup) keeps ignoring it: the child is not asked to stop.
    send(host.pid(), libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(host.pid()));
    assert!(
        !host.out.path().join("outcome.json").exists(),
        "the run went on"
    );
    // SIGTERM still reaches the child.
    send(host.pid(), libc::SIGTERM);
    let (status, outcome) = host.finish();
    assert!(status.success(), "{status:?}");
    assert_eq!(outcome["result"]["stopped"], true, "{outcome}");
    assert_eq!(outcome["sigint_caught_during_run"], false, "{outcome}");
    assert_eq!(outcome["sigint_ignored_after_run"], true, "{outcome}");
    assert_eq!(outcome["restored_after_run"], true, "{outcome}");
}

#[test]
fn a_second_interrupt_kills_a_plugin_that_does_not_stop() {
    let host = HostProcess::start("hang");
    send(host.pid(), libc::SIGINT);
    // The hanging plugin ignores the stop request; the host keeps waiting for it.
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(host.pid()));
    send(host.pid(), libc::SIGINT);
    let (status, outcome) = host.finish();
    assert!(status.success(), "{status:?}");
    let err = outcome["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("plugin test-faulty (")
            && err.contains("was killed after a second interrupt (SIGINT/SIGTERM)")
            && err.contains("no run was recorded")
            && err.contains("faulty plugin: hanging on purpose"),
        "{outcome}"
    );
    assert_eq!(outcome["restored_after_run"], true, "{outcome}");
}

#[test]
fn a_killed_host_takes_its_plugin_child_with_it() {
    let host = HostProcess::start("hang");
    let child = run_child_of(host.pid()).expect("the host has a running plugin child");
    assert_child_dies_with(host.pid(), child);
    let (status, _) = host.finish();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
}

/// Issue #8 item 10, through the command: `kill -9` of `husai-audit train` while the plugin runs.
#[test]
fn kill_9_of_train_stops_the_plugin_child() {
    let p = common::Project::new();
    let mut train = common::faulty_train_command(&p, "hang")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let host = train.id() as libc::pid_t;
    let staged_out = || staged_file(&p.path("results/c"), "out.txt");
    wait_until(
        Duration::from_secs(60),
        "the plugin wrote into staging",
        || staged_out().is_some() || train.try_wait().unwrap().is_some(),
    );
    assert!(
        train.try_wait().unwrap().is_none(),
        "train ended before the plugin hung"
    );
    let child = run_child_of(host).expect("train has a running plugin child");
    assert_child_dies_with(host, child);
    let _ = train.wait();
}

/// `name` inside a staging directory of `campaign`, if one holds it.
fn staged_file(campaign: &Path, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(campaign)
        .ok()?
        .flatten()
        .map(|e| e.path().join(name))
        .find(|p| p.is_file())
}
