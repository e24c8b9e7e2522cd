//! `husai-audit train`: train with a trainer plugin and record the result as one signed run (kind `train`).
//!
//! Arguments only: the pipeline (`husai_core::pipeline::Pipeline::train`) builds the effective config from the
//! plugin's schema, records the inputs, runs the plugin in a child process, checks its result and signs. This file
//! parses, shows progress, and prints the outcome.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use husai_core::manifest::RunStatus;
use husai_core::pipeline::{ConfigSources, TrainRequest, TrainedRun};
use husai_core::plugin::{PluginHost, ProgressEvent};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cli;

/// How often a plain progress line is printed when stderr is not a terminal.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Train on an activation bank with a trainer plugin and sign the result as a run.
///
/// The plugin's options come from its own schema (list them with `husai-audit plugins show NAME`): the schema's
/// defaults, overlaid by --config FILE, then each --set KEY=VALUE in order, then --seed. Keys every trainer has:
/// d_sae, steps or epochs, batch, lr, rows, tensor, eval, eval_every, log_every, fvu_ceiling, b_dec_init,
/// dead_window. A value the schema refuses is named (key, value, what is allowed), with exit 2 and no run.
///
/// Exit codes: 0 a signed run with status ok; 1 a signed run that diverged or was interrupted (Ctrl-C: the plugin
/// finishes its step and writes a resumable state; the message gives the --resume command); 2 nothing was signed.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
husai-audit train --plugin sae-topk --data acts.npy --set d_sae=4096 --set k=32 --set steps=2000 --seed 0 --campaign exp1\n  \
husai-audit train --plugin sae-topk --data acts.npy --config topk.toml --seed 0 --campaign exp1 --eval-data held.npy\n  \
husai-audit train --plugin sae-topk --data acts.npy --resume results/exp1/<run_id> --set steps=4000 --campaign exp1")]
pub struct Args {
    /// Trainer plugin, by the name it describes itself with (see `husai-audit plugins`).
    #[arg(long)]
    plugin: String,
    /// Activation bank (the plugin's `activations` input).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Config file, .toml or .json, holding one table of the plugin's options.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set one option (repeatable, applied in order after --config): KEY may be dotted (eval.fraction); VALUE is
    /// read as JSON when it parses as JSON, else as a string.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Rows of the bank used at all (training and the default held-out rows): START:END (END excluded), or a count
    /// N for the first N rows (0:N); the same meaning as `data encode --rows`. Sets the option `rows`.
    #[arg(long, value_name = "START:END|N", value_parser = cli::parse_rows)]
    rows: Option<(usize, usize)>,
    /// Initialisation seed (0 to 2^53-1, so that the signed manifest records it exactly). Required unless
    /// --resume gives it.
    #[arg(long, required_unless_present = "resume",
          value_parser = clap::value_parser!(u64).range(..=husai_core::manifest::MAX_SEED))]
    seed: Option<u64>,
    /// Campaign the run belongs to (results/<campaign>/<run_id>/).
    #[arg(long)]
    campaign: String,
    /// Held-out activations (the `eval_activations` input): recorded with its digest, and the config's `eval`
    /// becomes {"data": true}.
    #[arg(long = "eval-data", value_name = "FILE")]
    eval_data: Option<PathBuf>,
    /// Continue the verified train run in this directory (status ok or interrupted) from its recorded config and
    /// trainer state. Only steps or epochs may be given anew.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Signing key (ed25519 PKCS#8 PEM).
    #[arg(long, env = "HUSAI_SIGNING_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Root of the run store.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Keys directory with trust-policy.json, used when an input is itself the output of a run.
    #[arg(long, default_value = "keys", value_name = "DIR")]
    keys: PathBuf,
    /// Kill the plugin if training runs longer than this many seconds (no run is recorded).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// Directory to search for plugins first (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// A positive number of seconds.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{s} must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Args {
    /// The library's request.
    fn request(&self) -> TrainRequest {
        TrainRequest {
            plugin: self.plugin.clone(),
            data: self.data.clone(),
            eval_data: self.eval_data.clone(),
            resume: self.resume.clone(),
            config: ConfigSources {
                file: self.config.clone(),
                sets: self.sets_with_rows(),
            },
            seed: self.seed,
            campaign: self.campaign.clone(),
        }
    }

    /// The --set list, with --rows as the last entry (`rows={"start": S, "end": E}`, the trainer contract's form).
    fn sets_with_rows(&self) -> Vec<String> {
        let mut sets = self.sets.clone();
        if let Some((start, end)) = self.rows {
            sets.push(format!("rows={}", json!({"start": start, "end": end})));
        }
        sets
    }

    /// The command that continues `run_dir`: this one's inputs and places, with --resume and without config.
    fn resume_command(&self, run_dir: &std::path::Path) -> String {
        let mut a = vec!["husai-audit".to_owned(), "train".to_owned()];
        let mut push = |flag: &str, v: String| {
            a.push(flag.to_owned());
            a.push(shell_quote(&v));
        };
        push("--plugin", self.plugin.clone());
        push("--data", self.data.display().to_string());
        if let Some(e) = &self.eval_data {
            push("--eval-data", e.display().to_string());
        }
        push("--resume", cli::display_path(run_dir).display().to_string());
        push("--campaign", self.campaign.clone());
        if let Some(k) = &self.key {
            push("--key", k.display().to_string());
        }
        if self.results != std::path::Path::new("results") {
            push("--results", self.results.display().to_string());
        }
        if self.keys != std::path::Path::new("keys") {
            push("--keys", self.keys.display().to_string());
        }
        for d in &self.plugin_dirs {
            push("--plugin-dir", d.display().to_string());
        }
        a.join(" ")
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=<>".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Progress: the plugin's message in a bar on a terminal, one plain line every few seconds (and the last report)
/// otherwise, so that a pipe or a batch job's log still shows that training moves.
enum Display {
    Bar(ProgressBar),
    Log {
        last: Option<Instant>,
        pending: Option<ProgressEvent>,
    },
}

impl Display {
    fn new() -> Display {
        if cli::stderr_is_terminal() {
            let bar = ProgressBar::with_draw_target(None, cli::draw_target());
            bar.set_style(
                ProgressStyle::with_template(
                    "training [{bar:30}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            Display::Bar(bar)
        } else {
            Display::Log {
                last: None,
                pending: None,
            }
        }
    }

    fn event(&mut self, e: &ProgressEvent) {
        // total 0: a note from the trainer (which backend it chose, and why), always printed as a line of its own.
        if e.total == 0 {
            let line = format!("training: {}", e.message);
            match self {
                Display::Bar(bar) => bar.println(line),
                Display::Log { .. } => eprintln!("{line}"),
            }
            return;
        }
        match self {
            Display::Bar(bar) => {
                bar.set_length(e.total);
                bar.set_position(e.done);
                bar.set_message(e.message.clone());
            }
            Display::Log { last, pending } => {
                if last.is_none_or(|t| t.elapsed() >= LOG_INTERVAL) {
                    eprintln!("{}", log_line(e));
                    *last = Some(Instant::now());
                    *pending = None;
                } else {
                    *pending = Some(e.clone());
                }
            }
        }
    }

    fn finish(self) {
        match self {
            Display::Bar(bar) => bar.finish_and_clear(),
            Display::Log { pending, .. } => {
                if let Some(e) = pending {
                    eprintln!("{}", log_line(&e));
                }
            }
        }
    }
}

fn log_line(e: &ProgressEvent) -> String {
    format!("training: step {}/{} {}", e.done, e.total, e.message)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Cheap refusals first: the key, the campaign and the plugin directories.
    let key = cli::signing_key(args.key.as_deref())?;
    husai_core::store::check_campaign(&args.campaign)?;
    super::plugins::check_plugin_dirs(&args.plugin_dirs)?;
    if args.rows.is_some()
        && args
            .sets
            .iter()
            .any(|s| s.trim_start().starts_with("rows="))
    {
        anyhow::bail!("--rows and --set rows=... both set the rows; give one of them");
    }
    let host = PluginHost::for_current_exe(&args.plugin_dirs)?.with_timeout(args.timeout);
    let pipeline = cli::pipeline(key, &args.results, &args.keys)?;

    let mut display = Display::new();
    let outcome = pipeline.train(&host, &args.request(), &mut |e| display.event(e));
    display.finish();
    let trained = outcome?;
    print_outcome(&args, &trained)?;
    Ok(match trained.status {
        RunStatus::Ok => cli::EXIT_OK,
        RunStatus::Diverged | RunStatus::Interrupted => cli::exit_fail(),
    })
}

fn print_outcome(args: &Args, t: &TrainedRun) -> anyhow::Result<()> {
    let resume = (t.status == RunStatus::Interrupted).then(|| args.resume_command(&t.run.dir));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "run_id": t.run.run_id, "dir": cli::display_path(&t.run.dir), "status": t.status,
                "status_detail": t.status_detail, "steps_done": t.steps_done, "metrics": t.metrics,
                "resume_command": resume,
            }))?
        );
    } else {
        println!(
            "signed train run {} (status {})",
            cli::display_path(&t.run.dir).display(),
            t.status
        );
        for (key, value) in flatten(&t.metrics) {
            println!("  {key:<24} {value}");
        }
    }
    match t.status {
        RunStatus::Ok => {}
        RunStatus::Diverged => eprintln!(
            "error: training diverged: {}",
            detail_text(t.status_detail.as_ref())
        ),
        RunStatus::Interrupted => {
            eprintln!(
                "training was interrupted: {}",
                detail_text(t.status_detail.as_ref())
            );
            eprintln!("continue with:\n  {}", resume.unwrap_or_default());
        }
    }
    Ok(())
}

