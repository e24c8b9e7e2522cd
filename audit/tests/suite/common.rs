//! Test harness: a scratch project with a throwaway trusted key, and helpers to drive the real
//! husai-audit binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use husai_core::keys::{self, SigningKey};

pub struct Project {
    pub dir: tempfile::TempDir,
    pub key: SigningKey,
}

/// One key entry of a trust policy.
pub struct PolicyKey<'a> {
    pub key: &'a SigningKey,
    pub file: &'a str,
    pub roles: &'a [&'a str],
    pub not_before: &'a str,
    pub not_after: Option<&'a str>,
    pub revoked: Option<(&'a str, &'a str)>,
}

impl Project {
    /// A scratch directory with keys/ (trust policy trusting one fresh key for role ci) and the
    /// private key at dev.pem.
    pub fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = keys::generate();
        let p = Project { dir, key };
        write_private_key(&p.path("dev.pem"), &p.key);
        p.write_policy(&[PolicyKey {
            key: &p.key,
            file: "dev.pub.pem",
            roles: &["ci"],
            not_before: "2020-01-01T00:00:00Z",
            not_after: None,
            revoked: None,
        }]);
        p
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Replace keys/ with a policy listing exactly `entries`.
    pub fn write_policy(&self, entries: &[PolicyKey]) {
        let keys_dir = self.path("keys");
        let _ = std::fs::remove_dir_all(&keys_dir);
        std::fs::create_dir_all(&keys_dir).unwrap();
        let mut list = Vec::new();
        for e in entries {
            std::fs::write(keys_dir.join(e.file), e.key.public_key().to_spki_pem()).unwrap();
            list.push(serde_json::json!({
                "keyid": e.key.key_id(),
                "public_key": e.file,
                "roles": e.roles,
                "not_before": e.not_before,
                "not_after": e.not_after,
                "revoked": e.revoked.map(|(at, reason)| serde_json::json!({"at": at, "reason": reason})),
            }));
        }
        let policy = serde_json::json!({"schema_version": "1.0", "keys": list});
        std::fs::write(
            keys_dir.join("trust-policy.json"),
            serde_json::to_string_pretty(&policy).unwrap(),
        )
        .unwrap();
    }

    /// Run husai-audit in the project directory, without HUSAI_SIGNING_KEY from the outside.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_husai-audit"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("HUSAI_SIGNING_KEY")
            // The test plugins are loaded from `plugin_dir()`, not from beside the binary, so they are unpinned:
            // allowed explicitly here; pin_cli.rs tests the refusal itself.
            .env(ALLOW_UNPINNED, "1")
            .output()
            .expect("run husai-audit")
    }

    /// Write `files` into a fresh directory `out/<name>` and attest it; returns the run dir.
    pub fn attest(&self, name: &str, campaign: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let out = self.path(&format!("out/{name}"));
        for (rel, bytes) in files {
            let p = out.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        let o = self.run(&[
            "attest",
            out.to_str().unwrap(),
            "--campaign",
            campaign,
            "--key",
            "dev.pem",
            "--json",
        ]);
        assert_success(&o);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        // attest prints the run directory relative to its working directory.
        self.dir.path().join(v["dir"].as_str().unwrap())
    }
}

