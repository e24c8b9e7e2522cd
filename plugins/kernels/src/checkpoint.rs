//! TopK SAE checkpoints in SAELens's on-disk layout, so `sae_lens.SAE.load_from_disk(dir)` loads them:
//!
//! - `cfg.json`: SAELens's `TopKSAEConfig` fields (`architecture: "topk"`, `d_in`, `d_sae`, `k`, ...);
//! - `sae_weights.safetensors`: `W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_in]`, `b_dec [d_in]`, all
//!   float32, SAELens's parameter names and shapes.
//!
//! The writer is deterministic: the same parameters always give the same bytes. The safetensors crate's own
//! serialiser orders tensors by dtype and name and builds its header from hash maps; writing the file here fixes the
//! tensor order (SAELens's state-dict order), the header text and its padding instead. Reading goes through the
//! safetensors crate, which validates every offset.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// All parameters of a TopK SAE in conventional layouts, for checkpoints and interchange.
#[derive(Debug, Clone, PartialEq)]
pub struct SaeParts {
    /// Input width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Latents kept per row.
    pub k: usize,
    /// Encoder, `[d_in, d_sae]` row-major (SAELens layout).
    pub w_enc: Vec<f32>,
    /// Encoder bias, `[d_sae]`.
    pub b_enc: Vec<f32>,
    /// Decoder, `[d_sae, d_in]` row-major.
    pub w_dec: Vec<f32>,
    /// Decoder bias, `[d_in]` (subtracted from the input before encoding).
    pub b_dec: Vec<f32>,
}

impl SaeParts {
    /// A fresh TopK SAE's parameters, the engine's initialisation ([`crate::engine::Sae::init`] with unit decoder
    /// rows and `W_enc = W_decᵀ`, the pre-engine TopK trainer's recipe): for tests and examples that need a
    /// checkpoint.
    pub fn init(
        d_in: usize,
        d_sae: usize,
        k: usize,
        seed: u64,
    ) -> Result<SaeParts, crate::KernelError> {
        let family = crate::families::TopK::new(k, d_sae);
        let init = crate::engine::InitConfig {
            dec_norm: 1.0,
            enc_scale: 1.0,
        };
        let p = crate::engine::Sae::init(&family, d_in, d_sae, seed, init)?.to_parts();
        Ok(SaeParts {
            d_in,
            d_sae,
            k,
            w_enc: p.w_enc,
            b_enc: p.b_enc,
            w_dec: p.w_dec,
            b_dec: p.b_dec,
        })
    }
}

/// File name of the weights inside a checkpoint directory (SAELens's `SAE_WEIGHTS_FILENAME`).
pub const WEIGHTS_FILE: &str = "sae_weights.safetensors";
/// File name of the config inside a checkpoint directory (SAELens's `SAE_CFG_FILENAME`).
pub const CONFIG_FILE: &str = "cfg.json";
/// The SAELens architecture name of a TopK SAE.
pub const ARCHITECTURE: &str = "topk";

/// Why a checkpoint cannot be written or read. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing a file failed.
    #[error("checkpoint file {path}: cannot {op}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but does not hold a TopK SAE checkpoint.
    #[error("checkpoint file {path}: {detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what was expected.
        detail: String,
    },
    /// The parameters' lengths disagree with their stated dimensions.
    #[error("cannot write a checkpoint: {0}")]
    Shape(String),
}

/// The SAELens `cfg.json` object for a TopK SAE of these dimensions.
///
/// `apply_b_dec_to_input: true` matches our encoder (`(x - b_dec) W_enc + b_enc`, then top-k of the ReLU'd
/// values); `rescale_acts_by_decoder_norm: false` because our top-k selection does not weight by decoder norms.
pub fn saelens_config(d_in: usize, d_sae: usize, k: usize) -> Value {
    json!({
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": true,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": saelens_metadata(),
        "k": k,
        "rescale_acts_by_decoder_norm": false,
        "architecture": ARCHITECTURE,
    })
}

