//! The safetensors container for float32 tensors: an 8-byte little-endian header length, a JSON header naming each
//! tensor's dtype, shape and byte range, then the data. Enough to read SAELens checkpoints husai writes and to write
//! sparsify's; other dtypes are refused by name.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// One float32 tensor: its shape and its values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Largest header accepted (the format's own limit is 100 MB; ours are a few hundred bytes).
const MAX_HEADER: u64 = 100_000_000;

/// Parses a safetensors file's bytes; every tensor must be F32 with a byte range that matches its shape and lies
/// inside the file. Err: what is wrong, in words.
pub fn parse(bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, String> {
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("shorter than the 8-byte header length")?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER || 8 + header_len > bytes.len() as u64 {
        return Err(format!(
            "header length {header_len} does not fit the file ({} bytes)",
            bytes.len()
        ));
    }
    let data = &bytes[8 + header_len as usize..];
    let header: Map<String, Value> = serde_json::from_slice(&bytes[8..8 + header_len as usize])
        .map_err(|e| format!("the header is not a JSON object: {e}"))?;
    let mut out = BTreeMap::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = entry.get("dtype").and_then(Value::as_str).unwrap_or("?");
        if dtype != "F32" {
            return Err(format!(
                "tensor {name:?} has dtype {dtype}; only F32 is read"
            ));
        }
        let shape: Vec<usize> = entry
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| format!("tensor {name:?} has no valid shape"))?;
        let offsets: Vec<usize> = entry
            .get("data_offsets")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .filter(|o: &Vec<usize>| o.len() == 2 && o[0] <= o[1] && o[1] <= data.len())
            .ok_or_else(|| format!("tensor {name:?} has data_offsets outside the file"))?;
        let count: usize = shape.iter().product();
        if offsets[1] - offsets[0] != count * 4 {
            return Err(format!(
                "tensor {name:?} of shape {shape:?} needs {} bytes but its range holds {}",
                count * 4,
                offsets[1] - offsets[0]
            ));
        }
        let values = data[offsets[0]..offsets[1]]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(
            name,
            Tensor {
                shape,
                data: values,
            },
        );
    }
    Ok(out)
}

/// The bytes of a safetensors file holding `tensors` (in name order, contiguous), with the header padded with
/// spaces to a multiple of 8 bytes so that the data is aligned, as the reference writer does.
pub fn serialize(tensors: &BTreeMap<String, Tensor>) -> Vec<u8> {
    let mut header = Map::new();
    let mut offset = 0usize;
    for (name, t) in tensors {
        let end = offset + t.data.len() * 4;
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": t.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text = Value::Object(header).to_string().into_bytes();
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for t in tensors.values() {
        for v in &t.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BTreeMap<String, Tensor> {
        BTreeMap::from([
            (
                "a".to_owned(),
                Tensor {
                    shape: vec![2, 3],
                    data: vec![1.0, -2.0, 3.5, 0.0, 5.0, 6.25],
                },
            ),
            (
                "b".to_owned(),
                Tensor {
                    shape: vec![3],
                    data: vec![7.0, 8.0, f32::MIN_POSITIVE],
                },
            ),
        ])
    }

    #[test]
    fn round_trips_and_aligns_the_data() {
        let bytes = serialize(&sample());
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0);
        assert_eq!(bytes.len(), 8 + header_len + 9 * 4);
        assert_eq!(parse(&bytes).unwrap(), sample());
    }

    #[test]
    fn refuses_other_dtypes_bad_ranges_and_truncation() {
        let bytes = serialize(&sample());
        assert!(
            parse(&bytes[..5])
                .unwrap_err()
                .contains("shorter than the 8-byte header length")
        );
        assert!(
            parse(&bytes[..bytes.len() - 4])
                .unwrap_err()
                .contains("data_offsets outside the file")
        );
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + header_len])
            .unwrap()
            .replacen("\"F32\"", "\"F16\"", 1);
        let mut f16 = bytes[..8].to_vec();
        f16.extend_from_slice(header.as_bytes());
        f16.extend_from_slice(&bytes[8 + header_len..]);
        assert!(
            parse(&f16)
                .unwrap_err()
                .contains("has dtype F16; only F32 is read")
        );
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(parse(&huge).unwrap_err().contains("does not fit the file"));
    }
}
