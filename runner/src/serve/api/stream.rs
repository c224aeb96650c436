//! The streaming routes: a release's events as server-sent events, and a task's log.

use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};

use crate::serve::api::ApiError;
use crate::serve::auth::Caller;
use crate::serve::state::AppState;

pub async fn events(
    _caller: Caller,
    State(_state): State<AppState>,
    UrlPath(_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    Err(ApiError::internal("not yet"))
}

pub async fn log(
    _caller: Caller,
    State(_state): State<AppState>,
    UrlPath((_id, _phase, _task)): UrlPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    Ok(().into_response())
}