/// Write a private key as keygen does: mode 0600 (signing refuses a key others can read).
pub fn write_private_key(path: &Path, key: &SigningKey) {
    std::fs::write(path, key.to_pkcs8_pem()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_success(o: &Output) {
    assert!(
        o.status.success(),
        "expected success, got {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Assert the exit code and that stderr (or stdout) mentions every needle.
pub fn assert_fails_with(o: &Output, code: i32, needles: &[&str]) {
    let all = format!("{}{}", stdout(o), stderr(o));
    assert_eq!(
        o.status.code(),
        Some(code),
        "wrong exit code\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    for n in needles {
        assert!(all.contains(n), "output lacks {n:?}:\n{all}");
    }
    assert!(!all.contains("panicked"), "panic in output:\n{all}");
}

pub fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Signs `files` as a run of `kind` in `campaign` through the store API with the project's key, recording
/// `status` (and a `status_detail` with `message`, for a status other than ok); returns the run dir.
pub fn sign_with_status(
    p: &Project,
    campaign: &str,
    kind: husai_core::manifest::RunKind,
    files: &[(&str, &[u8])],
    status: husai_core::manifest::RunStatus,
    message: &str,
) -> PathBuf {
    use husai_core::manifest::{ManifestDraft, RunStatus, ToolInfo};
    let store = husai_core::store::RunStore::open(p.path("results")).unwrap();
    let staged = store.stage(campaign, kind).unwrap();
    for (name, bytes) in files {
        std::fs::write(staged.dir().join(name), bytes).unwrap();
    }
    let mut draft = ManifestDraft::new(ToolInfo {
        name: "husai-audit".into(),
        version: "0".into(),
        git_commit: None,
        git_dirty: None,
    });
    draft.status = status;
    if status != RunStatus::Ok {
        draft.status_detail = Some(
            serde_json::json!({"step": 17, "quantity": "loss.mse", "value": null, "message": message}),
        );
    }
    staged.commit(draft, &p.key, &|_| {}).unwrap().dir
}

/// `husai-audit train` of the test-faulty plugin in `mode` on an 8 x 4 bank `x.npy` it writes into the project,
/// loading plugins from [`plugin_dir`]; callers add arguments and run or spawn it.
pub fn faulty_train_command(p: &Project, mode: &str) -> Command {
    husai_kernels::activations::write_npy_f32(&p.path("x.npy"), 8, 4, &[0.5; 32]).unwrap();
    let dir = plugin_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_husai-audit"));
    cmd.args([
        "train",
        "--plugin",
        "test-faulty",
        "--data",
        "x.npy",
        "--seed",
        "1",
        "--campaign",
        "c",
        "--key",
        "dev.pem",
        "--plugin-dir",
        dir.to_str().unwrap(),
    ])
    .current_dir(p.dir.path())
    .env_remove("HUSAI_SIGNING_KEY")
    .env_remove("HUSAI_PLUGIN_PATH")
    .env(ALLOW_UNPINNED, "1")
    .env("HUSAI_FAULTY_MODE", mode);
    cmd
}

/// Set on every command the tests run with test plugins (see [`Project::run`]).
pub const ALLOW_UNPINNED: &str = "HUSAI_ALLOW_UNPINNED_PLUGINS";

/// The plugin libraries the tests load, gathered in one directory (`target/<profile>/test-plugins/`) by hard link:
/// the real plugins the tests run (built into deps/ as dev-dependencies) and the test-only plugins, which are cdylib
/// examples of plugins/test-faulty (built into examples/ by `cargo test --workspace`, never by `cargo build`).
/// examples/ also holds hash-suffixed copies of each, so it cannot serve as a plugin directory itself.
pub fn plugin_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let profile = PathBuf::from(env!("CARGO_BIN_EXE_husai-audit"))
            .parent()
            .unwrap()
            .to_path_buf();
        let dir = profile.join("test-plugins");
        std::fs::create_dir_all(&dir).unwrap();
        let so = std::env::consts::DLL_SUFFIX;
        let libs = [
            ("deps", "husai_sae_topk"),
            ("deps", "husai_sae_batchtopk"),
            ("deps", "husai_data"),
            ("deps", "husai_toy_modadd"),
            ("deps", "husai_eval_known_circuit"),
            ("deps", "husai_eval_trained_vs_random"),
            ("deps", "husai_eval_ood_stress"),
            ("deps", "husai_eval_transcoder_stress"),
            ("examples", "husai_plugin_faulty"),
            ("examples", "husai_plugin_faulty_skew"),
            ("examples", "husai_test_trainer"),
            ("examples", "husai_test_eval"),
        ];
        for (sub, name) in libs {
            let file = format!("lib{name}{so}");
            let src = profile.join(sub).join(&file);
            assert!(
                src.is_file(),
                "{} is missing: the test plugins are built by `cargo test --workspace`, or by \
                 `cargo build --release -p husai-test-plugins --examples`",
                src.display()
            );
            let dst = dir.join(&file);
            let same = |a: &Path, b: &Path| {
                use std::os::unix::fs::MetadataExt;
                match (std::fs::metadata(a), std::fs::metadata(b)) {
                    (Ok(x), Ok(y)) => x.ino() == y.ino() && x.dev() == y.dev(),
                    _ => false,
                }
            };
            if !same(&src, &dst) {
                // Link under a temporary name and rename over, so a concurrent reader never sees a missing file.
                let tmp = dir.join(format!(".{file}.{}", std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                if std::fs::hard_link(&src, &tmp).is_err() {
                    std::fs::copy(&src, &tmp).unwrap();
                }
                std::fs::rename(&tmp, &dst).unwrap();
            }
        }
        dir
    })
    .clone()
}

/// The path of plugin library `name` (e.g. `husai_plugin_faulty`) in [`plugin_dir`].
pub fn plugin_lib(name: &str) -> PathBuf {
    plugin_dir().join(format!("lib{name}{}", std::env::consts::DLL_SUFFIX))
}
