//! Loading selector inputs: read a file with the lenient legacy reader, check its kind against the role it was
//! given, and compute its configuration fingerprint.

use std::path::Path;

use crate::legacy::frontier::{EXTERNAL_RECORD_KINDS, parse_external};
use crate::legacy::json::{self, LegacyValue};
use crate::legacy::{ArtifactKind, ReadError, assignment, detect_kind};

use super::rows::{InputContent, LoadedInput, SourceKind};
use super::{Mode, SelectError, config_fingerprint};

/// The role an input was given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRole {
    /// `--frontier-results`: any file with the external record layout (upstream fed routed and matryoshka runs
    /// through this flag too).
    Frontier,
    /// `--scaling-results`.
    Scaling,
    /// `--assignment-results`: assignment-v3 results.
    Assignment,
    /// `--input` (strict mode): whatever the file is, if the selector can read it.
    Auto,
}

impl InputRole {
    /// Upstream's processing order: all frontier files, then scaling, then assignment, whatever the order on the
    /// command line (reference §2.1).
    pub fn parity_order(self) -> u8 {
        match self {
            InputRole::Frontier => 0,
            InputRole::Scaling => 1,
            InputRole::Assignment => 2,
            InputRole::Auto => 3,
        }
    }
}

fn source_of_kind(kind: ArtifactKind) -> SourceKind {
    match kind {
        ArtifactKind::ScalingResults => SourceKind::Scaling,
        ArtifactKind::RoutedResults => SourceKind::Routed,
        ArtifactKind::MatryoshkaResults => SourceKind::Matryoshka,
        ArtifactKind::AssignmentV3Results => SourceKind::Assignment,
        _ => SourceKind::Frontier,
    }
}

fn wrong_kind(path: &Path, value: &LegacyValue, expected: &'static str) -> SelectError {
    SelectError::Read(ReadError::WrongKind {
        path: path.to_path_buf(),
        expected,
        found: detect_kind(path, Some(value)).kind.as_str().to_string(),
    })
}

/// Reads one input. `display` is the path recorded as the rows' `source_results`.
pub fn load_input(
    path: &Path,
    display: &str,
    role: InputRole,
    mode: Mode,
) -> Result<LoadedInput, SelectError> {
    let value = json::read_file(path).map_err(ReadError::from)?;
    load_input_value(path, value, display, role, mode)
}

/// Parses one input from bytes already read (and, in strict mode, already checked against a signed digest, so
/// that what was verified is exactly what is parsed).
pub fn load_input_bytes(
    path: &Path,
    bytes: &[u8],
    display: &str,
    role: InputRole,
    mode: Mode,
) -> Result<LoadedInput, SelectError> {
    let value = json::parse_bytes(bytes).map_err(|e| ReadError::from(e.with_path(path)))?;
    load_input_value(path, value, display, role, mode)
}

fn load_input_value(
    path: &Path,
    value: LegacyValue,
    display: &str,
    role: InputRole,
    mode: Mode,
) -> Result<LoadedInput, SelectError> {
    let kind = detect_kind(path, Some(&value)).kind;
    let external = |accepted: &[ArtifactKind]| parse_external(path, &value, accepted);
    let (content, detected_source) = match role {
        InputRole::Frontier | InputRole::Scaling => {
            if !EXTERNAL_RECORD_KINDS.contains(&kind) {
                let expected = if role == InputRole::Frontier {
                    "frontier_results (or routed/matryoshka/scaling results)"
                } else {
                    "scaling_results"
                };
                return Err(wrong_kind(path, &value, expected));
            }
            if role == InputRole::Scaling
                && mode == Mode::Strict
                && kind != ArtifactKind::ScalingResults
            {
                return Err(wrong_kind(path, &value, "scaling_results"));
            }
            (
                InputContent::External(external(&EXTERNAL_RECORD_KINDS)?),
                source_of_kind(kind),
            )
        }
        InputRole::Assignment => {
            if kind != ArtifactKind::AssignmentV3Results {
                return Err(wrong_kind(path, &value, "assignment_v3_results"));
            }
            (
                InputContent::Assignment(assignment::parse_assignment_v3(path, &value)?),
                SourceKind::Assignment,
            )
        }
        InputRole::Auto => {
            if kind == ArtifactKind::AssignmentV3Results {
                (
                    InputContent::Assignment(assignment::parse_assignment_v3(path, &value)?),
                    SourceKind::Assignment,
                )
            } else if EXTERNAL_RECORD_KINDS.contains(&kind) {
                (
                    InputContent::External(external(&EXTERNAL_RECORD_KINDS)?),
                    source_of_kind(kind),
                )
            } else {
                return Err(wrong_kind(
                    path,
                    &value,
                    "selector input (frontier, scaling, routed, matryoshka or assignment-v3 results)",
                ));
            }
        }
    };
    let source = match (mode, role) {
        (Mode::Parity, InputRole::Frontier) => SourceKind::Frontier,
        (Mode::Parity, InputRole::Scaling) => SourceKind::Scaling,
        _ => detected_source,
    };
    let config_sha256 = match &content {
        InputContent::External(r) => config_fingerprint(&r.config, display)?,
        InputContent::Assignment(r) => config_fingerprint(&r.config, display)?,
        // husai runs are read by `super::husai`, never from a results file.
        InputContent::Husai(_) => {
            return Err(wrong_kind(path, &value, "a selector results file"));
        }
    };
    Ok(LoadedInput {
        display: display.to_string(),
        source,
        content,
        config_sha256,
    })
}
