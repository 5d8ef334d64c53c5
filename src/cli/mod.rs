//! The command line: argument parsing and dispatch. The only module that prints or exits.
//!
//! Exit codes: 0 success, 1 a user error (bad recipe, bad input file), 2 an internal error.

mod check;
mod fmt;
mod import;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit code for a user error: the recipe or an input is wrong.
pub const EXIT_USER: i32 = 1;
/// Exit code for an internal error: a bug or a broken environment.
pub const EXIT_INTERNAL: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "cptc",
    version,
    about = "Continued pretraining, written as a recipe: check, plan and run it, cached",
    long_about = "cptc compiles a declarative `.cpt` recipe (vocabulary expansion, replay mixture with a \
                  ratio ramp, LR schedule, evaluation, scaling-law sweeps, long context) into a stage \
                  graph and runs it with every intermediate artifact cached.",
    after_help = "Exit codes: 0 success, 1 an error in a recipe or input, 2 an internal error."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check recipes: syntax, names, types and units, shares, files; report every error.
    Check {
        /// Recipe files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `human` draws source snippets; `short` prints one line per error.
        #[arg(long, value_enum, default_value_t = DiagFormat::Human)]
        format: DiagFormat,
    },
    /// Rewrite recipes in the canonical layout (comments kept).
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; exit 1 if a file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Convert a checkpoint into a Hugging Face model directory.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Import a GGUF file (llama.cpp) as a Hugging Face Llama directory.
    Gguf {
        /// The `.gguf` file.
        file: PathBuf,
        /// The directory to create.
        out_dir: PathBuf,
        /// Weight dtype of model.safetensors.
        #[arg(long, value_enum, default_value_t = Dtype::F16)]
        dtype: Dtype,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum DiagFormat {
    Human,
    Short,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Dtype {
    F16,
    Bf16,
    F32,
}

/// Whether diagnostics on stderr may use colour.
pub(crate) fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Terminal width for diagnostics; a fixed width off a terminal keeps output stable.
pub(crate) fn width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(100)
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { EXIT_USER } else { 0 };
        }
    };
    match cli.command {
        Command::Check { files, format } => check::run(&files, format),
        Command::Fmt { files, check } => fmt::run(&files, check),
        Command::Import(ImportCommand::Gguf { file, out_dir, dtype }) => import::run(&file, &out_dir, dtype),
    }
}