/// The SAELens version whose `cfg.json` layout this file writes (the v6 layout: `architecture` plus a `metadata`
/// object). SAELens reads `metadata.sae_lens_version` to tell a v6 config from an older one; without it, it treats
/// the file as pre-6.0 and drops everything under `metadata`.
pub const SAELENS_LAYOUT_VERSION: &str = "6.0.0";

/// `cfg.json`'s `metadata`: the layout version, and the provenance fields SAELens keeps there. No data run husai
/// makes knows a model or hook (a synthetic bank, or an activation bank from outside), so `model_name` and
/// `hook_name` are null rather than guessed; SAELens accepts null for both.
pub fn saelens_metadata() -> Value {
    json!({
        "sae_lens_version": SAELENS_LAYOUT_VERSION,
        "model_name": null,
        "hook_name": null,
    })
}

fn tensors(p: &SaeParts) -> [(&'static str, [usize; 2], usize, &[f32]); 4] {
    // Rank-1 tensors are written with their single dimension; the second entry is unused for them (rank below).
    [
        ("W_enc", [p.d_in, p.d_sae], 2, &p.w_enc),
        ("b_enc", [p.d_sae, 0], 1, &p.b_enc),
        ("W_dec", [p.d_sae, p.d_in], 2, &p.w_dec),
        ("b_dec", [p.d_in, 0], 1, &p.b_dec),
    ]
}

/// The bytes of `sae_weights.safetensors` for `parts`.
pub fn safetensors_bytes(parts: &SaeParts) -> Result<Vec<u8>, CheckpointError> {
    let mut encoded = Vec::with_capacity(4);
    for (name, dims, rank, data) in tensors(parts) {
        let expected: usize = dims[..rank].iter().product();
        if data.len() != expected {
            return Err(CheckpointError::Shape(format!(
                "{name} has {} values but its shape {:?} needs {expected}",
                data.len(),
                &dims[..rank]
            )));
        }
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        encoded.push((name.to_owned(), "F32", dims[..rank].to_vec(), bytes));
    }
    Ok(encode_safetensors(None, &encoded))
}

/// A safetensors file with its tensors in the given order and a fixed header text: `{"__metadata__":META,` (when
/// `metadata` is given, already JSON), then `"name":{"dtype":..,"shape":[..],"data_offsets":[start,end]}` per tensor,
/// padded with spaces so the data starts 8-byte aligned (as the reference writer pads). Shared by the weights here
/// and the trainer state (`crate::state`), so both are deterministic byte for byte.
pub fn encode_safetensors(
    metadata: Option<&str>,
    tensors: &[(String, &str, Vec<usize>, Vec<u8>)],
) -> Vec<u8> {
    let mut entries = Vec::with_capacity(tensors.len() + 1);
    if let Some(meta) = metadata {
        entries.push(format!("\"__metadata__\":{meta}"));
    }
    let mut offset = 0usize;
    for (name, dtype, shape, bytes) in tensors {
        let dims = shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let end = offset + bytes.len();
        entries.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{dims}],\"data_offsets\":[{offset},{end}]}}"
        ));
        offset = end;
    }
    let mut header = format!("{{{}}}", entries.join(","));
    let padded = (8 + header.len()).next_multiple_of(8) - 8;
    header.push_str(&" ".repeat(padded - header.len()));
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    out
}

/// Writes `cfg.json` and `sae_weights.safetensors` for `parts` into `dir` (which must exist).
pub fn write(dir: &Path, parts: &SaeParts) -> Result<(), CheckpointError> {
    let weights = safetensors_bytes(parts)?;
    let cfg_path = dir.join(CONFIG_FILE);
    let mut cfg = serde_json::to_vec_pretty(&saelens_config(parts.d_in, parts.d_sae, parts.k))
        .map_err(|e| CheckpointError::Shape(format!("cannot serialise cfg.json: {e}")))?;
    cfg.push(b'\n');
    std::fs::write(&cfg_path, cfg).map_err(|source| CheckpointError::Io {
        path: cfg_path,
        op: "write it",
        source,
    })?;
    let w_path = dir.join(WEIGHTS_FILE);
    std::fs::write(&w_path, weights).map_err(|source| CheckpointError::Io {
        path: w_path,
        op: "write it",
        source,
    })
}

