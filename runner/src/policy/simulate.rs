//! `relflow plan --simulate`: what the policies would do for simulated failures, computed by
//! the same `decide` the engine uses, running nothing.

use std::fmt::Write;
use std::time::Duration;

use relflow_plugin::ErrorClass;

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

/// One line describing a policy: `retry 3× on [task_failed] (exponential from 1s, max 5m), then rollback`.
pub fn describe_policy(policy: Option<&OnFailure>) -> String {
    let Some(policy) = policy else {
        return "pause (no on_failure)".to_string();
    };
    let d = match policy {
        OnFailure::Script(script) => return format!("script {}", script.name()),
        OnFailure::Declarative(d) => d,
    };
    let mut out = String::new();
    if d.retry.retries > 0 {
        let classes: Vec<&str> = d.retry.when.iter().map(|c| c.as_str()).collect();
        let _ = write!(
            out,
            "retry {}× on [{}] ({:?} from {}, max {}{}), then ",
            d.retry.retries,
            classes.join(", "),
            d.retry.backoff,
            format_duration(d.retry.delay),
            format_duration(d.retry.max_delay),
            if d.retry.jitter { ", jitter" } else { "" }
        );
        out = out
            .replace("Fixed", "fixed")
            .replace("Linear", "linear")
            .replace("Exponential", "exponential");
    }
    out.push_str(d.then.keyword());
    if let Some(ff) = &d.fix_forward {
        let argv: Vec<&str> = ff.resolve.iter().map(|t| t.source()).collect();
        let _ = write!(
            out,
            " (resolve: {}; max {}; fallback {})",
            argv.join(" "),
            ff.max,
            ff.fallback.keyword()
        );
    }
    if !d.actions.is_empty() {
        let _ = write!(out, "; {} action(s)", d.actions.len());
    }
    out
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

/// What one simulated task does: lines, and whether the release goes on (`None`) or ends with
/// an exit code and a sentence.
fn simulate_task(
    out: &mut String,
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
    let mut task_retries = 0;
    for attempt in 1.. {
        if attempt > sim.times {
            let _ = writeln!(out, "    attempt {attempt} succeeds");
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
                let why = match on_failure {
                    Some(OnFailure::Script(_)) => format!(": {}", script_reason(&decided.reason)),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "    attempt {attempt} fails ({}) → retry in {} [{}{why}]",
                    sim.class,
                    delay_range(policy, &failure, history),
                    decided.rule
                );
                task_retries += 1;
                *retries_used += 1;
            }
            Decision::Then(then) => {
                let _ = writeln!(
                    out,
                    "    attempt {attempt} fails ({}) → {} [{}: {}]",
                    sim.class,
                    then.keyword(),
                    decided.rule,
                    script_reason(&decided.reason)
                );
                return apply_then(out, pipeline, task, then);
            }
            Decision::RestartPhase(values) => {
                let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(
                    out,
                    "    attempt {attempt} fails ({}) → restart phase {} with {} [{}: {}]",
                    sim.class,
                    phase.name,
                    shown.join(" "),
                    decided.rule,
                    script_reason(&decided.reason)
                );
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
fn shown_variables(pipeline: &Pipeline) -> std::collections::BTreeMap<String, String> {
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
    out: &mut String,
    pipeline: &Pipeline,
    task: &Task,
    then: Then,
) -> Option<(i32, String)> {
    match then {
        Then::Skip => {
            let _ = writeln!(out, "    task {} skipped; the release goes on", task.name);
            None
        }
        Then::Ignore => {
            let _ = writeln!(out, "    task {} ignored (its failure stays visible); the release goes on", task.name);
            None
        }
        Then::Pause => Some((1, format!("halted on task {}: release failed, waiting for a person", task.name))),
        Then::Rollback => {
            let _ = writeln!(out, "    rollback order: the task's actions, earlier any_task actions newest first, backend rollback of {}", task.name);
            Some((4, format!("task {} rolled back; release failed", task.name)))
        }
        Then::RollbackRelease => {
            let undo = pipeline.rollback.as_ref().is_some_and(|r| r.undo_completed);
            let _ = writeln!(
                out,
                "    rollback order: the task's actions, earlier any_task actions, backend rollback of {}{}, then the flow-level rollback",
                task.name,
                if undo { ", every completed deployment newest first" } else { "" }
            );
            Some((4, "release rolled back".to_string()))
        }
        Then::Cancel => Some((3, format!("task {} cancelled without rollback; release aborted (target may be in an unknown state)", task.name))),
        Then::FixForward => Some((
            0,
            "fix forward: the resolver would run and the phase restart with its values (not simulated further; fallback applies if it refuses)".to_string(),
        )),
    }
}

/// The whole plan as text; the second value is the exit code the release would end with.
pub fn plan(pipeline: &Pipeline, sims: &[SimulatedFailure]) -> (String, i32) {
    let mut out = String::new();
    let tasks = pipeline.tasks().count();
    let _ = writeln!(
        out,
        "pipeline {}: {} phases, {tasks} tasks",
        pipeline.name,
        pipeline.phases.len()
    );
    if !pipeline.variables.is_empty() {
        let vars: Vec<String> = shown_variables(pipeline)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "variables: {}", vars.join(" "));
    }
    for phase in &pipeline.phases {
        let _ = writeln!(out, "phase {}", phase.name);
        for step in &phase.steps {
            let (indent, group) = match step {
                Step::Task(task) => ("  ", std::slice::from_ref(task)),
                Step::Parallel { max, tasks } => {
                    let _ = writeln!(out, "  parallel (max {max}):");
                    ("    ", tasks.as_slice())
                }
            };
            for task in group {
                let (policy, source) = nearest_policy(pipeline, phase, task);
                let _ = writeln!(
                    out,
                    "{indent}{} ({}) — on failure [{source}]: {}",
                    task.name,
                    describe_kind(task),
                    describe_policy(policy)
                );
            }
        }
    }
    if sims.is_empty() {
        return (out, 0);
    }
    let _ = writeln!(out, "\nsimulation:");
    let mut retries_used = 0;
    for (phase, task) in pipeline.tasks() {
        let Some(sim) = sims.iter().find(|s| s.task == task.name) else {
            if matches!(task.kind, TaskKind::Manual { .. }) {
                let _ = writeln!(
                    out,
                    "  {}: waits for approval (assumed approved)",
                    task.name
                );
            }
            continue;
        };
        let _ = writeln!(
            out,
            "  {} fails {}× with {}:",
            task.name, sim.times, sim.class
        );
        if let Some((code, why)) =
            simulate_task(&mut out, pipeline, phase, task, sim, &mut retries_used)
        {
            let _ = writeln!(out, "result: {why} (exit {code})");
            return (out, code);
        }
    }
    let _ = writeln!(out, "result: the release completes (exit 0)");
    (out, 0)
}

fn describe_kind(task: &Task) -> String {
    match &task.kind {
        TaskKind::Command(c) => format!(
            "command: {}",
            c.run
                .iter()
                .map(|t| t.source())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        TaskKind::Script(s) => format!("script: {}", s.path),
        TaskKind::Deploy(d) => format!("deploy {} on {}", d.package, d.backend),
        TaskKind::Undeploy(d) => format!("undeploy {} on {}", d.package, d.backend),
        TaskKind::Manual { .. } => "manual".to_string(),
        TaskKind::Wait(d) => format!("wait {}", format_duration(*d)),
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
