//! Rendering of the run report from a fixture: `tests/fixtures/report/edu.json` is the
//! `report.json` a real `cptc run recipes/edu.cpt` wrote, `medical_probe.json` the one of a
//! CPU-sized `recipes/medical.cpt` (CPT, then the post-SFT probe). The terminal summary and a
//! chart are snapshotted; the page must hold every section and be byte-identical when rendered
//! twice.

use cptc::report::ReportData;
use cptc::report::chart::{LineChart, Series};

fn fixture() -> ReportData {
    load("edu")
}

fn load(name: &str) -> ReportData {
    let path = format!("{}/tests/fixtures/report/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("ReportData")
}

/// The probe compares the SFT from the CPT model with the SFT from the base on the held-out
/// answers, before and after the SFT, and says how much of the gain is left.
#[test]
fn the_post_sft_probe_puts_both_sfts_side_by_side() {
    let data = load("medical_probe");
    let rows = data.probe();
    assert_eq!(rows.len(), 2);
    assert!(!rows[0].from.trained && rows[1].from.trained, "the base first");
    insta::assert_snapshot!(data.summary());
    assert!(data.html().contains("<h2>Post-SFT probe</h2>"));
    assert!(!fixture().html().contains("Post-SFT probe"), "a recipe without SFT phases has none");
}

#[test]
fn summary_shows_gain_forgetting_training_and_vocab() {
    insta::assert_snapshot!(fixture().summary());
}

#[test]
fn page_has_every_section_and_is_reproducible() {
    let data = fixture();
    let page = data.html();
    for needle in [
        "<h2>Gain and forgetting</h2>",
        "held-out bits per byte during training",
        "training loss",
        "learning rate",
        "mixture: token shares per window, as drawn",
        "<h2>vocab poetry_chars</h2>",
        "<h2>Evaluations</h2>",
    ] {
        assert!(page.contains(needle), "missing {needle}");
    }
    assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
    assert_eq!(page, data.html(), "rendering is deterministic");
}

#[test]
fn changes_compare_the_untrained_and_trained_evaluations() {
    let data = fixture();
    let changes = data.changes();
    let roles: Vec<(&str, Option<&str>)> = changes.iter().map(|c| (c.set.as_str(), c.role.as_deref())).collect();
    assert_eq!(roles, [("novels", Some("general")), ("poetry", Some("domain"))]);
    let before = data.evals.iter().find(|e| !e.trained).expect("an untrained evaluation");
    for c in &changes {
        let m = before.sets.iter().find(|s| s.set == c.set).expect("set measured before");
        assert_eq!(c.before, m.bpb);
        assert!(c.source.starts_with("eval:before -> eval:after"), "{}", c.source);
    }
}

#[test]
fn line_chart_svg() {
    let chart = LineChart {
        title: "held-out bits per byte".into(),
        x_label: "training tokens".into(),
        y_label: "bits per byte".into(),
        series: vec![
            Series {
                label: "poetry (domain)".into(),
                colour: 0,
                points: vec![(0.0, 4.0), (12_000.0, 3.6), (24_000.0, 3.3), (48_000.0, 3.1)],
                dashed: false,
                markers: true,
            },
            Series {
                label: "target <share>".into(),
                colour: 1,
                points: vec![(0.0, f64::NAN), (24_000.0, 1.2)],
                dashed: true,
                markers: false,
            },
        ],
        y_range: None,
        percent: false,
    };
    insta::assert_snapshot!(chart.svg());
}
