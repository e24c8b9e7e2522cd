//! `router.safetensors` (the router, beside the SAELens checkpoint of the shared SAE) and
//! `router_state.safetensors` (its Adam moments, for an exact resume).
//!
//! `router.safetensors` holds `W_router` (`[L, d]` F32) and `layer_scale` (`[L]` F32); its metadata records
//! `format = "husai-router"`, `version`, `layers` (a JSON list of the bank's tensor names, in `W_router`'s row
//! order), `aggregation = "sum"` and `routing = "hard"`. To encode a row with the SAE loaded in SAELens:
//! `v = Σ_l layer_scale[l] · x_l`, `l* = argmax(W_router v)`, then `sae.encode(layer_scale[l*] · x_l*)`.

use std::collections::BTreeMap;
use std::path::Path;

use husai_kernels::adam::Moments;
use husai_kernels::checkpoint::encode_safetensors;
use husai_kernels::trainer::{Digests, TrainerError, read_input};

use crate::router::Router;

/// The router file.
pub const ROUTER_FILE: &str = "router.safetensors";
/// The router's optimiser state.
pub const ROUTER_STATE_FILE: &str = "router_state.safetensors";
/// `format` of the router file's metadata.
pub const FORMAT: &str = "husai-router";
/// `format` of the state file's metadata.
pub const STATE_FORMAT: &str = "husai-router-state";
/// Version of both layouts.
pub const VERSION: &str = "1";

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn meta_json(pairs: &[(&str, String)]) -> String {
    let m: BTreeMap<&str, &str> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    serde_json::to_string(&m).expect("string map serialises")
}

/// The bytes of `router.safetensors`.
pub fn router_bytes(router: &Router, layers: &[String]) -> Vec<u8> {
    let meta = meta_json(&[
        ("format", FORMAT.into()),
        ("version", VERSION.into()),
        (
            "layers",
            serde_json::to_string(layers).expect("names serialise"),
        ),
        ("aggregation", "sum".into()),
        ("routing", "hard".into()),
    ]);
    encode_safetensors(
        Some(&meta),
        &[
            (
                "W_router".into(),
                "F32",
                vec![router.n_layers, router.d],
                f32_bytes(&router.w),
            ),
            (
                "layer_scale".into(),
                "F32",
                vec![router.n_layers],
                f32_bytes(&router.scale),
            ),
        ],
    )
}

/// The bytes of `router_state.safetensors`.
pub fn state_bytes(router: &Router, moments: &Moments, steps_done: u64) -> Vec<u8> {
    let meta = meta_json(&[
        ("format", STATE_FORMAT.into()),
        ("version", VERSION.into()),
        ("steps_done", steps_done.to_string()),
    ]);
    let shape = vec![router.n_layers, router.d];
    encode_safetensors(
        Some(&meta),
        &[
            (
                "adam.W_router.exp_avg".into(),
                "F32",
                shape.clone(),
                f32_bytes(&moments.m),
            ),
            (
                "adam.W_router.exp_avg_sq".into(),
                "F32",
                shape,
                f32_bytes(&moments.v),
            ),
        ],
    )
}

/// A tensor of `file` as F32 of exactly `shape`, or an error naming the file and the tensor.
fn tensor(
    path: &Path,
    st: &safetensors::SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, TrainerError> {
    let bad = |why: String| TrainerError::Input(format!("{}: {why}", path.display()));
    let t = st
        .tensor(name)
        .map_err(|_| bad(format!("has no tensor {name:?}")))?;
    if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
        return Err(bad(format!(
            "tensor {name:?} is {:?} {:?}; this run needs F32 {shape:?}",
            t.dtype(),
            t.shape()
        )));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    format: &str,
) -> Result<(safetensors::SafeTensors<'a>, BTreeMap<String, String>), TrainerError> {
    let bad = |why: String| TrainerError::Input(format!("{}: {why}", path.display()));
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let meta: BTreeMap<String, String> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if meta.get("format").map(String::as_str) != Some(format) {
        return Err(bad(format!(
            "is not a {format} file (its metadata format is {:?}); resume from a directory sae-routed wrote",
            meta.get("format")
        )));
    }
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    Ok((st, meta))
}

/// Reads a resumed run's router and its moments from `dir`; its layers must be `layers` (the bank's) and each of
/// width `d`.
pub fn read(
    dir: &Path,
    layers: &[String],
    d: usize,
    digests: &mut Digests,
) -> Result<(Router, Moments), TrainerError> {
    let path = dir.join(ROUTER_FILE);
    let bytes = read_input(&format!("resume/{ROUTER_FILE}"), &path, digests)?;
    let (st, meta) = parse(&path, &bytes, FORMAT)?;
    let written: Vec<String> = meta
        .get("layers")
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    if written != layers {
        return Err(TrainerError::Input(format!(
            "{}: the resumed router routes over {written:?} but this run's bank gives {layers:?}; resume with the \
             same bank and layers",
            path.display()
        )));
    }
    let n_layers = layers.len();
    let router = Router {
        n_layers,
        d,
        w: tensor(&path, &st, "W_router", &[n_layers, d])?,
        scale: tensor(&path, &st, "layer_scale", &[n_layers])?,
    };
    let spath = dir.join(ROUTER_STATE_FILE);
    let sbytes = read_input(&format!("resume/{ROUTER_STATE_FILE}"), &spath, digests)?;
    let (sst, _) = parse(&spath, &sbytes, STATE_FORMAT)?;
    let moments = Moments {
        m: tensor(&spath, &sst, "adam.W_router.exp_avg", &[n_layers, d])?,
        v: tensor(&spath, &sst, "adam.W_router.exp_avg_sq", &[n_layers, d])?,
    };
    Ok((router, moments))
}
