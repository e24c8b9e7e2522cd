//! The husai plugin contract.
//!
//! A plugin is a `cdylib` that implements [`Plugin`] and calls [`export_plugin!`] once. It exposes one root module
//! with three entries: the [`API_VERSION`] it was built for, `describe` (a [`Description`]) and `run` (a
//! [`RunRequest`] in, result JSON or a [`PluginError`] out, with progress reports).
//!
//! The binary layer is abi_stable, but nothing of it appears in this crate's plugin-facing API: plugins depend on
//! this crate alone, so the contract can move to another loader without touching them.
//!
//! Hosts use [`host::load`], which checks the library before any plugin code runs.

mod ffi;
pub mod host;
mod signals;
mod types;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use types::{
    Capability, Description, ErrorKind, EvalError, PluginError, PluginKind, ProgressEvent,
    RunRequest, config_object, config_positive, run_identity, write_eval_summary,
};

/// The contract version. Bump it on any breaking change to the root module or to the JSON types in this crate; the
/// host refuses a plugin whose version differs.
pub const API_VERSION: u32 = 1;

/// A plugin implementation. Both functions may panic; the export shim turns a panic into a
/// [`ErrorKind::Panic`] error instead of unwinding into the host.
pub trait Plugin {
    /// Describes the plugin. Must be cheap and have no side effects: `husai-audit plugins` calls it.
    fn describe() -> Description;
    /// Runs the request, writing outputs only under `request.output_dir`, and returns result JSON.
    fn run(request: &RunRequest, progress: &mut Progress)
    -> Result<serde_json::Value, PluginError>;
}

/// Progress reporting handed to [`Plugin::run`], and the plugin's view of a stop request. Report only from the
/// thread that `run` was called on.
pub struct Progress {
    pub(crate) sink: Option<ffi::ProgressSink>,
    pub(crate) stop: StopSource,
}

/// Where [`Progress::stop_requested`] looks.
pub(crate) enum StopSource {
    /// Never asked to stop (in-process calls, tests).
    Never,
    /// SIGINT/SIGTERM received by this process (the export shim installs the handlers in the plugin's child).
    Signals,
    /// A flag the caller sets (tests of a plugin's interruption path).
    Flag(Arc<AtomicBool>),
}

impl Progress {
    /// A progress reporter that discards every report (for calling a plugin's code directly, as in its own tests).
    pub fn discard() -> Self {
        Progress {
            sink: None,
            stop: StopSource::Never,
        }
    }

    /// Like [`Progress::discard`], but [`Progress::stop_requested`] reads `flag`: a test sets it to exercise the
    /// plugin's interruption path without sending a signal.
    pub fn discard_with_stop_flag(flag: Arc<AtomicBool>) -> Self {
        Progress {
            sink: None,
            stop: StopSource::Flag(flag),
        }
    }

    /// True once the run should stop early: the plugin process received SIGINT or SIGTERM (or a test's flag is
    /// set). A trainer checks it after each step, finishes that step, writes its state and returns with status
    /// `interrupted` (docs/trainer-contract.md §6).
    pub fn stop_requested(&self) -> bool {
        match &self.stop {
            StopSource::Never => false,
            StopSource::Signals => signals::received(),
            StopSource::Flag(f) => f.load(Ordering::SeqCst),
        }
    }

    /// Reports that `done` of `total` units are finished.
    pub fn report(&mut self, done: u64, total: u64, message: &str) {
        if let Some(sink) = self.sink {
            (sink.report)(
                sink.context,
                done,
                total,
                abi_stable::std_types::RStr::from_str(message),
            );
        }
    }
}

/// Exports a [`Plugin`] implementation as this library's root module:
///
/// ```ignore
/// struct MyPlugin;
/// impl husai_plugin_api::Plugin for MyPlugin { /* ... */ }
/// husai_plugin_api::export_plugin!(MyPlugin);
/// ```
///
/// The form `export_plugin!(MyPlugin, api_version = N)` declares another API version. It exists so that the host's
/// version check can be tested against a real library; a real plugin never uses it.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        $crate::export_plugin!($plugin, api_version = $crate::API_VERSION);
    };
    ($plugin:ty, api_version = $version:expr) => {
        // What abi_stable's `#[export_root_module]` expands to, spelled with paths through this crate so that
        // plugins do not need abi_stable as a dependency of their own.
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static HUSAI_PLUGIN_LIB_HEADER: $crate::__private::LibHeader = {
            extern "C" fn erased_root_module() -> $crate::__private::RootModuleResult {
                $crate::__private::__call_root_module_loader(root_module)
            }
            fn root_module() -> $crate::__private::PluginModuleRef {
                $crate::__private::root_module::<$plugin>($version)
            }
            // SAFETY: `erased_root_module` returns the root module of type `PluginModuleRef`, which is the type
            // whose layout the header records, exactly as abi_stable's own attribute arranges it.
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::__private::PluginModuleRef>(
                    erased_root_module,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::ffi::{
        __call_root_module_loader, CheckTypeLayout, LOADER_SYMBOL, LibHeader, PluginModuleRef,
        RootModuleResult, root_module,
    };
}
