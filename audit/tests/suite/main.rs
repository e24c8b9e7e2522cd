//! Every integration test of this crate, in one binary: one link instead of one per file (issue #9 item 10).
//! Each module is the former tests/<name>.rs; run one with `cargo test -p <crate> --test suite <name>::`.

mod attest_cli;
mod claims_cli;
mod common;
mod data_cli;
mod eval_e2e;
mod eval_host;
mod exit_codes;
mod export_cli;
mod gate_cli;
mod import_cli;
mod install_cli;
mod pin_cli;
mod plot_cli;
mod plugin_host;
mod plugin_signals;
mod quickstart_cli;
mod release_e2e;
mod select_cli;
mod select_husai;
mod train_cli;
mod train_contract;
mod trust_cli;
mod verify_tamper;
