//! `relflow plan`: each task's effective policy and, with `--simulate`, what the policies
//! would do for simulated failures, computed by the same `decide` the engine uses, running
//! nothing. The result is data (`Plan`); `cli/plan.rs` prints it as text or JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use relflow_plugin::ErrorClass;

mod report;

pub use report::*;

use super::decide::{Decision, EffectivePolicy, Failure, History, decide, nearest_policy};
use super::model::{OnFailure, Then};
use crate::pipeline::duration::format_duration;
use crate::pipeline::{Phase, Pipeline, Step, Task, TaskKind};

/// `TASK=CLASS[xN]`: the task's first N attempts fail with CLASS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedFailure {
    pub task: String,
    pub class: ErrorClass,
    pub times: u32,
}

impl std::str::FromStr for SimulatedFailure {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (task, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("--simulate `{s}` is not TASK=CLASS[xN]"))?;
        let (class, times) = match rest.rsplit_once('x') {
            Some((class, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
                let times = n
                    .parse::<u32>()
                    .map_err(|e| format!("--simulate `{s}`: {e}"))?;
                (class, times)
            }
            _ => (rest, 1),
        };
        if times == 0 {
            return Err(format!("--simulate `{s}`: xN must be at least 1"));
        }
        let class = class
            .parse::<ErrorClass>()
            .map_err(|e| format!("--simulate `{s}`: {e}"))?;
        Ok(SimulatedFailure {
            task: task.to_string(),
            class,
            times,
        })
    }
}

fn delay_range(policy: EffectivePolicy<'_>, failure: &Failure, history: History) -> String {
    let low = decide(policy, failure, history, 0.0);
    let high = decide(policy, failure, history, 0.999_999);
    match (low.decision, high.decision) {
        (Decision::Retry { delay: a, .. }, Decision::Retry { delay: b, .. }) if a != b => {
            format!("{}–{}", format_duration(a), format_duration(b))
        }
        (Decision::Retry { delay, .. }, _) => format_duration(delay),
        _ => String::new(),
    }
}

/// What one simulated task does: its steps, and whether the release goes on (`None`) or ends
/// with an exit code and a sentence.
fn simulate_task(
    steps: &mut Vec<SimStep>,
    pipeline: &Pipeline,
    phase: &Phase,
    task: &Task,
    sim: &SimulatedFailure,
    retries_used: &mut u32,
) -> Option<(i32, String)> {
    let (on_failure, source) = nearest_policy(pipeline, phase, task);
    let policy = EffectivePolicy {
        on_failure,
        source: &source,
    };
    let name = || task.name.clone();
    let class = sim.class.as_str();
    let mut task_retries = 0;
    for attempt in 1.. {
        if attempt > sim.times {
            steps.push(SimStep::Succeeds {
                task: name(),
                attempt,
            });
            return None;
        }
        let failure = simulated_failure(pipeline, phase, task, sim.class, attempt);
        let history = History {
            task_retries,
            retries_used: *retries_used,
            retry_budget: pipeline.retry_budget,
        };
        let decided = decide(policy, &failure, history, 0.5);
        match decided.decision {
            Decision::Retry { .. } => {
                // A script explains its retries; a declarative rule speaks for itself.
                let reason = matches!(on_failure, Some(OnFailure::Script(_)))
                    .then(|| script_reason(&decided.reason).to_string());
                steps.push(SimStep::Retry {
                    task: name(),
                    attempt,
                    class,
                    delay: delay_range(policy, &failure, history),
                    rule: decided.rule,
                    reason,
                });
                task_retries += 1;
                *retries_used += 1;
            }
            Decision::Then(then) => {
                steps.push(SimStep::Then {
                    task: name(),
                    attempt,
                    class,
                    action: then.keyword(),
                    rule: decided.rule.clone(),
                    reason: script_reason(&decided.reason).to_string(),
                });
                return apply_then(steps, pipeline, task, then);
            }
            Decision::RestartPhase(values) => {
                let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                steps.push(SimStep::RestartPhase {
                    task: name(),
                    attempt,
                    class,
                    phase: phase.name.clone(),
                    values,
                    rule: decided.rule.clone(),
                    reason: script_reason(&decided.reason).to_string(),
                });
                return Some((
                    0,
                    format!(
                        "phase {} would restart with {} (not simulated further; a value that \
                         already failed, or a second restart by the same task, pauses instead)",
                        phase.name,
                        shown.join(" ")
                    ),
                ));
            }
        }
    }
    None
}

/// A script's reason without `script NAME ` in front: the rule beside it names the script.
fn script_reason(reason: &str) -> &str {
    match reason.strip_prefix("script ") {
        Some(rest) => rest.split_once(' ').map_or(reason, |(_, tail)| tail),
        None => reason,
    }
}

/// What a simulated failure looks like to a policy: an HTTP status and a `Retry-After` of 30s
/// where the class implies them, the pipeline's default variables, an empty log.
fn simulated_failure(
    pipeline: &Pipeline,
    phase: &Phase,
    task: &Task,
    class: ErrorClass,
    attempt: u32,
) -> Failure {
    let mut failure = Failure::new(class, "simulated", attempt);
    failure.http_status = match class {
        ErrorClass::RateLimited => Some(429),
        ErrorClass::Http5xx => Some(503),
        ErrorClass::Auth => Some(401),
        ErrorClass::NotFound => Some(404),
        ErrorClass::BadRequest => Some(400),
        _ => None,
    };
    failure.retry_after = (class == ErrorClass::RateLimited).then_some(Duration::from_secs(30));
    failure.exit_code = (class == ErrorClass::TaskFailed && is_process(task)).then_some(1);
    failure.task = task.name.clone();
    failure.phase = phase.name.clone();
    failure.kind = task.kind.keyword().to_string();
    failure.vars = shown_variables(pipeline);
    failure
}

