//! `relflow plan FILE [--var k=v]... [--simulate TASK=CLASS[xN]]...`: phases, tasks, effective
//! policies, and what the policies would do for simulated failures. Runs nothing.

use std::path::Path;

use crate::cli::common::parse_vars;
use crate::cli::error::CliError;
use crate::exit_code;
use crate::pipeline;
use crate::policy::simulate::{SimulatedFailure, plan};

pub fn run(file: &Path, vars: &[String], simulate: &[String]) -> Result<i32, CliError> {
    let mut pipeline = pipeline::load_file(file)?;
    for (name, value) in parse_vars(vars)? {
        if !pipeline.variables.contains_key(&name) {
            return Err(CliError::input(format!(
                "error: --var {name}: `{name}` is not a variable of pipeline {}",
                pipeline.name
            )));
        }
        pipeline.variables.insert(name, value);
    }
    let sims = simulate
        .iter()
        .map(|s| {
            s.parse::<SimulatedFailure>()
                .map_err(|e| CliError::input(format!("error: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(unknown) = sims
        .iter()
        .find(|s| !pipeline.tasks().any(|(_, t)| t.name == s.task))
    {
        return Err(CliError::input(format!(
            "error: --simulate: pipeline {} has no task `{}`",
            pipeline.name, unknown.task
        )));
    }
    let (text, _) = plan(&pipeline, &sims);
    print!("{text}");
    Ok(exit_code::OK)
}
