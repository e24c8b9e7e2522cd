//! One module per subcommand.

pub mod attest;
pub mod keygen;
pub mod show;
pub mod verify;
