//! husai trainer plugin `sae-jumprelu`: JumpReLU sparse autoencoders (Rajamanoharan et al. 2024).

pub mod config;
pub mod family;
pub mod jump;
pub mod target;

#[cfg(test)]
mod tests;
