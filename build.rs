//! Links `cptc-torch` (and the tests and examples that use the engine) to the libtorch that
//! `scripts/setup.sh` installed, so they run without LD_LIBRARY_PATH, and keeps
//! `libtorch_cuda` linked where the libtorch folder has it. `cptc` itself gets none of this: it
//! never links libtorch (see `tests/link.rs`).

use std::path::PathBuf;

fn main() {
    // torch-sys exports the folder it linked against; it is a direct dependency for this reason.
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB unset: cptc-torch will need LD_LIBRARY_PATH");
        return;
    };
    let lib_dir = PathBuf::from(lib_dir);
    let mut args = vec![format!("-Wl,-rpath,{}", lib_dir.display())];
    // Rust links with --as-needed, which drops libtorch_cuda.so since no symbol of it is named
    // directly; CUDA then looks absent at run time (tch-rs #980, #1015). Force it in.
    if lib_dir.join("libtorch_cuda.so").exists() {
        args.extend(["-Wl,--no-as-needed", "-ltorch_cuda", "-ltorch", "-Wl,--as-needed"].map(String::from));
    }
    for arg in &args {
        println!("cargo:rustc-link-arg-bin=cptc-torch={arg}");
        println!("cargo:rustc-link-arg-tests={arg}");
        println!("cargo:rustc-link-arg-examples={arg}");
    }
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
}