/// Reads a TopK checkpoint written by [`write`] (or by SAELens for a `topk` SAE with float32 weights).
pub fn read(dir: &Path) -> Result<SaeParts, CheckpointError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| CheckpointError::Io {
            path,
            op: "read it",
            source,
        })
    };
    from_bytes(dir, &read(CONFIG_FILE)?, &read(WEIGHTS_FILE)?)
}

/// [`read`] from the contents of the two files of the checkpoint directory `dir` (named in messages), for callers
/// that read (and hash) the files themselves.
pub fn from_bytes(
    dir: &Path,
    cfg_bytes: &[u8],
    weights: &[u8],
) -> Result<SaeParts, CheckpointError> {
    let cfg_path = dir.join(CONFIG_FILE);
    let invalid = |path: &Path, detail: String| CheckpointError::Invalid {
        path: path.to_owned(),
        detail,
    };
    let cfg: Value = serde_json::from_slice(cfg_bytes)
        .map_err(|e| invalid(&cfg_path, format!("is not valid JSON: {e}")))?;
    let arch = cfg.get("architecture").and_then(Value::as_str);
    if arch != Some(ARCHITECTURE) {
        return Err(invalid(
            &cfg_path,
            format!("architecture is {arch:?}; only \"topk\" checkpoints can be read"),
        ));
    }
    let dim = |key: &str| {
        cfg.get(key)
            .and_then(Value::as_u64)
            .filter(|&v| v > 0)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| {
                invalid(
                    &cfg_path,
                    format!("field {key:?} must be a positive integer"),
                )
            })
    };
    let (d_in, d_sae, k) = (dim("d_in")?, dim("d_sae")?, dim("k")?);

    let w_path = dir.join(WEIGHTS_FILE);
    let bytes = weights;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| invalid(&w_path, format!("is not a valid safetensors file: {e}")))?;
    let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>, CheckpointError> {
        let view = st
            .tensor(name)
            .map_err(|_| invalid(&w_path, format!("has no tensor {name:?}")))?;
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(invalid(
                &w_path,
                format!("tensor {name:?} is {:?}; expected F32", view.dtype()),
            ));
        }
        if view.shape() != shape {
            return Err(invalid(
                &w_path,
                format!(
                    "tensor {name:?} has shape {:?}; cfg.json implies {shape:?}",
                    view.shape()
                ),
            ));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    Ok(SaeParts {
        d_in,
        d_sae,
        k,
        w_enc: tensor("W_enc", &[d_in, d_sae])?,
        b_enc: tensor("b_enc", &[d_sae])?,
        w_dec: tensor("W_dec", &[d_sae, d_in])?,
        b_dec: tensor("b_dec", &[d_in])?,
    })
}

/// The SAELens `cfg.json` object of an engine model of family `family` ([`crate::family::Family`]): the fields
/// every SAELens SAE config has, then the family's own, then `architecture`.
pub fn family_config(family: &dyn crate::family::Family, d_in: usize, d_sae: usize) -> Value {
    let mut cfg = serde_json::Map::new();
    for (k, v) in [
        ("d_in", json!(d_in)),
        ("d_sae", json!(d_sae)),
        ("dtype", json!("float32")),
        ("device", json!("cpu")),
        ("apply_b_dec_to_input", json!(true)),
        ("normalize_activations", json!("none")),
        ("reshape_activations", json!("none")),
        ("metadata", saelens_metadata()),
    ] {
        cfg.insert(k.into(), v);
    }
    family.saelens_config(&mut cfg);
    cfg.insert("architecture".into(), json!(family.saelens_architecture()));
    Value::Object(cfg)
}

