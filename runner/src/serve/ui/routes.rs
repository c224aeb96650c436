//! The UI's handlers: find the caller (a stranger goes to `/login`), read the store, render
//! a page or a fragment. No logic of their own beyond that: actions go through
//! [`super::act`], the same action layer the API uses.

use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::layout::{Notice, PageCtx};
use super::{assets, list, release, start};
use crate::output::view::ReleaseView;
use crate::serve::api::ApiError;
use crate::serve::auth::{self, Caller, Role};
use crate::serve::state::AppState;

/// What a UI page needs from its request: the caller, or where to send a stranger.
pub async fn page_caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, Response> {
    match auth::caller_of(state, headers).await {
        Ok(Some(caller)) => Ok(caller),
        Ok(None) => Err((StatusCode::SEE_OTHER, [(LOCATION, "/login")]).into_response()),
        Err(e) => Err(e.into_response()),
    }
}

/// A fragment's caller: the page's script gets a 401, not a redirect to a login page.
async fn fragment_caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, Response> {
    match auth::caller_of(state, headers).await {
        Ok(Some(caller)) => Ok(caller),
        Ok(None) => Err(ApiError::unauthorized().into_response()),
        Err(e) => Err(e.into_response()),
    }
}

pub fn ctx_of(caller: &Caller) -> PageCtx {
    PageCtx {
        user: caller.name.clone(),
        can_act: caller.role == Role::Operator,
        csrf: caller
            .session
            .as_ref()
            .map(auth::csrf_token)
            .unwrap_or_default(),
    }
}

/// An HTML response that no cache keeps (pages follow a changing release).
pub fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (
        status,
        [(CACHE_CONTROL, "no-store")],
        Html(markup.into_string()),
    )
        .into_response()
}

/// `GET /`: the release list.
pub async fn list_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let caller = match page_caller(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ctx = ctx_of(&caller);
    let releases = match releases_newest_first(&state).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let pipelines = start::pipeline_choices(&state).await;
    html(
        StatusCode::OK,
        list::page(&releases, &pipelines, &ctx, None),
    )
}

/// `GET /fragments/releases`: the list's rows.
pub async fn list_fragment(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = fragment_caller(&state, &headers).await {
        return r;
    }
    let releases = match releases_newest_first(&state).await {
        Ok(releases) => releases,
        Err(e) => return e.into_response(),
    };
    // The list polls every second: rows it already has cost a 304, not the whole table again
    // (295 KB with 1,000 releases).
    let rows = list::rows(&releases).into_string();
    let etag = format!("\"{}\"", &crate::serve::secret::hash(&rows)[..32]);
    let known = headers
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str());
    if known {
        return (StatusCode::NOT_MODIFIED, [(axum::http::header::ETAG, etag)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (CACHE_CONTROL, "no-cache".to_string()),
            (axum::http::header::ETAG, etag),
        ],
        Html(rows),
    )
        .into_response()
}

async fn releases_newest_first(
    state: &AppState,
) -> Result<Vec<crate::store::ReleaseRecord>, ApiError> {
    state
        .reading(|store| {
            let mut releases = store.releases()?;
            releases.reverse();
            Ok(releases)
        })
        .await
}

/// `GET /releases/{id}`: the release page.
pub async fn release_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = match page_caller(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    render_release(&state, &caller, &id, StatusCode::OK, None).await
}

/// The release page with `notice` above it (an action's refusal), answered with `status`.
pub async fn render_release(
    state: &AppState,
    caller: &Caller,
    id: &str,
    status: StatusCode,
    notice: Option<Notice>,
) -> Response {
    let ctx = ctx_of(caller);
    match load_view(state, id).await {
        Ok(view) => html(status, release::page(&view, &ctx, notice.as_ref())),
        Err(e) => error_page(&ctx, e),
    }
}

/// `GET /releases/{id}/fragment`: the release body the page swaps in.
pub async fn release_fragment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = match fragment_caller(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match load_view(&state, &id).await {
        Ok(view) => html(StatusCode::OK, release::body(&view, &ctx_of(&caller))),
        Err(e) => e.into_response(),
    }
}

async fn load_view(state: &AppState, id: &str) -> Result<ReleaseView, ApiError> {
    let id = id.to_string();
    state
        .reading(move |store| Ok(ReleaseView::load(store, &id)?))
        .await
}

/// A refusal as a page (unknown release: 404 with the message).
pub fn error_page(ctx: &PageCtx, e: ApiError) -> Response {
    let notice = Notice {
        is_error: true,
        text: e.message.clone(),
    };
    let content = maud::html! { p { a href="/" { "All releases" } } };
    html(
        e.status,
        super::layout::page("Error", ctx, Some(&notice), content),
    )
}

#[derive(Deserialize)]
pub struct StartQuery {
    /// Optional to the extractor so that a caller without a session is sent to the login
    /// page before anything about the request is judged.
    pipeline: Option<String>,
}

/// `GET /start?pipeline=FILE`: the start form with the pipeline's variables.
pub async fn start_page(
    State(state): State<AppState>,
    Query(query): Query<StartQuery>,
    headers: HeaderMap,
) -> Response {
    let caller = match page_caller(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ctx = ctx_of(&caller);
    if let Err(e) = caller.require_operator() {
        return error_page(&ctx, e);
    }
    let Some(pipeline) = query.pipeline else {
        return error_page(
            &ctx,
            ApiError::bad_request("start: no `pipeline` was chosen"),
        );
    };
    match start::pipeline_variables(&state, &pipeline).await {
        Ok((name, vars)) => html(
            StatusCode::OK,
            start::page(&pipeline, &name, &vars, &ctx, None),
        ),
        Err(e) => error_page(&ctx, e),
    }
}

/// `GET /ui/style.css` and `GET /ui/live.js`: compiled in, cacheable for an hour.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", assets::STYLE)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", assets::SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
