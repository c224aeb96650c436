//! `relflow plan FILE [--var k=v]... [--simulate TASK=CLASS[xN]]... [--json]`: phases, tasks,
//! effective policies, and what the policies would do for simulated failures. Runs nothing.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::cli::common::parse_vars;
use crate::cli::error::CliError;
use crate::exit_code;
use crate::output::json;
use crate::pipeline;
use crate::policy::simulate::{Plan, SimStep, SimulatedFailure, plan};

pub fn run(
    file: &Path,
    vars: &[String],
    simulate: &[String],
    as_json: bool,
) -> Result<i32, CliError> {
    let mut pipeline = pipeline::load_file(file)?;
    for (name, value) in parse_vars(vars)? {
        if !pipeline.variables.contains_key(&name) {
            let declared = pipeline.variables.keys().map(String::as_str);
            let hint = match crate::pipeline::suggest(&name, declared) {
                Some(near) => format!(" (did you mean `{near}`?)"),
                None => String::new(),
            };
            return Err(CliError::input(format!(
                "error: --var {name}: `{name}` is not a variable of pipeline {}{hint}",
                pipeline.name
            )));
        }
        pipeline.variables.insert(name, value);
    }
    // A release of it would be refused: so is its plan (a CI job checks with `plan`).
    let missing = pipeline.missing_required(&pipeline.variables);
    if !missing.is_empty() {
        return Err(CliError::input(format!(
            "error: {}",
            pipeline::missing_required_message(&missing)
        )));
    }
    let sims = simulate
        .iter()
        .map(|s| {
            s.parse::<SimulatedFailure>()
                .map_err(|e| CliError::input(format!("error: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(unknown) = sims
        .iter()
        .find(|s| !pipeline.tasks().any(|(_, t)| t.name == s.task))
    {
        return Err(CliError::input(format!(
            "error: --simulate: pipeline {} has no task `{}`",
            pipeline.name, unknown.task
        )));
    }
    let planned = plan(&pipeline, &sims);
    if as_json {
        json::print(&PlanDocument {
            file: file.display().to_string(),
            required_variables: pipeline.required_variables.iter().cloned().collect(),
            plan: &planned,
        });
    } else {
        print!("{}", render(&planned));
    }
    Ok(exit_code::OK)
}

/// `plan --json`: the plan with the file it came from.
#[derive(Serialize)]
struct PlanDocument<'a> {
    file: String,
    required_variables: Vec<String>,
    #[serde(flatten)]
    plan: &'a Plan,
}

/// The plan as text: one line per task with its policy, then the simulation.
fn render(planned: &Plan) -> String {
    let mut out = String::new();
    let tasks: usize = planned.phases.iter().map(|p| p.tasks.len()).sum();
    let _ = writeln!(
        out,
        "pipeline {}: {} phases, {tasks} tasks",
        planned.pipeline,
        planned.phases.len()
    );
    if !planned.variables.is_empty() {
        let vars: Vec<String> = planned
            .variables
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "variables: {}", vars.join(" "));
    }
    for phase in &planned.phases {
        let _ = writeln!(out, "phase {}", phase.name);
        let mut group = None;
        for task in &phase.tasks {
            if let Some(g) = task.parallel
                && task.parallel != group
            {
                let _ = writeln!(out, "  parallel (max {}):", g.max);
            }
            group = task.parallel;
            let indent = if group.is_some() { "    " } else { "  " };
            let _ = writeln!(
                out,
                "{indent}{} ({}) — on failure [{}]: {}",
                task.name, task.summary, task.policy.source, task.policy.summary
            );
        }
    }
    let Some(simulation) = &planned.simulation else {
        return out;
    };
    let _ = writeln!(out, "\nsimulation:");
    for step in &simulation.steps {
        let _ = writeln!(out, "{}", step_line(step));
    }
    let _ = writeln!(
        out,
        "result: {} (exit {})",
        simulation.outcome, simulation.exit_code
    );
    out
}

fn step_line(step: &SimStep) -> String {
    match step {
        SimStep::Approval { task } => format!("  {task}: waits for approval (assumed approved)"),
        SimStep::Failing { task, class, times } => format!("  {task} fails {times}× with {class}:"),
        SimStep::Retry {
            attempt,
            class,
            delay,
            rule,
            reason,
            ..
        } => {
            let why = reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            format!("    attempt {attempt} fails ({class}) → retry in {delay} [{rule}{why}]")
        }
        SimStep::Then {
            attempt,
            class,
            action,
            rule,
            reason,
            ..
        } => format!("    attempt {attempt} fails ({class}) → {action} [{rule}: {reason}]"),
        SimStep::RestartPhase {
            attempt,
            class,
            phase,
            values,
            rule,
            reason,
            ..
        } => {
            let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "    attempt {attempt} fails ({class}) → restart phase {phase} with {} [{rule}: {reason}]",
                shown.join(" ")
            )
        }
        SimStep::Succeeds { attempt, .. } => format!("    attempt {attempt} succeeds"),
        SimStep::Effect { text, .. } => format!("    {text}"),
    }
}
