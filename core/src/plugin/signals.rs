//! Signals while a plugin child runs (docs/trainer-contract.md §6).
//!
//! - **The child dies with the host.** On Linux the child asks, between fork and exec, to be sent SIGKILL when its
//!   parent dies (`PR_SET_PDEATHSIG`), then checks `getppid()` in case the parent died before the request took
//!   effect. A host killed with SIGKILL (or any other signal it cannot catch) thus takes its plugin child with it,
//!   instead of leaving it to write into a staging directory nobody will commit. The request is tied to the thread
//!   that spawned the child; [`super::PluginHost`] spawns and waits on the same thread, so it lasts the child's life.
//! - **A stop signal is the child's to handle.** While a run child is alive, the host catches SIGINT and SIGTERM
//!   instead of dying of them. The first one is passed on to every running child: a terminal's Ctrl-C reaches the
//!   child directly too (the child stays in the host's process group), and a second copy is harmless because the
//!   child's handler only sets the stop flag that [`husai_plugin_api::Progress::stop_requested`] reads; a SIGTERM
//!   sent to the host alone reaches the child only this way. The plugin then finishes its step, writes its state and
//!   returns, and the host records the outcome. A further SIGINT or SIGTERM kills the running children (SIGKILL),
//!   so a plugin that never polls the flag can still be stopped from the keyboard.
//! - **The host's own dispositions come back** when the last running child has exited. A signal that was ignored
//!   before (a background job's SIGINT, `nohup`) is left ignored and is not forwarded.
//!
//! The handler only does async-signal-safe things: atomic loads and stores, `kill(2)`, and `write(2)` of a fixed
//! message when stderr is a terminal.

#![allow(unsafe_code)]

use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

/// How many children can be running at once and still receive forwarded signals (one per concurrent
/// [`super::PluginHost::run`] call). Children beyond this many run unforwarded; they still die with the host.
const SLOTS: usize = 64;

/// The pids of the running children that receive forwarded signals; 0 is a free slot.
static CHILDREN: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
/// Stop signals received since the handlers were installed.
static RECEIVED: AtomicU32 = AtomicU32::new(0);
/// The first of them (what a child registered late is sent).
static FIRST: AtomicI32 = AtomicI32::new(0);
/// Whether the handler may tell a person at a terminal what it did.
static ANNOUNCE: AtomicBool = AtomicBool::new(false);

/// The signals a run child gets to handle.
const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// The handlers' installation, shared by every concurrent run.
struct Installed {
    /// Runs currently holding a [`Forwarding`].
    active: usize,
    /// The disposition each signal had before, for the ones this module replaced.
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

static STATE: Mutex<Installed> = Mutex::new(Installed {
    active: 0,
    previous: Vec::new(),
});

const FIRST_NOTE: &[u8] =
    b"\nhusai: stopping: the plugin finishes its current step (interrupt again to kill it)\n";
const KILL_NOTE: &[u8] = b"\nhusai: second interrupt: killing the plugin; no run is recorded\n";

extern "C" fn on_stop(signal: libc::c_int) {
    #[cfg(target_os = "linux")]
    // SAFETY: reading this thread's errno, which kill/write below may change, to restore it.
    let errno = unsafe { *libc::__errno_location() };
    let n = RECEIVED.fetch_add(1, Ordering::SeqCst) + 1;
    let send = if n == 1 {
        FIRST.store(signal, Ordering::SeqCst);
        signal
    } else {
        libc::SIGKILL
    };
    for slot in &CHILDREN {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) is async-signal-safe. The pid is that of a child that has not been reaped yet (slots
            // are cleared before the wait that reaps), so it cannot have been recycled.
            unsafe { libc::kill(pid, send) };
        }
    }
    if ANNOUNCE.load(Ordering::SeqCst) && n <= 2 {
        let note = if n == 1 { FIRST_NOTE } else { KILL_NOTE };
        // SAFETY: write(2) of a static buffer is async-signal-safe; a failed write is of no consequence.
        unsafe { libc::write(2, note.as_ptr().cast(), note.len()) };
    }
    #[cfg(target_os = "linux")]
    // SAFETY: as above.
    unsafe {
        *libc::__errno_location() = errno
    };
}