/// The pipeline's variables as a script or a person may see them: `secret: true` ones masked.
pub fn shown_variables(pipeline: &Pipeline) -> BTreeMap<String, String> {
    let mut vars = pipeline.variables.clone();
    for name in &pipeline.secret_variables {
        if let Some(value) = vars.get_mut(name) {
            *value = crate::output::redact::MASK.to_string();
        }
    }
    vars
}

fn is_process(task: &Task) -> bool {
    matches!(task.kind, TaskKind::Command(_) | TaskKind::Script(_))
}

fn apply_then(
    steps: &mut Vec<SimStep>,
    pipeline: &Pipeline,
    task: &Task,
    then: Then,
) -> Option<(i32, String)> {
    let name = &task.name;
    let mut effect = |text: String| {
        steps.push(SimStep::Effect {
            task: name.clone(),
            text,
        })
    };
    match then {
        Then::Skip => {
            effect(format!("task {name} skipped; the release goes on"));
            None
        }
        Then::Ignore => {
            effect(format!("task {name} ignored (its failure stays visible); the release goes on"));
            None
        }
        Then::Pause => Some((1, format!("halted on task {name}: release failed, waiting for a person"))),
        Then::Rollback => {
            effect(format!("rollback order: the task's actions, earlier any_task actions newest first, backend rollback of {name}"));
            Some((4, format!("task {name} rolled back; release failed")))
        }
        Then::RollbackRelease => {
            let undo = pipeline.rollback.as_ref().is_some_and(|r| r.undo_completed);
            effect(format!(
                "rollback order: the task's actions, earlier any_task actions, backend rollback of {name}{}, then the flow-level rollback",
                if undo { ", every completed deployment newest first" } else { "" }
            ));
            Some((4, "release rolled back".to_string()))
        }
        Then::Cancel => Some((3, format!("task {name} cancelled without rollback; release aborted (target may be in an unknown state)"))),
        Then::FixForward => Some((
            0,
            "fix forward: the resolver would run and the phase restart with its values (not simulated further; fallback applies if it refuses)".to_string(),
        )),
    }
}

/// The plan of `pipeline`: every task with its effective policy, and the simulation of
/// `sims` when there are any.
pub fn plan(pipeline: &Pipeline, sims: &[SimulatedFailure]) -> Plan {
    let phases = pipeline
        .phases
        .iter()
        .map(|phase| PhasePlan {
            name: phase.name.clone(),
            tasks: phase_tasks(pipeline, phase),
        })
        .collect();
    Plan {
        pipeline: pipeline.name.clone(),
        variables: shown_variables(pipeline),
        phases,
        simulation: (!sims.is_empty()).then(|| simulate(pipeline, sims)),
    }
}

fn phase_tasks(pipeline: &Pipeline, phase: &Phase) -> Vec<TaskPlan> {
    let mut tasks = Vec::new();
    for (index, step) in phase.steps.iter().enumerate() {
        let (group, members) = match step {
            Step::Task(task) => (None, std::slice::from_ref(task)),
            Step::Parallel { max, tasks } => (
                Some(ParallelGroup {
                    step: index,
                    max: *max,
                }),
                tasks.as_slice(),
            ),
        };
        for task in members {
            let (policy, source) = nearest_policy(pipeline, phase, task);
            tasks.push(TaskPlan {
                name: task.name.clone(),
                kind: task.kind.keyword(),
                summary: describe_kind(task),
                parallel: group,
                policy: policy_plan(policy, source),
            });
        }
    }
    tasks
}

/// Runs the simulated failures through the policies, task by task in release order.
fn simulate(pipeline: &Pipeline, sims: &[SimulatedFailure]) -> Simulation {
    let mut steps = Vec::new();
    let mut retries_used = 0;
    for (phase, task) in pipeline.tasks() {
        let Some(sim) = sims.iter().find(|s| s.task == task.name) else {
            if matches!(task.kind, TaskKind::Manual { .. }) {
                steps.push(SimStep::Approval {
                    task: task.name.clone(),
                });
            }
            continue;
        };
        steps.push(SimStep::Failing {
            task: task.name.clone(),
            class: sim.class.as_str(),
            times: sim.times,
        });
        if let Some((exit_code, outcome)) =
            simulate_task(&mut steps, pipeline, phase, task, sim, &mut retries_used)
        {
            return Simulation {
                steps,
                exit_code,
                outcome,
            };
        }
    }
    Simulation {
        steps,
        exit_code: 0,
        outcome: "the release completes".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_simulations() {
        let s: SimulatedFailure = "deploy=task_failedx4".parse().unwrap();
        assert_eq!(
            s,
            SimulatedFailure {
                task: "deploy".into(),
                class: ErrorClass::TaskFailed,
                times: 4
            }
        );
        let s: SimulatedFailure = "smoke=timeout".parse().unwrap();
        assert_eq!(s.times, 1);
        assert!("smoke".parse::<SimulatedFailure>().is_err());
        assert!("smoke=nope".parse::<SimulatedFailure>().is_err());
        assert!("smoke=timeoutx0".parse::<SimulatedFailure>().is_err());
    }
}
