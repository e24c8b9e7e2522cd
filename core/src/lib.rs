//! husai-core: the library behind `husai-audit`.
//!
//! It attests (canonical JSON, digests, DSSE envelopes around in-toto Statements, a pinned trust
//! policy, the run store), verifies (schemas, signatures, digests, the provenance chain), and
//! decides (selector, release gate, claim audit) over verified runs only. The binary is a thin
//! command-line layer over this crate.

#[doc(hidden)]
#[path = "fuzz.rs"]
pub mod __fuzz;
pub mod canonical;
pub mod claims;
pub mod digest;
pub mod dsse;
pub mod export;
pub mod gate;
pub mod inputs;
pub mod keys;
pub mod legacy;
pub mod manifest;
pub mod pipeline;
pub mod plot;
pub mod plugin;
pub mod schema;
pub mod select;
pub mod statement;
/// The statistics (crate `husai-stats`), under their historical path `husai_core::stats`.
pub use husai_stats as stats;
pub mod store;
pub mod svg;
pub mod trust;
pub mod untrusted;
pub mod verify;