/// Held while one run child is alive: the host catches SIGINT and SIGTERM and forwards them to the child. Dropping
/// the last one restores the dispositions from before.
pub(super) struct Forwarding {
    slot: Option<usize>,
}

impl Forwarding {
    /// Installs the handlers (if no other run has) before the child is spawned, so no signal falls between.
    pub(super) fn begin() -> Forwarding {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if state.active == 0 {
            RECEIVED.store(0, Ordering::SeqCst);
            FIRST.store(0, Ordering::SeqCst);
            // SAFETY: isatty on a descriptor number is harmless whatever it refers to.
            ANNOUNCE.store(unsafe { libc::isatty(2) } == 1, Ordering::SeqCst);
            state.previous = STOP_SIGNALS
                .iter()
                .filter_map(|&signal| install(signal).map(|old| (signal, old)))
                .collect();
        }
        state.active += 1;
        Forwarding { slot: None }
    }

    /// The child `pid` is running: forward signals to it from now on, and send it at once any stop signal that
    /// arrived while it was being spawned.
    pub(super) fn register(&mut self, pid: u32) {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return;
        };
        self.slot = CHILDREN.iter().position(|slot| {
            slot.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        let pending = RECEIVED.load(Ordering::SeqCst);
        if self.slot.is_some() && pending > 0 {
            let send = if pending == 1 {
                FIRST.load(Ordering::SeqCst)
            } else {
                libc::SIGKILL
            };
            // SAFETY: the child has not been waited for yet, so the pid is still its own.
            unsafe { libc::kill(pid, send) };
        }
    }

    /// The child has exited (it is not reaped yet): stop forwarding to its pid before the wait releases it.
    pub(super) fn unregister(&mut self) {
        if let Some(i) = self.slot.take() {
            CHILDREN[i].store(0, Ordering::SeqCst);
        }
    }

    /// Whether a second stop signal arrived, so that running children were killed rather than asked to stop.
    pub(super) fn killed_children(&self) -> bool {
        RECEIVED.load(Ordering::SeqCst) >= 2
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        self.unregister();
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        state.active = state.active.saturating_sub(1);
        if state.active == 0 {
            for (signal, old) in state.previous.drain(..) {
                // SAFETY: putting back the disposition sigaction(2) reported for this signal.
                unsafe { libc::sigaction(signal, &old, std::ptr::null_mut()) };
            }
        }
    }
}

/// Installs [`on_stop`] for `signal` and returns the disposition it replaced; leaves an ignored signal ignored and
/// returns `None` for it (and when the call fails, which it cannot for these signals).
fn install(signal: libc::c_int) -> Option<libc::sigaction> {
    // SAFETY: sigaction(2) with a zeroed struct to read into, then a handler whose body is async-signal-safe.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
            || old.sa_sigaction == libc::SIG_IGN
        {
            return None;
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_stop as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_flags = libc::SA_RESTART;
        if libc::sigaction(signal, &action, &mut old) != 0 {
            return None;
        }
        Some(old)
    }
}

/// Whether the child `pid` has exited, without reaping it (so its pid stays reserved until the real wait). An error
/// (no such child) counts as exited: the real wait then reports it.
pub(super) fn has_exited(pid: u32) -> bool {
    let pid: libc::id_t = pid;
    // SAFETY: waitid(2) with WNOWAIT only inspects the child; the zeroed siginfo is filled in or left zero.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        r != 0 || info.si_pid() != 0
    }
}

/// Makes the child that `command` spawns die with this process (Linux; elsewhere a no-op).
pub(super) fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: getpid(2) in the parent, before the fork.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe calls (prctl,
        // getppid), allocating nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl; then nobody would send the signal.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}
