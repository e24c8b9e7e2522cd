//! Activation banks on disk: `.npy` and `.safetensors` readers (memory-mapped), and an `.npy` writer.
//!
//! An activation bank is a 2-D `[rows, d_in]` array of float32 or float16 in C (row-major) order, little-endian.
//! Opening one checks everything a training run would otherwise trip over later, and reports each problem as an
//! [`ActivationError`] naming the file and the fix:
//!
//! - the container: `.npy` magic, version and header; `.safetensors` header and tensor offsets; truncation;
//! - dtype (float32 or float16 only) and rank (2 only), C order;
//! - every value finite (the first bad row and column are named);
//! - at least one batch of rows, and a width equal to the `d_in` of the checkpoint the data is used with.
//!
//! float32 data that is suitably aligned in the file (it is for numpy and safetensors writers) is used straight from
//! the memory map; float16 is widened to float32 (exactly: every f16 value is representable as f32) with the `half`
//! crate's IEEE 754 conversion.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

/// The container format of an activation file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// NumPy `.npy`, versions 1.0 to 3.0.
    Npy,
    /// Hugging Face `.safetensors`; one named tensor of the file is used.
    Safetensors,
}

impl Format {
    /// The name recorded in manifests: `"npy"` or `"safetensors"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Npy => "npy",
            Format::Safetensors => "safetensors",
        }
    }

    /// The format implied by a file's extension, if it is one we read.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "npy" => Some(Format::Npy),
            "safetensors" => Some(Format::Safetensors),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The element type stored in the file (data handed to training is always float32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16, widened to f32 on load.
    F16,
}

impl Dtype {
    /// The name recorded in manifests: `"float32"` or `"float16"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an activation file cannot be used. Every message starts with the file.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// The file cannot be opened or mapped.
    #[error("activation file {path}: cannot {op}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The extension is neither `.npy` nor `.safetensors`.
    #[error("activation file {path}: unknown format; use a .npy or .safetensors file")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The container is malformed (bad magic, unparseable header, ...).
    #[error("activation file {path}: not a valid {format} file: {detail}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The format it claims to be.
        format: Format,
        /// What is wrong.
        detail: String,
    },
    /// The file is shorter (or longer) than its header says.
    #[error(
        "activation file {path} is truncated or damaged: its header promises {expected} bytes of tensor data but \
         the file holds {actual}; re-export or re-copy it"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The element type is not float32 or float16.
    #[error(
        "activation file {path}: dtype {found} is not supported; activations must be little-endian float32 or \
         float16 (numpy: arr.astype('<f4'))"
    )]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The dtype as the file spells it.
        found: String,
    },
    /// The array is not 2-D.
    #[error(
        "activation file {path}: shape {shape:?} has rank {rank}; activations must be a 2-D [rows, d_in] array \
         (flatten the leading dimensions)"
    )]
    Rank {
        /// The file.
        path: PathBuf,
        /// The shape found.
        shape: Vec<u64>,
        /// Its length.
        rank: usize,
    },
    /// Fortran-ordered `.npy`.
    #[error(
        "activation file {path}: the array is in Fortran (column-major) order; save it in C order \
         (numpy: np.save(path, np.ascontiguousarray(arr)))"
    )]
    FortranOrder {
        /// The file.
        path: PathBuf,
    },
    /// A `.safetensors` file whose tensor cannot be chosen.
    #[error("activation file {path}: {detail}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// Which tensor was asked for and which exist.
        detail: String,
    },
    /// A NaN or infinity in the data.
    #[error(
        "activation file {path}: non-finite value {value} at row {row}, column {col} (the first one); \
         clean or drop that row before training"
    )]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Row of the first bad value (0-based).
        row: u64,
        /// Column of the first bad value (0-based).
        col: u64,
        /// The value (NaN, inf or -inf).
        value: f32,
    },
    /// Fewer rows than one batch.
    #[error(
        "activation file {path} has {rows} rows{}, fewer than one batch of {batch}; lower --batch or supply more \
         rows", selection_note(*.selected)
    )]
    TooFewRows {
        /// The file.
        path: PathBuf,
        /// Rows available (in the selected range, when there is one).
        rows: u64,
        /// The selected row range `[start, end)`, if only part of the file is used.
        selected: Option<(u64, u64)>,
        /// The batch size.
        batch: usize,
    },
    /// A row range outside the file.
    #[error(
        "activation file {path} has {rows} rows, so rows {start}..{end} cannot be selected; choose \
         0 <= start < end <= {rows}"
    )]
    RowRange {
        /// The file.
        path: PathBuf,
        /// First selected row.
        start: u64,
        /// One past the last selected row.
        end: u64,
        /// Rows in the file.
        rows: u64,
    },
    /// A width that does not match the checkpoint the data is used with.
    #[error(
        "activation file {path} has d_in = {found}, but the SAE checkpoint it is used with (resumed or encoded \
         with) has d_in = {expected}; use activations from the layer that checkpoint was trained on"
    )]
    WidthMismatch {
        /// The file.
        path: PathBuf,
        /// `d_in` in the file.
        found: u64,
        /// `d_in` of the checkpoint.
        expected: u64,
    },
    /// Zero rows or zero columns.
    #[error(
        "activation file {path} is empty (shape {shape:?}); it needs at least one row and one column"
    )]
    Empty {
        /// The file.
        path: PathBuf,
        /// The shape found.
        shape: Vec<u64>,
    },
}

