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
    pub task: Option<String>,
    #[serde(default)]
    pub rollback: bool,
    pub phase: Option<String>,
    pub from_task: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(default)]
    pub components: Vec<String>,
    pub comment: Option<String>,
    /// `restart-phase` only: prepare the new runs but leave the release paused.
    #[serde(default)]
    pub no_resume: bool,
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
    let done = start_release(
        &state,
        &caller,
        body.pipeline,
        body.vars,
        body.comment.as_deref(),
    )
    .await?;
    Ok(accepted(&done))
}

/// Starts a release of `pipeline` (a file in `--pipelines DIR`) as `caller` and drives it in
/// the background: the shared path of the API and the UI's form.
pub async fn start_release(
    state: &AppState,
    caller: &Caller,
    pipeline: String,
    vars: BTreeMap<String, String>,
    comment: Option<&str>,
) -> Result<Accepted, ApiError> {
    caller.require_operator()?;
    let Some(dir) = state.pipelines().map(|d| d.to_path_buf()) else {
        return Err(ApiError::conflict(
            "this server has no pipelines folder: start it with --pipelines DIR",
        ));
    };
    let person = person(caller, comment);
    let run = state.clone();
    let done = tokio::task::spawn_blocking(move || {
        let file = actions::resolve_pipeline(&dir, &pipeline)?;
        let release = actions::prepare_release(run.state_dir(), &file, vars)?;
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
    done.map_err(from_cli)
}

/// The action a path names, with its options from the body.
pub fn action_of(verb: &str, body: ActionBody) -> Result<Action, ApiError> {
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
    let comment = body.comment.clone();
    let action = action_of(&verb, body)?;
    let done = order_action(&state, &caller, id, action, comment.as_deref()).await?;
    Ok(accepted(&done))
}

/// Orders `action` on `release` as `caller` (an operator; the caller checked CSRF): the
/// shared path of the API and the UI's forms. Waits only for the order to be taken.
pub async fn order_action(
    state: &AppState,
    caller: &Caller,
    release: String,
    action: Action,
    comment: Option<&str>,
) -> Result<Accepted, ApiError> {
    caller.require_operator()?;
    let person = person(caller, comment);
    let run = state.clone();
    let done = tokio::task::spawn_blocking(move || {
        actions::order_in_background(run.state_dir(), &release, action, person, run.drivers())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    done.map_err(from_cli)
}
