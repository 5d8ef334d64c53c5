//! `cptc plan` of every shipped recipe, as text and DOT, against an empty store: the stage
//! graph, statuses, tokens per source, FLOPs and time estimates, snapshotted.

mod cli_support;

fn plan(recipe: &str, format: &str) -> String {
    // An explicit throughput: the default depends on the machine (GPU or CPU cores).
    let args = ["plan", recipe, "--format", format, "--store", "target/empty-store-for-plan-tests", "--tflops", "100"];
    let out = cli_support::cptc(&args).output().expect("run cptc plan");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_recipe_plans() {
    for recipe in ["edu", "zh", "medical", "longctx", "dcpt"] {
        let path = format!("recipes/{recipe}.cpt");
        insta::assert_snapshot!(format!("{recipe}_text"), plan(&path, "text"));
        insta::assert_snapshot!(format!("{recipe}_dot"), plan(&path, "dot"));
        let json: serde_json::Value = serde_json::from_str(&plan(&path, "json")).expect("plan --format json is JSON");
        assert!(json["stages"].as_array().is_some_and(|s| !s.is_empty()));
    }
}

#[test]
fn a_chosen_ratio_is_pending_until_computed() {
    let text = plan("recipes/dcpt.cpt", "text");
    let line = text.lines().find(|l| l.contains("mix:final")).expect("mix:final in the plan");
    assert!(line.contains("pending") && line.contains("choose:best.ratio"), "{line}");
}
