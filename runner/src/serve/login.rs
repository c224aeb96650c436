//! `GET /login` (a form), `POST /login` (token → session cookie) and `POST /logout`.

use axum::Form;
use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::serve::api::ApiError;
use crate::serve::auth::{self, Caller, SESSION_COOKIE};
use crate::serve::secret;
use crate::serve::state::AppState;

/// The login form: one field, the token.
pub async fn form() -> Html<&'static str> {
    Html(include_str!("login.html"))
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// A valid token opens a session (a random id in an HttpOnly, SameSite=Strict cookie).
pub async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    match open_session(&state, form.token.trim().to_string()).await {
        Ok(Some(id)) => {
            let secure = if state.is_tls() { "; Secure" } else { "" };
            let cookie =
                format!("{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}");
            (
                StatusCode::SEE_OTHER,
                [(SET_COOKIE, cookie), (LOCATION, "/".to_string())],
            )
                .into_response()
        }
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            Html(include_str!("login.html").replace(
                "<!--message-->",
                "<p class=\"error\">That token is not valid.</p>",
            )),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn open_session(state: &AppState, token: String) -> Result<Option<String>, ApiError> {
    let id = secret::random_hex(32).map_err(|e| ApiError::internal(e.to_string()))?;
    let csrf = secret::random_hex(32).map_err(|e| ApiError::internal(e.to_string()))?;
    let id_hash = secret::hash(&id);
    state
        .with_store(move |store| {
            let Some(token) = store.token_by_hash(&secret::hash(&token))? else {
                return Ok(None);
            };
            store.create_session(&id_hash, &token.name, &csrf)?;
            Ok(Some(id))
        })
        .await
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
}

/// Ends the session (CSRF-checked like every form) and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let caller = match auth::caller_of(&state, &headers).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return ApiError::unauthorized().into_response(),
        Err(e) => return e.into_response(),
    };
    if let Err(e) = end_session(&state, &caller, form.csrf.as_deref()).await {
        return e.into_response();
    }
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [(SET_COOKIE, cookie), (LOCATION, "/login".to_string())],
    )
        .into_response()
}

async fn end_session(
    state: &AppState,
    caller: &Caller,
    csrf: Option<&str>,
) -> Result<(), ApiError> {
    caller.check_csrf(csrf)?;
    if let Some(session) = caller.session.clone() {
        state
            .with_store(move |store| Ok(store.delete_session(&session.id_hash)?))
            .await?;
    }
    Ok(())
}
