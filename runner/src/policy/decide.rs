//! The decision function: (policy, failure, history) → decision. Pure: the engine executes
//! what it returns, and `plan --simulate` runs the same function without running anything.

use std::collections::BTreeMap;
use std::time::Duration;

use relflow_plugin::ErrorClass;

pub use super::failure::Failure;
use super::model::{OnFailure, Then};
use super::schedule::retry_delay;
use super::script::decide_by_script;

/// What the release has used so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct History {
    /// Retries the policy already made for this task run (attempts a person ordered or that
    /// a crash interrupted do not count).
    pub task_retries: u32,
    /// Retries already made in this release, all tasks together.
    pub retries_used: u32,
    /// The release-wide `retry_budget`.
    pub retry_budget: u32,
}

/// The policy that applies to a task, and where it stands (for the `rule` of a decision).
#[derive(Debug, Clone, Copy)]
pub struct EffectivePolicy<'a> {
    pub on_failure: Option<&'a OnFailure>,
    /// e.g. `task smoke`, `phase deploy`, `release`, or `default`.
    pub source: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start attempt `next_attempt` after `delay`.
    Retry { delay: Duration, next_attempt: u32 },
    /// Retries are over or do not apply: the policy's `then`.
    Then(Then),
    /// A script's `restart_phase(#{..})`: restart the current phase with these values (the
    /// engine still judges them as it judges a fix-forward's).
    RestartPhase(BTreeMap<String, String>),
}

impl Decision {
    pub fn keyword(&self) -> &'static str {
        match self {
            Decision::Retry { .. } => "retry",
            Decision::Then(then) => then.keyword(),
            Decision::RestartPhase(_) => "restart_phase",
        }
    }
}

/// A decision with the rule that produced it and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub decision: Decision,
    /// The policy location and clause, e.g. `task smoke: on_failure.retry`.
    pub rule: String,
    /// A sentence for logs.
    pub reason: String,
}

/// Decides what happens after `failure`. `jitter_sample` in `[0, 1)` comes from the caller
/// so that this function stays pure.
pub fn decide(
    policy: EffectivePolicy<'_>,
    failure: &Failure,
    history: History,
    jitter_sample: f64,
) -> Decided {
    let rule = |clause: &str| format!("{}: {clause}", policy.source);
    let declarative = match policy.on_failure {
        None => {
            return Decided {
                decision: Decision::Then(Then::Pause),
                rule: "default: pause".to_string(),
                reason: "no on_failure policy: the release waits for a person".to_string(),
            };
        }
        Some(OnFailure::Script(script)) => {
            return decide_by_script(script, policy.source, failure, history, jitter_sample);
        }
        Some(OnFailure::Declarative(d)) => d,
    };
    let retry = &declarative.retry;
    let retries_done = history.task_retries;
    let then = |why: String| Decided {
        decision: Decision::Then(declarative.then),
        rule: rule(&format!("on_failure.then = {}", declarative.then.keyword())),
        reason: why,
    };
    if !retry.when.contains(&failure.class) {
        return then(format!("{} is not retried by this policy", failure.class));
    }
    if retries_done >= retry.retries {
        return then(format!(
            "{} of {} retries used",
            retries_done, retry.retries
        ));
    }
    if history.retries_used >= history.retry_budget {
        return then(format!(
            "the release's retry budget of {} is used up",
            history.retry_budget
        ));
    }
    let mut delay = retry_delay(retry, retries_done + 1, jitter_sample);
    if failure.class == ErrorClass::RateLimited
        && let Some(hint) = failure.retry_after
    {
        // The server's hint is honoured up to the policy's own longest delay.
        delay = delay.max(hint.min(retry.max_delay));
    }
    Decided {
        decision: Decision::Retry {
            delay,
            next_attempt: failure.attempt + 1,
        },
        rule: rule("on_failure.retry"),
        reason: format!("{}: {}", failure.class, failure.message),
    }
}

