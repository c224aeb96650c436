//! Starting a release: the pipeline file and its variables checked, then the release planned
//! in the store (`relflow run`, `POST /releases`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cli::CliError;
use crate::engine;
use crate::pipeline;
use crate::store::Store;

/// Loads `file`, applies `overrides` to its variables and plans a new release; returns its id.
pub fn prepare_release(
    state_dir: &Path,
    file: &Path,
    overrides: BTreeMap<String, String>,
) -> Result<String, CliError> {
    let pipeline = pipeline::load_file(file)?;
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
    let missing = pipeline.missing_required(&variables);
    if !missing.is_empty() {
        let message = pipeline::missing_required_message(&missing);
        return Err(CliError::input(format!("error: {message}")));
    }
    let source = std::fs::read_to_string(file)
        .map_err(|e| CliError::input(format!("error: cannot read {}: {e}", file.display())))?;
    // Refuse before anything is recorded when a secret the pipeline needs is missing.
    engine::secrets_of(&pipeline, &|name| std::env::var(name).ok())?;
    let mut store = Store::open(state_dir)?;
    Ok(engine::start_release(
        &mut store, &pipeline, &source, &variables,
    )?)
}

/// The pipeline file `name` inside `dir`: a plain file name (no `/`, no `..`, not absolute)
/// whose real path, links resolved, is still inside `dir`.
pub fn resolve_pipeline(dir: &Path, name: &str) -> Result<PathBuf, CliError> {
    let refuse = |why: &str| {
        CliError::input(format!(
            "error: pipeline `{name}` {why} (name a file in the pipelines folder)"
        ))
    };
    if name.is_empty() || name.contains('/') || name.contains('\\') || name == "." || name == ".." {
        return Err(refuse("is not a file name"));
    }
    let root = dir.canonicalize().map_err(|e| {
        CliError::state(format!(
            "error: the pipelines folder {} cannot be read: {e}",
            dir.display()
        ))
    })?;
    let real = root
        .join(name)
        .canonicalize()
        .map_err(|_| refuse("does not exist"))?;
    if real.parent() != Some(root.as_path()) {
        return Err(refuse("leads outside the pipelines folder"));
    }
    if !real.is_file() {
        return Err(refuse("is not a regular file"));
    }
    Ok(real)
}
