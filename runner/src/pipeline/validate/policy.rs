//! Validation of `on_failure:` into the policy model.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::checks::suggestion;
use super::{Checker, Pos};
use crate::pipeline::diagnostic::Diagnostic;
use crate::pipeline::raw::{RawAction, RawFixForward, RawOnFailure, RawRetry, Scalar, Text};
use crate::pipeline::template::Template;
use crate::policy::script::{MAX_SCRIPT_BYTES, ScriptPolicy};
use crate::policy::{
    Action, ActionCommand, Backoff, Declarative, ErrorClass, FixForward, OnFailure, RetryPolicy,
    Then, Trigger,
};

/// Where an `on_failure` stands; `trigger: any_task` is only for a task's own policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::pipeline) enum Level {
    Release,
    Phase,
    Task,
}

const THENS: [&str; 7] = [
    "pause",
    "rollback",
    "rollback_release",
    "skip",
    "ignore",
    "cancel",
    "fix_forward",
];
const MAX_DELAY: Duration = Duration::from_secs(86_400);

fn then_from(text: &str) -> Option<Then> {
    Some(match text {
        "pause" => Then::Pause,
        "rollback" => Then::Rollback,
        "rollback_release" => Then::RollbackRelease,
        "skip" => Then::Skip,
        "ignore" => Then::Ignore,
        "cancel" => Then::Cancel,
        "fix_forward" => Then::FixForward,
        _ => return None,
    })
}

impl RawOnFailure {
    fn declarative_keys(&self) -> Vec<&'static str> {
        [
            ("retry", self.retry.is_some()),
            ("then", self.then.is_some()),
            ("fix_forward", self.fix_forward.is_some()),
            ("actions", self.actions.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, present)| present.then_some(key))
        .collect()
    }
}

