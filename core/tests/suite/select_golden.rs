//! Golden files for the selector's hand-written renderings: the strict Markdown summary and Pareto SVG, and the
//! parity `summary.md`, all on FIXTURES.md outcome 3's inputs.
//!
//! A change to the rendering must be deliberate: regenerate with
//! `HUSAI_UPDATE_GOLDEN=1 cargo test -p husai-core --test suite select_golden::` and review the diff.

use crate::select_support;

use std::path::PathBuf;

use husai_core::select::output::{
    ParityInputs, ParityRunMetadata, parity_outputs, strict_markdown,
};
use husai_core::select::svg::pareto_svg;
use husai_core::select::{InputRole, SelectConfig, Selection};
use select_support::{fixtures, run};

fn outcome3(config: SelectConfig) -> Selection {
    let f =
        fixtures().join("cycle3_queue_final/frontier_multiseed_results_run_20260214T202538Z.json");
    let s = fixtures().join("cycle3_queue_run_20260215T165724Z/scaling_results.json");
    run(
        &[
            (InputRole::Frontier, f.as_path()),
            (InputRole::Scaling, s.as_path()),
        ],
        &config,
    )
    .unwrap()
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
fn strict_markdown_and_svg() {
    let sel = outcome3(SelectConfig::strict_defaults());
    check(
        "select_outcome3_strict.md",
        &strict_markdown(&sel, "20261128T000000Z-0000000000000000"),
    );
    let svg = pareto_svg(&sel);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(
        svg.matches("<circle").count(),
        8 + 1 + 3,
        "8 candidates, the selection ring, 3 legend marks"
    );
    check("select_outcome3_strict.svg", &svg);
}

#[test]
fn parity_summary_md() {
    let sel = outcome3(SelectConfig {
        require_both_external: true,
        ..SelectConfig::parity_defaults()
    });
    let meta = ParityRunMetadata {
        timestamp_utc: "2026-11-28T00:00:00+00:00".into(),
        git_commit: None,
        command: "husai-audit select --parity".into(),
        run_id: "20261128T000000Z-0000000000000000".into(),
    };
    let out = parity_outputs(
        &sel,
        &meta,
        &ParityInputs::default(),
        "results/decisions/20261128T000000Z-0000000000000000",
    );
    check("select_outcome3_parity_summary.md", &out.summary_md);
}
