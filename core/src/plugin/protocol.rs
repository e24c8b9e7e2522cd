//! The child-to-host protocol: one JSON object per line on the child's protocol stream.
//!
//! The child writes nothing else to that stream (plugin output on stdout is redirected to stderr before the library
//! is loaded), so every line parses; a line that does not is reported as a protocol error.

use serde::{Deserialize, Serialize};

use husai_plugin_api::{Description, PluginError, ProgressEvent};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum ChildMessage {
    /// The library loaded and described itself.
    Described {
        api_version: u32,
        description: Description,
    },
    /// A progress report from inside `run`.
    Progress(ProgressEvent),
    /// `run` succeeded with this result JSON.
    Finished { result: serde_json::Value },
    /// The library could not be loaded; the message names the file (and versions, for a version mismatch).
    LoadFailed { message: String },
    /// The plugin returned an error (or panicked and the export shim caught it).
    PluginFailed { error: PluginError },
    /// The child was started wrongly (bad arguments, unreadable request).
    Usage { message: String },
}

impl ChildMessage {
    pub(crate) fn to_line(&self) -> String {
        // Every variant holds strings, integers and JSON values only, so serialisation cannot fail.
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"));
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_single_lines() {
        let msgs = [
            ChildMessage::Progress(ProgressEvent {
                done: 3,
                total: 10,
                message: "a\nb".into(),
            }),
            ChildMessage::Finished {
                result: serde_json::json!({"x": [1, 2]}),
            },
            ChildMessage::LoadFailed {
                message: "nope".into(),
            },
            ChildMessage::PluginFailed {
                error: PluginError::failed("bad"),
            },
            ChildMessage::Usage {
                message: "args".into(),
            },
        ];
        for msg in msgs {
            let line = msg.to_line();
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            let back: ChildMessage = serde_json::from_str(line.trim_end()).unwrap();
            assert_eq!(back, msg);
        }
    }

    #[test]
    fn progress_line_is_tagged() {
        let line = ChildMessage::Progress(ProgressEvent {
            done: 1,
            total: 2,
            message: "m".into(),
        })
        .to_line();
        assert_eq!(
            line,
            "{\"event\":\"progress\",\"done\":1,\"total\":2,\"message\":\"m\"}\n"
        );
    }
}
