//! Every integration test of this crate, in one binary: one link instead of one per file (issue #9 item 10).
//! Each module is the former tests/<name>.rs; run one with `cargo test -p <crate> --test suite <name>::`.

mod canonical;
mod claims_about;
mod claims_check;
mod claims_consistency;
mod claims_repo;
mod claims_stats;
mod crypto;
mod digest;
mod gate_parity;
mod gate_strict;
mod gate_support;
mod legacy_json;
mod legacy_readers;
mod openssl_interop;
mod plot;
mod schemas;
mod select_golden;
mod select_husai;
mod select_inputs;
mod select_parity;
mod select_strict;
mod select_support;
mod select_upstream_ports;
mod stats_basic;
mod stats_pairwise;
mod subjects_keyids_trust;
mod verify_mutations;