fn selection_note(selected: Option<(u64, u64)>) -> String {
    selected.map_or(String::new(), |(start, end)| {
        format!(" in the selected range {start}..{end}")
    })
}

/// What the header of an activation file says, without reading the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationInfo {
    /// The file.
    pub path: PathBuf,
    /// Its container format.
    pub format: Format,
    /// Element type in the file.
    pub dtype: Dtype,
    /// Number of rows.
    pub rows: usize,
    /// Row width.
    pub d_in: usize,
    /// For `.safetensors`, the tensor used.
    pub tensor: Option<String>,
    /// Byte offset of the data in the file.
    data_offset: usize,
}

impl ActivationInfo {
    /// `[rows, d_in]` as recorded in manifests.
    pub fn shape(&self) -> [u64; 2] {
        [self.rows as u64, self.d_in as u64]
    }
}

/// How to open an activation file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// The tensor to read from a `.safetensors` file; may be omitted when the file holds exactly one.
    pub tensor: Option<String>,
    /// The file must have at least this many rows (the batch size).
    pub min_rows: usize,
    /// The width the data must have (the `d_in` of a checkpoint being resumed or encoded with).
    pub expected_d_in: Option<usize>,
    /// Use only rows `[start, end)` of the file; `None` uses all of them.
    pub rows: Option<(usize, usize)>,
}

enum Storage {
    /// float32 used in place: the map and the byte offset of the data.
    Mapped(Mmap),
    /// float16 widened, or float32 that was not 4-byte aligned in the file.
    Owned(Vec<f32>),
}

/// A checked activation bank (or a row range of one): `[rows, d_in]` float32, row-major.
pub struct Activations {
    info: ActivationInfo,
    /// The rows used, `[start, end)` in file rows.
    range: (usize, usize),
    storage: Storage,
}

impl fmt::Debug for Activations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Activations")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Activations {
    /// What the header said.
    pub fn info(&self) -> &ActivationInfo {
        &self.info
    }

    /// The rows used, `[start, end)` in rows of the file (all of them unless a range was selected).
    pub fn row_range(&self) -> (usize, usize) {
        self.range
    }

    /// The rows used, `[end - start, d_in]` row-major.
    pub fn data(&self) -> &[f32] {
        match &self.storage {
            Storage::Mapped(map) => {
                let (start, end) = self.range;
                let len = (end - start) * self.info.d_in;
                let offset = self.info.data_offset + start * self.info.d_in * 4;
                let bytes = &map[offset..offset + len * 4];
                // SAFETY: every bit pattern is a valid f32, and `open` chose this storage only after checking that
                // these bytes are 4-byte aligned (so `align_to` yields no prefix) on a little-endian target.
                let (prefix, floats, _) = unsafe { bytes.align_to::<f32>() };
                debug_assert!(prefix.is_empty() && floats.len() == len);
                floats
            }
            Storage::Owned(v) => v,
        }
    }
}

fn io_err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> ActivationError + 'a {
    move |source| ActivationError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

fn map_file(path: &Path) -> Result<Mmap, ActivationError> {
    let file = File::open(path).map_err(io_err(path, "open it"))?;
    // SAFETY: the map is read-only and private to this process. Another process truncating the file while it is
    // mapped would fault; the run's digest of the file (taken by the host) is what records which bytes were used.
    unsafe { Mmap::map(&file) }.map_err(io_err(path, "memory-map it"))
}

/// Reads and checks only the header of `path` (cheap: no data scan). `tensor` selects a `.safetensors` tensor.
pub fn inspect(path: &Path, tensor: Option<&str>) -> Result<ActivationInfo, ActivationError> {
    let map = map_file(path)?;
    parse_header(path, &map, tensor)
}

fn parse_header(
    path: &Path,
    bytes: &[u8],
    tensor: Option<&str>,
) -> Result<ActivationInfo, ActivationError> {
    let format = Format::from_path(path).ok_or_else(|| ActivationError::UnknownFormat {
        path: path.to_owned(),
    })?;
    match format {
        Format::Npy => npy_header(path, bytes),
        Format::Safetensors => safetensors_header(path, bytes, tensor),
    }
}

