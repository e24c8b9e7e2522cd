//! `husai_core::plot`: the training-curve SVG is pinned by a golden file rendered from the committed metric-stream
//! fixtures, and runs are read only when they verify and hold a valid signed metrics.jsonl.
//!
//! A change to the rendering must be deliberate: regenerate with
//! `HUSAI_UPDATE_GOLDEN=1 cargo test -p husai-core --test suite plot::` and review the diff.

use crate::gate_support;

use std::path::{Path, PathBuf};

use gate_support::Signer;
use husai_core::manifest::{RunKind, RunStatus};
use husai_core::plot::{self, PlotError, RunMetrics};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metrics")
        .join(name)
}

const RUN_A: &str = "topk-lr3e-4.metrics.jsonl";
const RUN_B: &str = "topk-lr1e-3-diverged.metrics.jsonl";

fn fixture_run(name: &str, label: &str, status: RunStatus) -> RunMetrics {
    let path = fixture(name);
    let lines = plot::parse_metrics(label, &path, &std::fs::read(&path).unwrap()).unwrap();
    RunMetrics {
        label: label.to_owned(),
        status,
        lines,
    }
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("HUSAI_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read golden file {}: {e}; regenerate with HUSAI_UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from its golden file {}; if the change is intended, regenerate with HUSAI_UPDATE_GOLDEN=1\n--- actual ---\n{actual}",
        path.display()
    );
}

#[test]
fn two_runs_on_shared_axes_match_the_golden_file() {
    let runs = [
        fixture_run(RUN_A, "sweep/topk-lr3e-4", RunStatus::Ok),
        fixture_run(RUN_B, "sweep/topk-lr1e-3", RunStatus::Diverged),
    ];
    let svg = plot::render_svg(&runs);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    // Panels: loss aux, loss mse, L0, dead fraction, held-out FVU.
    assert_eq!(svg.matches("stroke=\"#444444\"").count(), 5, "{svg}");
    for title in [
        "loss: aux (per element)",
        "loss: mse (per element)",
        "L0 (mean non-zero latents per row)",
        "dead fraction",
        "held-out FVU",
    ] {
        assert!(svg.contains(&format!(">{title}")), "{title}");
    }
    // The legend names both runs, and says what the diverged one lacks.
    assert!(svg.contains(">sweep/topk-lr3e-4 <tspan"), "{svg}");
    assert!(
        svg.contains("(11 lines, steps 0–250, status diverged, 7 null figures not drawn)"),
        "{svg}"
    );
    // Held-out FVU points are marked: three of run A (joined), one of run B (its second evaluation is null).
    assert_eq!(svg.matches("<circle").count(), 3 + 1, "{svg}");
    check("plot_two_runs.svg", &svg);
    // Same input, same bytes.
    assert_eq!(svg, plot::render_svg(&runs));
}

#[test]
fn one_run_without_held_out_lines_has_no_fvu_panel() {
    let text = std::fs::read_to_string(fixture(RUN_A)).unwrap();
    let without_eval: String = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("eval");
            format!("{v}\n")
        })
        .collect();
    let lines = plot::parse_metrics("c/r", Path::new("m"), without_eval.as_bytes()).unwrap();
    let svg = plot::render_svg(&[RunMetrics {
        label: "c/r".into(),
        status: RunStatus::Ok,
        lines,
    }]);
    assert!(!svg.contains("held-out FVU"));
    assert_eq!(svg.matches("stroke=\"#444444\"").count(), 4);
    assert!(svg.contains("Training curves (1 run)"));
}

