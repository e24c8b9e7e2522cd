//! A plugin that claims to speak the next plugin API version. Loading it must fail with a message that names this
//! file and both versions; nothing in it should ever run.

use husai_plugin_api::{
    API_VERSION, Capability, Description, Plugin, PluginError, PluginKind, Progress, RunRequest,
};

struct Skew;

impl Plugin for Skew {
    fn describe() -> Description {
        Description {
            name: "test-faulty-skew".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Trainer,
            architectures: vec!["none".into()],
            evals: vec![],
            config_schema: serde_json::json!({"type": "object"}),
            capabilities: vec![Capability::Cpu],
        }
    }

    fn run(
        _request: &RunRequest,
        _progress: &mut Progress,
    ) -> Result<serde_json::Value, PluginError> {
        Err(PluginError::failed(
            "the version-skew test plugin must never be run",
        ))
    }
}

husai_plugin_api::export_plugin!(Skew, api_version = API_VERSION + 1);
