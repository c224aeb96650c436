//! `relflow retry RELEASE [--task T]`: one more attempt of a failed task, then continue.

use std::path::Path;

use crate::actions::Action;
use crate::cli::common::order_or_drive;
use crate::cli::error::CliError;
use crate::engine::person::Person;

pub fn run(
    state_dir: &Path,
    release: &str,
    task: Option<&str>,
    person: &Person,
    json: bool,
) -> Result<i32, CliError> {
    let action = Action::Retry {
        task: task.map(str::to_string),
    };
    order_or_drive(state_dir, release, json, person, action)
}
