//! `relflow abort RELEASE [--rollback] [--comment TEXT]`: here, or through the store when
//! another runner drives the release.

use std::path::Path;

use crate::actions::{self, Action};
use crate::cli::error::CliError;
use crate::cli::live::act_or_ask;
use crate::engine::person::Person;
use crate::store::ControlAction;

pub fn run(
    state_dir: &Path,
    release: &str,
    rollback: bool,
    person: &Person,
    json: bool,
) -> Result<i32, CliError> {
    let action = ControlAction::Abort { rollback };
    act_or_ask(state_dir, release, action, person, json, async |engine| {
        actions::perform(engine, &Action::Abort { rollback }).await
    })
}
