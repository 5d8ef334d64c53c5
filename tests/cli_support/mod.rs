//! The one way tests start the `cptc` binary: from the repository root, without colour.

use std::process::Command;

/// `cptc ARGS` in the repository root (tests change the folder or environment as they need).
pub(crate) fn cptc(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cptc"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env("NO_COLOR", "1");
    cmd
}
