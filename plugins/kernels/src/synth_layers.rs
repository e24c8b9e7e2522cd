//! A synthetic multi-layer bank whose right layer per row is known: for routing SAEs (RouteSAE), which must learn
//! to send each row to the layer that carries its structure.
//!
//! `layers` layers of width `d_in`. The dictionary has `atoms_per_layer` unit atoms per layer; the atoms of layer
//! `l` share a direction (`c_l + 0.8 g`, `c_l` and `g` standard normal, then normalised), as features of one depth
//! of a network share a subspace, so a linear router can tell the layers apart. Each row picks a home layer
//! uniformly; its home layer holds a sum of `l0` distinct atoms of that layer with coefficients `0.5 + Exp(1)`,
//! plus normal noise of standard deviation 0.05; every other layer holds isotropic normal noise of the same
//! expected norm as the row's signal, which no sparse code explains. Rows are generated in fixed chunks, each from
//! its own random stream, so the bank is identical for any thread count.

use rayon::prelude::*;

use crate::checkpoint::encode_safetensors;
use crate::error::KernelError;
use crate::rng::SplitMix64;

/// Rows per independent random stream.
const CHUNK: usize = 1024;

/// How to generate a planted multi-layer bank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayeredConfig {
    /// Rows (token positions).
    pub rows: usize,
    /// Layers.
    pub layers: usize,
    /// Width of each layer.
    pub d_in: usize,
    /// Atoms of each layer's dictionary.
    pub atoms_per_layer: usize,
    /// Atoms per row in its home layer.
    pub l0: usize,
    /// Generator seed.
    pub seed: u64,
}

/// A planted multi-layer bank.
#[derive(Debug, Clone, PartialEq)]
pub struct LayeredData {
    /// `[rows, layers * d_in]`: each row's layers side by side (as `activations::LayerBank` gives them).
    pub x: Vec<f32>,
    /// Each row's home layer.
    pub home: Vec<u32>,
}

fn normalised(v: &mut [f32]) {
    let n = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt() as f32;
    v.iter_mut().for_each(|x| *x /= n);
}

/// Generates the bank `config` describes (on the current rayon pool).
pub fn generate_layered(config: &LayeredConfig) -> Result<LayeredData, KernelError> {
    let LayeredConfig {
        rows,
        layers,
        d_in,
        atoms_per_layer,
        l0,
        seed,
    } = *config;
    let bad = |field: &'static str, value: usize, reason: &str| KernelError::Config {
        field,
        value: value.to_string(),
        reason: reason.into(),
    };
    if layers < 2 {
        return Err(bad(
            "layers",
            layers,
            "must be >= 2 (a router chooses among layers)",
        ));
    }
    if d_in == 0 {
        return Err(bad("d_in", d_in, "must be >= 1"));
    }
    if l0 == 0 || l0 > atoms_per_layer {
        return Err(bad("l0", l0, "must be in 1..=atoms_per_layer"));
    }
    let mut g = SplitMix64::stream(seed, 0);
    let mut atoms = vec![0f32; layers * atoms_per_layer * d_in];
    for l in 0..layers {
        let center: Vec<f32> = (0..d_in).map(|_| g.normal() as f32).collect();
        for a in 0..atoms_per_layer {
            let atom = &mut atoms[(l * atoms_per_layer + a) * d_in..][..d_in];
            for (o, &c) in atom.iter_mut().zip(&center) {
                *o = c + 0.8 * g.normal() as f32;
            }
            normalised(atom);
        }
    }
    let width = layers * d_in;
    let mut x = vec![0f32; rows * width];
    let mut home = vec![0u32; rows];
    let atoms = &atoms;
    x.par_chunks_mut(CHUNK * width)
        .zip(home.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, (block, homes))| {
            let mut g = SplitMix64::stream(seed, 1 + c as u64);
            let mut chosen: Vec<usize> = Vec::with_capacity(l0);
            let mut signal = vec![0f32; d_in];
            for (row, h) in block.chunks_exact_mut(width).zip(homes.iter_mut()) {
                let l = g.below(layers as u64) as usize;
                *h = l as u32;
                chosen.clear();
                while chosen.len() < l0 {
                    let a = g.below(atoms_per_layer as u64) as usize;
                    if !chosen.contains(&a) {
                        chosen.push(a);
                    }
                }
                signal.fill(0.0);
                for &a in &chosen {
                    let coef = 0.5 - (1.0 - g.uniform_f64()).ln();
                    let atom = &atoms[(l * atoms_per_layer + a) * d_in..][..d_in];
                    signal
                        .iter_mut()
                        .zip(atom)
                        .for_each(|(s, &v)| *s += coef as f32 * v);
                }
                let sd = signal
                    .iter()
                    .map(|&v| v as f64 * v as f64)
                    .sum::<f64>()
                    .sqrt()
                    / (d_in as f64).sqrt();
                for (j, layer) in row.chunks_exact_mut(d_in).enumerate() {
                    if j == l {
                        for (o, &s) in layer.iter_mut().zip(&signal) {
                            *o = s + 0.05 * g.normal() as f32;
                        }
                    } else {
                        layer.iter_mut().for_each(|o| *o = (sd * g.normal()) as f32);
                    }
                }
            }
        });
    Ok(LayeredData { x, home })
}

