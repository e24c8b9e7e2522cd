//! The binary contract: the abi_stable root module every plugin library exports, and the shims that adapt a safe
//! [`Plugin`](crate::Plugin) implementation to it. Nothing here is meant to be used directly by plugin authors; it
//! is public only because [`export_plugin!`](crate::export_plugin) expands to code that names it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::StableAbi;
use abi_stable::library::RootModule;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RStr, RString};

use crate::types::{ErrorKind, PluginError, RunRequest};
use crate::{Plugin, Progress};

/// Receives progress reports from inside `run`. `context` is opaque to the plugin and handed back unchanged.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct ProgressSink {
    pub context: *const (),
    pub report: extern "C" fn(context: *const (), done: u64, total: u64, message: RStr<'_>),
}

/// The root module. All three fields are in the prefix, so every plugin of this API version has them; fields added
/// later go after `run` and are optional to older plugins (abi_stable's prefix types).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// [`crate::API_VERSION`] as the plugin saw it when it was compiled.
    pub api_version: u32,
    /// Returns the plugin's [`Description`](crate::Description) as JSON, or a [`PluginError`] as JSON.
    pub describe: extern "C" fn() -> RResult<RString, RString>,
    /// Takes a [`RunRequest`] as JSON; returns the result JSON, or a [`PluginError`] as JSON.
    #[sabi(last_prefix_field)]
    pub run: extern "C" fn(request: RStr<'_>, progress: ProgressSink) -> RResult<RString, RString>,
}

impl RootModule for PluginModuleRef {
    abi_stable::declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "husai_plugin";
    const NAME: &'static str = "husai plugin";
    // The api crate's package version: abi_stable refuses a library built against an incompatible one (semver,
    // where 0.x minor bumps are breaking) before any of its code runs.
    const VERSION_STRINGS: VersionStrings = abi_stable::package_version_strings!();
}

/// Name of the static that abi_stable's loader looks up. `export_plugin!` has to spell it as a literal (it cannot
/// use abi_stable's proc macro, whose expansion names `::abi_stable` and would force every plugin to depend on it);
/// the assertion below turns any drift from abi_stable's own constant into a compile error.
pub const LOADER_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const _: () = assert!(
    str_eq(LOADER_SYMBOL, abi_stable::library::ROOT_MODULE_LOADER_NAME),
    "LOADER_SYMBOL no longer matches abi_stable's root module loader name"
);

pub use abi_stable::library::{
    __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
};

/// Builds the root module for plugin `P`, declaring `api_version`.
pub fn root_module<P: Plugin>(api_version: u32) -> PluginModuleRef {
    PluginModule {
        api_version,
        describe: describe_shim::<P>,
        run: run_shim::<P>,
    }
    .leak_into_prefix()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

fn error_json(err: &PluginError) -> RString {
    // Serialising a struct of two strings cannot fail.
    RString::from(serde_json::to_string(err).unwrap_or_else(|_| String::from("{}")))
}

// A panic must not unwind across `extern "C"` (that aborts the process); catch it and report it as an error so the
// host can name the plugin and show the message.
extern "C" fn describe_shim<P: Plugin>() -> RResult<RString, RString> {
    match catch_unwind(P::describe) {
        Ok(desc) => match serde_json::to_string(&desc) {
            Ok(json) => RResult::ROk(RString::from(json)),
            Err(e) => RResult::RErr(error_json(&PluginError::failed(format!(
                "describe: cannot serialise the description: {e}"
            )))),
        },
        Err(payload) => RResult::RErr(error_json(&PluginError::new(
            ErrorKind::Panic,
            panic_message(&*payload),
        ))),
    }
}

extern "C" fn run_shim<P: Plugin>(
    request: RStr<'_>,
    sink: ProgressSink,
) -> RResult<RString, RString> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let request: RunRequest = serde_json::from_str(request.as_str()).map_err(|e| {
            PluginError::invalid_config(format!("the run request is not valid request JSON: {e}"))
        })?;
        // The shim runs in the plugin's own child process: SIGINT/SIGTERM become a stop request the plugin polls.
        crate::signals::install();
        let mut progress = Progress {
            sink: Some(sink),
            stop: crate::StopSource::Signals,
        };
        let value = P::run(&request, &mut progress)?;
        serde_json::to_string(&value)
            .map_err(|e| PluginError::failed(format!("cannot serialise the result: {e}")))
    }));
    match outcome {
        Ok(Ok(json)) => RResult::ROk(RString::from(json)),
        Ok(Err(err)) => RResult::RErr(error_json(&err)),
        Err(payload) => RResult::RErr(error_json(&PluginError::new(
            ErrorKind::Panic,
            panic_message(&*payload),
        ))),
    }
}
