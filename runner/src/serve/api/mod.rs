//! The JSON API under `/api/v1`: handlers parse, call the library, render.

mod act;
mod error;
mod read;
mod stream;

use axum::Router;
use axum::routing::{get, post};

use crate::serve::state::AppState;
pub use act::{ActionBody, action_of, from_cli, order_action, start_release};
pub use error::ApiError;

/// Bodies larger than this are refused (413): every request body is a small JSON object.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The routes of `/api/v1` (mounted by the caller).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/releases", get(read::releases).post(act::start))
        .route("/releases/{id}", get(read::release))
        .route("/releases/{id}/events", get(stream::events))
        .route("/releases/{id}/logs/{phase_run}/{task}", get(stream::log))
        .route("/releases/{id}/{action}", post(act::act))
        .route("/targets", get(read::targets))
        .route("/pipelines", get(read::pipelines))
        .fallback(unknown_route)
}

/// Any other path under `/api`: a JSON 404.
pub async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no API route {}", uri.path()))
}
