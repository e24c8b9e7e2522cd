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