/// Opens `path`, checks its header, its shape against `opts` and every value, and returns the data as float32.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Activations, ActivationError> {
    let map = map_file(path)?;
    let info = parse_header(path, &map, opts.tensor.as_deref())?;
    let p = || path.to_owned();
    if let Some(expected) = opts.expected_d_in
        && expected != info.d_in
    {
        return Err(ActivationError::WidthMismatch {
            path: p(),
            found: info.d_in as u64,
            expected: expected as u64,
        });
    }
    let (start, end) = opts.rows.unwrap_or((0, info.rows));
    if start >= end || end > info.rows {
        return Err(ActivationError::RowRange {
            path: p(),
            start: start as u64,
            end: end as u64,
            rows: info.rows as u64,
        });
    }
    if end - start < opts.min_rows {
        return Err(ActivationError::TooFewRows {
            path: p(),
            rows: (end - start) as u64,
            selected: opts.rows.map(|(s, e)| (s as u64, e as u64)),
            batch: opts.min_rows,
        });
    }
    let len = (end - start) * info.d_in;
    let size = info.dtype.size();
    let first = info.data_offset + start * info.d_in * size;
    let raw = &map[first..first + len * size];
    let storage = match info.dtype {
        Dtype::F32 => {
            // SAFETY: every bit pattern is a valid f32; only the alignment is in question, and it is checked here.
            let (prefix, _, _) = unsafe { raw.align_to::<f32>() };
            if prefix.is_empty() && cfg!(target_endian = "little") {
                Storage::Mapped(map)
            } else {
                Storage::Owned(
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                )
            }
        }
        Dtype::F16 => Storage::Owned(
            raw.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
    };
    let acts = Activations {
        info,
        range: (start, end),
        storage,
    };
    let data = acts.data();
    debug_assert_eq!(data.len(), len);
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        let d = acts.info.d_in;
        return Err(ActivationError::NonFinite {
            path: p(),
            row: (start + i / d) as u64,
            col: (i % d) as u64,
            value: data[i],
        });
    }
    Ok(acts)
}

/// An activation bank read fully into memory (`bytes` are the file's exact contents, e.g. the bytes a trainer
/// hashed). Row ranges are copied out as float32 on request; nothing is memory-mapped, so the rows trained on are
/// exactly the bytes that were read, whatever happens to the file afterwards.
pub struct Bank {
    info: ActivationInfo,
    bytes: Vec<u8>,
}

impl fmt::Debug for Bank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bank")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Bank {
    /// Checks the header of `bytes`, the contents of `path` (named in every message). `tensor` selects a
    /// `.safetensors` tensor.
    pub fn from_bytes(
        path: &Path,
        bytes: Vec<u8>,
        tensor: Option<&str>,
    ) -> Result<Bank, ActivationError> {
        let info = parse_header(path, &bytes, tensor)?;
        Ok(Bank { info, bytes })
    }

    /// What the header said.
    pub fn info(&self) -> &ActivationInfo {
        &self.info
    }

    /// Rows `[start, end)` as float32, row-major; every value is checked to be finite (a bad one is reported with
    /// its file row and column).
    pub fn rows(&self, start: usize, end: usize) -> Result<Vec<f32>, ActivationError> {
        decode_rows(&self.info, &self.bytes, start, end)
    }
}

/// A multi-layer bank read fully into memory: several `[rows, d]` tensors of one `.safetensors` file, one per layer,
/// whose row `r` is the same token position in each. Its rows are the layers' rows side by side, `[rows, L * d]`
/// (layer `l` in columns `l * d .. (l + 1) * d`), so the split into training and held-out rows is the one-tensor
/// bank's. Every tensor must have the same rows and width.
pub struct LayerBank {
    info: ActivationInfo,
    layers: Vec<ActivationInfo>,
    bytes: Vec<u8>,
}

impl fmt::Debug for LayerBank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerBank")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl LayerBank {
    /// Checks the header of `bytes` (the contents of the `.safetensors` file `path`) for the tensors `layers`, in
    /// that order; `None` takes every tensor of the file in the order their data is stored (the order a writer
    /// was given them in).
    pub fn from_bytes(
        path: &Path,
        bytes: Vec<u8>,
        layers: Option<&[String]>,
    ) -> Result<LayerBank, ActivationError> {
        if Format::from_path(path) != Some(Format::Safetensors) {
            return Err(ActivationError::Tensor {
                path: path.to_owned(),
                detail:
                    "a multi-layer bank is a .safetensors file with one [rows, d] tensor per layer"
                        .into(),
            });
        }
        let names = match layers {
            Some(l) => l.to_vec(),
            None => safetensors_names_in_data_order(path, &bytes)?,
        };
        let mut infos = Vec::with_capacity(names.len());
        for name in &names {
            let info = safetensors_header(path, &bytes, Some(name))?;
            if let Some(first) = infos
                .first()
                .map(|i: &ActivationInfo| (i.rows, i.d_in, i.tensor.clone()))
                && (first.0, first.1) != (info.rows, info.d_in)
            {
                return Err(ActivationError::Tensor {
                    path: path.to_owned(),
                    detail: format!(
                        "layer {name:?} has shape [{}, {}] but layer {:?} has [{}, {}]; every layer of a \
                         multi-layer bank holds the same rows at the same width",
                        info.rows,
                        info.d_in,
                        first.2.unwrap_or_default(),
                        first.0,
                        first.1
                    ),
                });
            }
            infos.push(info);
        }
        if names.len() < 2 {
            return Err(ActivationError::Tensor {
                path: path.to_owned(),
                detail: format!(
                    "{} {} layer ({names:?}); routing needs at least 2, one [rows, d] tensor each",
                    if layers.is_some() {
                        "the config names"
                    } else {
                        "holds"
                    },
                    names.len()
                ),
            });
        }
        let first = &infos[0];
        let info = ActivationInfo {
            path: path.to_owned(),
            format: Format::Safetensors,
            dtype: first.dtype,
            rows: first.rows,
            d_in: first.d_in * infos.len(),
            tensor: Some(names.join(",")),
            data_offset: 0,
        };
        Ok(LayerBank {
            info,
            layers: infos,
            bytes,
        })
    }

    /// The bank as one `[rows, L * d]` array (its `tensor` is the layer names joined by commas).
    pub fn info(&self) -> &ActivationInfo {
        &self.info
    }

    /// The layers' names, in column order.
    pub fn layer_names(&self) -> Vec<String> {
        self.layers
            .iter()
            .map(|i| i.tensor.clone().unwrap_or_default())
            .collect()
    }

    /// Each layer's width `d`.
    pub fn layer_width(&self) -> usize {
        self.layers[0].d_in
    }

    /// Rows `[start, end)` of every layer side by side, `[end - start, L * d]` float32 (values checked finite).
    pub fn rows(&self, start: usize, end: usize) -> Result<Vec<f32>, ActivationError> {
        let (n_layers, d) = (self.layers.len(), self.layer_width());
        let per_layer: Vec<Vec<f32>> = self
            .layers
            .iter()
            .map(|info| decode_rows(info, &self.bytes, start, end))
            .collect::<Result<_, _>>()?;
        let mut out = vec![0f32; (end - start) * n_layers * d];
        for (r, row) in out.chunks_exact_mut(n_layers * d).enumerate() {
            for (l, layer) in per_layer.iter().enumerate() {
                row[l * d..(l + 1) * d].copy_from_slice(&layer[r * d..(r + 1) * d]);
            }
        }
        Ok(out)
    }
}

