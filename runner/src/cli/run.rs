//! `relflow run FILE [--var k=v]... [--json]`

use std::path::Path;

use crate::cli::common::{drive_release, parse_vars};
use crate::cli::error::CliError;
use crate::engine;
use crate::engine::person::Person;
use crate::pipeline;
use crate::store::Store;

pub fn run(
    state_dir: &Path,
    file: &Path,
    vars: &[String],
    person: &Person,
    json: bool,
) -> Result<i32, CliError> {
    let pipeline = pipeline::load_file(file)?;
    let overrides = parse_vars(vars)?;
    let mut variables = pipeline.variables.clone();
    for (name, value) in overrides {
        if !variables.contains_key(&name) {
            let declared: Vec<&str> = variables.keys().map(String::as_str).collect();
            return Err(CliError::input(format!(
                "error: --var {name}: `{name}` is not a variable of pipeline {} (declared: {})",
                pipeline.name,
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            )));
        }
        variables.insert(name, value);
    }
    let source = std::fs::read_to_string(file)
        .map_err(|e| CliError::input(format!("error: cannot read {}: {e}", file.display())))?;
    // Refuse before anything is recorded when a secret the pipeline needs is missing.
    engine::secrets_of(&pipeline, &|name| std::env::var(name).ok())?;
    let mut store = Store::open(state_dir)?;
    let release = engine::start_release(&mut store, &pipeline, &source, &variables)?;
    drop(store);
    drive_release(state_dir, &release, json, person, async |engine| {
        engine.record_own_action("run")?;
        Ok(engine.drive().await?)
    })
}
