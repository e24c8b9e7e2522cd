//! One module per subcommand.

pub mod attest;
pub mod claims;
pub mod gate;
pub mod import;
pub mod keygen;
pub mod select;
pub mod show;
pub mod verify;
pub mod plugins;
pub mod train;
pub mod data;
