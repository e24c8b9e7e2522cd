//! Inputs: every file is read fully into memory and hashed (the result's `read_sha256`), and training uses those
//! bytes, never a memory map; the training and held-out rows are cut from them here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::config::{CommonConfig, EvalSpec, RowRange};
use super::{ACTIVATIONS_INPUT, EVAL_INPUT, TrainerError};
use crate::activations::{ActivationError, ActivationInfo, Bank, LayerBank};

/// sha256 (lower-case hex) of every input read, by key (`activations`, `eval_activations`, `resume/<file>`).
pub type Digests = BTreeMap<String, String>;

/// Reads `path` fully, records the sha256 of exactly those bytes under `key` and returns them.
pub fn read_input(key: &str, path: &Path, digests: &mut Digests) -> Result<Vec<u8>, TrainerError> {
    let bytes = std::fs::read(path).map_err(|e| {
        TrainerError::Input(format!(
            "input {key} {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    digests.insert(key.to_string(), hex(&Sha256::digest(&bytes)));
    Ok(bytes)
}

/// The lower-case hex sha256 of the file `dir/file` (an eval citing the exact weights or data it read).
pub fn file_sha256(dir: &Path, file: &str) -> Result<String, TrainerError> {
    let mut d = Digests::new();
    read_input(file, &dir.join(file), &mut d)?;
    Ok(d.remove(file).expect("read_input records the digest"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A bank's rows as a run reads them: a one-tensor [`Bank`], or a multi-layer [`LayerBank`] whose rows are its
/// layers side by side.
pub trait RowSource {
    /// The header, as one `[rows, d_in]` array.
    fn info(&self) -> &ActivationInfo;
    /// Rows `[start, end)`, float32, row-major, checked finite.
    fn rows(&self, start: usize, end: usize) -> Result<Vec<f32>, ActivationError>;
}

impl RowSource for Bank {
    fn info(&self) -> &ActivationInfo {
        Bank::info(self)
    }
    fn rows(&self, start: usize, end: usize) -> Result<Vec<f32>, ActivationError> {
        Bank::rows(self, start, end)
    }
}

impl RowSource for LayerBank {
    fn info(&self) -> &ActivationInfo {
        LayerBank::info(self)
    }
    fn rows(&self, start: usize, end: usize) -> Result<Vec<f32>, ActivationError> {
        LayerBank::rows(self, start, end)
    }
}

/// A one-tensor bank (`.npy`, or the `tensor` of a `.safetensors` file) from its path and exact bytes.
pub fn open_one_tensor(
    path: &Path,
    bytes: Vec<u8>,
    tensor: Option<&str>,
) -> Result<Box<dyn RowSource>, ActivationError> {
    Ok(Box::new(Bank::from_bytes(path, bytes, tensor)?))
}

/// Opens a bank from its path and exact bytes.
pub type Opener<'a> = dyn Fn(&Path, Vec<u8>) -> Result<Box<dyn RowSource>, ActivationError> + 'a;

/// The training rows and the held-out rows of a run, as float32 in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Row width.
    pub d_in: usize,
    /// The training bank's header.
    pub info: ActivationInfo,
    /// The rows of the bank selected by `rows` (all when unset): what the result's `dataset.rows` reports.
    pub selected: RowRange,
    /// Training rows, `[train_rows.end - train_rows.start, d_in]`.
    pub train: Vec<f32>,
    /// Which bank rows `train` holds.
    pub train_rows: RowRange,
    /// Held-out rows.
    pub eval: Vec<f32>,
    /// Which rows `eval` holds (of the bank, or of the eval bank when `eval_source` is `eval_activations`).
    pub eval_rows: RowRange,
    /// `activations` or `eval_activations`.
    pub eval_source: &'static str,
}

impl Dataset {
    /// Number of training rows.
    pub fn train_len(&self) -> usize {
        self.train_rows.end - self.train_rows.start
    }

    /// The result's `dataset` object.
    pub fn dataset_json(&self) -> Value {
        json!({
            "format": self.info.format.as_str(),
            "dtype": self.info.dtype.as_str(),
            "shape": self.info.shape(),
            "tensor": self.info.tensor,
            "rows": self.selected.to_json(),
        })
    }

    /// Reads the `activations` input (and `eval_activations` when present) as one-tensor banks (`cfg.tensor`)
    /// through [`Dataset::load_from`].
    pub fn load(
        inputs: &BTreeMap<String, PathBuf>,
        cfg: &CommonConfig,
        expected_d_in: Option<usize>,
        digests: &mut Digests,
    ) -> Result<Dataset, TrainerError> {
        let tensor = cfg.tensor.as_deref();
        let open = |path: &Path, bytes: Vec<u8>| open_one_tensor(path, bytes, tensor);
        Self::load_from(inputs, cfg, expected_d_in, digests, &open)
    }

    /// Reads the `activations` input (and `eval_activations` when present) with `open`, hashes both into
    /// `digests`, checks the rows against `cfg` and cuts the training and held-out rows. `expected_d_in` is the
    /// width of a resumed checkpoint.
    pub fn load_from(
        inputs: &BTreeMap<String, PathBuf>,
        cfg: &CommonConfig,
        expected_d_in: Option<usize>,
        digests: &mut Digests,
        open: &Opener<'_>,
    ) -> Result<Dataset, TrainerError> {
        let path = inputs.get(ACTIVATIONS_INPUT).ok_or_else(|| {
            TrainerError::Input(format!(
                "the request names no {ACTIVATIONS_INPUT:?} input file"
            ))
        })?;
        let input = |e: crate::activations::ActivationError| TrainerError::Input(e.to_string());
        let bank = open(path, read_input(ACTIVATIONS_INPUT, path, digests)?).map_err(input)?;
        let info = bank.info().clone();
        if let Some(d) = expected_d_in
            && d != info.d_in
        {
            return Err(TrainerError::Input(format!(
                "{}: rows have width {} but the resumed checkpoint has d_in {d}; train on a bank of that width",
                path.display(),
                info.d_in
            )));
        }
        let selected = cfg.rows.unwrap_or(RowRange {
            start: 0,
            end: info.rows,
        });
        if selected.end > info.rows {
            return Err(TrainerError::config(
                "rows",
                format!(
                    "= {}..{} is invalid: {} has only {} rows",
                    selected.start,
                    selected.end,
                    path.display(),
                    info.rows
                ),
            ));
        }
        let n = selected.end - selected.start;
        let has_eval_input = inputs.contains_key(EVAL_INPUT);
        if has_eval_input && !matches!(cfg.eval, EvalSpec::Data(true)) {
            return Err(TrainerError::config(
                "eval",
                format!(
                    "= {} is invalid with an {EVAL_INPUT:?} input; set eval to {{\"data\": true}}",
                    cfg.eval.to_json()
                ),
            ));
        }
        let (train_rows, eval_rows, eval_source) = match cfg.eval {
            EvalSpec::Fraction(f) => {
                let n_eval = ((n as f64 * f).ceil() as usize).max(1);
                if n_eval >= n {
                    return Err(TrainerError::config(
                        "eval.fraction",
                        format!("= {f} leaves no training rows out of the {n} selected"),
                    ));
                }
                let cut = selected.end - n_eval;
                (
                    RowRange {
                        start: selected.start,
                        end: cut,
                    },
                    RowRange {
                        start: cut,
                        end: selected.end,
                    },
                    ACTIVATIONS_INPUT,
                )
            }
            EvalSpec::Rows(r) => {
                if r.end > info.rows {
                    return Err(TrainerError::config(
                        "eval.rows",
                        format!(
                            "= {}..{} is invalid: {} has only {} rows",
                            r.start,
                            r.end,
                            path.display(),
                            info.rows
                        ),
                    ));
                }
                if r.start < selected.end && selected.start < r.end {
                    return Err(TrainerError::config(
                        "eval.rows",
                        format!(
                            "= {}..{} overlaps the training rows {}..{}; held-out rows are never trained on, so \
                             set `rows` to training rows disjoint from them",
                            r.start, r.end, selected.start, selected.end
                        ),
                    ));
                }
                (selected, r, ACTIVATIONS_INPUT)
            }
            EvalSpec::Data(_) => {
                if !has_eval_input {
                    return Err(TrainerError::Input(format!(
                        "eval is {{\"data\": true}} but the request names no {EVAL_INPUT:?} input (--eval-data FILE)"
                    )));
                }
                (selected, RowRange { start: 0, end: 0 }, EVAL_INPUT)
            }
        };
        let n_train = train_rows.end - train_rows.start;
        if n_train < cfg.batch {
            return Err(TrainerError::config(
                "batch",
                format!(
                    "= {} is more than the {n_train} training rows ({}..{} of {}); lower batch or use more rows",
                    cfg.batch,
                    train_rows.start,
                    train_rows.end,
                    path.display()
                ),
            ));
        }
        let train = bank.rows(train_rows.start, train_rows.end).map_err(input)?;
        let (eval, eval_rows) = if eval_source == EVAL_INPUT {
            let epath = &inputs[EVAL_INPUT];
            let ebank = open(epath, read_input(EVAL_INPUT, epath, digests)?).map_err(input)?;
            if ebank.info().d_in != info.d_in {
                return Err(TrainerError::Input(format!(
                    "{}: rows have width {} but the training bank {} has width {}",
                    epath.display(),
                    ebank.info().d_in,
                    path.display(),
                    info.d_in
                )));
            }
            let rows = ebank.info().rows;
            (
                ebank.rows(0, rows).map_err(input)?,
                RowRange {
                    start: 0,
                    end: rows,
                },
            )
        } else {
            (
                bank.rows(eval_rows.start, eval_rows.end).map_err(input)?,
                eval_rows,
            )
        };
        Ok(Dataset {
            d_in: info.d_in,
            info,
            selected,
            train,
            train_rows,
            eval,
            eval_rows,
            eval_source,
        })
    }
}
