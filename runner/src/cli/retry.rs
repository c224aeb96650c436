//! `relflow retry RELEASE [--task T]`: one more attempt of a failed task, then continue.

use std::path::Path;

use crate::cli::common::drive_release;
use crate::cli::error::CliError;

pub fn run(
    state_dir: &Path,
    release: &str,
    task: Option<&str>,
    json: bool,
) -> Result<i32, CliError> {
    drive_release(state_dir, release, json, async |engine| {
        Ok(engine.retry_failed(task).await?)
    })
}