/// The tensor names of a `.safetensors` file in the order their data is stored.
fn safetensors_names_in_data_order(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<String>, ActivationError> {
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| ActivationError::Malformed {
            path: path.to_owned(),
            format: Format::Safetensors,
            detail: e.to_string(),
        })?;
    let mut named: Vec<(usize, String)> = meta
        .tensors()
        .iter()
        .map(|(n, i)| (i.data_offsets.0, n.clone()))
        .collect();
    named.sort();
    Ok(named.into_iter().map(|(_, n)| n).collect())
}

/// Rows `[start, end)` of the tensor `info` describes within `bytes`, as float32, each value checked finite.
fn decode_rows(
    info: &ActivationInfo,
    bytes: &[u8],
    start: usize,
    end: usize,
) -> Result<Vec<f32>, ActivationError> {
    if start >= end || end > info.rows {
        return Err(ActivationError::RowRange {
            path: info.path.clone(),
            start: start as u64,
            end: end as u64,
            rows: info.rows as u64,
        });
    }
    let size = info.dtype.size();
    let first = info.data_offset + start * info.d_in * size;
    let raw = &bytes[first..first + (end - start) * info.d_in * size];
    let data: Vec<f32> = match info.dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        let d = info.d_in;
        return Err(ActivationError::NonFinite {
            path: info.path.clone(),
            row: (start + i / d) as u64,
            col: (i % d) as u64,
            value: data[i],
        });
    }
    Ok(data)
}

fn check_shape(
    path: &Path,
    format: Format,
    shape: Vec<u64>,
) -> Result<(usize, usize), ActivationError> {
    if shape.len() != 2 {
        let rank = shape.len();
        return Err(ActivationError::Rank {
            path: path.to_owned(),
            shape,
            rank,
        });
    }
    if shape[0] == 0 || shape[1] == 0 {
        return Err(ActivationError::Empty {
            path: path.to_owned(),
            shape,
        });
    }
    let too_big = || ActivationError::Malformed {
        path: path.to_owned(),
        format,
        detail: format!("shape {shape:?} does not fit in memory on this machine"),
    };
    let rows = usize::try_from(shape[0]).map_err(|_| too_big())?;
    let cols = usize::try_from(shape[1]).map_err(|_| too_big())?;
    rows.checked_mul(cols)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(too_big)?;
    Ok((rows, cols))
}

// ---------------------------------------------------------------------------------------------------------------
// .npy

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

