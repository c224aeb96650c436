//! `relflow retry RELEASE [--task T]`: one more attempt of a failed task, then continue.

use std::path::Path;

use crate::actions::{self, Action};
use crate::cli::common::drive_release;
use crate::cli::error::CliError;
use crate::engine::person::Person;

pub fn run(
    state_dir: &Path,
    release: &str,
    task: Option<&str>,
    person: &Person,
    json: bool,
) -> Result<i32, CliError> {
    drive_release(state_dir, release, json, person, async |engine| {
        let action = Action::Retry {
            task: task.map(str::to_string),
        };
        actions::perform(engine, &action).await
    })
}
