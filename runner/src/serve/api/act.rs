//! The acting routes: `POST /releases` (start one from `--pipelines DIR`) and `POST
//! /releases/{id}/{action}`. Operators only; the token's name is the actor.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::actions::{self, Accepted, Action};
use crate::cli::CliError;
use crate::engine::person::Person;
use crate::exit_code;
use crate::output::json;
use crate::serve::api::ApiError;
use crate::serve::auth::Caller;
use crate::serve::state::AppState;

/// `POST /releases` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// A file name inside `--pipelines DIR`.
    pipeline: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    comment: Option<String>,
}

/// `POST /releases/{id}/{action}` body: the CLI's options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    task: Option<String>,
    #[serde(default)]
    rollback: bool,
    phase: Option<String>,
    from_task: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    components: Vec<String>,
    comment: Option<String>,
    /// `restart-phase` only: prepare the new runs but leave the release paused.
    #[serde(default)]
    no_resume: bool,
}

type Accept = (StatusCode, Json<Value>);

fn accepted(accepted: &Accepted) -> Accept {
    (StatusCode::ACCEPTED, Json(json::document(accepted)))
}

/// A refusal from the action layer, with the CLI's words (less its `error: `).
pub fn from_cli(e: CliError) -> ApiError {
    let message = e
        .message
        .strip_prefix("error: ")
        .unwrap_or(&e.message)
        .to_string();
    if message.starts_with("no release `") {
        return ApiError::not_found(message);
    }
    match e.code {
        _ if e.refused => ApiError::conflict(message),
        exit_code::INVALID_INPUT if message.starts_with("release ") => ApiError::conflict(message),
        exit_code::INVALID_INPUT => ApiError::bad_request(message),
        _ if message.contains("is held by") || message.contains("is being driven") => {
            ApiError::conflict(message)
        }
        _ => ApiError::internal(message),
    }
}

fn body<T: Default>(
    body: Result<Json<T>, JsonRejection>,
    headers: &HeaderMap,
) -> Result<T, ApiError> {
    // An empty body is `{}`: `pause`, `resume` and `abort` need no options.
    let empty = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .is_some_and(|v| v == "0");
    match body {
        Ok(Json(body)) => Ok(body),
        Err(JsonRejection::MissingJsonContentType(_)) if empty => Ok(T::default()),
        Err(e) => Err(e.into()),
    }
}

fn person(caller: &Caller, comment: Option<&str>) -> Person {
    Person::new(Some(&caller.name), comment)
}

/// `POST /releases` `{pipeline, vars}`: plans a release of a file in `--pipelines DIR` and
/// drives it in the background.
pub async fn start(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<StartBody>, JsonRejection>,
) -> Result<Accept, ApiError> {
    caller.require_operator()?;
    caller.check_csrf_header(&headers)?;
    let Json(body) = body?;
    let Some(dir) = state.pipelines().map(|d| d.to_path_buf()) else {
        return Err(ApiError::conflict(
            "this server has no pipelines folder: start it with --pipelines DIR",
        ));
    };
    let person = person(&caller, body.comment.as_deref());
    let run = state.clone();
    let done = tokio::task::spawn_blocking(move || {
        let file = actions::resolve_pipeline(&dir, &body.pipeline)?;
        let release = actions::prepare_release(run.state_dir(), &file, body.vars)?;
        actions::order_in_background(
            run.state_dir(),
            &release,
            Action::Run,
            person,
            run.drivers(),
        )
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(accepted(&done.map_err(from_cli)?))
}

/// The action a path names, with its options from the body.
fn action_of(verb: &str, body: ActionBody) -> Result<Action, ApiError> {
    let need_task = |task: Option<String>| {
        task.ok_or_else(|| ApiError::bad_request(format!("`{verb}` needs `task`")))
    };
    Ok(match verb {
        "retry" => Action::Retry { task: body.task },
        "skip" => Action::Skip {
            task: need_task(body.task)?,
        },
        "abort" => Action::Abort {
            rollback: body.rollback,
        },
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        "restart-phase" => Action::RestartPhase {
            phase: body
                .phase
                .ok_or_else(|| ApiError::bad_request("`restart-phase` needs `phase`"))?,
            from_task: body.from_task,
            vars: body.vars,
            resume: !body.no_resume,
        },
        "approve" => Action::Approve {
            task: need_task(body.task)?,
        },
        "reject" => Action::Reject {
            task: need_task(body.task)?,
        },
        "rollback" => Action::Rollback {
            task: body.task,
            components: body.components,
        },
        other => return Err(ApiError::not_found(format!("no action `{other}`"))),
    })
}

/// `POST /releases/{id}/{action}` → 202 `{action, release}`, or the refusal.
pub async fn act(
    caller: Caller,
    State(state): State<AppState>,
    UrlPath((id, verb)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<ActionBody>, JsonRejection>,
) -> Result<Accept, ApiError> {
    caller.require_operator()?;
    caller.check_csrf_header(&headers)?;
    let body = self::body(body, &headers)?;
    let person = person(&caller, body.comment.as_deref());
    let action = action_of(&verb, body)?;
    let run = state.clone();
    let done = tokio::task::spawn_blocking(move || {
        actions::order_in_background(run.state_dir(), &id, action, person, run.drivers())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(accepted(&done.map_err(from_cli)?))
}
