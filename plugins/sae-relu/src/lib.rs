//! husai trainer plugin `sae-relu`: SAELens's "standard" sparse autoencoder (ReLU, decoder-norm-weighted L1).

pub mod config;
pub mod family;
pub mod penalty;

#[cfg(test)]
mod tests;
