//! The reading routes: releases, one release (the `status --json` document), targets,
//! pipelines.

use std::path::Path;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use serde::Serialize;
use serde_json::Value;

use crate::output::json;
use crate::output::view::ReleaseView;
use crate::serve::api::ApiError;
use crate::serve::auth::Caller;
use crate::serve::state::AppState;

/// `GET /releases`: the `list --json` document.
pub async fn releases(
    _caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let releases = state.reading(|store| Ok(store.releases()?)).await?;
    Ok(Json(json::document(
        &serde_json::json!({ "releases": releases }),
    )))
}

/// `GET /releases/{id}`: the `status --json` document.
pub async fn release(
    _caller: Caller,
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state
        .reading(move |store| {
            store.release(&id)?;
            Ok(ReleaseView::load(store, &id)?)
        })
        .await?;
    Ok(Json(json::document(&view)))
}

/// `GET /targets`: the `targets --json` document.
pub async fn targets(
    _caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let targets = state.reading(|store| Ok(store.targets_now()?)).await?;
    Ok(Json(json::document(
        &serde_json::json!({ "targets": targets }),
    )))
}

/// One file of `--pipelines DIR`.
#[derive(Debug, Serialize)]
pub struct PipelineDoc {
    /// The file name, as `POST /releases` takes it.
    pub file: String,
    /// The pipeline's name (when it loads).
    pub name: Option<String>,
    pub valid: bool,
    /// Declared variables with their defaults (secret ones masked).
    pub variables: serde_json::Map<String, Value>,
    /// Why it does not load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /pipelines`: the YAML files of `--pipelines DIR`, each loaded and validated.
pub async fn pipelines(
    _caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let dir = state.pipelines().map(Path::to_path_buf);
    let docs = tokio::task::spawn_blocking(move || match dir {
        Some(dir) => list_pipelines(&dir),
        None => Ok(Vec::new()),
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json::document(
        &serde_json::json!({ "pipelines": docs }),
    )))
}

/// The `.yaml`/`.yml` files directly in `dir`, by name.
pub fn list_pipelines(dir: &Path) -> Result<Vec<PipelineDoc>, ApiError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ApiError::internal(format!(
            "the pipelines folder {} cannot be read: {e}",
            dir.display()
        ))
    })?;
    let mut files: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|file| {
            let loaded = crate::actions::resolve_pipeline(dir, &file)
                .map_err(|e| e.message)
                .and_then(|path| crate::pipeline::load_file(&path).map_err(|e| e.to_string()));
            match loaded {
                Ok(pipeline) => PipelineDoc {
                    file,
                    name: Some(pipeline.name.clone()),
                    valid: true,
                    variables: pipeline
                        .variables
                        .iter()
                        .map(|(k, v)| {
                            let shown = if pipeline.secret_variables.contains(k) {
                                "***".to_string()
                            } else {
                                v.clone()
                            };
                            (k.clone(), Value::from(shown))
                        })
                        .collect(),
                    error: None,
                },
                Err(error) => PipelineDoc {
                    file,
                    name: None,
                    valid: false,
                    variables: serde_json::Map::new(),
                    error: Some(crate::output::Redactor::redact_global(&error).to_string()),
                },
            }
        })
        .collect())
}
