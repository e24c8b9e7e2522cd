//! Reader for the matryoshka-frontier results (`run_matryoshka_frontier_external.py`): the shared external record
//! layout ([`super::frontier`]).
//!
//! The one matryoshka run in the evidence failed its external evaluations (every return code 1, `saebench` and
//! `cebench` null). Those records still parse, with absent metrics and non-zero return codes, so the selector can
//! count them and then filter them out for the documented reason instead of failing to read the file.

use std::path::Path;

use super::frontier::{ExternalRecord, ExternalResults, read_external_file};
use super::{ArtifactKind, ReadError};

/// Reads a matryoshka-frontier results file.
pub fn read_matryoshka(path: &Path) -> Result<ExternalResults, ReadError> {
    read_external_file(path, &[ArtifactKind::MatryoshkaResults])
}

/// True when either external evaluation of the record reported a non-zero exit status.
pub fn external_eval_failed(record: &ExternalRecord) -> bool {
    [record.saebench_returncode, record.cebench_returncode]
        .iter()
        .any(|rc| matches!(rc, Some(code) if *code != 0))
}
