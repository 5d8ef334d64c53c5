//! The `cptc-torch` binary: cptc's libtorch worker, a thin shell over `cptc_torch::worker`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(cptc_torch::worker::main(&args));
}
