//! `relflow restart-phase RELEASE PHASE [--from-task T] [--var k=v]... [--no-resume]`

use std::path::Path;

use crate::actions::Action;
use crate::cli::common::{order_or_drive, parse_vars};
use crate::cli::error::CliError;
use crate::engine::person::Person;

pub struct RestartArgs<'a> {
    pub release: &'a str,
    pub phase: &'a str,
    pub from_task: Option<&'a str>,
    pub vars: &'a [String],
    pub no_resume: bool,
    pub json: bool,
}

pub fn run(state_dir: &Path, args: RestartArgs<'_>, person: &Person) -> Result<i32, CliError> {
    let action = Action::RestartPhase {
        phase: args.phase.to_string(),
        from_task: args.from_task.map(str::to_string),
        vars: parse_vars(args.vars)?,
        resume: !args.no_resume,
    };
    order_or_drive(state_dir, args.release, args.json, person, action)
}