fn npy_header(path: &Path, bytes: &[u8]) -> Result<ActivationInfo, ActivationError> {
    let bad = |detail: String| ActivationError::Malformed {
        path: path.to_owned(),
        format: Format::Npy,
        detail,
    };
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return Err(bad(
            "it does not start with the .npy magic bytes \\x93NUMPY".into(),
        ));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => {
            return Err(bad(format!(
                "format version {major}.{minor} is not one of 1.0, 2.0, 3.0"
            )));
        }
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            bad(format!(
                "the header claims {header_len} bytes but the file ends first (truncated?)"
            ))
        })?;
    let text = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| bad("the header is not text".into()))?;
    let dict = NpyDict::parse(text).map_err(|e| {
        bad(format!(
            "cannot parse the header {:?}: {e}",
            text.trim_end()
        ))
    })?;
    let dtype = match dict.descr.as_str() {
        "<f4" => Dtype::F32,
        "<f2" => Dtype::F16,
        other => {
            return Err(ActivationError::Dtype {
                path: path.to_owned(),
                found: format!("'{other}'"),
            });
        }
    };
    if dict.fortran_order {
        return Err(ActivationError::FortranOrder {
            path: path.to_owned(),
        });
    }
    let (rows, d_in) = check_shape(path, Format::Npy, dict.shape)?;
    // numpy writes exactly the data after the header; anything shorter is a cut-off copy, anything longer is not
    // what the header describes.
    let expected = (rows as u64) * (d_in as u64) * dtype.size() as u64;
    let actual = (bytes.len() - end) as u64;
    if actual != expected {
        return Err(ActivationError::Truncated {
            path: path.to_owned(),
            expected,
            actual,
        });
    }
    Ok(ActivationInfo {
        path: path.to_owned(),
        format: Format::Npy,
        dtype,
        rows,
        d_in,
        tensor: None,
        data_offset: end,
    })
}

/// The three keys of a `.npy` header, a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (32768, 384), }`.
#[derive(Debug)]
struct NpyDict {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

impl NpyDict {
    fn parse(text: &str) -> Result<NpyDict, String> {
        let mut p = PyLit {
            s: text.as_bytes(),
            i: 0,
        };
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        p.expect(b'{')?;
        loop {
            p.skip_ws();
            if p.eat(b'}') {
                break;
            }
            let key = p.string()?;
            p.expect(b':')?;
            match key.as_str() {
                "descr" => descr = Some(p.string()?),
                "fortran_order" => fortran = Some(p.boolean()?),
                "shape" => shape = Some(p.int_tuple()?),
                other => return Err(format!("unexpected key '{other}'")),
            }
            p.skip_ws();
            if !p.eat(b',') {
                p.expect(b'}')?;
                break;
            }
        }
        Ok(NpyDict {
            descr: descr.ok_or("missing key 'descr'")?,
            fortran_order: fortran.ok_or("missing key 'fortran_order'")?,
            shape: shape.ok_or("missing key 'shape'")?,
        })
    }
}

/// A cursor over the small subset of Python literal syntax that `.npy` headers use.
struct PyLit<'a> {
    s: &'a [u8],
    i: usize,
}

impl PyLit<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let quote = *self.s.get(self.i).ok_or("unexpected end of header")?;
        if quote != b'\'' && quote != b'"' {
            return Err(format!("expected a quoted string at byte {}", self.i));
        }
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote)
            .ok_or("unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }
    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or("")
    }
    fn boolean(&mut self) -> Result<bool, String> {
        match self.word() {
            "True" => Ok(true),
            "False" => Ok(false),
            w => Err(format!("expected True or False, found '{w}'")),
        }
    }
    fn int_tuple(&mut self) -> Result<Vec<u64>, String> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(out);
            }
            let w = self.word().to_owned();
            // numpy 1.x on Windows wrote `10L`; accept the suffix.
            let digits = w.strip_suffix('L').unwrap_or(&w);
            out.push(
                digits
                    .parse::<u64>()
                    .map_err(|_| format!("shape entry '{w}' is not a non-negative integer"))?,
            );
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(out);
            }
        }
    }
}

