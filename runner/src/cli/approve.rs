//! `relflow approve RELEASE --task T` and `relflow reject RELEASE --task T`

use std::path::Path;

use crate::actions::Action;
use crate::cli::common::order_or_drive;
use crate::cli::error::CliError;
use crate::engine::Answer;
use crate::engine::person::Person;

pub fn run(
    state_dir: &Path,
    release: &str,
    task: &str,
    answer: Answer,
    person: &Person,
    json: bool,
) -> Result<i32, CliError> {
    let task = task.to_string();
    let action = match answer {
        Answer::Approve => Action::Approve { task },
        Answer::Reject => Action::Reject { task },
    };
    order_or_drive(state_dir, release, json, person, action)
}
