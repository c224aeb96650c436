//! The web UI's pages (placeholder: the pages are built on branch serve-ui).

use crate::serve::state::AppState;

/// The UI's routes, merged into the server beside `/api/v1` and `/login`.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
}
