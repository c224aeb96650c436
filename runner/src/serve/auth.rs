//! Who calls: a Bearer token or the session cookie the login page sets, and the role that
//! token has. Viewers read; operators act. Forms posted with the cookie carry the session's
//! CSRF token; JSON posted with the cookie carries it in `X-Relflow-CSRF`.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::serve::api::ApiError;
use crate::serve::secret;
use crate::serve::state::AppState;
pub use crate::store::tokens::Role;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "relflow_session";
/// The header a cookie-authenticated API write carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-relflow-csrf";

/// A browser session behind a request.
#[derive(Debug, Clone)]
pub struct Session {
    /// SHA-256 of the session id (the store's key).
    pub id_hash: String,
    /// The token every form POST of this session must carry as its `csrf` field.
    pub csrf: String,
}

/// The authenticated caller: the token's name (recorded as the actor of what it orders).
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// Set when the caller came with the session cookie (not a Bearer token).
    pub session: Option<Session>,
}

impl Caller {
    /// Actions need an operator.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Operator => Ok(()),
            Role::Viewer => Err(ApiError::forbidden(format!(
                "token `{}` is a viewer: actions need an operator token",
                self.name
            ))),
        }
    }

    /// A form POST made with the session cookie must carry the session's CSRF token; a Bearer
    /// caller is not a browser and needs none.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), ApiError> {
        match &self.session {
            None => Ok(()),
            Some(session) if sent.is_some_and(|s| secret::same(s, &session.csrf)) => Ok(()),
            Some(_) => Err(ApiError::forbidden(
                "the form's CSRF token is missing or wrong: reload the page and try again",
            )),
        }
    }

    /// For API writes: the CSRF token from the `X-Relflow-CSRF` header.
    pub fn check_csrf_header(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        self.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))
    }
}

/// The CSRF token to put in a session's forms (`<input type=hidden name=csrf value=...>`).
pub fn csrf_token(session: &Session) -> String {
    session.csrf.clone()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Finds the caller of a request, or `None` when it carries no valid token or session.
pub async fn caller_of(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| secret::hash(t.trim()));
    let session = cookie(headers, SESSION_COOKIE).map(secret::hash);
    state
        .with_store(move |store| {
            if let Some(hash) = bearer {
                return Ok(store.token_by_hash(&hash)?.map(|t| Caller {
                    name: t.name,
                    role: t.role,
                    session: None,
                }));
            }
            let Some(id_hash) = session else {
                return Ok(None);
            };
            Ok(store.session(&id_hash)?.map(|s| Caller {
                name: s.token.name,
                role: s.token.role,
                session: Some(Session {
                    id_hash: s.id_hash,
                    csrf: s.csrf,
                }),
            }))
        })
        .await
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        caller_of(state, &parts.headers)
            .await?
            .ok_or_else(ApiError::unauthorized)
    }
}
