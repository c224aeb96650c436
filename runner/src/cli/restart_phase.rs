//! `relflow restart-phase RELEASE PHASE [--from-task T] [--var k=v]... [--no-resume]`

use std::path::Path;

use crate::actions::{self, Action};
use crate::cli::common::{drive_release, parse_vars};
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
    drive_release(state_dir, args.release, args.json, person, async |engine| {
        actions::perform(engine, &action).await
    })
}