/// Writes `data` (`[rows, cols]` row-major float32) as a version 1.0 `.npy` file. The bytes depend only on the
/// arguments: the header is fixed text padded with spaces so the data starts at a multiple of 64 bytes.
pub fn write_npy_f32(path: &Path, rows: usize, cols: usize, data: &[f32]) -> std::io::Result<()> {
    if data.len() != rows * cols {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "write_npy_f32 {}: {} values for shape ({rows}, {cols})",
                path.display(),
                data.len()
            ),
        ));
    }
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let header_len = u16::try_from(header.len()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "npy header longer than 65535 bytes",
        )
    })?;
    let mut out = std::io::BufWriter::new(File::create(path)?);
    out.write_all(NPY_MAGIC)?;
    out.write_all(&[1, 0])?;
    out.write_all(&header_len.to_le_bytes())?;
    out.write_all(header.as_bytes())?;
    for v in data {
        out.write_all(&v.to_le_bytes())?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

// ---------------------------------------------------------------------------------------------------------------
// .safetensors

fn safetensors_header(
    path: &Path,
    bytes: &[u8],
    tensor: Option<&str>,
) -> Result<ActivationInfo, ActivationError> {
    use safetensors::SafeTensorError as E;
    let bad = |detail: String| ActivationError::Malformed {
        path: path.to_owned(),
        format: Format::Safetensors,
        detail,
    };
    let (header_len, meta) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| match e {
            // The tensors' offsets do not end where the file does: a cut-off (or padded) copy.
            E::MetadataIncompleteBuffer => ActivationError::Truncated {
                path: path.to_owned(),
                expected: safetensors_data_len(bytes).unwrap_or(0),
                actual: bytes
                    .len()
                    .saturating_sub(8 + header_len_field(bytes).unwrap_or(0) as usize)
                    as u64,
            },
            E::HeaderTooSmall | E::InvalidHeaderLength => bad(format!(
                "the file ends inside its {}-byte header (truncated?)",
                header_len_field(bytes).unwrap_or(0)
            )),
            other => bad(other.to_string()),
        })?;
    let tensors = meta.tensors();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let name = match tensor {
        Some(t) => tensors
            .get_key_value(t)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| ActivationError::Tensor {
                path: path.to_owned(),
                detail: format!("has no tensor named {t:?}; it holds {names:?}"),
            })?,
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ActivationError::Tensor {
                path: path.to_owned(),
                detail: format!(
                    "holds {} tensors {names:?}; name the one to use (--tensor)",
                    names.len()
                ),
            });
        }
    };
    let info = tensors[&name];
    let dtype = match info.dtype {
        safetensors::Dtype::F32 => Dtype::F32,
        safetensors::Dtype::F16 => Dtype::F16,
        other => {
            return Err(ActivationError::Dtype {
                path: path.to_owned(),
                found: format!("{other:?} (tensor {name:?})"),
            });
        }
    };
    let shape: Vec<u64> = info.shape.iter().map(|&d| d as u64).collect();
    let (rows, d_in) = check_shape(path, Format::Safetensors, shape)?;
    let (begin, end) = info.data_offsets;
    let data_offset = 8 + header_len + begin;
    if end - begin != rows * d_in * dtype.size() {
        return Err(bad(format!(
            "tensor {name:?} spans {} bytes, not the {} its shape needs",
            end - begin,
            rows * d_in * dtype.size()
        )));
    }
    Ok(ActivationInfo {
        path: path.to_owned(),
        format: Format::Safetensors,
        dtype,
        rows,
        d_in,
        tensor: Some(name),
        data_offset,
    })
}

