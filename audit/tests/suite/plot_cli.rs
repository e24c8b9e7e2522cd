//! `husai-audit plot` end to end: signed train runs (a throwaway key) are verified and drawn; runs that fail
//! verification, lack a metric stream or hold a bad line are refused by name with the documented exit codes.

use crate::common;

use std::path::PathBuf;

use common::*;
use husai_core::manifest::{RunKind, RunStatus};

fn stream(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures/metrics")
        .join(name);
    std::fs::read(path).unwrap()
}

fn train_run(p: &Project, metrics: &[u8], status: RunStatus) -> PathBuf {
    sign_with_status(
        p,
        "sweep",
        RunKind::Train,
        &[("metrics.jsonl", metrics)],
        status,
        "loss.mse is not finite at step 200",
    )
}

#[test]
fn plots_signed_runs_on_shared_axes() {
    let p = Project::new();
    let a = train_run(&p, &stream("topk-lr3e-4.metrics.jsonl"), RunStatus::Ok);
    let b = train_run(
        &p,
        &stream("topk-lr1e-3-diverged.metrics.jsonl"),
        RunStatus::Diverged,
    );
    let o = p.run(&[
        "plot",
        a.to_str().unwrap(),
        b.join("metrics.jsonl").to_str().unwrap(),
        "--out",
        "curves.svg",
    ]);
    assert_success(&o);
    assert_eq!(stdout(&o), "wrote curves.svg (2 runs)\n");
    let svg = std::fs::read_to_string(p.path("curves.svg")).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>\n"));
    assert!(
        svg.contains(&format!(">sweep/{} <tspan", file_name(&a))),
        "{svg}"
    );
    assert!(
        svg.contains(&format!(">sweep/{} <tspan", file_name(&b)))
            && svg.contains("status diverged"),
        "{svg}"
    );
    assert_eq!(svg.matches("stroke=\"#444444\"").count(), 5, "five panels");
    // Deterministic: the same runs give the same bytes.
    assert_success(&p.run(&[
        "plot",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        "again.svg",
    ]));
    assert_eq!(std::fs::read_to_string(p.path("again.svg")).unwrap(), svg);
}

#[test]
fn refuses_runs_it_cannot_plot() {
    let p = Project::new();
    // Not a train run: no metric stream.
    let other = p.attest("notes", "misc", &[("notes.txt", b"hello")]);
    let o = p.run(&["plot", other.to_str().unwrap(), "--out", "x.svg"]);
    assert_fails_with(
        &o,
        2,
        &[
            &format!("run misc/{}", file_name(&other)),
            "has no metrics.jsonl among its signed outputs",
        ],
    );
    assert!(!p.path("x.svg").exists());

    // A signed stream whose fourth line has a dead fraction above 1.
    let text = String::from_utf8(stream("topk-lr3e-4.metrics.jsonl")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let bad_line = lines[3].replace("\"dead_fraction\":0.01", "\"dead_fraction\":1.01");
    assert_ne!(bad_line, lines[3]);
    lines[3] = &bad_line;
    let bad = train_run(&p, lines.join("\n").as_bytes(), RunStatus::Ok);
    let o = p.run(&["plot", bad.to_str().unwrap(), "--out", "x.svg"]);
    assert_fails_with(
        &o,
        2,
        &[
            &format!("run sweep/{}", file_name(&bad)),
            "metrics.jsonl line 4: field dead_fraction: 1.01 is greater than the maximum of 1",
            "schemas/metrics-line.v1.json",
        ],
    );

    // A stream changed after signing: a verification failure, exit 1.
    let good = train_run(&p, &stream("topk-lr3e-4.metrics.jsonl"), RunStatus::Ok);
    std::fs::write(good.join("metrics.jsonl"), "{}\n").unwrap();
    let o = p.run(&["plot", good.to_str().unwrap(), "--out", "x.svg"]);
    assert_fails_with(&o, 1, &["failed verification"]);

    let o = p.run(&["plot", "--out", "x.svg"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = p.run(&["plot", "no-such-run", "--out", "x.svg"]);
    assert_fails_with(&o, 2, &["no-such-run is not a run directory or inside one"]);
    assert!(!p.path("x.svg").exists());
}
