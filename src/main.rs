//! The `cptc` binary: a thin shell over `cptc::cli`.

fn main() {
    std::process::exit(cptc::cli::main());
}
