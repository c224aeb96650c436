//! The forms' POSTs: `/releases/{id}/actions/{action}` and `/start`. Each checks the role and
//! the CSRF field, reads the form as the API's [`ActionBody`] and orders it through the API's
//! own entry ([`order_action`], [`start_release`]). Accepted: back to the release page (303).
//! Refused: the release page again with the reason on it (409, like the API).

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};

use super::layout::Notice;
use super::release::page_path;
use super::routes::{ctx_of, error_page, page_caller, render_release};
use crate::serve::api::{ActionBody, ApiError, action_of, order_action, start_release};
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

/// The form as the API's body: the same options, so the same `action_of` builds the action.
pub fn body_of(fields: &Fields) -> ActionBody {
    let text = |name: &str| field(fields, name).map(str::to_string);
    ActionBody {
        task: text("task"),
        rollback: field(fields, "rollback").is_some_and(|v| v != "false"),
        phase: text("phase"),
        from_task: text("from_task"),
        vars: vars_of(fields),
        components: fields
            .iter()
            .filter(|(k, v)| k == "components" && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect(),
        comment: text("comment"),
        no_resume: field(fields, "no_resume").is_some(),
    }
}

/// Role, then CSRF: a viewer or a forged form is refused before anything is read.
fn check(caller: &Caller, fields: &Fields) -> Result<(), ApiError> {
    caller.require_operator()?;
    caller.check_csrf(field(fields, "csrf"))
}

/// Who posts, then what: the session is judged first (a stranger goes to the login page
/// whatever the body holds), then the form.
async fn poster(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<Fields>, FormRejection>,
) -> Result<(Caller, Fields), Response> {
    let caller = page_caller(state, headers).await?;
    match form {
        Ok(Form(fields)) => Ok((caller, fields)),
        Err(rejection) => Err(error_page(
            &ctx_of(&caller),
            ApiError::bad_request(format!("the form cannot be read: {rejection}")),
        )),
    }
}

/// `POST /releases/{id}/actions/{action}`.
pub async fn act(
    State(state): State<AppState>,
    Path((id, verb)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let (caller, fields) = match poster(&state, &headers, form).await {
        Ok(posted) => posted,
        Err(r) => return r,
    };
    let ordered = async {
        check(&caller, &fields)?;
        let action = action_of(&verb, body_of(&fields))?;
        order_action(
            &state,
            &caller,
            id.clone(),
            action,
            field(&fields, "comment"),
        )
        .await
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
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let (caller, fields) = match poster(&state, &headers, form).await {
        Ok(posted) => posted,
        Err(r) => return r,
    };
    let started = async {
        check(&caller, &fields)?;
        let file = field(&fields, "pipeline")
            .ok_or_else(|| ApiError::bad_request("start: the form has no `pipeline`"))?;
        let comment = field(&fields, "comment");
        start_release(&state, &caller, file.to_string(), vars_of(&fields), comment).await
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
    use crate::actions::Action;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_component_picker_orders_the_ticked_components() {
        let fields = form(&[
            ("task", "deploy-petportal"),
            ("components", "web"),
            ("components", "api"),
        ]);
        let action = action_of("rollback", body_of(&fields)).ok();
        assert_eq!(
            action,
            Some(Action::Rollback {
                task: Some("deploy-petportal".into()),
                components: vec!["web".into(), "api".into()],
            })
        );
    }

    #[test]
    fn restart_phase_changes_only_the_filled_variables() {
        let fields = form(&[
            ("phase", "deploy"),
            ("var.version", "2.3"),
            ("var.token", "***"),
            ("var.x", " "),
        ]);
        let body = body_of(&fields);
        assert_eq!(
            body.vars.into_iter().collect::<Vec<_>>(),
            vec![("version".to_string(), "2.3".to_string())]
        );
        assert!(!body.no_resume);
        assert_eq!(body.from_task, None);
    }

    #[test]
    fn abort_runs_the_rollback_order_only_when_ticked() {
        assert!(body_of(&form(&[("rollback", "true")])).rollback);
        assert!(!body_of(&form(&[])).rollback);
    }
}
