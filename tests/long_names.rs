//! Names of any length: a recipe whose corpus name is longer than a file name can be runs
//! (stage ids become store file names only through a bounded form), and `cptc plan` lays out
//! an identifier past 65,535 characters without panicking.

mod cli_support;

use std::path::Path;

/// The executor fixture with corpus `law` renamed to `name`, in a temp folder.
fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exec");
    for file in ["web.jsonl", "law.jsonl"] {
        std::fs::copy(src.join(file), dir.path().join(file)).expect("copy");
    }
    std::fs::create_dir_all(dir.path().join("hf")).expect("mkdir");
    std::fs::copy(src.join("hf/config.json"), dir.path().join("hf/config.json")).expect("copy");
    let recipe = std::fs::read_to_string(src.join("recipe.cpt")).expect("recipe");
    let recipe = recipe.replace("corpus law {", &format!("corpus {name} {{")).replace("[law]", &format!("[{name}]"));
    let recipe = recipe.replace("sets = [web, law]", &format!("sets = [web, {name}]"));
    std::fs::write(dir.path().join("recipe.cpt"), recipe).expect("write");
    dir
}

#[test]
fn a_corpus_name_longer_than_a_file_name_runs_and_is_cached() {
    let name = format!("law_{}", "x".repeat(300));
    let dir = fixture(&name);
    let split = format!("split:{name}");
    let run =
        || cli_support::cptc(&["run", "recipe.cpt", "--only", &split]).current_dir(dir.path()).output().expect("run");
    let first = run();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("ran 2 stages"), "{stderr}");
    let second = run();
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("nothing to run"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
}

#[test]
fn plan_lays_out_an_identifier_past_65535_characters() {
    let name = format!("law_{}", "x".repeat(70_000));
    let dir = fixture(&name);
    let out =
        cli_support::cptc(&["plan", "recipe.cpt", "--tflops", "1"]).current_dir(dir.path()).output().expect("plan");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("split:{name}")));
}