/// The header-length field of a safetensors file (its first 8 bytes), if the file has them.
fn header_len_field(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// Bytes of tensor data a safetensors header promises (the largest end offset), for the truncation message.
fn safetensors_data_len(bytes: &[u8]) -> Option<u64> {
    let n = usize::try_from(header_len_field(bytes)?).ok()?;
    let header: serde_json::Value =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    header
        .as_object()?
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_bank_in_memory_gives_the_rows_of_its_bytes_and_names_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.npy");
        let mut x: Vec<f32> = (0..12).map(|v| v as f32).collect();
        x[10] = f32::NAN;
        write_npy_f32(&path, 4, 3, &x).unwrap();
        let bank = Bank::from_bytes(&path, std::fs::read(&path).unwrap(), None).unwrap();
        assert_eq!((bank.info().rows, bank.info().d_in), (4, 3));
        assert_eq!(bank.rows(1, 3).unwrap(), &x[3..9]);
        let e = bank.rows(2, 4).unwrap_err().to_string();
        assert!(e.contains("row 3, column 1"), "{e}");
        let e = bank.rows(3, 5).unwrap_err().to_string();
        assert!(e.contains("3..5"), "{e}");
        let e = Bank::from_bytes(&path, b"junk".to_vec(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.npy"), "{e}");
    }
    use super::*;

    /// A `.npy` file with an arbitrary header dict and payload.
    fn npy(dict: &str, payload: &[u8]) -> Vec<u8> {
        let mut header = dict.to_owned();
        let unpadded = 10 + header.len() + 1;
        header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
        header.push('\n');
        let mut out = NPY_MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn f16_bytes(v: &[f32]) -> Vec<u8> {
        v.iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect()
    }

    /// A `.safetensors` file holding the given tensors (name, dtype, shape, payload), in order.
    fn safetensors(tensors: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
        let mut entries = Vec::new();
        let mut offset = 0;
        for (name, dtype, shape, data) in tensors {
            let shape = shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",");
            entries.push(format!(
                "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{shape}],\"data_offsets\":[{offset},{}]}}",
                offset + data.len()
            ));
            offset += data.len();
        }
        let mut header = format!("{{{}}}", entries.join(","));
        header.push_str(&" ".repeat((8 + header.len()).next_multiple_of(8) - 8 - header.len()));
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        for (_, _, _, data) in tensors {
            out.extend_from_slice(data);
        }
        out
    }

    fn file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    const DICT_2X3_F4: &str = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    const VALUES: [f32; 6] = [1.0, -2.5, 3.25, 0.0, 1e-3, 65504.0];

    fn err(path: &Path, opts: &OpenOptions) -> String {
        open(path, opts).unwrap_err().to_string()
    }

    #[test]
    fn npy_writer_and_reader_round_trip_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy_f32(&p, 2, 3, &VALUES).unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            npy(DICT_2X3_F4, &f32_bytes(&VALUES))
        );
        let acts = open(
            &p,
            &OpenOptions {
                min_rows: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(acts.data(), &VALUES);
        assert!(
            matches!(acts.storage, Storage::Mapped(_)),
            "aligned float32 should be used from the map"
        );
        let info = acts.info();
        assert_eq!(
            (info.format, info.dtype, info.shape()),
            (Format::Npy, Dtype::F32, [2, 3])
        );
        assert_eq!(inspect(&p, None).unwrap(), *info);
    }

    #[test]
    fn npy_float16_widens_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }";
        let p = file(&dir, "h.npy", &npy(dict, &f16_bytes(&VALUES)));
        let acts = open(&p, &OpenOptions::default()).unwrap();
        let want: Vec<f32> = VALUES
            .iter()
            .map(|v| half::f16::from_f32(*v).to_f32())
            .collect();
        assert_eq!(acts.data(), want.as_slice());
        assert_eq!(acts.info().dtype, Dtype::F16);
        assert_eq!(acts.data()[5], 65504.0);
    }

    #[test]
    fn safetensors_named_tensor_f32_and_f16() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(
            &dir,
            "a.safetensors",
            &safetensors(&[
                ("acts", "F32", &[2, 3], f32_bytes(&VALUES)),
                ("half", "F16", &[3, 2], f16_bytes(&VALUES)),
            ]),
        );
        let a = open(
            &p,
            &OpenOptions {
                tensor: Some("acts".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(a.data(), &VALUES);
        assert_eq!(a.info().tensor.as_deref(), Some("acts"));
        let h = open(
            &p,
            &OpenOptions {
                tensor: Some("half".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (h.info().rows, h.info().d_in, h.info().dtype),
            (3, 2, Dtype::F16)
        );
        assert_eq!(h.data()[0], 1.0);

        let msg = err(&p, &OpenOptions::default());
        assert!(
            msg.contains("holds 2 tensors [\"acts\", \"half\"]; name the one to use (--tensor)"),
            "{msg}"
        );
        let msg = err(
            &p,
            &OpenOptions {
                tensor: Some("resid".into()),
                ..Default::default()
            },
        );
        assert!(
            msg.contains("has no tensor named \"resid\"; it holds [\"acts\", \"half\"]"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_dtype_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
        let p = file(&dir, "d.npy", &npy(dict, &[0u8; 48]));
        let msg = err(&p, &OpenOptions::default());
        assert!(msg.contains("d.npy: dtype '<f8' is not supported"), "{msg}");
        assert!(msg.contains("astype('<f4')"), "{msg}");
        let dict = "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }";
        let p = file(&dir, "be.npy", &npy(dict, &[0u8; 24]));
        assert!(err(&p, &OpenOptions::default()).contains("dtype '>f4' is not supported"));
        let p = file(
            &dir,
            "i.safetensors",
            &safetensors(&[("x", "I32", &[2, 3], vec![0u8; 24])]),
        );
        let msg = err(&p, &OpenOptions::default());
        assert!(
            msg.contains("i.safetensors: dtype I32 (tensor \"x\") is not supported"),
            "{msg}"
        );
    }

    #[test]
    fn a_row_range_selects_rows_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let v: Vec<f32> = (0..40).map(|i| i as f32).collect();
        let p = dir.path().join("r.npy");
        write_npy_f32(&p, 10, 4, &v).unwrap();
        let opts = |rows, min_rows| OpenOptions {
            rows,
            min_rows,
            ..Default::default()
        };
        let a = open(&p, &opts(Some((3, 5)), 2)).unwrap();
        assert_eq!(a.data(), &v[12..20]);
        assert_eq!(a.row_range(), (3, 5));
        assert_eq!(a.info().rows, 10, "info describes the whole file");
        let h = dir.path().join("r16.npy");
        let dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (10, 4), }";
        std::fs::write(&h, npy(dict, &f16_bytes(&v))).unwrap();
        assert_eq!(
            open(&h, &opts(Some((9, 10)), 1)).unwrap().data(),
            &v[36..40]
        );

        let msg = err(&p, &opts(Some((3, 5)), 4));
        assert!(
            msg.contains("r.npy has 2 rows in the selected range 3..5, fewer than one batch of 4"),
            "{msg}"
        );
        let msg = err(&p, &opts(Some((8, 12)), 1));
        assert!(
            msg.contains(
                "r.npy has 10 rows, so rows 8..12 cannot be selected; choose 0 <= start < end <= 10"
            ),
            "{msg}"
        );
        assert!(err(&p, &opts(Some((5, 5)), 1)).contains("rows 5..5 cannot be selected"));

        // A bad value is reported by its row in the file, and only rows in the range are checked.
        let mut w = v.clone();
        w[4 * 4 + 1] = f32::NAN;
        write_npy_f32(&p, 10, 4, &w).unwrap();
        assert!(
            err(&p, &opts(Some((3, 6)), 1)).contains("non-finite value NaN at row 4, column 1")
        );
        assert!(open(&p, &opts(Some((5, 10)), 1)).is_ok());
    }

    #[test]
    fn wrong_rank_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 1), }";
        let p = file(&dir, "r.npy", &npy(dict, &f32_bytes(&VALUES)));
        let msg = err(&p, &OpenOptions::default());
        assert!(
            msg.contains(
                "r.npy: shape [2, 3, 1] has rank 3; activations must be a 2-D [rows, d_in] array"
            ),
            "{msg}"
        );
        let p = file(
            &dir,
            "r.safetensors",
            &safetensors(&[("x", "F32", &[6], f32_bytes(&VALUES))]),
        );
        let msg = err(&p, &OpenOptions::default());
        assert!(msg.contains("r.safetensors: shape [6] has rank 1"), "{msg}");
    }

    #[test]
    fn non_finite_values_name_the_first_bad_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = vec![0.5f32; 12];
        v[7] = f32::NAN;
        v[10] = f32::INFINITY;
        let p = dir.path().join("nan.npy");
        write_npy_f32(&p, 4, 3, &v).unwrap();
        let msg = err(&p, &OpenOptions::default());
        assert!(
            msg.contains("nan.npy: non-finite value NaN at row 2, column 1 (the first one)"),
            "{msg}"
        );
        let mut v = vec![0.5f32; 6];
        v[4] = f32::INFINITY;
        let p = file(
            &dir,
            "inf.safetensors",
            &safetensors(&[("x", "F16", &[2, 3], f16_bytes(&v))]),
        );
        let msg = err(&p, &OpenOptions::default());
        assert!(
            msg.contains("non-finite value inf at row 1, column 1"),
            "{msg}"
        );
    }

    #[test]
    fn fewer_rows_than_a_batch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("small.npy");
        write_npy_f32(&p, 2, 3, &VALUES).unwrap();
        let msg = err(
            &p,
            &OpenOptions {
                min_rows: 64,
                ..Default::default()
            },
        );
        assert!(
            msg.contains("small.npy has 2 rows, fewer than one batch of 64; lower --batch"),
            "{msg}"
        );
    }

    #[test]
    fn width_must_match_a_resumed_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.npy");
        write_npy_f32(&p, 2, 3, &VALUES).unwrap();
        let msg = err(
            &p,
            &OpenOptions {
                expected_d_in: Some(384),
                ..Default::default()
            },
        );
        assert!(
            msg.contains(
                "w.npy has d_in = 3, but the SAE checkpoint it is used with (resumed or encoded with) has d_in = 384"
            ),
            "{msg}"
        );
        assert!(
            open(
                &p,
                &OpenOptions {
                    expected_d_in: Some(3),
                    ..Default::default()
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn truncated_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let full = npy(DICT_2X3_F4, &f32_bytes(&VALUES));
        let p = file(&dir, "t.npy", &full[..full.len() - 5]);
        let msg = err(&p, &OpenOptions::default());
        assert!(msg.contains("t.npy is truncated or damaged: its header promises 24 bytes of tensor data but the file holds 19"), "{msg}");
        let p = file(&dir, "h.npy", &full[..40]);
        let msg = err(&p, &OpenOptions::default());
        assert!(
            msg.contains("h.npy: not a valid npy file: the header claims"),
            "{msg}"
        );
        let st = safetensors(&[("x", "F32", &[2, 3], f32_bytes(&VALUES))]);
        let p = file(&dir, "t.safetensors", &st[..st.len() - 4]);
        let msg = err(&p, &OpenOptions::default());
        assert!(msg.contains("t.safetensors is truncated or damaged: its header promises 24 bytes of tensor data but the file holds 20"), "{msg}");
        let p = file(&dir, "h.safetensors", &st[..20]);
        let msg = err(&p, &OpenOptions::default());
        assert!(
            msg.contains("h.safetensors: not a valid safetensors file: the file ends inside its"),
            "{msg}"
        );
    }

    #[test]
    fn other_malformed_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, "m.npy", b"PK\x03\x04 this is a zip file, not an npy");
        assert!(
            err(&p, &OpenOptions::default())
                .contains("m.npy: not a valid npy file: it does not start with the .npy magic")
        );
        let dict = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }";
        let p = file(&dir, "f.npy", &npy(dict, &f32_bytes(&VALUES)));
        assert!(
            err(&p, &OpenOptions::default())
                .contains("f.npy: the array is in Fortran (column-major) order")
        );
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }";
        let p = file(&dir, "e.npy", &npy(dict, &[]));
        assert!(err(&p, &OpenOptions::default()).contains("e.npy is empty (shape [0, 3])"));
        let p = file(&dir, "x.bin", &f32_bytes(&VALUES));
        assert!(
            err(&p, &OpenOptions::default())
                .contains("x.bin: unknown format; use a .npy or .safetensors file")
        );
        let msg = err(&dir.path().join("missing.npy"), &OpenOptions::default());
        assert!(msg.contains("missing.npy: cannot open it"), "{msg}");
    }

    #[test]
    fn npy_header_parser_accepts_numpy_spellings() {
        let d =
            NpyDict::parse("{\"descr\": \"<f2\", \"shape\": (5L,7L), \"fortran_order\": False}")
                .unwrap();
        assert_eq!(
            (d.descr.as_str(), d.fortran_order, d.shape),
            ("<f2", false, vec![5, 7])
        );
        assert!(
            NpyDict::parse("{'descr': '<f4', 'shape': (2, 3), }")
                .unwrap_err()
                .contains("fortran_order")
        );
        assert!(
            NpyDict::parse("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }").is_err()
        );
    }
}
