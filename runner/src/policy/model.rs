//! Validated failure policy (`on_failure:`), as the decision function reads it.

use std::time::Duration;

use relflow_plugin::ErrorClass;

use super::script::ScriptPolicy;
use crate::pipeline::template::Template;

/// `on_failure:` on a task, a phase or the release; the nearest one wins as a whole.
#[derive(Debug, Clone, PartialEq)]
pub enum OnFailure {
    Declarative(Declarative),
    /// `script: path.rhai` — a scripted policy, compiled at load time (its path resolved
    /// against the pipeline folder).
    Script(ScriptPolicy),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Declarative {
    pub retry: RetryPolicy,
    pub then: Then,
    pub fix_forward: Option<FixForward>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Extra attempts after the first.
    pub retries: u32,
    /// Classes that are retried; `transient` is expanded at load time.
    pub when: Vec<ErrorClass>,
    pub delay: Duration,
    pub backoff: Backoff,
    pub max_delay: Duration,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 0,
            when: ErrorClass::TRANSIENT.to_vec(),
            delay: Duration::from_secs(1),
            backoff: Backoff::Exponential,
            max_delay: Duration::from_secs(300),
            jitter: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Fixed,
    Linear,
    Exponential,
}

/// What happens once retries are exhausted or the class is not retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Then {
    #[default]
    Pause,
    Rollback,
    RollbackRelease,
    Skip,
    Ignore,
    Cancel,
    FixForward,
}

impl Then {
    pub fn keyword(self) -> &'static str {
        match self {
            Then::Pause => "pause",
            Then::Rollback => "rollback",
            Then::RollbackRelease => "rollback_release",
            Then::Skip => "skip",
            Then::Ignore => "ignore",
            Then::Cancel => "cancel",
            Then::FixForward => "fix_forward",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FixForward {
    /// Prints `name=value` lines, e.g. `version=2.3`.
    pub resolve: Vec<Template>,
    /// Restarts allowed; default 1.
    pub max: u32,
    /// What to do when no restart is allowed; never `fix_forward`. Default `pause`.
    pub fallback: Then,
}

/// A customized action (`actions:` entry).
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub command: ActionCommand,
    pub trigger: Trigger,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ActionCommand {
    Run(Vec<Template>),
    Script(Template),
    /// Restore `previous` over `file`, then `docker compose -f FILE up -d`.
    RevertCompose {
        file: Template,
        previous: Template,
    },
    /// Replace `container` with one started from the previous `image`.
    RestartPreviousContainer {
        container: Template,
        image: Template,
        run_args: Vec<Template>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trigger {
    /// Only when this task fails.
    #[default]
    ThisTask,
    /// When this task or any later task fails.
    AnyTask,
}