/// The status detail's message (with its step and quantity when the message does not say them).
fn detail_text(d: Option<&Value>) -> String {
    let Some(d) = d else {
        return "no detail given".to_owned();
    };
    let get = |k: &str| d.get(k).filter(|v| !v.is_null());
    let mut s = get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_owned();
    if let Some(step) = get("step") {
        s.push_str(&format!(" (step {step}"));
        if let Some(q) = get("quantity").and_then(Value::as_str) {
            s.push_str(&format!(
                ", {q} = {}",
                get("value").map_or("non-finite".to_owned(), Value::to_string)
            ));
        }
        s.push(')');
    }
    s
}

/// Every figure of a (nested) metrics object, as `dotted.key -> text`; null reads as n/a (a non-finite value).
/// `show` prints a train run's metrics the same way.
pub(crate) fn flatten(v: &Value) -> Vec<(String, String)> {
    fn go(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    go(&key, x, out);
                }
            }
            Value::Null => out.push((prefix.to_owned(), "n/a".to_owned())),
            Value::Number(n) => out.push((prefix.to_owned(), number_text(n))),
            Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    go("", v, &mut out);
    out
}

fn number_text(n: &serde_json::Number) -> String {
    match (n.as_u64(), n.as_i64(), n.as_f64()) {
        (Some(u), _, _) => u.to_string(),
        (_, Some(i), _) => i.to_string(),
        (_, _, Some(f)) if f != 0.0 && f.abs() < 1e-3 => format!("{f:.4e}"),
        (_, _, Some(f)) => format!("{f:.6}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned(),
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_flatten_generically_with_null_as_na() {
        let m = json!({"train": {"mse": 0.25, "rows": {"start": 0, "end": 9}}, "fvu": null, "note": "x", "tiny": 1.5e-7});
        let f = flatten(&m);
        let get = |k: &str| {
            f.iter()
                .find(|(a, _)| a == k)
                .map(|(_, b)| b.clone())
                .unwrap()
        };
        assert_eq!(get("train.mse"), "0.25");
        assert_eq!(get("train.rows.end"), "9");
        assert_eq!(get("fvu"), "n/a");
        assert_eq!(get("note"), "x");
        assert_eq!(get("tiny"), "1.5000e-7");
    }

    #[test]
    fn status_detail_reads_as_a_sentence() {
        let d = json!({"step": 17, "quantity": "loss.mse", "value": null, "message": "loss became NaN"});
        assert_eq!(
            detail_text(Some(&d)),
            "loss became NaN (step 17, loss.mse = non-finite)"
        );
        let d = json!({"step": 3, "quantity": null, "message": "stopped"});
        assert_eq!(detail_text(Some(&d)), "stopped (step 3)");
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(parse_timeout("1.5"), Ok(Duration::from_millis(1500)));
        assert!(
            parse_timeout("0")
                .unwrap_err()
                .contains("must be a positive number")
        );
        assert!(parse_timeout("x").unwrap_err().contains("is not a number"));
    }

    #[test]
    fn shell_quoting_leaves_plain_paths_alone() {
        assert_eq!(
            shell_quote("results/c/20260101T000000Z-ab"),
            "results/c/20260101T000000Z-ab"
        );
        assert_eq!(shell_quote("my data.npy"), "'my data.npy'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