/// The bytes of `sae_weights.safetensors` for an engine model: `W_enc, b_enc, W_dec, b_dec` as for TopK, then
/// the family's [`crate::family::Family::saelens_tensors`].
pub fn family_safetensors_bytes(
    family: &dyn crate::family::Family,
    parts: &crate::engine::ModelParts,
) -> Result<Vec<u8>, CheckpointError> {
    let mut encoded = Vec::with_capacity(5);
    let shared: [(&str, Vec<usize>, &[f32]); 4] = [
        ("W_enc", vec![parts.d_in, parts.d_sae], &parts.w_enc),
        ("b_enc", vec![parts.d_sae], &parts.b_enc),
        ("W_dec", vec![parts.d_sae, parts.d_in], &parts.w_dec),
        ("b_dec", vec![parts.d_in], &parts.b_dec),
    ];
    let params: Vec<Vec<f32>> = parts.family.iter().map(|(_, v)| v.clone()).collect();
    let extra = family.saelens_tensors(&params, parts.d_sae);
    let all = shared
        .iter()
        .map(|(n, s, d)| (n.to_string(), s.clone(), *d))
        .chain(
            extra
                .iter()
                .map(|(n, s, d)| (n.clone(), s.clone(), d.as_slice())),
        );
    for (name, shape, data) in all {
        let expected: usize = shape.iter().product();
        if data.len() != expected {
            return Err(CheckpointError::Shape(format!(
                "{name} has {} values but its shape {shape:?} needs {expected}",
                data.len()
            )));
        }
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        encoded.push((name, "F32", shape, bytes));
    }
    Ok(encode_safetensors(None, &encoded))
}

/// Writes `cfg.json` and `sae_weights.safetensors` of an engine model into `dir` (which must exist), in SAELens's
/// layout for the family's SAELens architecture.
pub fn write_family(
    dir: &Path,
    family: &dyn crate::family::Family,
    parts: &crate::engine::ModelParts,
) -> Result<(), CheckpointError> {
    let weights = family_safetensors_bytes(family, parts)?;
    let cfg_path = dir.join(CONFIG_FILE);
    let mut cfg = serde_json::to_vec_pretty(&family_config(family, parts.d_in, parts.d_sae))
        .map_err(|e| CheckpointError::Shape(format!("cannot serialise cfg.json: {e}")))?;
    cfg.push(b'\n');
    std::fs::write(&cfg_path, cfg).map_err(|source| CheckpointError::Io {
        path: cfg_path,
        op: "write it",
        source,
    })?;
    let w_path = dir.join(WEIGHTS_FILE);
    std::fs::write(&w_path, weights).map_err(|source| CheckpointError::Io {
        path: w_path,
        op: "write it",
        source,
    })
}

