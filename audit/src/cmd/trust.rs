//! `husai-audit trust`: add a public key to the trust policy, and list what it trusts.

use std::path::PathBuf;
use std::process::ExitCode;

use husai_core::trust::{self, TrustPolicy};
use husai_core::untrusted::display_path;

use crate::cli;

/// Manage keys/trust-policy.json: which public keys `verify` accepts signatures from.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Add a public key (SPKI PEM, e.g. the NAME.pub.pem `keygen` wrote) with one role.
    ///
    /// The PEM is copied into the keys directory when it is not there already, and the entry is
    /// appended to trust-policy.json (created, with roles `ci` and `developer`, when the directory
    /// has none). The new policy is checked like any policy before it replaces the old one.
    ///
    /// --not-before defaults to the key file's modification time, which for a file keygen wrote
    /// is when the key was made: every run the key has signed since verifies, and nothing claimed
    /// to be signed before the key existed does. Pass --not-before to choose another start.
    Add {
        /// The public key file (SPKI PEM).
        #[arg(value_name = "KEY.pub.pem")]
        key: PathBuf,
        /// The role the key holds; it must be defined in the policy's roles table (e.g. `ci`,
        /// `developer`).
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// Start of the key's validity window, RFC 3339 (e.g. 2026-01-01T00:00:00Z) [default: the
        /// key file's modification time].
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        not_before: Option<time::OffsetDateTime>,
        /// Keys directory holding trust-policy.json.
        #[arg(long, default_value = "keys", value_name = "DIR")]
        keys: PathBuf,
    },
    /// List the keys the policy trusts: key id, envelope key id, file, roles, window, revocation.
    List {
        /// Keys directory holding trust-policy.json.
        #[arg(long, default_value = "keys", value_name = "DIR")]
        keys: PathBuf,
    },
}

fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    trust::parse_not_before(text)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Add {
            key,
            role,
            not_before,
            keys,
        } => {
            let added = trust::add_key(&keys, &key, &role, not_before)?;
            let policy = keys.join(trust::POLICY_FILE_NAME);
            if added.created_policy {
                println!("created {}", display_path(&policy));
            }
            if added.copied {
                println!(
                    "copied {} to {}",
                    display_path(&key),
                    display_path(&keys.join(&added.public_key))
                );
            }
            println!("added to {}:", display_path(&policy));
            println!("  {}", serde_json::to_string(&added.entry)?);
            println!(
                "not_before {} is {}",
                fmt(added.not_before),
                added.not_before_source
            );
            println!(
                "envelopes name this key by {} (its securesystemslib key id)",
                added.envelope_keyid
            );
            Ok(cli::EXIT_OK)
        }
        Action::List { keys } => {
            let policy: TrustPolicy = cli::trust_policy(&keys)?;
            println!("trust policy {}:", display_path(policy.path()));
            for k in policy.keys() {
                let status = match &k.revoked {
                    Some(r) => format!("REVOKED at {} ({})", fmt(r.at), r.reason),
                    None => "active".to_string(),
                };
                println!("{}  {status}", k.keyid);
                println!("  envelope keyid {}", k.envelope_keyid);
                println!("  file           {}", display_path(&k.public_key_path));
                println!("  roles          {}", k.roles.join(", "));
                println!(
                    "  valid          {} .. {}",
                    fmt(k.not_before),
                    k.not_after.map_or("(no end)".to_string(), fmt)
                );
            }
            if policy.keys().is_empty() {
                println!("(no keys: verify trusts nothing)");
            }
            Ok(cli::EXIT_OK)
        }
    }
}

fn fmt(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
