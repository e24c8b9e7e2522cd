//! `husai-audit keygen`: make an ed25519 signing key pair.

use std::path::PathBuf;
use std::process::ExitCode;

use husai_core::keys;

use crate::cli;

/// Write a new ed25519 key pair: NAME.pem (private, PKCS#8, mode 0600) and NAME.pub.pem
/// (public, SPKI).
///
/// Existing files are never overwritten. The key id printed is the lowercase hex sha256 of the
/// public key's SPKI DER encoding; add it with the public key to keys/trust-policy.json so that
/// `verify` trusts what this key signs. Keep the private half out of the repository.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path prefix of the pair, e.g. `~/.husai/dev` writes dev.pem and dev.pub.pem there.
    name: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let private = with_suffix(&args.name, ".pem");
    let public = with_suffix(&args.name, ".pub.pem");
    if let Some(dir) = private.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create directory {}: {e}", dir.display()))?;
    }
    let keyid = keys::write_keypair(&private, &public)?;
    println!(
        "private key: {} (mode 0600; never commit it)",
        private.display()
    );
    println!("public key:  {}", public.display());
    println!("key id:      {keyid}");
    println!(
        "\nTo trust it, copy the public key into keys/ and add to keys/trust-policy.json:\n  \
         {{\"keyid\": \"{keyid}\", \"public_key\": \"{}\", \"roles\": [\"developer\"], \
         \"not_before\": \"<now, RFC 3339>\", \"not_after\": null, \"revoked\": null}}",
        public
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    Ok(cli::EXIT_OK)
}

fn with_suffix(prefix: &std::path::Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
