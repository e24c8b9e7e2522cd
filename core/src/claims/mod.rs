//! Claims: a registry of what the project claims, each claim tied to signed evidence, checked by `verify`.
//!
//! * [`registry`]: the `claims.json` format (schema `schemas/claims.v1.json`).
//! * [`check`]: [`check_registry`] reads every cited value from a verified run, applies the claim's comparator,
//!   requires a passing strict gate report for release claims, and checks claim tags in the listed Markdown.
//! * [`about`]: what a claim's evidence is about; a claim about one model whose evidence measures another is refused.
//! * [`stats`]: statistics that claims cite, computed by husai from signed upstream evidence.
//! * [`tags`]: the Markdown tag syntax (`<!-- claim:ID -->0.0544<!-- /claim -->`).
//! * [`consistency`]: upstream's experiment-consistency audit checks, ported for `--parity`.

pub mod about;
pub mod check;
pub mod consistency;
pub mod gate_evidence;
pub mod registry;
pub mod stats;
pub mod tags;

pub use check::{ClaimsReport, check_registry};
