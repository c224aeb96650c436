//! `relflow restart-phase RELEASE PHASE [--from-task T] [--var k=v]... [--no-resume]`

use std::path::Path;

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
    let values = parse_vars(args.vars)?;
    drive_release(state_dir, args.release, args.json, person, async |engine| {
        let declared = &engine.pipeline().variables;
        if let Some(name) = values.keys().find(|k| !declared.contains_key(*k)) {
            let names: Vec<&str> = declared.keys().map(String::as_str).collect();
            return Err(CliError::input(format!(
                "error: --var {name}: `{name}` is not a variable of pipeline {} (declared: {})",
                engine.pipeline().name,
                names.join(", ")
            )));
        }
        Ok(engine
            .restart_phase(args.phase, args.from_task, values.clone(), !args.no_resume)
            .await?)
    })
}
