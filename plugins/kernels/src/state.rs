//! `trainer_state.safetensors`: what exact resume needs beside the SAELens-layout checkpoint.
//!
//! A plain safetensors file (readable by any safetensors reader) holding
//!
//! - float32 tensors named `adam.<param>.exp_avg` / `adam.<param>.exp_avg_sq` (PyTorch's names for Adam's moments),
//!   with `<param>` one of `W_enc_T` (`[d_sae, d_in]`, the layout the kernels keep the encoder in), `b_enc`,
//!   `W_dec`, `b_dec`;
//! - a uint64 tensor `dead.steps_since_fired` `[d_sae]`;
//! - `__metadata__` strings: `format` (`husai-trainer-state`), `version` (`1`), `family`, `steps_done`, `adam_step`,
//!   `cursor` (first row, within the training rows, of the next batch), `rng_state` (see
//!   [`FamilyTrainerState::rng_state`])
//!   and `config` (the run's effective config without `steps`, `epochs` and `resume_from`, as compact JSON with
//!   sorted keys).
//!
//! The writer is deterministic: the same state gives the same bytes (tensors in the order given, metadata in key
//! order, the header padded with spaces to 8-byte alignment).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::adam::Moments;

/// File name inside a run's output directory.
pub const STATE_FILE: &str = "trainer_state.safetensors";
/// `__metadata__.format` of the file.
pub const FORMAT: &str = "husai-trainer-state";
/// `__metadata__.version` this code writes and reads.
pub const VERSION: &str = "1";

/// Why a state file cannot be read. Messages name the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("trainer state {path}: {detail}")]
pub struct StateError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub detail: String,
}

/// The part of the file every family has: metadata, the four shared parameters' moments, the dead counters.
struct Base {
    family: String,
    steps_done: u64,
    moments: Vec<Moments>,
    steps_since_fired: Vec<u64>,
    cursor: u64,
    rng_state: u64,
    config: String,
}

const PARAMS: [&str; 4] = ["W_enc_T", "b_enc", "W_dec", "b_dec"];

fn shapes(d_in: usize, d_sae: usize) -> [Vec<usize>; 4] {
    [
        vec![d_sae, d_in],
        vec![d_sae],
        vec![d_sae, d_in],
        vec![d_in],
    ]
}

impl Base {
    /// Parses the bytes of `path` (named in messages); `d_in`/`d_sae` are the checkpoint's dimensions, which every
    /// tensor must match.
    fn read(path: &Path, bytes: &[u8], d_in: usize, d_sae: usize) -> Result<Base, StateError> {
        let bad = |detail: String| StateError {
            path: path.to_owned(),
            detail,
        };
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("is not a valid safetensors file: {e}")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let get = |key: &str| {
            meta.get(key)
                .cloned()
                .ok_or_else(|| bad(format!("its metadata has no {key:?}")))
        };
        let num = |key: &str| {
            get(key)?
                .parse::<u64>()
                .map_err(|_| bad(format!("metadata {key:?} is not an unsigned integer")))
        };
        if get("format")? != FORMAT || get("version")? != VERSION {
            return Err(bad(format!(
                "is not a {FORMAT} version {VERSION} file (format {:?}, version {:?})",
                meta.get("format"),
                meta.get("version")
            )));
        }
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("is not a valid safetensors file: {e}")))?;
        let tensor = |name: &str, dtype: safetensors::Dtype, shape: &[usize]| {
            let view = st
                .tensor(name)
                .map_err(|_| bad(format!("has no tensor {name:?}")))?;
            if view.dtype() != dtype || view.shape() != shape {
                return Err(bad(format!(
                    "tensor {name:?} is {:?} {:?}; expected {dtype:?} {shape:?} (d_in {d_in}, d_sae {d_sae} from \
                     the checkpoint)",
                    view.dtype(),
                    view.shape()
                )));
            }
            Ok(view.data().to_vec())
        };
        let f32s = |b: Vec<u8>| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let mut ms = Vec::new();
        for (name, shape) in PARAMS.iter().zip(shapes(d_in, d_sae)) {
            let m = f32s(tensor(
                &format!("adam.{name}.exp_avg"),
                safetensors::Dtype::F32,
                &shape,
            )?);
            let v = f32s(tensor(
                &format!("adam.{name}.exp_avg_sq"),
                safetensors::Dtype::F32,
                &shape,
            )?);
            ms.push(Moments { m, v });
        }
        let dead: Vec<u64> = tensor("dead.steps_since_fired", safetensors::Dtype::U64, &[d_sae])?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let steps_done = num("steps_done")?;
        if num("adam_step")? != steps_done {
            return Err(bad(
                "metadata adam_step and steps_done disagree; the file was not written by husai"
                    .into(),
            ));
        }
        Ok(Base {
            family: get("family")?,
            steps_done,
            moments: ms,
            steps_since_fired: dead,
            cursor: num("cursor")?,
            rng_state: num("rng_state")?,
            config: get("config")?,
        })
    }
}

