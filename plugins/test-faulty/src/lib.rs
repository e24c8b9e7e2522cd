//! Small file formats the test-only plugins share (the plugins themselves are cdylib examples of this crate, see
//! Cargo.toml): a `.npy` float32 matrix reader, a safetensors writer and reader for flat tensors, and sha256.
//!
//! These are deliberately minimal: the test trainer must not depend on husai-kernels, so that the host's paths are
//! tested against a trainer that shares nothing with the real ones.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A C-order float32 `[rows, cols]` matrix read from `.npy` bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

/// Parses `.npy` version 1/2 bytes holding a little-endian float32 2-D array in C order.
pub fn parse_npy_f32(bytes: &[u8]) -> Result<Matrix, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".to_owned());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!(".npy version {v} is not supported")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("the .npy header is truncated")?;
    if !header.contains("'<f4'") {
        return Err(format!(
            "only little-endian float32 ('<f4') is supported, header {header:?}"
        ));
    }
    if header.contains("'fortran_order': True") {
        return Err("Fortran-order arrays are not supported".to_owned());
    }
    let shape = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .map(|s| s.trim().trim_start_matches('('))
        .ok_or("the .npy header has no shape")?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape entry {s:?}"))
        })
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(format!("expected a 2-D array, got shape {dims:?}"));
    };
    let body = &bytes[start + header_len..];
    if body.len() != rows * cols * 4 {
        return Err(format!(
            "{} data bytes, expected {} for [{rows}, {cols}] float32",
            body.len(),
            rows * cols * 4
        ));
    }
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Matrix { rows, cols, data })
}

/// A flat tensor for [`safetensors_bytes`]: dtype name (`F32`, `F64`, `I64`), shape and little-endian bytes.
pub struct Tensor {
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Tensor {
    pub fn f64s(v: &[f64]) -> Tensor {
        Tensor {
            dtype: "F64",
            shape: vec![v.len()],
            bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
    pub fn f32s(v: &[f32]) -> Tensor {
        Tensor {
            dtype: "F32",
            shape: vec![v.len()],
            bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
    pub fn i64s(v: &[i64]) -> Tensor {
        Tensor {
            dtype: "I64",
            shape: vec![v.len()],
            bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A safetensors file: 8-byte little-endian header length, the JSON header (tensors in name order), the data.
pub fn safetensors_bytes(tensors: &BTreeMap<&str, Tensor>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, t) in tensors {
        header.insert(
            (*name).to_owned(),
            json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.len()]}),
        );
        offset += t.bytes.len();
    }
    let mut text = Value::Object(header).to_string();
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    for t in tensors.values() {
        out.extend_from_slice(&t.bytes);
    }
    out
}

/// The raw bytes of tensor `name` in safetensors `bytes`.
pub fn safetensors_tensor<'a>(bytes: &'a [u8], name: &str) -> Result<(&'a [u8], String), String> {
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or("truncated")?;
    let header: Value = bytes
        .get(8..8 + len)
        .and_then(|h| serde_json::from_slice(h).ok())
        .ok_or("the safetensors header is not JSON")?;
    let t = header
        .get(name)
        .ok_or_else(|| format!("no tensor {name:?}"))?;
    let off = |i: usize| {
        t["data_offsets"][i]
            .as_u64()
            .map(|v| v as usize)
            .ok_or("bad data_offsets")
    };
    let (a, b) = (off(0)?, off(1)?);
    let data = bytes
        .get(8 + len + a..8 + len + b)
        .ok_or("tensor data out of bounds")?;
    Ok((data, t["dtype"].as_str().unwrap_or("").to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_round_trip() {
        let mut m = BTreeMap::new();
        m.insert("a", Tensor::f64s(&[1.5, -2.0]));
        m.insert("b", Tensor::i64s(&[7]));
        let bytes = safetensors_bytes(&m);
        let (a, dt) = safetensors_tensor(&bytes, "a").unwrap();
        assert_eq!(dt, "F64");
        assert_eq!(f64::from_le_bytes(a[8..16].try_into().unwrap()), -2.0);
        assert!(safetensors_tensor(&bytes, "c").is_err());
    }

    #[test]
    fn npy_reads_a_float32_matrix() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = header.to_owned();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        for i in 0..6 {
            bytes.extend_from_slice(&(i as f32).to_le_bytes());
        }
        let m = parse_npy_f32(&bytes).unwrap();
        assert_eq!((m.rows, m.cols, m.data[5]), (2, 3, 5.0));
        assert!(
            parse_npy_f32(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .contains("data bytes")
        );
    }
}
