pub fn placeholder() {}
pub mod canonical;
pub mod dsse;
pub mod keys;
pub mod trust;
pub mod legacy;
pub mod stats;
pub mod select;
pub mod plugin;
pub mod digest;