impl Checker<'_> {
    /// An `on_failure:` block; `Some(None)` never comes back from here, the caller wraps it.
    pub(in crate::pipeline) fn on_failure(
        &mut self,
        raw: &Spanned<RawOnFailure>,
        path: &str,
        level: Level,
    ) -> Option<Option<OnFailure>> {
        let policy = &raw.value;
        if let Some(script) = &policy.script {
            let others = policy.declarative_keys();
            if !others.is_empty() {
                self.error(
                    script.referenced,
                    format!(
                        "{path}.script: a policy script decides alone: remove {} or the script",
                        others.join(", ")
                    ),
                );
                return None;
            }
            if !script.value.0.ends_with(".rhai") {
                self.error(
                    script.referenced,
                    format!("{path}.script: a policy script is a `.rhai` file"),
                );
                return None;
            }
            return self
                .policy_script(&script.value.0, script.referenced, path)
                .map(|s| Some(OnFailure::Script(s)));
        }
        let retry = match &policy.retry {
            Some(retry) => self.retry(retry, &format!("{path}.retry")),
            None => Some(RetryPolicy::default()),
        };
        let then = match &policy.then {
            Some(then) => self.then(then, &format!("{path}.then"), false),
            None => Some(Then::Pause),
        };
        let fix_forward = self.fix_forward_block(raw, then, path);
        let actions: Vec<Option<Action>> = policy
            .actions
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, action)| self.action(action, &format!("{path}.actions[{i}]"), level))
            .collect();
        let actions: Option<Vec<Action>> = actions.into_iter().collect();
        Some(Some(OnFailure::Declarative(Declarative {
            retry: retry?,
            then: then?,
            fix_forward: fix_forward?,
            actions: actions?,
        })))
    }

    /// Reads and compiles a policy script once; a syntax error points into the script.
    fn policy_script(
        &mut self,
        name: &str,
        at: serde_saphyr::Location,
        path: &str,
    ) -> Option<ScriptPolicy> {
        let absolute = self.resolve(name);
        let source = match read_script(&absolute) {
            Ok(source) => source,
            Err(why) => {
                self.error(at, format!("{path}.script: cannot read `{name}`: {why}"));
                return None;
            }
        };
        match ScriptPolicy::compile(&absolute, name, &source) {
            Ok(script) => Some(script),
            Err(err) => {
                // Shown as the pipeline names it, so the location reads like the YAML's.
                let shown = match self.file.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
                    _ => name.into(),
                };
                self.diags.push(Diagnostic {
                    field: Some(format!("{path}.script")),
                    ..Diagnostic::at(
                        shown,
                        err.line,
                        err.column,
                        format!("policy script {name}: {err}"),
                    )
                });
                None
            }
        }
    }

    fn then(&mut self, raw: &Spanned<Text>, path: &str, is_fallback: bool) -> Option<Then> {
        let text = raw.value.0.as_str();
        let Some(then) = then_from(text) else {
            self.error_with_help(
                raw.referenced,
                format!("{path}: unknown action `{text}`"),
                suggestion(text, &THENS),
            );
            return None;
        };
        if is_fallback && then == Then::FixForward {
            self.error(
                raw.referenced,
                format!("{path}: the fallback of `fix_forward` cannot be `fix_forward`"),
            );
            return None;
        }
        if then == Then::RollbackRelease && !self.has_flow_rollback {
            self.error(
                raw.referenced,
                format!(
                    "{path}: `rollback_release` needs a top-level `rollback:` block saying how \
                     the release is rolled back"
                ),
            );
            return None;
        }
        Some(then)
    }

    fn fix_forward_block(
        &mut self,
        raw: &Spanned<RawOnFailure>,
        then: Option<Then>,
        path: &str,
    ) -> Option<Option<FixForward>> {
        match (&raw.value.fix_forward, then) {
            (Some(block), Some(Then::FixForward)) => self
                .fix_forward(block, &format!("{path}.fix_forward"))
                .map(Some),
            (Some(block), Some(_)) => {
                self.error(
                    block.referenced,
                    format!("{path}.fix_forward: only used with `then: fix_forward`"),
                );
                None
            }
            (None, Some(Then::FixForward)) => {
                let at = raw
                    .value
                    .then
                    .as_ref()
                    .map_or(raw.referenced, |t| t.referenced);
                self.error(
                    at,
                    format!(
                        "{path}.then: `fix_forward` needs a `fix_forward:` block with a `resolve` \
                         command"
                    ),
                );
                None
            }
            (_, None) => None,
            (None, Some(_)) => Some(None),
        }
    }

    fn fix_forward(&mut self, raw: &Spanned<RawFixForward>, path: &str) -> Option<FixForward> {
        let block = &raw.value;
        let resolve = match &block.resolve {
            Some(resolve) => {
                self.check_program(&resolve.value, &format!("{path}.resolve"), None);
                self.argv(resolve, &format!("{path}.resolve"))
            }
            None => {
                self.error(
                    raw.referenced,
                    format!("{path}: `resolve` is required: the command that prints new values"),
                );
                None
            }
        };
        let max = match &block.max {
            Some(max) => self.count(max, &format!("{path}.max"), 1, 10),
            None => Some(1),
        };
        let fallback = match &block.fallback {
            Some(fallback) => self.then(fallback, &format!("{path}.fallback"), true),
            None => Some(Then::Pause),
        };
        Some(FixForward {
            resolve: resolve?,
            max: max?,
            fallback: fallback?,
        })
    }

    fn retry(&mut self, raw: &Spanned<RawRetry>, path: &str) -> Option<RetryPolicy> {
        let retry = &raw.value;
        let defaults = RetryPolicy::default();
        let retries = match &retry.retries {
            Some(n) => self.count(n, &format!("{path}.retries"), 0, 100),
            None => Some(defaults.retries),
        };
        let when = match &retry.when {
            Some(classes) => self.classes(classes, &format!("{path}.when")),
            None => Some(defaults.when),
        };
        let delay = match &retry.delay {
            Some(d) => self.duration(d, &format!("{path}.delay"), Duration::ZERO, MAX_DELAY),
            None => Some(defaults.delay),
        };
        let max_delay = match &retry.max_delay {
            Some(d) => self.duration(d, &format!("{path}.max_delay"), Duration::ZERO, MAX_DELAY),
            None => delay.map(|delay| delay.max(defaults.max_delay)),
        };
        if let (Some(d), Some(max), Some(raw_max)) = (delay, max_delay, &retry.max_delay)
            && max < d
        {
            self.error(
                raw_max.referenced,
                format!(
                    "{path}.max_delay: `{}` is shorter than `delay`",
                    raw_max.value.0
                ),
            );
            return None;
        }
        let backoff = match &retry.backoff {
            Some(b) => self.backoff(b, &format!("{path}.backoff")),
            None => Some(defaults.backoff),
        };
        Some(RetryPolicy {
            retries: retries?,
            when: when?,
            delay: delay?,
            backoff: backoff?,
            max_delay: max_delay?,
            jitter: retry.jitter.as_ref().map_or(defaults.jitter, |j| j.value),
        })
    }

    fn backoff(&mut self, raw: &Spanned<Text>, path: &str) -> Option<Backoff> {
        match raw.value.0.as_str() {
            "fixed" => Some(Backoff::Fixed),
            "linear" => Some(Backoff::Linear),
            "exponential" => Some(Backoff::Exponential),
            other => {
                self.error_with_help(
                    raw.referenced,
                    format!("{path}: unknown backoff `{other}`"),
                    suggestion(other, &["fixed", "linear", "exponential"]),
                );
                None
            }
        }
    }

    fn classes(&mut self, raw: &[Spanned<Text>], path: &str) -> Option<Vec<ErrorClass>> {
        let mut out: Vec<ErrorClass> = Vec::new();
        let mut ok = true;
        for class in raw {
            let text = class.value.0.as_str();
            let expanded: Vec<ErrorClass> = if text == "transient" {
                ErrorClass::TRANSIENT.to_vec()
            } else if let Ok(one) = text.parse::<ErrorClass>() {
                vec![one]
            } else {
                let names: Vec<&str> = std::iter::once("transient")
                    .chain(ErrorClass::ALL.iter().map(|c| c.as_str()))
                    .collect();
                self.error_with_help(
                    class.referenced,
                    format!("{path}: unknown error class `{text}`"),
                    suggestion(text, &names),
                );
                ok = false;
                continue;
            };
            for class in expanded {
                if !out.contains(&class) {
                    out.push(class);
                }
            }
        }
        ok.then_some(out)
    }

    /// Exactly one of `run`, `script`, `revert_compose`, `restart_previous_container`.
    fn action_command(&mut self, raw: &Spanned<RawAction>, path: &str) -> Option<ActionCommand> {
        let action = &raw.value;
        let given: Vec<(&str, Pos)> = [
            ("run", action.run.as_ref().map(|v| Pos::from(v.referenced))),
            (
                "script",
                action.script.as_ref().map(|v| Pos::from(v.referenced)),
            ),
            (
                "revert_compose",
                action
                    .revert_compose
                    .as_ref()
                    .map(|v| Pos::from(v.referenced)),
            ),
            (
                "restart_previous_container",
                action
                    .restart_previous_container
                    .as_ref()
                    .map(|v| Pos::from(v.referenced)),
            ),
        ]
        .into_iter()
        .filter_map(|(key, at)| at.map(|at| (key, at)))
        .collect();
        match given.as_slice() {
            [] => {
                self.error(
                    raw.referenced,
                    format!(
                        "{path}: an action needs one of `run`, `script`, `revert_compose`, `restart_previous_container`"
                    ),
                );
                return None;
            }
            [_] => {}
            [(first, _), (second, at), ..] => {
                self.error(
                    *at,
                    format!("{path}: `{first}` and `{second}` exclude each other: keep one"),
                );
                return None;
            }
        }
        if let Some(run) = &action.run {
            self.check_program(&run.value, &format!("{path}.run"), None);
            return self
                .argv(run, &format!("{path}.run"))
                .map(ActionCommand::Run);
        }
        if let Some(script) = &action.script {
            self.check_script_file(script, &format!("{path}.script"));
            return self.template(script).map(ActionCommand::Script);
        }
        if let Some(revert) = &action.revert_compose {
            let file = self.required_template(
                revert,
                revert.value.file.as_ref(),
                path,
                "revert_compose.file",
            );
            let previous = self.required_template(
                revert,
                revert.value.previous.as_ref(),
                path,
                "revert_compose.previous",
            );
            return Some(ActionCommand::RevertCompose {
                file: file?,
                previous: previous?,
            });
        }
        let restart = action.restart_previous_container.as_ref()?;
        let container = self.required_template(
            restart,
            restart.value.container.as_ref(),
            path,
            "restart_previous_container.container",
        );
        let image = self.required_template(
            restart,
            restart.value.image.as_ref(),
            path,
            "restart_previous_container.image",
        );
        let run_args = match &restart.value.run_args {
            Some(args) => self.templates(&args.value),
            None => Some(Vec::new()),
        };
        Some(ActionCommand::RestartPreviousContainer {
            container: container?,
            image: image?,
            run_args: run_args?,
        })
    }

    /// A required template field of `parent`, or an error at the parent naming it.
    fn required_template<T>(
        &mut self,
        parent: &Spanned<T>,
        value: Option<&Spanned<Scalar>>,
        path: &str,
        key: &str,
    ) -> Option<Template> {
        match value {
            Some(value) => self.template(value),
            None => {
                self.error(parent.referenced, format!("{path}.{key} is required"));
                None
            }
        }
    }

    fn action(&mut self, raw: &Spanned<RawAction>, path: &str, level: Level) -> Option<Action> {
        let action = &raw.value;
        let command = self.action_command(raw, path);
        let trigger = match &action.trigger {
            None => Some(Trigger::ThisTask),
            Some(t) => match t.value.0.as_str() {
                "this_task" => Some(Trigger::ThisTask),
                "any_task" if level == Level::Task => Some(Trigger::AnyTask),
                "any_task" => {
                    let place = if level == Level::Phase {
                        "a phase"
                    } else {
                        "the release"
                    };
                    self.error(
                        t.referenced,
                        format!(
                            "{path}.trigger: `any_task` is only allowed in a task's own \
                             `on_failure`, and this policy is {place}'s"
                        ),
                    );
                    None
                }
                other => {
                    self.error(
                        t.referenced,
                        format!("{path}.trigger: unknown trigger `{other}`: expected this_task or any_task"),
                    );
                    None
                }
            },
        };
        Some(Action {
            command: command?,
            trigger: trigger?,
        })
    }
}

/// A policy script's text, bounded by [`MAX_SCRIPT_BYTES`].
fn read_script(path: &std::path::Path) -> Result<String, String> {
    use std::io::{ErrorKind, Read};
    // A FIFO or device would hang the read: refused at once.
    let file = crate::pipeline::load::open_regular_file(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_SCRIPT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| match e.kind() {
            ErrorKind::IsADirectory => "it is a directory".to_string(),
            _ => e.to_string(),
        })?;
    if bytes.len() > MAX_SCRIPT_BYTES {
        return Err(format!(
            "the script is larger than the limit of {MAX_SCRIPT_BYTES} bytes"
        ));
    }
    String::from_utf8(bytes).map_err(|_| "the script is not UTF-8 text".to_string())
}
