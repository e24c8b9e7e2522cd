//! SIGINT and SIGTERM as a stop request.
//!
//! A plugin runs in a child process of its own (the host re-executes itself), so the handlers installed here affect
//! only that child. The handler does the one async-signal-safe thing needed: it sets a flag, which
//! [`crate::Progress::stop_requested`] reads. This copy of the flag lives in the plugin's library, the same copy the
//! plugin's code reads.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

static RECEIVED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

extern "C" fn on_signal(_signal: libc::c_int) {
    RECEIVED.store(true, Ordering::SeqCst);
}

/// Installs the handlers once per process.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction with a handler address and an empty mask is a valid argument; the handler
            // only stores to an atomic, which is async-signal-safe.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                libc::sigemptyset(&mut action.sa_mask);
                action.sa_flags = libc::SA_RESTART;
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
}

/// Whether SIGINT or SIGTERM arrived since [`install`].
pub(crate) fn received() -> bool {
    RECEIVED.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_sets_the_flag_instead_of_killing_the_process() {
        install();
        assert!(!received());
        // SAFETY: raising a signal whose handler was installed above.
        unsafe { libc::raise(libc::SIGTERM) };
        assert!(received(), "SIGTERM was turned into a stop request");
    }
}
