//! `relflow resume RELEASE`: continue a paused or interrupted release.

use std::path::Path;

use crate::actions::{self, Action};
use crate::cli::common::order_or_drive;
use crate::cli::error::CliError;
use crate::engine::person::Person;
use crate::store::Store;

pub fn run(state_dir: &Path, release: &str, person: &Person, json: bool) -> Result<i32, CliError> {
    let store = Store::open(state_dir)?;
    actions::check_before_attach(&store, release, &Action::Resume)?;
    drop(store);
    order_or_drive(state_dir, release, json, person, Action::Resume)
}
