//! `relflow run FILE [--var k=v]... [--json]`

use std::path::Path;

use crate::actions::{self, Action};
use crate::cli::common::{order_or_drive, parse_vars};
use crate::cli::error::CliError;
use crate::engine::person::Person;

pub fn run(
    state_dir: &Path,
    file: &Path,
    vars: &[String],
    person: &Person,
    json: bool,
) -> Result<i32, CliError> {
    let release = actions::prepare_release(state_dir, file, parse_vars(vars)?)?;
    order_or_drive(state_dir, &release, json, person, Action::Run)
}
