//! libtorch errors become [`BackendError::Torch`], classified here: the only place that sees
//! `tch::TchError`, so the rest of cptc tells the machine's faults apart without linking tch.

use cptc::backend::{BackendError, Result};

/// Attaches a context to a libtorch error: `t.f_matmul(&w).ctx("attention")?`.
pub(crate) trait TchContext<T> {
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T> TchContext<T> for std::result::Result<T, tch::TchError> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|source| BackendError::Torch {
            context: context.to_owned(),
            environment: is_environment(&source),
            source: Box::new(source),
        })
    }
}

/// Whether libtorch failed for the machine's sake: out of memory, or in CUDA.
fn is_environment(e: &tch::TchError) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("out of memory") || text.contains("cuda") || text.contains("can't allocate")
}
