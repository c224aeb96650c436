//! The forms' POSTs: `/releases/{id}/actions/{action}` and `/start`. Each checks the role and
//! the CSRF field, turns the form into the same [`Action`] the API and the CLI build, and
//! orders it through the shared action layer. Accepted: back to the release page (303).
//! Refused: the release page again with the reason on it (409, like the API).

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};

use super::layout::Notice;
use super::release::page_path;
use super::routes::{ctx_of, error_page, page_caller, render_release};
use crate::actions::{Action, order_in_background, prepare_release, resolve_pipeline};
use crate::cli::CliError;
use crate::engine::person::Person;
use crate::serve::api::ApiError;
use crate::serve::auth::Caller;
use crate::serve::state::AppState;

/// A form's fields in order (`components` repeats, one per ticked checkbox).
type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// `var.NAME` fields with a value; an empty field (or a masked secret) changes nothing.
fn vars_of(fields: &Fields) -> BTreeMap<String, String> {
    fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("var.")?.to_string(), v.trim().to_string())))
        .filter(|(_, v)| !v.is_empty() && v != "***")
        .collect()
}

fn required(fields: &Fields, name: &str, action: &str) -> Result<String, ApiError> {
    field(fields, name)
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request(format!("{action}: the form has no `{name}`")))
}

/// The action a form asks for, with the options the CLI verb takes.
pub fn action_of(verb: &str, fields: &Fields) -> Result<Action, ApiError> {
    let task = field(fields, "task").map(str::to_string);
    Ok(match verb {
        "retry" => Action::Retry { task },
        "skip" => Action::Skip {
            task: required(fields, "task", verb)?,
        },
        "abort" => Action::Abort {
            rollback: field(fields, "rollback").is_some_and(|v| v != "false"),
        },
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        "restart-phase" => Action::RestartPhase {
            phase: required(fields, "phase", verb)?,
            from_task: field(fields, "from_task").map(str::to_string),
            vars: vars_of(fields),
            resume: field(fields, "no_resume").is_none(),
        },
        "approve" => Action::Approve {
            task: required(fields, "task", verb)?,
        },
        "reject" => Action::Reject {
            task: required(fields, "task", verb)?,
        },
        "rollback" => Action::Rollback {
            task,
            components: fields
                .iter()
                .filter(|(k, v)| k == "components" && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_string())
                .collect(),
        },
        other => return Err(ApiError::not_found(format!("no action `{other}`"))),
    })
}

/// A refused order as the API answers it (the state refuses → 409), same message.
fn refusal(e: CliError) -> ApiError {
    crate::serve::api::from_cli(e)
}

/// Role, then CSRF: a viewer or a forged form is refused before anything is read.
fn check(caller: &Caller, fields: &Fields) -> Result<(), ApiError> {
    caller.require_operator()?;
    caller.check_csrf(field(fields, "csrf"))
}

/// `POST /releases/{id}/actions/{action}`.
pub async fn act(
    State(state): State<AppState>,
    Path((id, verb)): Path<(String, String)>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let caller = match page_caller(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ordered = async {
        check(&caller, &fields)?;
        let action = action_of(&verb, &fields)?;
        let person = Person {
            actor: caller.name.clone(),
            comment: field(&fields, "comment").map(str::to_string),
        };
        let (dir, release) = (state.state_dir().to_path_buf(), id.clone());
        let drivers = state.drivers().clone();
        tokio::task::spawn_blocking(move || {
            order_in_background(&dir, &release, action, person, &drivers).map_err(refusal)
        })
        .await
        .map_err(|e| ApiError::internal(format!("a worker failed: {e}")))?
    }
    .await;
    match ordered {
        Ok(_) => (StatusCode::SEE_OTHER, [(LOCATION, page_path(&id))]).into_response(),
        Err(e) => {
            let notice = Notice {
                is_error: true,
                text: format!("{verb} refused: {}", e.message),
            };
            render_release(&state, &caller, &id, e.status, Some(notice)).await
        }
    }
}

/// `POST /start`: plan a release of the chosen pipeline and drive it; on to its page.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let caller = match page_caller(&state, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let started = async {
        check(&caller, &fields)?;
        let file = required(&fields, "pipeline", "start")?;
        let dir = state
            .pipelines()
            .ok_or_else(|| ApiError::not_found("this server was started without --pipelines DIR"))?
            .to_path_buf();
        let (state_dir, drivers) = (state.state_dir().to_path_buf(), state.drivers().clone());
        let vars = vars_of(&fields);
        let person = Person {
            actor: caller.name.clone(),
            comment: field(&fields, "comment").map(str::to_string),
        };
        tokio::task::spawn_blocking(move || {
            let path = resolve_pipeline(&dir, &file).map_err(refusal)?;
            let id = prepare_release(&state_dir, &path, vars).map_err(refusal)?;
            order_in_background(&state_dir, &id, Action::Run, person, &drivers).map_err(refusal)
        })
        .await
        .map_err(|e| ApiError::internal(format!("a worker failed: {e}")))?
    }
    .await;
    match started {
        Ok(accepted) => (
            StatusCode::SEE_OTHER,
            [(LOCATION, page_path(&accepted.release))],
        )
            .into_response(),
        Err(e) => error_page(&ctx_of(&caller), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_component_picker_orders_the_ticked_components() {
        let action = action_of(
            "rollback",
            &form(&[
                ("task", "deploy-petportal"),
                ("components", "web"),
                ("components", "api"),
            ]),
        );
        assert_eq!(
            action.ok(),
            Some(Action::Rollback {
                task: Some("deploy-petportal".into()),
                components: vec!["web".into(), "api".into()],
            })
        );
    }

    #[test]
    fn restart_phase_changes_only_the_filled_variables() {
        let action = action_of(
            "restart-phase",
            &form(&[
                ("phase", "deploy"),
                ("var.version", "2.3"),
                ("var.token", "***"),
                ("var.x", " "),
            ]),
        );
        let Ok(Action::RestartPhase {
            vars,
            resume,
            from_task,
            ..
        }) = action
        else {
            panic!("not a restart: {action:?}");
        };
        assert_eq!(
            vars.into_iter().collect::<Vec<_>>(),
            vec![("version".into(), "2.3".into())]
        );
        assert!(resume);
        assert_eq!(from_task, None);
    }

    #[test]
    fn an_unknown_action_is_not_found() {
        let e = action_of("explode", &form(&[])).err();
        assert_eq!(e.map(|e| e.status), Some(StatusCode::NOT_FOUND));
    }
}
