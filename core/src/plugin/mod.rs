//! The plugin host: finds plugin libraries, and describes and runs them in a child process.
//!
//! A plugin is foreign code. Loading it runs its initialisers and calling it can panic, abort or fault, so the host
//! never loads one into its own process: `husai-audit` re-executes itself with the hidden subcommand
//! [`CHILD_SUBCOMMAND`], the child loads the library through `husai_plugin_api::host` (which checks the ABI header,
//! the API version and the root module's layout), calls it, and streams progress and the outcome back as JSON
//! lines ([`protocol`]). Whatever the child does, the host sees an exit status and turns it into a
//! [`PluginHostError`] naming the plugin, the signal or exit code, and the last lines the child wrote to stderr.
//!
//! While a run child is alive the host hands SIGINT and SIGTERM to it (the plugin stops after its step) instead of
//! dying, and a host that is killed outright takes its child with it (see `signals.rs`).
//!
//! Plugins compute; only the core attests. The host hands a plugin an output directory (a run store staging
//! directory) and signs nothing itself: the caller commits the staged run only after [`PluginHost::run`] succeeded.

mod child;
mod discovery;
mod host;
pub mod pin;
mod protocol;
mod signals;

pub use child::child_main;
pub use discovery::{PLUGIN_PATH_ENV, PluginSearch};
pub use host::{DescribedPlugin, PluginHost, PluginHostError};
pub use husai_plugin_api::{
    API_VERSION, Capability, Description, ErrorKind, PluginError, PluginKind, ProgressEvent,
    RunRequest,
};

/// The hidden subcommand under which `husai-audit` runs as a plugin child.
pub const CHILD_SUBCOMMAND: &str = "__plugin-child";
