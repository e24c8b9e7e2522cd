//! Helpers the trainer plugins' tests share (feature `testing`, enabled only in their `[dev-dependencies]`, so
//! release builds do not carry it): a synthetic bank in a temporary directory, in-process runs of a plugin's
//! `run`, and readers of what a run wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use husai_plugin_api::{ErrorKind, PluginError, Progress, RunRequest};
use serde_json::Value;

use crate::activations::write_npy_f32;
use crate::engine::FamilyTrainer;
use crate::family::Family;
use crate::synth::{SynthConfig, SynthData, generate, recovery};

/// A plugin's in-process `run` (what [`crate::export_trainer!`] defines).
pub type RunFn = fn(&RunRequest, &mut Progress) -> Result<Value, PluginError>;

/// The MiniLM residual bank of `../shared/data` (32768 × 384 float32).
pub const MINILM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/minilm_l3_resid_dev.npy"
);

/// A temporary directory with a synthetic bank (`d_in` 32, 96 features, 3 active per row, seed 9) and the
/// plugin run under test.
pub struct Work {
    /// The directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The bank, `bank.npy`.
    pub bank: PathBuf,
    run: RunFn,
}

impl Work {
    /// `rows` synthetic rows for `run`.
    pub fn synthetic(run: RunFn, rows: usize) -> Work {
        let data = generate(&SynthConfig {
            rows,
            d_in: 32,
            n_features: 96,
            l0: 3,
            coef_min: 0.5,
            coef_max: 1.5,
            seed: 9,
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bank = dir.path().join("bank.npy");
        write_npy_f32(&bank, rows, 32, &data.x).unwrap();
        Work { dir, bank, run }
    }

    /// A fresh output directory `name`.
    pub fn out(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir(&p).unwrap();
        p
    }

    /// Runs the plugin; its result or error.
    pub fn try_run(
        &self,
        config: Value,
        inputs: &[(&str, &Path)],
        out: &Path,
    ) -> Result<Value, PluginError> {
        (self.run)(&request(config, inputs, out), &mut Progress::discard())
    }

    /// Runs the plugin, which must succeed.
    pub fn go(&self, config: Value, inputs: &[(&str, &Path)], out: &Path) -> Value {
        self.try_run(config, inputs, out).unwrap()
    }

    /// Runs `config` on the bank, which must fail as an invalid config with nothing written; the error.
    pub fn bad_config(&self, config: Value) -> PluginError {
        let out = self.out(&format!("bad{}", unique()));
        let e = self
            .try_run(config, &[("activations", &self.bank)], &out)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig, "{e}");
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "no run: nothing written for {e}"
        );
        e
    }
}

/// A run request.
pub fn request(config: Value, inputs: &[(&str, &Path)], out: &Path) -> RunRequest {
    RunRequest {
        config,
        inputs: inputs
            .iter()
            .map(|(r, p)| (r.to_string(), p.to_path_buf()))
            .collect::<BTreeMap<_, _>>(),
        output_dir: out.to_path_buf(),
    }
}

/// A run's `metrics.json`.
pub fn metrics(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap()
}

/// The bytes a same-seed or resumed run must reproduce: SAELens config, weights and the trainer state.
pub fn state_bytes(out: &Path) -> Vec<Vec<u8>> {
    [
        "cfg.json",
        "sae_weights.safetensors",
        "trainer_state.safetensors",
    ]
    .iter()
    .map(|f| std::fs::read(out.join(f)).unwrap())
    .collect()
}

/// The tensor names and shapes of a safetensors file, in header (data offset) order.
pub fn tensor_shapes(path: &Path) -> Vec<(String, Value)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut v: Vec<(u64, String, Value)> = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, t)| {
            (
                t["data_offsets"][0].as_u64().unwrap(),
                k.clone(),
                t["shape"].clone(),
            )
        })
        .collect();
    v.sort_by_key(|t| t.0);
    v.into_iter().map(|(_, k, s)| (k, s)).collect()
}

/// A tensor of a run's `sae_weights.safetensors` (F32): its shape and values.
pub fn weights_tensor(out: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(out.join("sae_weights.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

/// A fresh directory `name` under `root`.
pub fn subdir(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    std::fs::create_dir(&p).unwrap();
    p
}

/// A number not returned before in this process (distinct output directory names).
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Asserts that `t` recovers at least 90 % of `data`'s planted features at cosine > 0.9 (rows of width `d_in`),
/// printing that fraction with the FVU and L0 on the first 8192 rows under `label`.
pub fn assert_recovers<F: Family>(
    t: &FamilyTrainer<F>,
    data: &SynthData,
    d_in: usize,
    label: &str,
) {
    let rec = recovery(&data.dictionary, t.model().w_dec(), d_in, 0.9).unwrap();
    let m = t.evaluate(&data.x[..8192 * d_in]).unwrap();
    eprintln!(
        "{label} recovery: {:.3} at cosine > 0.9, fvu {:.4}, l0 {:.2}",
        rec.recovered_fraction, m.reconstruction.fvu, m.l0
    );
    assert!(
        rec.recovered_fraction >= 0.9,
        "{label}: recovered {:.3}",
        rec.recovered_fraction
    );
}

/// Compares `schema` (what `describe` publishes) with the crate's golden file `tests/golden/config_schema.json`
/// under `manifest_dir` (the crate's `CARGO_MANIFEST_DIR`), so every change to it is visible in review.
/// `HUSAI_UPDATE_GOLDEN=1` rewrites the file.
pub fn assert_schema_golden(manifest_dir: &str, schema: &Value) {
    let path = Path::new(manifest_dir).join("tests/golden/config_schema.json");
    let mut text = serde_json::to_string_pretty(schema).unwrap();
    text.push('\n');
    if std::env::var_os("HUSAI_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        golden == text,
        "{} differs from config_schema(); review the change and rerun with HUSAI_UPDATE_GOLDEN=1",
        path.display()
    );
}

/// Runs `config(steps)` on `w`'s bank: twice for 20 steps (byte-identical outputs), and for 8 steps then resumed
/// to 20 (the uninterrupted run's bytes). Returns the 20-step run's directory and the 8-step one's.
pub fn assert_reproducible_and_resumable(
    w: &Work,
    config: impl Fn(u64) -> Value,
) -> (PathBuf, PathBuf) {
    let bank = [("activations", w.bank.as_path())];
    let (a, b) = (
        w.out(&format!("a{}", unique())),
        w.out(&format!("b{}", unique())),
    );
    w.go(config(20), &bank, &a);
    w.go(config(20), &bank, &b);
    assert_eq!(
        state_bytes(&a),
        state_bytes(&b),
        "the same seed gives the same bytes"
    );
    let half = w.out(&format!("half{}", unique()));
    w.go(config(8), &bank, &half);
    let resumed = w.out(&format!("resumed{}", unique()));
    w.go(
        config(20),
        &[("activations", &w.bank), ("resume", &half)],
        &resumed,
    );
    assert_eq!(
        state_bytes(&a),
        state_bytes(&resumed),
        "resuming at step 8 gives the uninterrupted run's bytes"
    );
    (a, half)
}
