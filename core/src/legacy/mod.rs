//! Readers for upstream HUSAI (Python) artifacts: the lenient JSON parser, Python-compatible formatting, and one typed
//! reader per artifact kind that feeds selection, gating or claims.
//!
//! Every reader takes a [`json::LegacyValue`] (so callers can read a file once and dispatch on its detected kind) and
//! returns a typed struct or a [`ReadError`] that names the file and the field. The selector's inputs (frontier,
//! scaling, routed, matryoshka, assignment, selection) live in their own files beside the gate/claim inputs.

pub mod json;
