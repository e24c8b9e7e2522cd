//! The host side of the contract: open a plugin library, check it, and call it.
//!
//! Loading runs the library's initialisers and calling it runs arbitrary code, so the husai host only does this in
//! a dedicated child process (see husai-core's `plugin` module); this module is the part that runs in that child.

use std::path::{Path, PathBuf};

use abi_stable::library::{LibraryError, lib_header_from_path};
use abi_stable::std_types::{RResult, RStr};

use crate::API_VERSION;
use crate::ffi::{PluginModuleRef, ProgressSink};
use crate::types::{Description, PluginError, ProgressEvent, RunRequest};

/// The api crate's package version, which abi_stable compares with the one a plugin was built against.
pub const API_CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a library could not be used as a plugin. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin library {path} does not exist (check --plugin-dir and HUSAI_PLUGIN_PATH)")]
    Missing { path: PathBuf },
    #[error("{path} is not a loadable shared library, so it is not a husai plugin: {reason}")]
    NotALibrary { path: PathBuf, reason: String },
    #[error(
        "{path} is a shared library but not a husai plugin: it exports no husai root module \
         (plugins are built with husai_plugin_api::export_plugin!)"
    )]
    NotAPlugin { path: PathBuf },
    #[error(
        "plugin {path} was built with abi_stable ABI {found}, which this host (abi_stable ABI {expected}) cannot load; \
         rebuild the plugin against husai-plugin-api {API_CRATE_VERSION}"
    )]
    AbiStableMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "plugin {path} was built against husai-plugin-api {plugin}, but this host uses husai-plugin-api {host}; \
         rebuild the plugin against husai-plugin-api {host}"
    )]
    CrateVersionMismatch {
        path: PathBuf,
        plugin: String,
        host: String,
    },
    #[error(
        "plugin {path} speaks husai plugin API version {plugin}, but this host speaks API version {host}; \
         rebuild the plugin against husai-plugin-api {API_CRATE_VERSION} (API version {host})"
    )]
    ApiVersionMismatch {
        path: PathBuf,
        plugin: u32,
        host: u32,
    },
    #[error(
        "plugin {path} has a root module whose layout differs from this host's (built from a different \
         husai-plugin-api source?); rebuild it in the same workspace as the host. Details: {detail}"
    )]
    LayoutMismatch { path: PathBuf, detail: String },
    #[error("plugin {path} failed while initialising its root module: {detail}")]
    Init { path: PathBuf, detail: String },
}

/// A loaded, checked plugin library. The library is never unloaded (abi_stable leaks it on purpose, since code may
/// still reference it); the process that loads it is short-lived.
#[derive(Clone, Copy)]
pub struct LoadedPlugin {
    module: PluginModuleRef,
}

/// Opens `path` and checks, in order: that it exists, that it is a shared library, that it exports an abi_stable
/// root module, the abi_stable ABI version, the api crate version, the root module's type layout, and finally
/// [`API_VERSION`].
pub fn load(path: &Path) -> Result<LoadedPlugin, LoadError> {
    if !path.exists() {
        return Err(LoadError::Missing {
            path: path.to_owned(),
        });
    }
    let header = lib_header_from_path(path).map_err(|e| classify(path, e))?;
    let module = header
        .init_root_module::<PluginModuleRef>()
        .map_err(|e| classify(path, e))?;
    let plugin_version = module.api_version();
    if plugin_version != API_VERSION {
        return Err(LoadError::ApiVersionMismatch {
            path: path.to_owned(),
            plugin: plugin_version,
            host: API_VERSION,
        });
    }
    Ok(LoadedPlugin { module })
}