/// The bytes of a multi-layer `.safetensors` bank: tensor `names[l]` (`[rows, d_in]` F32) is layer `l` of `x`
/// (`[rows, names.len() * d_in]`), stored in that order.
pub fn layer_bank_bytes(names: &[&str], d_in: usize, x: &[f32]) -> Vec<u8> {
    let width = names.len() * d_in;
    let rows = x.len() / width;
    let tensors: Vec<(String, &str, Vec<usize>, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(l, name)| {
            let bytes = x
                .chunks_exact(width)
                .flat_map(|row| {
                    row[l * d_in..(l + 1) * d_in]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                })
                .collect();
            (name.to_string(), "F32", vec![rows, d_in], bytes)
        })
        .collect();
    encode_safetensors(None, &tensors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activations::LayerBank;

    fn cfg() -> LayeredConfig {
        LayeredConfig {
            rows: 2500,
            layers: 3,
            d_in: 16,
            atoms_per_layer: 20,
            l0: 3,
            seed: 4,
        }
    }

    #[test]
    fn the_home_layer_is_sparse_others_are_noise_and_generation_is_thread_independent() {
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let a = one.install(|| generate_layered(&cfg()).unwrap());
        let b = generate_layered(&cfg()).unwrap();
        assert_eq!(a, b);
        let c = cfg();
        for l in 0..c.layers {
            let share = a.home.iter().filter(|&&h| h as usize == l).count() as f64 / c.rows as f64;
            assert!((share - 1.0 / 3.0).abs() < 0.05, "layer {l}: {share}");
        }
        // The signal layer is the sum of l0 atoms sharing a direction: its mean over home rows is far from zero,
        // while the noise layers' means vanish.
        let mean_norm = |l: usize, home_rows: bool| {
            let mut m = vec![0f64; c.d_in];
            let mut n = 0;
            for (row, &h) in a.x.chunks_exact(c.layers * c.d_in).zip(&a.home) {
                if (h as usize == l) == home_rows {
                    n += 1;
                    for (s, &v) in m.iter_mut().zip(&row[l * c.d_in..(l + 1) * c.d_in]) {
                        *s += v as f64;
                    }
                }
            }
            m.iter().map(|s| (s / n as f64).powi(2)).sum::<f64>().sqrt()
        };
        for l in 0..c.layers {
            assert!(
                mean_norm(l, true) > 1.0,
                "layer {l} home mean {}",
                mean_norm(l, true)
            );
            assert!(
                mean_norm(l, false) < 0.2,
                "layer {l} noise mean {}",
                mean_norm(l, false)
            );
        }
    }

    #[test]
    fn the_written_bank_reads_back_as_the_same_rows_and_bad_configs_name_the_field() {
        let c = cfg();
        let data = generate_layered(&c).unwrap();
        let bytes = layer_bank_bytes(&["l0", "l1", "l2"], c.d_in, &data.x);
        let bank =
            LayerBank::from_bytes(std::path::Path::new("b.safetensors"), bytes, None).unwrap();
        assert_eq!(bank.layer_names(), ["l0", "l1", "l2"]);
        assert_eq!(bank.rows(0, c.rows).unwrap(), data.x);
        let e = generate_layered(&LayeredConfig { layers: 1, ..c }).unwrap_err();
        assert!(e.to_string().contains("layers"), "{e}");
        let e = generate_layered(&LayeredConfig { l0: 21, ..c }).unwrap_err();
        assert!(e.to_string().contains("l0"), "{e}");
    }
}
