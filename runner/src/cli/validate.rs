//! `relflow validate FILE [--json]`: load and validate a pipeline, the files it names
//! included, and say what a release of it will need (required variables, environment).

use std::path::Path;

use serde::Serialize;

use crate::cli::error::CliError;
use crate::exit_code;
use crate::output::json;
use crate::output::redact::MASK;
use crate::pipeline::{self, Diagnostic, Pipeline};

pub fn run(file: &Path, as_json: bool) -> Result<i32, CliError> {
    let loaded = pipeline::load_file(file);
    if !as_json {
        let p = loaded?;
        print!("{}", render(file, &p));
        return Ok(exit_code::OK);
    }
    let (report, code) = match &loaded {
        Ok(p) => (Report::valid(file, p), exit_code::OK),
        Err(err) => (
            Report::invalid(file, &err.shown_diagnostics()),
            exit_code::INVALID_INPUT,
        ),
    };
    json::print(&report);
    Ok(code)
}

/// `ok` with the pipeline's size, then what a release of it needs.
fn render(file: &Path, p: &Pipeline) -> String {
    let mut out = format!(
        "{}: ok (pipeline {}, {} phases, {} tasks)\n",
        file.display(),
        p.name,
        p.phases.len(),
        p.tasks().count()
    );
    let required = required_variables(p);
    if !required.is_empty() {
        out.push_str("required variables (a release needs a value for each):\n");
        for var in &required {
            let about = var
                .description
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            let value = match &var.default {
                Some(default) => format!("default `{default}` unless --var {}=...", var.name),
                None => format!("no default: pass --var {}=...", var.name),
            };
            out.push_str(&format!("  {}{about} ({value})\n", var.name));
        }
    }
    let unset: Vec<String> = environment(p)
        .into_iter()
        .filter(|e| !e.is_set)
        .map(|e| e.name)
        .collect();
    if !unset.is_empty() {
        out.push_str(&format!(
            "environment variables it uses that are not set here: {}\n",
            unset.join(", ")
        ));
    }
    out
}

/// `validate --json`.
#[derive(Serialize)]
struct Report {
    file: String,
    valid: bool,
    /// Name and size of a valid pipeline.
    pipeline: Option<Summary>,
    errors: Vec<ErrorView>,
    /// Of a valid pipeline (`null` when it does not load).
    required_variables: Option<Vec<RequiredVariable>>,
    environment: Option<Vec<EnvironmentVariable>>,
}

#[derive(Serialize)]
struct Summary {
    name: String,
    phases: usize,
    tasks: usize,
}

#[derive(Serialize)]
struct ErrorView {
    file: String,
    /// 1-based; 0 when the error is about the whole file.
    line: usize,
    column: usize,
    field: Option<String>,
    message: String,
    help: Option<String>,
}

#[derive(Serialize)]
struct RequiredVariable {
    name: String,
    description: Option<String>,
    /// The value a release gets without `--var` (`null`: none, `--var` is needed).
    default: Option<String>,
}

#[derive(Serialize)]
struct EnvironmentVariable {
    name: String,
    /// Whether it is set where `validate` ran (a release refuses to start without it).
    is_set: bool,
}

impl Report {
    fn valid(file: &Path, p: &Pipeline) -> Report {
        Report {
            file: file.display().to_string(),
            valid: true,
            pipeline: Some(Summary {
                name: p.name.clone(),
                phases: p.phases.len(),
                tasks: p.tasks().count(),
            }),
            errors: Vec::new(),
            required_variables: Some(required_variables(p)),
            environment: Some(environment(p)),
        }
    }

    fn invalid(file: &Path, diagnostics: &[Diagnostic]) -> Report {
        let errors = diagnostics
            .iter()
            .map(|d| ErrorView {
                file: d.file.display().to_string(),
                line: d.line,
                column: d.column,
                field: d.field.clone(),
                message: d.message.clone(),
                help: d.help.clone(),
            })
            .collect();
        Report {
            file: file.display().to_string(),
            valid: false,
            pipeline: None,
            errors,
            required_variables: None,
            environment: None,
        }
    }
}

fn required_variables(p: &Pipeline) -> Vec<RequiredVariable> {
    p.required_variables
        .iter()
        .map(|name| {
            let default = p.variables.get(name).filter(|v| !v.is_empty());
            let shown = if p.secret_variables.contains(name) {
                default.map(|_| MASK.to_string())
            } else {
                default.cloned()
            };
            RequiredVariable {
                name: name.clone(),
                description: p.variable_descriptions.get(name).cloned(),
                default: shown,
            }
        })
        .collect()
}

fn environment(p: &Pipeline) -> Vec<EnvironmentVariable> {
    p.env_references
        .iter()
        .map(|name| EnvironmentVariable {
            name: name.clone(),
            is_set: std::env::var_os(name).is_some(),
        })
        .collect()
}
