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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_files_inside_the_folder_resolve() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("pipelines");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("p.yaml"), "name: p\n").unwrap();
        std::fs::write(root.path().join("out.yaml"), "name: out\n").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::os::unix::fs::symlink(root.path().join("out.yaml"), dir.join("out.yaml")).unwrap();
        std::os::unix::fs::symlink(dir.join("p.yaml"), dir.join("alias.yaml")).unwrap();
        assert!(resolve_pipeline(&dir, "p.yaml").is_ok());
        assert!(
            resolve_pipeline(&dir, "alias.yaml").is_ok(),
            "a link that stays inside"
        );
        for bad in [
            "../out.yaml",
            "out.yaml",
            "/etc/passwd",
            "..",
            ".",
            "",
            "sub",
            "nope.yaml",
            "sub/../p.yaml",
        ] {
            let e = resolve_pipeline(&dir, bad).unwrap_err();
            assert_eq!(
                e.code,
                crate::exit_code::INVALID_INPUT,
                "{bad}: {}",
                e.message
            );
        }
    }
}
