//! husai trainer plugin `sae-relu` (the plugin glue lands with the kernels' family run).

pub mod config;
pub mod family;
pub mod penalty;

#[cfg(test)]
mod tests;
