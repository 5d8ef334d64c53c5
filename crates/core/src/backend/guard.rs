//! The divergence guard both engines train under: a run whose loss stays above `ratio` x its
//! first step's loss for `steps` steps in a row fails instead of being cached.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::BackendError;
use crate::recipe::Divergence;

/// The guard's state: saved with checkpoints, so a resumed run trips where an uninterrupted
/// one would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GuardState {
    /// The first step's loss.
    pub first_loss: Option<f64>,
    /// Where the current run of steps above the bound began.
    pub above_since: Option<u64>,
}

impl GuardState {
    /// Watches the loss of step `step` (counted from 0); `Err` once it has stayed above the
    /// bound for the guard's steps. `last_checkpoint` goes into the error for the user.
    pub fn observe(
        &mut self,
        guard: Divergence,
        step: u64,
        loss: f64,
        last_checkpoint: Option<PathBuf>,
    ) -> Result<(), BackendError> {
        let first = *self.first_loss.get_or_insert(loss);
        if loss <= guard.ratio * first {
            self.above_since = None;
            return Ok(());
        }
        let since = *self.above_since.get_or_insert(step);
        if step + 1 - since >= guard.steps {
            return Err(BackendError::Diverged { ratio: guard.ratio, first, since, step, loss, last_checkpoint });
        }
        Ok(())
    }
}
