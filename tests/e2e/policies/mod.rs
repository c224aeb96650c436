//! Failure policies through the CLI: the seed scenario on the local backend, every `then`
//! decision, the triggers and order of customized actions in a rollback, retries (`when`,
//! count, budget, nearest policy), and SIGKILL during a retry wait or half-way through a
//! rollback followed by `resume`. Actions append a line to `order.log` so the order of the
//! rollback steps is checkable. The release manager's commands are in `policies_commands.rs`.
//!
//! Shared helpers live here; each child module holds one area.

mod crash;
mod retry;
mod seed;
mod then;
mod triggers;

use std::path::Path;

use serde_json::Value;

use crate::harness::{Sandbox, wait_until};
use crate::tree;

/// `status RELEASE --json`, parsed.
pub fn status_json(sb: &Sandbox, release: &str) -> Value {
    let out = sb.run(&["status", release, "--json"]);
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The latest run of task `name`.
pub fn task<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .flat_map(|p| p["tasks"].as_array().expect("tasks"))
        .rfind(|t| t["task"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {doc:#}"))
}

/// Task `name` in the phase run labelled `label` (`build`, `build#2`).
pub fn task_in<'a>(doc: &'a Value, label: &str, name: &str) -> &'a Value {
    phase(doc, label)["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["task"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {label}: {doc:#}"))
}

/// The phase run labelled `label`.
pub fn phase<'a>(doc: &'a Value, label: &str) -> &'a Value {
    doc["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["label"] == label)
        .unwrap_or_else(|| panic!("no phase run {label} in {doc:#}"))
}

/// Labels of the phase runs, in order.
pub fn labels(doc: &Value) -> Vec<String> {
    doc["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["label"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `(decision, rule, detail)` of a task run.
pub fn decisions(task: &Value) -> Vec<(String, String, String)> {
    task["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            (s("decision"), s("rule"), s("detail"))
        })
        .collect()
}

/// The decision kinds of a task run, in order.
pub fn decision_kinds(task: &Value) -> Vec<String> {
    decisions(task).into_iter().map(|d| d.0).collect()
}

/// How many attempts the task run made.
pub fn attempts(task: &Value) -> usize {
    task["attempt_history"].as_array().expect("history").len()
}

/// A task's `script_output.log` in phase run `label`.
pub fn log(sb: &Sandbox, release: &str, label: &str, task: &str) -> String {
    sb.read(&format!(
        ".relflow/releases/{release}/{label}/{task}/script_output.log"
    ))
}

/// A task's `rollback.log` in phase run `label`.
pub fn rollback_log(sb: &Sandbox, release: &str, label: &str, task: &str) -> String {
    sb.read(&format!(
        ".relflow/releases/{release}/{label}/{task}/rollback.log"
    ))
}

/// The lines of `order.log` (none when no action ran).
pub fn order(sb: &Sandbox) -> Vec<String> {
    if !sb.exists("order.log") {
        return Vec::new();
    }
    sb.read("order.log").lines().map(str::to_string).collect()
}

/// Lines of `text` that start with `prefix`.
pub fn lines_starting(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// A customized action (flow YAML) that appends `label` to `order.log`.
pub fn act(label: &str) -> String {
    format!(r#"{{ run: [sh, -c, "echo {label} >> order.log"] }}"#)
}

/// The same with `trigger: any_task`.
pub fn act_any(label: &str) -> String {
    format!(r#"{{ run: [sh, -c, "echo {label} >> order.log"], trigger: any_task }}"#)
}

/// A command task (flow YAML, one line) that succeeds.
pub fn ok_task(name: &str) -> String {
    format!(r#"{{ name: {name}, command: {{ run: [sh, -c, "echo {name} >> ran.log"] }} }}"#)
}

/// `ran.log`: which command tasks ran, in order.
pub fn ran(sb: &Sandbox) -> Vec<String> {
    if !sb.exists("ran.log") {
        return Vec::new();
    }
    sb.read("ran.log").lines().map(str::to_string).collect()
}
