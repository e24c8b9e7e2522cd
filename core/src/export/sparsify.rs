//! A verified train run's TopK SAE in EleutherAI sparsify's layout (`husai-audit export sparsify RUN OUT`).
//!
//! sparsify's `SparseCoder.load_from_disk(DIR)` reads `DIR/cfg.json` (its `SparseCoderConfig` fields plus `d_in`;
//! unknown fields are dropped) and `DIR/sae.safetensors` with `encoder.weight` [num_latents, d_in] and
//! `encoder.bias` [num_latents] (a `torch.nn.Linear`), `W_dec` [num_latents, d_in] and `b_dec` [d_in]. It encodes
//! TopK SAEs as `topk(relu((x - b_dec) encoder.weight^T + encoder.bias), k)` and decodes with `W_dec` and `b_dec`,
//! which is husai's `sae-topk` model exactly when the SAELens config says `apply_b_dec_to_input: true`, no
//! activation normalisation and no decoder-norm rescaling; any other checkpoint is refused rather than converted
//! approximately. The conversion transposes SAELens's `W_enc` [d_in, d_sae]; every other tensor is copied as is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::safetensors::{self, Tensor};
use crate::digest::sha256_hex;
use crate::inputs::{NotOkRun, require_ok};
use crate::manifest::RunKind;
use crate::trust::TrustPolicy;
use crate::verify::{self, RunVerifyError, VerifiedRun};

/// The SAELens files a train run holds.
pub const SAELENS_CONFIG: &str = "cfg.json";
pub const SAELENS_WEIGHTS: &str = "sae_weights.safetensors";
/// The files sparsify reads.
pub const SPARSIFY_CONFIG: &str = "cfg.json";
pub const SPARSIFY_WEIGHTS: &str = "sae.safetensors";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{}: not a run directory or inside one (no husai.dsse.json above it); export reads signed train runs", .0.display())]
    NotARun(PathBuf),
    #[error(transparent)]
    Unverified(Box<RunVerifyError>),
    #[error(transparent)]
    NotOk(Box<NotOkRun>),
    #[error(
        "run {run}: is a {kind} run; export sparsify takes a train run (its cfg.json and sae_weights.safetensors)"
    )]
    NotATrainRun { run: String, kind: RunKind },
    #[error("run {run}: {name} is not one of its signed outputs")]
    NotSigned { run: String, name: &'static str },
    #[error("run {run}: {name} changed after signing (sha256 {actual}, signed {expected})")]
    Changed {
        run: String,
        name: &'static str,
        expected: String,
        actual: String,
    },
    #[error("run {run}: {name}: {detail}")]
    Unsupported {
        run: String,
        name: &'static str,
        detail: String,
    },
    #[error("{}: exists and is not an empty directory; export writes a new directory", .0.display())]
    OutputExists(PathBuf),
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ExportError {
    /// Whether the run itself was refused (it does not verify, is not ok, or a file changed after signing), as
    /// opposed to a run of the wrong kind or layout, or an I/O problem.
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            ExportError::NotARun(_)
                | ExportError::Unverified(_)
                | ExportError::NotOk(_)
                | ExportError::NotSigned { .. }
                | ExportError::Changed { .. }
        )
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SparsifyExport {
    /// `campaign/run_id` of the source run.
    pub run: String,
    pub out: PathBuf,
    pub d_in: usize,
    pub num_latents: usize,
    pub k: usize,
}

/// Verifies the run holding `run_path`, converts its SAELens TopK checkpoint and writes sparsify's two files into
/// `out` (created; it must not exist or be empty). Nothing is written unless the whole conversion succeeds.
pub fn export_sparsify(
    run_path: &Path,
    out: &Path,
    trust: &TrustPolicy,
) -> Result<SparsifyExport, ExportError> {
    let (dir, _) = verify::enclosing_run(run_path)
        .ok_or_else(|| ExportError::NotARun(run_path.to_path_buf()))?;
    let run =
        verify::load_verified_run(&dir, trust).map_err(|e| ExportError::Unverified(Box::new(e)))?;
    require_ok(&run).map_err(|e| ExportError::NotOk(Box::new(e)))?;
    let label = format!("{}/{}", run.manifest.campaign, run.manifest.run_id);
    if run.manifest.kind != RunKind::Train {
        return Err(ExportError::NotATrainRun {
            run: label,
            kind: run.manifest.kind,
        });
    }
    let cfg_bytes = signed_bytes(&run, &label, SAELENS_CONFIG)?;
    let weight_bytes = signed_bytes(&run, &label, SAELENS_WEIGHTS)?;
    let unsupported = |name: &'static str, detail: String| ExportError::Unsupported {
        run: label.clone(),
        name,
        detail,
    };
    let cfg: Value = serde_json::from_slice(&cfg_bytes)
        .map_err(|e| unsupported(SAELENS_CONFIG, format!("is not JSON: {e}")))?;
    let (d_in, d_sae, k) = saelens_topk_dims(&cfg).map_err(|d| unsupported(SAELENS_CONFIG, d))?;
    let tensors = safetensors::parse(&weight_bytes).map_err(|d| unsupported(SAELENS_WEIGHTS, d))?;
    let converted =
        to_sparsify(&tensors, d_in, d_sae).map_err(|d| unsupported(SAELENS_WEIGHTS, d))?;
    let sparsify_cfg = sparsify_config(d_in, d_sae, k, &label, &cfg_bytes, &weight_bytes);

    prepare_output(out)?;
    write_new(
        &out.join(SPARSIFY_WEIGHTS),
        &safetensors::serialize(&converted),
    )?;
    let mut cfg_text = serde_json::to_vec_pretty(&sparsify_cfg).expect("a JSON value serialises");
    cfg_text.push(b'\n');
    write_new(&out.join(SPARSIFY_CONFIG), &cfg_text)?;
    Ok(SparsifyExport {
        run: label,
        out: out.to_path_buf(),
        d_in,
        num_latents: d_sae,
        k,
    })
}

