//! husai-audit: sign, verify and inspect SAE research artifacts.
//!
//! A thin command-line layer over `husai-core`: argument parsing, reading keys and policies from
//! the places a user names, progress bars and readable output. Anything a library user would
//! need lives in core.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod cmd;

/// Make sparse-autoencoder research claims checkable: every result is a signed run, and
/// `verify` re-checks all of it.
#[derive(Debug, Parser)]
#[command(
    name = "husai-audit",
    version,
    about,
    long_about = "Make sparse-autoencoder research claims checkable.\n\n\
Every output husai (or any tool, through `attest`) produces becomes a run under \
results/<campaign>/<run_id>/: the files, plus husai.dsse.json, a DSSE envelope that signs an \
in-toto Statement listing each file's sha256 and the run's manifest (what ran, on what data, \
with which code and inputs). `verify` re-checks signatures against the trust policy in keys/, \
every digest, the schema of every manifest and the chain of inputs between runs.",
    after_help = "Exit codes, the same for every subcommand:\n  \
0 everything checked passed\n  \
1 a verification, gate or claim failure: a bad signature or digest, an unsigned or unverified input, a failed \
gate or claim, a train run that diverged or was interrupted, an attested command that failed\n  \
2 a usage or I/O error: bad arguments, a missing or unreadable file (nothing could be checked)\n\n\
Typical use:\n  \
husai-audit keygen ~/.husai/dev             # a key pair\n  \
husai-audit trust add ~/.husai/dev.pub.pem --role developer   # trust its public half in keys/\n  \
husai-audit attest out/ --campaign exp1 --kind external --key ~/.husai/dev.pem -- python eval.py --out out/\n  \
husai-audit verify                          # every run under results/, policy from ./keys\n  \
husai-audit show results/exp1/<run_id>"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Accept a signing key file that its group or others can read (refused by default).
    #[arg(long, global = true, env = "HUSAI_ALLOW_READABLE_KEY", value_parser = clap::builder::BoolishValueParser::new())]
    allow_readable_key: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    Keygen(cmd::keygen::Args),
    Attest(cmd::attest::Args),
    Verify(cmd::verify::Args),
    Trust(cmd::trust::Args),
    Show(cmd::show::Args),
    Gate(Box<cmd::gate::Args>),
    Import(cmd::import::Args),
    Claims(cmd::claims::Args),
    Select(cmd::select::Args),
    Plot(cmd::plot::Args),
    Plugins(cmd::plugins::Args),
    Pin(cmd::pin::Args),
    Train(cmd::train::Args),
    Data(cmd::data::Args),
    Export(cmd::export::Args),
    Eval(cmd::eval::Args),
    /// Internal: husai-audit re-executes itself under this name to load and run one plugin.
    #[command(name = "__plugin-child", hide = true)]
    PluginChild(cmd::plugins::ChildArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::ALLOW_READABLE_KEY.store(cli.allow_readable_key, std::sync::atomic::Ordering::Relaxed);
    let result = match cli.command {
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Attest(args) => cmd::attest::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Trust(args) => cmd::trust::run(args),
        Command::Show(args) => cmd::show::run(args),
        Command::Gate(args) => cmd::gate::run(*args),
        Command::Import(args) => cmd::import::run(args),
        Command::Claims(args) => cmd::claims::run(args),
        Command::Select(args) => cmd::select::run(args),
        Command::Plot(args) => cmd::plot::run(args),
        Command::Plugins(args) => cmd::plugins::run(args),
        Command::Pin(args) => cmd::pin::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Data(args) => cmd::data::run(args),
        Command::Export(args) => cmd::export::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::PluginChild(args) => Ok(cmd::plugins::run_child(args)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            cli::exit_usage()
        }
    }
}
