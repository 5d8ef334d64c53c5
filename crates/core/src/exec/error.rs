//! The executor's errors: a stage's failure keeps the phase diagnostic it came with (code,
//! help, labels), the stage it belongs to and its tier.

use std::fmt;
use std::path::Path;

use miette::Diagnostic;
use thiserror::Error;

use crate::stages::{StageFailure, Tier};
use crate::store::StoreError;

#[derive(Debug, Error, Diagnostic)]
pub enum ExecError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Stage(StageError),

    #[error("no stage named `{name}`")]
    #[diagnostic(code(cptc::exec::unknown_stage))]
    UnknownStage {
        name: String,
        #[help]
        help: String,
    },
}

/// A failed stage: its id, its tier and the phase's own diagnostic.
pub struct StageError {
    pub stage: String,
    pub tier: Tier,
    failure: Box<dyn Diagnostic + Send + Sync + 'static>,
}

impl StageError {
    pub fn new(stage: &str, failure: StageFailure) -> StageError {
        StageError { stage: stage.to_string(), tier: failure.tier, failure: failure.diagnostic }
    }

    pub(super) fn input_file(stage: &str, path: &Path, source: std::io::Error) -> StageError {
        let failure = StageFailure::of(crate::stages::InputFile { path: path.display().to_string(), source });
        StageError::new(stage, failure)
    }

    /// The failure's text with its whole cause chain.
    pub fn message(&self) -> String {
        crate::stages::chain_text(self.failure.as_ref())
    }

    /// The phase diagnostic's code, e.g. `cptc::data::bad_record`.
    pub fn code_text(&self) -> Option<String> {
        self.failure.code().map(|c| c.to_string())
    }
}

impl fmt::Debug for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageError").field("stage", &self.stage).field("tier", &self.tier).finish_non_exhaustive()
    }
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage `{}` failed: {}", self.stage, self.message())
    }
}

impl std::error::Error for StageError {}

/// The phase's diagnostic shows through: its code, help, labels and source.
impl Diagnostic for StageError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.failure.code()
    }

    fn severity(&self) -> Option<miette::Severity> {
        self.failure.severity()
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.failure.help()
    }

    fn url<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.failure.url()
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.failure.source_code()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.failure.labels()
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        self.failure.related()
    }
}