/// The bytes of a signed output, re-hashed against its signed sha256 (the file may change after verification).
fn signed_bytes(
    run: &VerifiedRun,
    label: &str,
    name: &'static str,
) -> Result<Vec<u8>, ExportError> {
    let subject = run.subject(name).ok_or_else(|| ExportError::NotSigned {
        run: label.to_owned(),
        name,
    })?;
    let path = run.dir.join(name);
    let bytes = std::fs::read(&path).map_err(|source| ExportError::Io {
        what: "read",
        path: path.clone(),
        source,
    })?;
    // A file signed only with the sharded digest (over 64 MiB) was hashed by load_verified_run just above.
    if let Some(expected) = subject.digest.get("sha256") {
        let actual = sha256_hex(&bytes);
        if &actual != expected {
            return Err(ExportError::Changed {
                run: label.to_owned(),
                name,
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(bytes)
}

/// (d_in, d_sae, k) of a SAELens TopK config whose encoder is sparsify's; Err names the field that differs.
fn saelens_topk_dims(cfg: &Value) -> Result<(usize, usize, usize), String> {
    let field = |k: &str| cfg.get(k).cloned().unwrap_or(Value::Null);
    let required = [
        ("architecture", json!("topk")),
        ("apply_b_dec_to_input", json!(true)),
        ("normalize_activations", json!("none")),
        ("rescale_acts_by_decoder_norm", json!(false)),
    ];
    for (key, want) in required {
        let got = field(key);
        // An absent rescale flag means SAELens's default, false.
        if got != want && !(key == "rescale_acts_by_decoder_norm" && got.is_null()) {
            return Err(format!(
                "{key} is {got}; sparsify's TopK encoder matches only {key} = {want}, so this checkpoint is not converted"
            ));
        }
    }
    let dim = |k: &str| {
        field(k)
            .as_u64()
            .filter(|&v| v > 0)
            .map(|v| v as usize)
            .ok_or_else(|| format!("{k} is missing or not a positive integer"))
    };
    let (d_in, d_sae, k) = (dim("d_in")?, dim("d_sae")?, dim("k")?);
    if k > d_sae {
        return Err(format!("k = {k} exceeds d_sae = {d_sae}"));
    }
    Ok((d_in, d_sae, k))
}

/// sparsify's tensors from SAELens's: `encoder.weight` is `W_enc` transposed; the rest keep their shapes.
fn to_sparsify(
    t: &BTreeMap<String, Tensor>,
    d_in: usize,
    d_sae: usize,
) -> Result<BTreeMap<String, Tensor>, String> {
    let get = |name: &str, shape: &[usize]| {
        let tensor = t
            .get(name)
            .ok_or_else(|| format!("has no tensor {name:?}"))?;
        if tensor.shape != shape {
            return Err(format!(
                "tensor {name:?} has shape {:?}; cfg.json implies {shape:?}",
                tensor.shape
            ));
        }
        Ok(tensor)
    };
    let w_enc = get("W_enc", &[d_in, d_sae])?;
    let mut encoder_weight = vec![0.0f32; d_sae * d_in];
    for i in 0..d_in {
        for j in 0..d_sae {
            encoder_weight[j * d_in + i] = w_enc.data[i * d_sae + j];
        }
    }
    Ok(BTreeMap::from([
        (
            "encoder.weight".to_owned(),
            Tensor {
                shape: vec![d_sae, d_in],
                data: encoder_weight,
            },
        ),
        ("encoder.bias".to_owned(), get("b_enc", &[d_sae])?.clone()),
        ("W_dec".to_owned(), get("W_dec", &[d_sae, d_in])?.clone()),
        ("b_dec".to_owned(), get("b_dec", &[d_in])?.clone()),
    ]))
}

/// sparsify's `cfg.json`: `SparseCoderConfig`'s fields and `d_in`, plus `husai_source` naming the signed run and
/// the digests of the files converted (sparsify drops fields it does not know).
fn sparsify_config(
    d_in: usize,
    d_sae: usize,
    k: usize,
    run: &str,
    cfg: &[u8],
    weights: &[u8],
) -> Value {
    json!({
        "activation": "topk",
        // num_latents, when non-zero, overrides expansion_factor; the factor is recorded rounded up for readers
        // that show it.
        "expansion_factor": d_sae.div_ceil(d_in),
        // husai does not promise unit-norm decoder rows; `true` would make sparsify renormalise them when fine-tuning.
        "normalize_decoder": false,
        "num_latents": d_sae,
        "k": k,
        "multi_topk": false,
        "skip_connection": false,
        "transcode": false,
        "d_in": d_in,
        "husai_source": {
            "run": run,
            SAELENS_CONFIG: {"sha256": sha256_hex(cfg)},
            SAELENS_WEIGHTS: {"sha256": sha256_hex(weights)},
        },
    })
}

fn prepare_output(out: &Path) -> Result<(), ExportError> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ExportError::OutputExists(out.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).map_err(|source| ExportError::Io {
                what: "create",
                path: out.to_path_buf(),
                source,
            })
        }
        Err(_) if out.exists() => Err(ExportError::OutputExists(out.to_path_buf())),
        Err(source) => Err(ExportError::Io {
            what: "read",
            path: out.to_path_buf(),
            source,
        }),
    }
}

/// Writes under a temporary name and renames, so a reader never sees half a file.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| ExportError::Io {
            what: "write",
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saelens_cfg() -> Value {
        json!({"architecture": "topk", "d_in": 2, "d_sae": 3, "k": 2, "apply_b_dec_to_input": true,
               "normalize_activations": "none", "rescale_acts_by_decoder_norm": false})
    }

    #[test]
    fn encoder_weight_is_w_enc_transposed_and_the_rest_is_copied() {
        let t = |shape: Vec<usize>, data: Vec<f32>| Tensor { shape, data };
        let src = BTreeMap::from([
            (
                "W_enc".to_owned(),
                t(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            ),
            ("b_enc".to_owned(), t(vec![3], vec![0.1, 0.2, 0.3])),
            (
                "W_dec".to_owned(),
                t(vec![3, 2], vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0]),
            ),
            ("b_dec".to_owned(), t(vec![2], vec![-1.0, 1.0])),
        ]);
        let out = to_sparsify(&src, 2, 3).unwrap();
        assert_eq!(
            out["encoder.weight"],
            t(vec![3, 2], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
        );
        assert_eq!(out["encoder.bias"], src["b_enc"]);
        assert_eq!(out["W_dec"], src["W_dec"]);
        assert_eq!(out["b_dec"], src["b_dec"]);
        let mut bad = src.clone();
        bad.get_mut("W_dec").unwrap().shape = vec![2, 3];
        assert_eq!(
            to_sparsify(&bad, 2, 3).unwrap_err(),
            "tensor \"W_dec\" has shape [2, 3]; cfg.json implies [3, 2]"
        );
        let mut bad = src.clone();
        bad.remove("b_dec");
        assert!(
            to_sparsify(&bad, 2, 3)
                .unwrap_err()
                .contains("no tensor \"b_dec\"")
        );
    }

    #[test]
    fn only_configs_with_sparsify_s_encoder_are_converted() {
        assert_eq!(saelens_topk_dims(&saelens_cfg()), Ok((2, 3, 2)));
        for (key, value, needle) in [
            (
                "architecture",
                json!("jumprelu"),
                "architecture is \"jumprelu\"",
            ),
            (
                "apply_b_dec_to_input",
                json!(false),
                "apply_b_dec_to_input is false",
            ),
            (
                "normalize_activations",
                json!("expected_average_only_in"),
                "normalize_activations is",
            ),
            (
                "rescale_acts_by_decoder_norm",
                json!(true),
                "rescale_acts_by_decoder_norm is true",
            ),
            ("k", json!(4), "k = 4 exceeds d_sae = 3"),
            (
                "d_in",
                json!(0),
                "d_in is missing or not a positive integer",
            ),
        ] {
            let mut cfg = saelens_cfg();
            cfg[key] = value;
            let e = saelens_topk_dims(&cfg).unwrap_err();
            assert!(e.contains(needle), "{key}: {e}");
        }
    }

    #[test]
    fn sparsify_config_names_its_fields_and_its_source() {
        let c = sparsify_config(4, 10, 3, "exp/r1", b"{}", b"w");
        assert_eq!(
            (c["d_in"].clone(), c["num_latents"].clone(), c["k"].clone()),
            (json!(4), json!(10), json!(3))
        );
        assert_eq!(
            (c["activation"].clone(), c["expansion_factor"].clone()),
            (json!("topk"), json!(3))
        );
        assert_eq!(c["husai_source"]["run"], "exp/r1");
        assert_eq!(
            c["husai_source"]["cfg.json"]["sha256"],
            json!(sha256_hex(b"{}"))
        );
    }
}
