//! `cptc` never links libtorch (plans and cached runs do not load it); its worker `cptc-torch`
//! finds libtorch through its RUNPATH (no LD_LIBRARY_PATH) and keeps `libtorch_cuda` linked
//! where libtorch has it, so CUDA is visible on a GPU machine.

use std::process::Command;

fn dynamic_section(binary: &str) -> String {
    let out = Command::new("readelf").args(["-d", binary]).output().expect("readelf (binutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cptc_does_not_link_libtorch() {
    let section = dynamic_section(env!("CARGO_BIN_EXE_cptc"));
    for lib in ["libtorch", "libc10", "libcuda"] {
        assert!(!section.contains(lib), "cptc links {lib}:\n{section}");
    }
}

#[test]
fn the_worker_runs_without_ld_library_path() {
    let out = Command::new(env!("CARGO_BIN_EXE_cptc-torch"))
        .arg("probe")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a probe reply");
    assert!(reply["cuda"].is_boolean(), "{reply}");
    assert!(dynamic_section(env!("CARGO_BIN_EXE_cptc-torch")).contains("RUNPATH"), "no RUNPATH in cptc-torch");
}

#[test]
fn the_worker_keeps_libtorch_cuda_when_libtorch_has_it() {
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/libtorch/lib");
    let has_cuda = lib.join("libtorch_cuda.so").exists();
    let needed = dynamic_section(env!("CARGO_BIN_EXE_cptc-torch")).contains("libtorch_cuda.so");
    assert_eq!(needed, has_cuda, "libtorch_cuda.so in {}: {has_cuda}; linked: {needed}", lib.display());
}