/// The contents of `trainer_state.safetensors`, the state file of an engine run ([`crate::engine::FamilyTrainer`]):
/// the tensors of the four shared parameters (a family without parameters or estimated state writes the same file
/// as the pre-engine TopK trainer did), plus, per family parameter `<name>`, its values `fam.<name>` and moments
/// `adam.fam.<name>.exp_avg` / `.exp_avg_sq` (F32), and per estimated state entry `<name>` a float64 tensor
/// `family_state.<name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyTrainerState {
    /// The family that wrote it.
    pub family: String,
    /// Optimiser, dead-latent and family state.
    pub snapshot: crate::engine::FamilySnapshot,
    /// The family parameters' values (the checkpoint holds SAELens's view of them, this file the trained ones).
    pub family_params: Vec<(String, Vec<f32>)>,
    /// First row (0-based, within the training rows) of the batch the next step takes.
    pub cursor: u64,
    /// State of the run's generator after its last draw. TopK and the other families draw only at initialisation
    /// (the weights, which the checkpoint holds), so it records the generator's state after that draw; nothing
    /// reads it back today, but a family that shuffles or resamples continues from it.
    pub rng_state: u64,
    /// The effective config without `steps`, `epochs` and `resume_from` (compact JSON, sorted keys).
    pub config: String,
    /// Input width.
    pub d_in: usize,
}

impl FamilyTrainerState {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let d_sae = self.snapshot.steps_since_fired.len();
        let f32b = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut tensors: Vec<(String, &'static str, Vec<usize>, Vec<u8>)> = Vec::new();
        for ((name, m), shape) in PARAMS
            .iter()
            .zip(&self.snapshot.moments)
            .zip(shapes(self.d_in, d_sae))
        {
            for (suffix, v) in [("exp_avg", &m.m), ("exp_avg_sq", &m.v)] {
                tensors.push((
                    format!("adam.{name}.{suffix}"),
                    "F32",
                    shape.clone(),
                    f32b(v),
                ));
            }
        }
        let dead = self
            .snapshot
            .steps_since_fired
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        tensors.push(("dead.steps_since_fired".into(), "U64", vec![d_sae], dead));
        for ((name, v), m) in self.family_params.iter().zip(&self.snapshot.moments[4..]) {
            tensors.push((format!("fam.{name}"), "F32", vec![v.len()], f32b(v)));
            for (suffix, x) in [("exp_avg", &m.m), ("exp_avg_sq", &m.v)] {
                tensors.push((
                    format!("adam.fam.{name}.{suffix}"),
                    "F32",
                    vec![x.len()],
                    f32b(x),
                ));
            }
        }
        for (name, v) in &self.snapshot.family_state {
            let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            tensors.push((format!("family_state.{name}"), "F64", vec![v.len()], b));
        }
        let meta: BTreeMap<&str, String> = [
            ("format", FORMAT.to_string()),
            ("version", VERSION.to_string()),
            ("family", self.family.clone()),
            ("steps_done", self.snapshot.steps_done.to_string()),
            ("adam_step", self.snapshot.steps_done.to_string()),
            ("cursor", self.cursor.to_string()),
            ("rng_state", self.rng_state.to_string()),
            ("config", self.config.clone()),
        ]
        .into_iter()
        .collect();
        let meta = serde_json::to_string(&meta).expect("string map serialises");
        crate::checkpoint::encode_safetensors(Some(&meta), &tensors)
    }