#[test]
fn verified_runs_are_read_from_their_signed_stream() {
    let s = Signer::new();
    let a = s.sign(
        "sweep",
        RunKind::Train,
        &[(plot::METRICS_FILE, &std::fs::read(fixture(RUN_A)).unwrap())],
    );
    let b = s.sign(
        "sweep",
        RunKind::Train,
        &[(plot::METRICS_FILE, &std::fs::read(fixture(RUN_B)).unwrap())],
    );
    let svg = plot::plot_runs(&[a.clone(), b.clone()], &s.trust).unwrap();
    let id = |d: &Path| d.file_name().unwrap().to_string_lossy().into_owned();
    assert!(svg.contains(&format!(">sweep/{} <tspan", id(&a))), "{svg}");
    assert!(svg.contains(&format!(">sweep/{} <tspan", id(&b))), "{svg}");
    // The curves are those of the fixtures: the same SVG as from the fixture files under the same labels.
    let from_fixtures = plot::render_svg(&[
        fixture_run(RUN_A, &format!("sweep/{}", id(&a)), RunStatus::Ok),
        fixture_run(RUN_B, &format!("sweep/{}", id(&b)), RunStatus::Ok),
    ]);
    assert_eq!(svg, from_fixtures);

    let msg = plot::plot_runs(&[a.clone(), a.clone()], &s.trust)
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        format!("run sweep/{} is given twice; name each run once", id(&a))
    );
}

#[test]
fn runs_without_a_valid_stream_are_refused_by_name() {
    let s = Signer::new();
    let no_stream = s.sign("sweep", RunKind::Import, &[("notes.txt", b"hello")]);
    let err = plot::plot_runs(std::slice::from_ref(&no_stream), &s.trust).unwrap_err();
    assert!(!err.is_verification_failure());
    assert_eq!(
        err.to_string(),
        format!(
            "run sweep/{} ({}, kind import) has no metrics.jsonl among its signed outputs; only train runs stream metrics (docs/trainer-contract.md §4)",
            no_stream.file_name().unwrap().to_string_lossy(),
            no_stream.display()
        )
    );

    // Line 3 of a signed stream lacks `l0`; line 5 has a string for a loss term.
    let mut lines: Vec<String> = std::fs::read_to_string(fixture(RUN_A))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines[2] = lines[2].replace("\"l0\":32.0,", "");
    let bad = s.sign(
        "sweep",
        RunKind::Train,
        &[(plot::METRICS_FILE, lines.join("\n").as_bytes())],
    );
    let run = format!("sweep/{}", bad.file_name().unwrap().to_string_lossy());
    let msg = plot::plot_runs(std::slice::from_ref(&bad), &s.trust)
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        format!(
            "run {run}: {} line 3: \"l0\" is a required property (each line must match schemas/metrics-line.v1.json)",
            bad.join("metrics.jsonl").display()
        )
    );
    lines[2] = std::fs::read_to_string(fixture(RUN_A))
        .unwrap()
        .lines()
        .nth(2)
        .unwrap()
        .to_owned();
    lines[4] = lines[4].replace("\"aux\":", "\"aux\":\"low\",\"was\":");
    let bad = s.sign(
        "sweep",
        RunKind::Train,
        &[(plot::METRICS_FILE, lines.join("\n").as_bytes())],
    );
    let msg = plot::plot_runs(&[bad], &s.trust).unwrap_err().to_string();
    assert!(
        msg.contains(" line 5: field loss.aux: \"low\" is not of types"),
        "{msg}"
    );

    // A stream changed after signing fails verification, before any line is read.
    let good = s.sign(
        "sweep",
        RunKind::Train,
        &[(plot::METRICS_FILE, &std::fs::read(fixture(RUN_A)).unwrap())],
    );
    std::fs::write(good.join(plot::METRICS_FILE), "{}\n").unwrap();
    let err = plot::plot_runs(std::slice::from_ref(&good), &s.trust).unwrap_err();
    assert!(err.is_verification_failure(), "{err}");
    assert!(err.to_string().contains("failed verification"), "{err}");

    let plain = s.dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let msg = plot::plot_runs(std::slice::from_ref(&plain), &s.trust).unwrap_err();
    assert!(matches!(msg, PlotError::NotARun { .. }), "{msg}");
    assert!(plot::plot_runs(&[], &s.trust).is_err());
}
