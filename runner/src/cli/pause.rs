//! `relflow pause RELEASE [--comment TEXT]`: start no new task, let running ones finish, leave
//! the release paused (continue with `relflow resume`).

use std::path::Path;

use crate::actions::{self, Action};
use crate::cli::error::CliError;
use crate::cli::live::act_or_ask;
use crate::engine::person::Person;
use crate::store::ControlAction;

pub fn run(state_dir: &Path, release: &str, person: &Person, json: bool) -> Result<i32, CliError> {
    act_or_ask(
        state_dir,
        release,
        ControlAction::Pause,
        person,
        json,
        async |engine| actions::perform(engine, &Action::Pause).await,
    )
}
