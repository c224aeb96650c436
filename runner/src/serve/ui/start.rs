//! Starting a release from the browser: pick a pipeline of `--pipelines DIR`, set its
//! variables (prefilled with the pipeline's defaults), start.

use std::collections::BTreeMap;

use maud::{Markup, html};

use super::layout::{self, Notice, PageCtx, csrf_field};
use crate::serve::api::ApiError;
use crate::serve::state::AppState;

/// The start form's page (GET) and where it posts (POST).
pub const PATH: &str = "/start";

/// A pipeline the list offers: its file name in the folder and its name.
#[derive(Debug, Clone)]
pub struct Choice {
    pub file: String,
    pub name: String,
}

/// The pipelines of `--pipelines DIR` that load, by name (none without the option).
pub async fn pipeline_choices(state: &AppState) -> Vec<Choice> {
    let Some(dir) = state.pipelines().map(std::path::Path::to_path_buf) else {
        return Vec::new();
    };
    tokio::task::spawn_blocking(move || {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut choices: Vec<Choice> = entries
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name().to_str()?.to_string();
                if !(file.ends_with(".yaml") || file.ends_with(".yml")) {
                    return None;
                }
                // Only files that load are offered; the others would be refused anyway.
                let pipeline = crate::pipeline::load_file(&entry.path()).ok()?;
                Some(Choice {
                    file,
                    name: pipeline.name,
                })
            })
            .collect();
        choices.sort_by(|a, b| a.name.cmp(&b.name));
        choices
    })
    .await
    .unwrap_or_default()
}

/// The name and default variables of pipeline file `file` in the pipelines folder.
pub async fn pipeline_variables(
    state: &AppState,
    file: &str,
) -> Result<(String, BTreeMap<String, String>), ApiError> {
    let dir = state
        .pipelines()
        .ok_or_else(|| ApiError::not_found("this server was started without --pipelines DIR"))?
        .to_path_buf();
    let file = file.to_string();
    tokio::task::spawn_blocking(move || {
        let path = crate::actions::resolve_pipeline(&dir, &file)
            .map_err(|e| ApiError::bad_request(e.message))?;
        let pipeline =
            crate::pipeline::load_file(&path).map_err(|e| ApiError::bad_request(e.to_string()))?;
        // Secrets are never prefilled: an empty field keeps the pipeline's own value.
        let vars = pipeline
            .variables
            .iter()
            .map(|(k, v)| {
                let shown = if pipeline.secret_variables.contains(k) {
                    String::new()
                } else {
                    v.clone()
                };
                (k.clone(), shown)
            })
            .collect();
        Ok((pipeline.name, vars))
    })
    .await
    .map_err(|e| ApiError::internal(format!("a worker failed: {e}")))?
}

/// The form for pipeline `file` (named `name`) with its variables and their default values.
pub fn page(
    file: &str,
    name: &str,
    variables: &BTreeMap<String, String>,
    ctx: &PageCtx,
    notice: Option<&Notice>,
) -> Markup {
    let content = html! {
        h1 { "Start a release of " (name) }
        form.action.start method="post" action=(PATH) {
            (csrf_field(ctx))
            input type="hidden" name="pipeline" value=(file);
            @for (k, v) in variables {
                label.var { code { (k) } " " input type="text" name=(format!("var.{k}")) value=(v); }
            }
            input type="text" name="comment" placeholder="comment (optional)" aria-label="comment";
            button type="submit" name="do" value="start" { "Start" }
        }
    };
    layout::page(&format!("Start {name}"), ctx, notice, content)
}
