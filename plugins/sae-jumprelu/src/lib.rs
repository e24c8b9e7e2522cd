//! husai trainer plugin `sae-jumprelu` (the plugin glue lands with the kernels' family run).

pub mod config;
pub mod family;
pub mod jump;
pub mod target;

#[cfg(test)]
mod tests;
