//! What a policy script sees: the `failure` and `vars` object maps.

use std::collections::BTreeMap;

use rhai::{Array, Dynamic, Map, Scope};

use crate::policy::failure::Failure;

/// The names a script may read; declared at compile time too, so that a typo in a variable
/// name is a load-time error (strict variables).
pub(super) const FAILURE: &str = "failure";
pub(super) const VARS: &str = "vars";

/// A scope with empty `failure` and `vars`, for compiling. Not constants: the optimizer
/// would fold the empty maps into the script.
pub(super) fn compile_scope() -> Scope<'static> {
    let mut scope = Scope::new();
    scope.push(FAILURE, Map::new());
    scope.push(VARS, Map::new());
    scope
}

fn optional<T: Into<Dynamic>>(value: Option<T>) -> Dynamic {
    value.map_or(Dynamic::UNIT, Into::into)
}

fn text(value: &str) -> Dynamic {
    Dynamic::from(value.to_string())
}

/// The scope of one evaluation: `failure` (see the README for its fields) and `vars`.
pub(super) fn scope_for(failure: &Failure, retries_left: u32) -> Scope<'static> {
    let mut map = Map::new();
    let mut put = |key: &str, value: Dynamic| {
        map.insert(key.into(), value);
    };
    put("task", text(&failure.task));
    put("phase", text(&failure.phase));
    put("kind", text(&failure.kind));
    put("attempt", Dynamic::from(i64::from(failure.attempt)));
    put("retries_left", Dynamic::from(i64::from(retries_left)));
    put("class", text(failure.class.as_str()));
    put("is_transient", Dynamic::from(failure.class.is_transient()));
    put("message", text(&failure.message));
    put("http_status", optional(failure.http_status.map(i64::from)));
    put("exit_code", optional(failure.exit_code.map(i64::from)));
    put("backend_state", optional(failure.backend_state.clone()));
    put(
        "retry_after_secs",
        optional(
            failure
                .retry_after
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        ),
    );
    put("elapsed", Dynamic::from(failure.elapsed.as_secs_f64()));
    let tail: Array = failure.log_tail.iter().map(|l| text(l)).collect();
    put("log_tail", Dynamic::from(tail));
    let mut scope = Scope::new();
    scope.push_constant(FAILURE, map);
    scope.push_constant(VARS, vars_map(&failure.vars));
    scope
}

fn vars_map(vars: &BTreeMap<String, String>) -> Map {
    vars.iter()
        .map(|(k, v)| (k.as_str().into(), text(v)))
        .collect()
}
