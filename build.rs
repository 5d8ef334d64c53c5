//! Links the `cptc` binary to the libtorch that `scripts/setup.sh` installed, so it runs without
//! LD_LIBRARY_PATH, and keeps `libtorch_cuda` linked where the libtorch folder has it.

use std::path::PathBuf;

fn main() {
    // torch-sys exports the folder it linked against; it is a direct dependency for this reason.
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB unset: the binary will need LD_LIBRARY_PATH");
        return;
    };
    let lib_dir = PathBuf::from(lib_dir);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    // Rust links with --as-needed, which drops libtorch_cuda.so since no symbol of it is named
    // directly; CUDA then looks absent at run time (tch-rs #980, #1015). Force it in.
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
}
