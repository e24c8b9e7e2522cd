//! `husai-audit keygen`: make an ed25519 signing key pair.

use std::path::PathBuf;
use std::process::ExitCode;

use husai_core::keys;

use crate::cli;

/// Write a new ed25519 key pair: NAME.pem (private, PKCS#8, mode 0600) and NAME.pub.pem
/// (public, SPKI).
///
/// Existing files are never overwritten. The key id printed is the lowercase hex sha256 of the
/// public key's SPKI DER encoding, the id the trust policy uses. To make `verify` trust what the
/// key signs, run `husai-audit trust add NAME.pub.pem --role developer` (or paste the printed
/// entry into keys/trust-policy.json: its not_before is the time the key was made, so every run
/// it signs verifies). Keep the private half out of the repository.
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
    // The key did not exist before now, so now is the earliest honest start of its window.
    let made = time::OffsetDateTime::now_utc();
    let made = made.replace_nanosecond(0).unwrap_or(made);
    let entry = serde_json::json!({
        "keyid": keyid,
        "public_key": public
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        "roles": ["developer"],
        "not_before": made
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "not_after": null,
        "revoked": null,
    });
    println!(
        "\nTo trust it (verify refuses runs of keys not in the policy):\n  husai-audit trust add {} --role developer\n\
         or copy the public key into keys/ and add this entry to keys/trust-policy.json \
         (not_before: when this key was made):\n  {}",
        public.display(),
        serde_json::to_string(&entry)?
    );
    Ok(cli::EXIT_OK)
}

fn with_suffix(prefix: &std::path::Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