    /// Parses the bytes of `path` for a model of `d_in`/`d_sae` whose family has the parameters `params`
    /// (`(name, length)`) and the estimated-state entries `state` (`(name, length)`).
    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        d_in: usize,
        d_sae: usize,
        params: &[(&str, usize)],
        state: &[(&str, usize)],
    ) -> Result<FamilyTrainerState, StateError> {
        let base = Base::read(path, bytes, d_in, d_sae)?;
        let bad = |detail: String| StateError {
            path: path.to_owned(),
            detail,
        };
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("is not a valid safetensors file: {e}")))?;
        let tensor = |name: &str, dtype: safetensors::Dtype, len: usize| {
            let view = st
                .tensor(name)
                .map_err(|_| bad(format!("has no tensor {name:?}")))?;
            if view.dtype() != dtype || view.shape() != [len] {
                return Err(bad(format!(
                    "tensor {name:?} is {:?} {:?}; expected {dtype:?} [{len}]",
                    view.dtype(),
                    view.shape()
                )));
            }
            Ok(view.data().to_vec())
        };
        let f32s = |b: Vec<u8>| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let mut moments = base.moments;
        let mut family_params = Vec::new();
        for &(name, len) in params {
            family_params.push((
                name.to_string(),
                f32s(tensor(
                    &format!("fam.{name}"),
                    safetensors::Dtype::F32,
                    len,
                )?),
            ));
            let m = f32s(tensor(
                &format!("adam.fam.{name}.exp_avg"),
                safetensors::Dtype::F32,
                len,
            )?);
            let v = f32s(tensor(
                &format!("adam.fam.{name}.exp_avg_sq"),
                safetensors::Dtype::F32,
                len,
            )?);
            moments.push(Moments { m, v });
        }
        let mut family_state = Vec::new();
        for &(name, len) in state {
            let b = tensor(
                &format!("family_state.{name}"),
                safetensors::Dtype::F64,
                len,
            )?;
            let v = b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            family_state.push((name.to_string(), v));
        }
        Ok(FamilyTrainerState {
            family: base.family,
            snapshot: crate::engine::FamilySnapshot {
                steps_done: base.steps_done,
                moments,
                steps_since_fired: base.steps_since_fired,
                family_state,
            },
            family_params,
            cursor: base.cursor,
            rng_state: base.rng_state,
            config: base.config,
            d_in,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state with one family parameter `p` (length 4) and one estimated entry `lambda` when `family` is set.
    fn state(family: bool) -> FamilyTrainerState {
        let (d_in, d_sae) = (3, 4);
        let mut moments: Vec<Moments> = [d_sae * d_in, d_sae, d_sae * d_in, d_in]
            .iter()
            .map(|&n| Moments::zeros(n))
            .collect();
        moments[2].m[5] = 0.25;
        moments[3].v[2] = 1e-9;
        let (mut family_params, mut family_state) = (vec![], vec![]);
        if family {
            moments.push(Moments {
                m: vec![0.5; d_sae],
                v: vec![0.125; d_sae],
            });
            family_params.push(("p".to_string(), vec![-1.0, 0.0, 1.0, 2.0]));
            family_state.push(("lambda".to_string(), vec![0.3]));
        }
        FamilyTrainerState {
            family: "topk".into(),
            snapshot: crate::engine::FamilySnapshot {
                steps_done: 17,
                moments,
                steps_since_fired: vec![0, 3, 1000, 2],
                family_state,
            },
            family_params,
            cursor: 42,
            rng_state: u64::MAX - 1,
            config: r#"{"batch":8}"#.into(),
            d_in,
        }
    }

    #[test]
    fn round_trips_deterministically_and_is_plain_safetensors() {
        let s = state(false);
        let bytes = s.to_bytes();
        assert_eq!(bytes, s.to_bytes());
        let back = FamilyTrainerState::from_bytes(Path::new("x"), &bytes, 3, 4, &[], &[]).unwrap();
        assert_eq!(back, s);
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!((8 + header_len) % 8, 0);
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(
            st.tensor("adam.W_dec.exp_avg").unwrap().shape(),
            &[4usize, 3]
        );
        let s = state(true);
        let back = FamilyTrainerState::from_bytes(
            Path::new("x"),
            &s.to_bytes(),
            3,
            4,
            &[("p", 4)],
            &[("lambda", 1)],
        )
        .unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn wrong_shapes_and_foreign_files_are_named() {
        let bytes = state(false).to_bytes();
        let read = |path: &str, bytes: &[u8], d_sae: usize, params: &[(&str, usize)]| {
            FamilyTrainerState::from_bytes(Path::new(path), bytes, 3, d_sae, params, &[])
                .unwrap_err()
                .to_string()
        };
        let e = read("run/trainer_state.safetensors", &bytes, 5, &[]);
        assert!(
            e.starts_with(
                "trainer state run/trainer_state.safetensors: tensor \"adam.W_enc_T.exp_avg\""
            ),
            "{e}"
        );
        let e = read("w", b"not safetensors", 4, &[]);
        assert!(e.contains("is not a valid safetensors file"), "{e}");
        let e = read("w", &bytes, 4, &[("p", 4)]);
        assert_eq!(e, "trainer state w: has no tensor \"fam.p\"");
    }
}
