//! `cptc import gguf`: converts a llama.cpp GGUF file into a Hugging Face model directory.

use std::path::Path;

use super::{Dtype, EXIT_USER, color, width};
use crate::convert::{OutDtype, import_gguf};

pub(crate) fn run(file: &Path, out_dir: &Path, dtype: Dtype) -> i32 {
    let dtype = match dtype {
        Dtype::F16 => OutDtype::F16,
        Dtype::Bf16 => OutDtype::Bf16,
        Dtype::F32 => OutDtype::F32,
    };
    match import_gguf(file, out_dir, dtype) {
        Ok(report) => {
            eprintln!(
                "imported {} tensors, {} parameters, vocabulary {} -> {}",
                report.n_tensors,
                report.n_params,
                report.vocab_size,
                report.out_dir.display()
            );
            0
        }
        Err(err) => {
            let theme =
                if color() { miette::GraphicalTheme::unicode() } else { miette::GraphicalTheme::unicode_nocolor() };
            let mut out = String::new();
            let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(width());
            if handler.render_report(&mut out, &err).is_err() {
                out = err.to_string();
            }
            eprintln!("{out}");
            EXIT_USER
        }
    }
}