/// Reads the shared tensors of a checkpoint written by [`write_family`] for `family` (its `cfg.json` must name
/// the family's SAELens architecture). Family parameters are not read from here but from the trainer state,
/// which holds them exactly as trained; `parts.family` is empty.
pub fn read_family_bytes(
    dir: &Path,
    family: &dyn crate::family::Family,
    cfg_bytes: &[u8],
    weights: &[u8],
) -> Result<crate::engine::ModelParts, CheckpointError> {
    let cfg_path = dir.join(CONFIG_FILE);
    let invalid = |path: &Path, detail: String| CheckpointError::Invalid {
        path: path.to_owned(),
        detail,
    };
    let cfg: Value = serde_json::from_slice(cfg_bytes)
        .map_err(|e| invalid(&cfg_path, format!("is not valid JSON: {e}")))?;
    let arch = cfg.get("architecture").and_then(Value::as_str);
    let want = family.saelens_architecture();
    if arch != Some(want) {
        return Err(invalid(
            &cfg_path,
            format!(
                "architecture is {arch:?}; the {} family reads only {want:?} checkpoints",
                family.name()
            ),
        ));
    }
    let dim = |key: &str| {
        cfg.get(key)
            .and_then(Value::as_u64)
            .filter(|&v| v > 0)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| {
                invalid(
                    &cfg_path,
                    format!("field {key:?} must be a positive integer"),
                )
            })
    };
    let (d_in, d_sae) = (dim("d_in")?, dim("d_sae")?);
    let w_path = dir.join(WEIGHTS_FILE);
    let st = safetensors::SafeTensors::deserialize(weights)
        .map_err(|e| invalid(&w_path, format!("is not a valid safetensors file: {e}")))?;
    let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>, CheckpointError> {
        let view = st
            .tensor(name)
            .map_err(|_| invalid(&w_path, format!("has no tensor {name:?}")))?;
        if view.dtype() != safetensors::Dtype::F32 || view.shape() != shape {
            return Err(invalid(
                &w_path,
                format!(
                    "tensor {name:?} is {:?} {:?}; cfg.json implies F32 {shape:?}",
                    view.dtype(),
                    view.shape()
                ),
            ));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    Ok(crate::engine::ModelParts {
        d_in,
        d_sae,
        w_enc: tensor("W_enc", &[d_in, d_sae])?,
        b_enc: tensor("b_enc", &[d_sae])?,
        w_dec: tensor("W_dec", &[d_sae, d_in])?,
        b_dec: tensor("b_dec", &[d_in])?,
        family: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(seed: u64) -> SaeParts {
        SaeParts::init(6, 10, 3, seed).unwrap()
    }

    #[test]
    fn same_parameters_give_identical_bytes_and_round_trip() {
        let a = safetensors_bytes(&parts(7)).unwrap();
        let b = safetensors_bytes(&parts(7)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, safetensors_bytes(&parts(8)).unwrap());
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &parts(7)).unwrap();
        assert_eq!(std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap(), a);
        assert_eq!(read(dir.path()).unwrap(), parts(7));
    }

    #[test]
    fn layout_is_saelens_names_shapes_and_aligned_data() {
        let bytes = safetensors_bytes(&parts(1)).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!((8 + header_len) % 8, 0);
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let shapes: Vec<(String, Vec<usize>)> = ["W_enc", "b_enc", "W_dec", "b_dec"]
            .iter()
            .map(|n| (n.to_string(), st.tensor(n).unwrap().shape().to_vec()))
            .collect();
        assert_eq!(
            shapes,
            vec![
                ("W_enc".into(), vec![6, 10]),
                ("b_enc".into(), vec![10]),
                ("W_dec".into(), vec![10, 6]),
                ("b_dec".into(), vec![6]),
            ]
        );
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
        assert!(
            header.starts_with(
                "{\"W_enc\":{\"dtype\":\"F32\",\"shape\":[6,10],\"data_offsets\":[0,240]}"
            ),
            "{header}"
        );
        let cfg = saelens_config(6, 10, 3);
        assert_eq!(cfg["architecture"], "topk");
        assert_eq!(cfg["k"], 3);
        assert_eq!(cfg["metadata"]["sae_lens_version"], SAELENS_LAYOUT_VERSION);
        // Every family's writer carries the same metadata: without sae_lens_version SAELens reads the file as a
        // pre-6.0 config and drops `metadata` (issue #9 item 3).
        let family = family_config(&crate::families::TopK::new(3, 10), 6, 10);
        assert_eq!(family["metadata"], saelens_metadata());
    }

    #[test]
    fn wrong_lengths_are_refused() {
        let mut p = parts(1);
        p.b_dec.pop();
        let msg = safetensors_bytes(&p).unwrap_err().to_string();
        assert!(
            msg.contains("b_dec has 5 values but its shape [6] needs 6"),
            "{msg}"
        );
    }

    #[test]
    fn reading_checks_architecture_and_shapes() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &parts(2)).unwrap();
        let cfg_path = dir.path().join(CONFIG_FILE);
        let mut cfg = saelens_config(6, 10, 3);
        cfg["architecture"] = json!("jumprelu");
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let msg = read(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("cfg.json") && msg.contains("only \"topk\""),
            "{msg}"
        );
        cfg = saelens_config(7, 10, 3);
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let msg = read(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("tensor \"W_enc\" has shape [6, 10]; cfg.json implies [7, 10]"),
            "{msg}"
        );
        std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
        let msg = read(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("sae_weights.safetensors: cannot read it"),
            "{msg}"
        );
    }
}
