//! One module per subcommand.

pub mod attest;
pub mod claims;
pub mod data;
pub mod eval;
pub mod export;
pub mod gate;
pub mod import;
pub mod keygen;
pub mod pin;
pub mod plot;
pub mod plugins;
pub mod select;
pub mod show;
pub mod train;
pub mod trust;
pub mod verify;
