//! The built `cptc` finds libtorch through its RUNPATH (no LD_LIBRARY_PATH), and keeps
//! `libtorch_cuda` linked where libtorch has it, so CUDA is visible on a GPU machine.

use std::process::Command;

fn dynamic_section() -> String {
    let out = Command::new("readelf").args(["-d", env!("CARGO_BIN_EXE_cptc")]).output().expect("readelf (binutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn runs_without_ld_library_path() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_cptc")).arg("--version").env_remove("LD_LIBRARY_PATH").output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dynamic_section().contains("RUNPATH"), "no RUNPATH in cptc");
}

#[test]
fn keeps_libtorch_cuda_when_libtorch_has_it() {
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/libtorch/lib");
    let has_cuda = lib.join("libtorch_cuda.so").exists();
    let needed = dynamic_section().contains("libtorch_cuda.so");
    assert_eq!(needed, has_cuda, "libtorch_cuda.so in {}: {has_cuda}; linked: {needed}", lib.display());
}
