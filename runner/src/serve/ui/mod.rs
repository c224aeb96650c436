//! The web UI of `relflow serve`: server-rendered pages (maud: compile-time HTML, escaped by
//! default) over the same read model as `relflow status`, one stylesheet and one small plain
//! script compiled into the binary, forms that call the same action layer as the API.

pub mod act;
pub mod assets;
pub mod forms;
pub mod layout;
pub mod list;
pub mod release;
pub mod routes;
pub mod start;

use axum::Router;
use axum::routing::{get, post};

use crate::serve::state::AppState;

/// The UI's routes, merged into the server beside `/api/v1` and `/login`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(routes::list_page))
        .route(list::FRAGMENT_PATH, get(routes::list_fragment))
        .route("/releases/{id}", get(routes::release_page))
        .route("/releases/{id}/fragment", get(routes::release_fragment))
        .route("/releases/{id}/actions/{action}", post(act::act))
        .route(start::PATH, get(routes::start_page).post(act::start))
        .route(assets::STYLE_PATH, get(routes::style))
        .route(assets::SCRIPT_PATH, get(routes::script))
}