/// The `on_failure` nearest to a task — its own, its phase's, the release's — which wins as a
/// whole, and where it stands (`task smoke`, `phase deploy`, `release`, `default`).
pub fn nearest_policy<'a>(
    pipeline: &'a crate::pipeline::Pipeline,
    phase: &'a crate::pipeline::Phase,
    task: &'a crate::pipeline::Task,
) -> (Option<&'a OnFailure>, String) {
    if let Some(p) = &task.on_failure {
        (Some(p), format!("task {}", task.name))
    } else if let Some(p) = &phase.on_failure {
        (Some(p), format!("phase {}", phase.name))
    } else if let Some(p) = &pipeline.on_failure {
        (Some(p), "release".to_string())
    } else {
        (None, "default".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{Declarative, RetryPolicy};

    fn policy(retries: u32, then: Then) -> OnFailure {
        OnFailure::Declarative(Declarative {
            retry: RetryPolicy {
                retries,
                when: vec![ErrorClass::TaskFailed, ErrorClass::RateLimited],
                jitter: false,
                ..RetryPolicy::default()
            },
            then,
            fix_forward: None,
            actions: Vec::new(),
        })
    }

    fn failure(class: ErrorClass, attempt: u32) -> Failure {
        Failure::new(class, "exit 1", attempt)
    }

    const BUDGET: History = History {
        task_retries: 0,
        retries_used: 0,
        retry_budget: 20,
    };

    #[test]
    fn no_policy_pauses() {
        let p = EffectivePolicy {
            on_failure: None,
            source: "default",
        };
        let d = decide(p, &failure(ErrorClass::TaskFailed, 1), BUDGET, 0.0);
        assert_eq!(d.decision, Decision::Then(Then::Pause));
    }

    #[test]
    fn retries_until_exhausted_then_applies_then() {
        let on_failure = policy(3, Then::Skip);
        let p = EffectivePolicy {
            on_failure: Some(&on_failure),
            source: "task smoke",
        };
        let delays: Vec<Decision> = (1..=4)
            .map(|n| {
                let history = History {
                    task_retries: n - 1,
                    ..BUDGET
                };
                decide(p, &failure(ErrorClass::TaskFailed, n), history, 0.0).decision
            })
            .collect();
        assert_eq!(
            delays,
            vec![
                Decision::Retry {
                    delay: Duration::from_secs(1),
                    next_attempt: 2
                },
                Decision::Retry {
                    delay: Duration::from_secs(2),
                    next_attempt: 3
                },
                Decision::Retry {
                    delay: Duration::from_secs(4),
                    next_attempt: 4
                },
                Decision::Then(Then::Skip),
            ]
        );
    }

    #[test]
    fn class_not_in_when_is_not_retried() {
        let on_failure = policy(3, Then::Rollback);
        let p = EffectivePolicy {
            on_failure: Some(&on_failure),
            source: "phase deploy",
        };
        let d = decide(p, &failure(ErrorClass::Auth, 1), BUDGET, 0.0);
        assert_eq!(d.decision, Decision::Then(Then::Rollback));
        assert_eq!(d.rule, "phase deploy: on_failure.then = rollback");
    }

    #[test]
    fn budget_exhaustion_stops_retries() {
        let on_failure = policy(3, Then::Pause);
        let p = EffectivePolicy {
            on_failure: Some(&on_failure),
            source: "release",
        };
        let spent = History {
            task_retries: 0,
            retries_used: 20,
            retry_budget: 20,
        };
        let d = decide(p, &failure(ErrorClass::TaskFailed, 1), spent, 0.0);
        assert_eq!(d.decision, Decision::Then(Then::Pause));
        assert!(d.reason.contains("budget"));
    }

    #[test]
    fn retry_after_is_honoured_for_rate_limited() {
        let on_failure = policy(3, Then::Pause);
        let p = EffectivePolicy {
            on_failure: Some(&on_failure),
            source: "release",
        };
        let mut f = failure(ErrorClass::RateLimited, 1);
        f.retry_after = Some(Duration::from_secs(30));
        let d = decide(p, &f, BUDGET, 0.0);
        assert_eq!(
            d.decision,
            Decision::Retry {
                delay: Duration::from_secs(30),
                next_attempt: 2
            }
        );
        // A longer hint is honoured up to the policy's max_delay (5m by default).
        f.retry_after = Some(Duration::from_secs(3600));
        let d = decide(p, &f, BUDGET, 0.0);
        assert_eq!(
            d.decision,
            Decision::Retry {
                delay: Duration::from_secs(300),
                next_attempt: 2
            }
        );
    }
}