fn classify(path: &Path, err: LibraryError) -> LoadError {
    let path = path.to_owned();
    match err {
        LibraryError::OpenError { err, .. } => LoadError::NotALibrary {
            path,
            reason: err.to_string(),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin { path },
        LibraryError::InvalidAbiHeader(found) => LoadError::AbiStableMismatch {
            path,
            found: format!("{}.{}", found.abi_major, found.abi_minor),
            expected: {
                let ours = abi_stable::library::AbiHeader::VALUE;
                format!("{}.{}", ours.abi_major, ours.abi_minor)
            },
        },
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadError::CrateVersionMismatch {
            path,
            plugin: actual_version.to_string(),
            host: expected_version.to_string(),
        },
        LibraryError::AbiInstability(detail) => LoadError::LayoutMismatch {
            path,
            detail: detail.to_string(),
        },
        other => LoadError::Init {
            path,
            detail: other.to_string(),
        },
    }
}

/// Decodes a plugin's error JSON; a plugin that returns something else still gets its text reported.
fn decode_error(text: &str) -> PluginError {
    serde_json::from_str(text).unwrap_or_else(|_| {
        PluginError::failed(format!(
            "the plugin returned an error that is not PluginError JSON: {text}"
        ))
    })
}

impl LoadedPlugin {
    /// The API version the plugin declared (equal to [`API_VERSION`] once loaded).
    pub fn api_version(&self) -> u32 {
        self.module.api_version()
    }

    /// Calls `describe` and parses the result.
    pub fn describe(&self) -> Result<Description, PluginError> {
        match (self.module.describe())() {
            RResult::ROk(json) => serde_json::from_str(json.as_str()).map_err(|e| {
                PluginError::failed(format!(
                    "the plugin's description is not valid Description JSON: {e}"
                ))
            }),
            RResult::RErr(err) => Err(decode_error(err.as_str())),
        }
    }

    /// Calls `run`. `on_progress` is called on the calling thread for every report the plugin makes.
    pub fn run(
        &self,
        request: &RunRequest,
        on_progress: &mut dyn FnMut(ProgressEvent),
    ) -> Result<serde_json::Value, PluginError> {
        let request_json = serde_json::to_string(request).map_err(|e| {
            PluginError::invalid_config(format!("cannot serialise the request: {e}"))
        })?;
        // The sink's context is a pointer to `on_progress`, which outlives the call below.
        let mut callback: &mut dyn FnMut(ProgressEvent) = on_progress;
        let sink = ProgressSink {
            context: (&raw mut callback).cast::<()>().cast_const(),
            report: report_trampoline,
        };
        match (self.module.run())(RStr::from_str(&request_json), sink) {
            RResult::ROk(json) => serde_json::from_str(json.as_str()).map_err(|e| {
                PluginError::failed(format!("the plugin's result is not valid JSON: {e}"))
            }),
            RResult::RErr(err) => Err(decode_error(err.as_str())),
        }
    }
}

extern "C" fn report_trampoline(context: *const (), done: u64, total: u64, message: RStr<'_>) {
    // SAFETY: `context` was made in `LoadedPlugin::run` from a `&mut &mut dyn FnMut` that lives for the whole
    // `run` call, and plugins may only report from inside that call, on its thread (see `Progress`).
    let callback = unsafe { &mut *(context as *mut &mut dyn FnMut(ProgressEvent)) };
    let event = ProgressEvent {
        done,
        total,
        message: message.as_str().to_owned(),
    };
    // A panic in the host's callback must not unwind into the plugin's frames.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(event)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named() {
        let err = load(Path::new("/nonexistent/libhusai_x.so"))
            .err()
            .expect("must fail");
        assert!(matches!(err, LoadError::Missing { .. }));
        assert_eq!(
            err.to_string(),
            "plugin library /nonexistent/libhusai_x.so does not exist (check --plugin-dir and HUSAI_PLUGIN_PATH)"
        );
    }

    #[test]
    fn a_file_that_is_not_a_library_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libhusai_text.so");
        std::fs::write(&path, "just text").unwrap();
        let err = load(&path).err().expect("must fail");
        let msg = err.to_string();
        assert!(matches!(err, LoadError::NotALibrary { .. }), "{msg}");
        assert!(
            msg.starts_with(&format!(
                "{} is not a loadable shared library, so it is not a husai plugin",
                path.display()
            )),
            "{msg}"
        );
    }

    #[test]
    fn version_messages_name_the_file_and_both_versions() {
        let e = LoadError::ApiVersionMismatch {
            path: PathBuf::from("/p/libhusai_a.so"),
            plugin: 2,
            host: 1,
        };
        assert_eq!(
            e.to_string(),
            format!(
                "plugin /p/libhusai_a.so speaks husai plugin API version 2, but this host speaks API version 1; \
                 rebuild the plugin against husai-plugin-api {API_CRATE_VERSION} (API version 1)"
            )
        );
        let e = LoadError::CrateVersionMismatch {
            path: PathBuf::from("/p/libhusai_a.so"),
            plugin: "0.2.0".into(),
            host: "0.1.0".into(),
        };
        assert!(e.to_string().contains(
            "built against husai-plugin-api 0.2.0, but this host uses husai-plugin-api 0.1.0"
        ));
    }
}
