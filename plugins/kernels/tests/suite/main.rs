//! Every integration test of this crate, in one binary: one link instead of one per file (issue #9 item 10).
//! Each module is the former tests/<name>.rs; run one with `cargo test -p <crate> --test suite <name>::`.

mod golden;
mod trainer;
mod training;
