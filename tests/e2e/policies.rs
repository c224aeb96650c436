//! Failure policies through the CLI: the seed scenario on the local backend, every `then`
//! decision, the triggers and order of customized actions in a rollback, retries (`when`,
//! count, budget, nearest policy), and SIGKILL during a retry wait or half-way through a
//! rollback followed by `resume`. Actions append a line to `order.log` so the order of the
//! rollback steps is checkable. The release manager's commands are in `policies_commands.rs`.

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

// ---------------------------------------------------------------------------------------
// 1. The seed scenario on the local backend.

const PETPORTAL: &str = "pipelines/petportal.yaml";
const TARGET: &str = ".relflow-demo/petportal";

#[track_caller]
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` in:\n{text}");
    text.replace(from, to)
}

#[test]
fn policies_seed_scenario_2_2_rolls_back_after_4_attempts_then_restart_phase_with_2_3_completes() {
    let sb = Sandbox::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    tree::copy_dir(&example, &sb.path().join("pipelines"));
    let yaml = replace_once(&sb.read(PETPORTAL), "delay: 1s", "delay: 10ms");
    assert!(yaml.contains("retries: 3") && yaml.contains("then: rollback"));
    sb.write(PETPORTAL, &yaml);

    sb.run(&["run", PETPORTAL]).expect_code(0);
    let version_file = format!("{TARGET}/.relflow-version");
    assert!(sb.read(&version_file).contains("1.0"));
    let before = tree::snapshot(&sb.path().join(TARGET));

    let out = sb.run(&["run", PETPORTAL, "--var", "version=2.2"]);
    out.expect_code(4);
    let release = "petportal-2";
    let log = log(&sb, release, "deploy", "deploy-petportal");
    assert_eq!(
        lines_starting(&log, "=== attempt "),
        [
            "=== attempt 1 ===",
            "=== attempt 2 ===",
            "=== attempt 3 ===",
            "=== attempt 4 ==="
        ],
        "{log}"
    );
    // The example's backoff is exponential: 10ms, 20ms, 40ms.
    let retrying = lines_starting(&log, "Retrying in ");
    assert_eq!(retrying.len(), 3, "{log}");
    for (line, head) in retrying.iter().zip([
        "Retrying in 10ms (attempt 2 of 4): task_failed: ",
        "Retrying in 20ms (attempt 3 of 4): task_failed: ",
        "Retrying in 40ms (attempt 4 of 4): task_failed: ",
    ]) {
        assert!(line.starts_with(head), "{line}");
    }
    let going = log.find("Going to rollback").expect("Going to rollback");
    assert!(going > log.find("=== attempt 4 ===").unwrap(), "{log}");
    tree::assert_same(
        &before,
        &tree::snapshot(&sb.path().join(TARGET)),
        "after the rollback of 2.2",
    );
    assert!(sb.read(&version_file).contains("1.0"));

    let doc = status_json(&sb, release);
    assert_eq!(doc["status"], "failed");
    let t = task(&doc, "deploy-petportal");
    assert_eq!(t["status"], "rolled_back");
    assert_eq!(attempts(t), 4);
    assert_eq!(
        decision_kinds(t).iter().filter(|d| *d == "retry").count(),
        3
    );

    let out = sb.run(&["restart-phase", release, "deploy", "--var", "version=2.3"]);
    out.expect_code(0);
    let doc = status_json(&sb, release);
    assert_eq!(doc["status"], "completed", "{doc:#}");
    assert_eq!(labels(&doc), ["build", "deploy", "deploy#2"]);
    let first = phase(&doc, "deploy");
    assert_eq!(first["status"], "rolled_back");
    assert_eq!(first["variables"]["version"], "2.2");
    let second = phase(&doc, "deploy#2");
    assert_eq!(second["status"], "completed");
    assert_eq!(second["variables"]["version"], "2.3");
    assert_eq!(
        task_in(&doc, "deploy#2", "deploy-petportal")["status"],
        "completed"
    );
    assert_eq!(task_in(&doc, "deploy#2", "smoke")["status"], "completed");
    // The first run's task and its log stay as they were.
    assert_eq!(
        task_in(&doc, "deploy", "deploy-petportal")["status"],
        "rolled_back"
    );
    assert!(sb.exists(&format!(
        ".relflow/releases/{release}/deploy/deploy-petportal/script_output.log"
    )));
    let version = sb.read(&version_file);
    assert!(version.contains("2.3"), "{version}");

    let text = sb.run(&["status", release]);
    text.expect_code(0);
    assert!(
        text.stdout.contains("deploy#2"),
        "status does not show the second run:\n{}",
        text.stdout
    );
}

// ---------------------------------------------------------------------------------------
// 2. Each `then`.

/// build: `a` (any_task action `a-any`) completes; `b` fails with `then` (own actions
/// `b-own` this_task and `b-any` any_task); `c` afterwards. deploy: `d`.
fn then_pipeline(then: &str, extra: &str) -> String {
    format!(
        r#"
name: th
{extra}
phases:
  - name: build
    tasks:
      - name: a
        command: {{ run: [sh, -c, "echo a >> ran.log"] }}
        on_failure: {{ actions: [{a_any}] }}
      - name: b
        command: {{ run: [sh, -c, "echo b >> ran.log; echo b broke >&2; exit 1"] }}
        on_failure:
          retry: {{ retries: 0 }}
          then: {then}
          actions: [{b_own}, {b_any}]
      - {c}
  - name: deploy
    tasks:
      - {d}
"#,
        a_any = act_any("a-any"),
        b_own = act("b-own"),
        b_any = act_any("b-any"),
        c = ok_task("c"),
        d = ok_task("d"),
    )
}

#[test]
fn policies_then_pause_halts_exit_1_with_the_task_failed_and_only_its_own_actions() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &then_pipeline("pause", ""));
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(1);
    let doc = status_json(&sb, "th-1");
    assert_eq!(doc["status"], "failed");
    let b = task(&doc, "b");
    assert_eq!(b["status"], "failed");
    assert_eq!(b["error_class"], "task_failed");
    assert_eq!(decision_kinds(b), ["pause"]);
    assert_eq!(task(&doc, "c")["status"], "planned");
    assert_eq!(task(&doc, "d")["status"], "planned");
    assert_eq!(ran(&sb), ["a", "b"]);
    // Both of b's own actions; not the earlier task's any_task action (no rollback).
    assert_eq!(order(&sb), ["b-own", "b-any"]);
    let log = log(&sb, "th-1", "build", "b");
    assert!(!log.contains("Going to rollback"), "{log}");
    assert!(!sb.exists(".relflow/releases/th-1/build/b/rollback.log"));
}

#[test]
fn policies_then_skip_continues_the_flow_with_the_task_skipped_exit_0() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &then_pipeline("skip", ""));
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(0);
    let doc = status_json(&sb, "th-1");
    assert_eq!(doc["status"], "completed");
    let b = task(&doc, "b");
    assert_eq!(b["status"], "skipped");
    assert_eq!(decision_kinds(b), ["skip"]);
    assert_eq!(task(&doc, "c")["status"], "completed");
    assert_eq!(task(&doc, "d")["status"], "completed");
    assert_eq!(ran(&sb), ["a", "b", "c", "d"]);
    assert_eq!(order(&sb), ["b-own", "b-any"]);
}

#[test]
fn policies_then_ignore_continues_with_the_task_ignored_and_its_error_visible() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &then_pipeline("ignore", ""));
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(0);
    let doc = status_json(&sb, "th-1");
    assert_eq!(doc["status"], "completed");
    let b = task(&doc, "b");
    assert_eq!(b["status"], "ignored");
    assert_eq!(b["error_class"], "task_failed");
    assert_eq!(b["error"], "sh exited with code 1");
    assert_eq!(b["attempt_history"][0]["status"], "failed");
    assert_eq!(decision_kinds(b), ["ignore"]);
    assert_eq!(ran(&sb), ["a", "b", "c", "d"]);
    assert_eq!(order(&sb), ["b-own", "b-any"]);
    assert!(log(&sb, "th-1", "build", "b").contains("b broke"));
}

#[test]
fn policies_then_rollback_runs_own_actions_then_earlier_any_task_then_halts_exit_4() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &then_pipeline("rollback", ""));
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(4);
    let doc = status_json(&sb, "th-1");
    assert_eq!(doc["status"], "failed");
    let b = task(&doc, "b");
    assert_eq!(b["status"], "rolled_back");
    assert_eq!(b["error_class"], "task_failed");
    assert_eq!(phase(&doc, "build")["status"], "rolled_back");
    assert_eq!(task(&doc, "c")["status"], "planned");
    assert_eq!(order(&sb), ["b-own", "b-any", "a-any"]);

    let log = log(&sb, "th-1", "build", "b");
    assert!(log.contains("Going to rollback"), "{log}");
    assert!(!log.contains("Going to rollback the release"), "{log}");
    let steps = lines_starting(&rollback_log(&sb, "th-1", "build", "b"), "step ");
    assert_eq!(steps.len(), 4, "{steps:#?}");
    assert!(
        steps[0].starts_with("step 1: action `sh -c echo b-own"),
        "{steps:#?}"
    );
    assert!(steps[0].ends_with("of task b: ok"), "{steps:#?}");
    assert!(
        steps[1].starts_with("step 2: action `sh -c echo b-any"),
        "{steps:#?}"
    );
    assert!(
        steps[2].starts_with("step 3: any_task action `sh -c echo a-any")
            && steps[2].ends_with("of task a: ok"),
        "{steps:#?}"
    );
    assert_eq!(steps[3], "step 4: backend rollback of task b: ok");
    let kinds = decision_kinds(b);
    assert_eq!(kinds[0], "rollback");
    assert_eq!(kinds.iter().filter(|k| *k == "rollback_step").count(), 4);
}

const FLOW_ROLLBACK: &str = r#"rollback: { run: [sh, -c, "echo flow >> order.log"] }"#;

#[test]
fn policies_then_rollback_release_runs_the_whole_order_with_the_flow_level_run_last() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &then_pipeline("rollback_release", FLOW_ROLLBACK));
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(4);
    assert!(
        out.stdout.contains("release th-1 rolled_back"),
        "{}",
        out.stdout
    );
    let doc = status_json(&sb, "th-1");
    assert_eq!(doc["status"], "rolled_back");
    assert_eq!(task(&doc, "b")["status"], "rolled_back");
    assert_eq!(task(&doc, "c")["status"], "cancelled");
    assert_eq!(order(&sb), ["b-own", "b-any", "a-any", "flow"]);
    let log = log(&sb, "th-1", "build", "b");
    assert!(log.contains("Going to rollback the release"), "{log}");
    let steps = lines_starting(&rollback_log(&sb, "th-1", "build", "b"), "step ");
    assert_eq!(steps.len(), 5, "{steps:#?}");
    assert_eq!(steps[3], "step 4: backend rollback of task b: ok");
    assert_eq!(steps[4], "step 5: flow-level rollback: ok");
    assert_eq!(decision_kinds(task(&doc, "b"))[0], "rollback_release");
}

#[test]
fn policies_rollback_release_without_a_top_level_rollback_is_refused_at_load() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &then_pipeline("rollback_release", ""));
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(2);
    assert!(out.stderr.contains("rollback"), "{}", out.stderr);
    assert!(!sb.exists("ran.log"), "a task ran from an invalid pipeline");
}

#[test]
fn policies_then_cancel_aborts_exit_3_warns_of_an_unknown_state_and_rolls_nothing_back() {
    let sb = Sandbox::new();
    sb.write("p.yaml", &then_pipeline("cancel", ""));
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(3);
    let doc = status_json(&sb, "th-1");
    assert_eq!(doc["status"], "aborted");
    assert!(
        doc["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown state"),
        "{doc:#}"
    );
    let b = task(&doc, "b");
    assert_eq!(b["status"], "cancelled");
    assert_eq!(decision_kinds(b), ["cancel"]);
    assert_eq!(ran(&sb), ["a", "b"]);
    // Own actions run on every final failure; the earlier any_task action only in a rollback.
    assert_eq!(order(&sb), ["b-own", "b-any"]);
    let log = log(&sb, "th-1", "build", "b");
    assert!(
        log.contains("WARNING: cancelled without rollback: the target may be in an unknown state"),
        "{log}"
    );
    assert!(!log.contains("Going to rollback"), "{log}");
}

#[test]
fn policies_a_release_ended_by_rollback_release_or_cancel_leaves_nothing_running_or_planned() {
    for (then, release_status) in [("rollback_release", "rolled_back"), ("cancel", "aborted")] {
        let sb = Sandbox::new();
        sb.write("p.yaml", &then_pipeline(then, FLOW_ROLLBACK));
        sb.run(&["run", "p.yaml"]);
        let doc = status_json(&sb, "th-1");
        assert_eq!(doc["status"], release_status);
        for p in doc["phases"].as_array().unwrap() {
            assert_ne!(p["status"], "running", "{then}: phase {}", p["label"]);
            for t in p["tasks"].as_array().unwrap() {
                assert_ne!(t["status"], "planned", "{then}: task {}", t["task"]);
            }
        }
    }
}

/// build: `prep` completes; `check` passes only with version 2.3; `then: fix_forward`.
fn fix_forward_pipeline(resolver: &str, ff_extra: &str) -> String {
    format!(
        r#"
name: ff
variables: {{ version: "2.2" }}
phases:
  - name: build
    tasks:
      - {{ name: prep, command: {{ run: [sh, -c, "echo prep-${{version}} >> ran.log"] }} }}
      - name: check
        command: {{ run: [sh, -c, "echo check-${{version}} >> ran.log; test ${{version}} = 2.3"] }}
        on_failure:
          then: fix_forward
          fix_forward: {{ resolve: [sh, -c, "{resolver}"] {ff_extra} }}
  - name: deploy
    tasks:
      - {{ name: ship, command: {{ run: [sh, -c, "echo ship-${{version}} >> ran.log"] }} }}
"#
    )
}

fn assert_fix_forward_to_2_3(sb: &Sandbox) {
    let doc = status_json(sb, "ff-1");
    assert_eq!(doc["status"], "completed", "{doc:#}");
    assert_eq!(labels(&doc), ["build", "build#2", "deploy"]);
    assert_eq!(phase(&doc, "build")["status"], "failed");
    assert_eq!(phase(&doc, "build")["variables"]["version"], "2.2");
    assert_eq!(phase(&doc, "build#2")["status"], "completed");
    assert_eq!(phase(&doc, "build#2")["variables"]["version"], "2.3");
    assert_eq!(task_in(&doc, "build", "check")["status"], "failed");
    assert_eq!(task_in(&doc, "build#2", "check")["status"], "completed");
    assert_eq!(
        ran(sb),
        ["prep-2.2", "check-2.2", "prep-2.3", "check-2.3", "ship-2.3"]
    );
    let check = decisions(task_in(&doc, "build", "check"));
    assert!(
        check
            .iter()
            .any(|d| d.0 == "fix_forward" && d.2 == "restart phase build with version=2.3"),
        "{check:#?}"
    );
    let log = log(sb, "ff-1", "build", "check");
    assert!(
        log.contains("Fixing forward: restarting phase build with version=2.3"),
        "{log}"
    );
}

#[test]

fn policies_then_fix_forward_restarts_the_phase_with_the_resolved_version() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &fix_forward_pipeline("echo looking up; echo version=2.3", ""),
    );
    sb.run(&["run", "p.yaml"]).expect_code(0);
    assert_fix_forward_to_2_3(&sb);
}

/// The same restart with `max: 2`, which the counting bug above lets through once.
#[test]
fn policies_then_fix_forward_with_max_2_restarts_the_phase_with_the_resolved_version() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &fix_forward_pipeline("echo looking up; echo version=2.3", ", max: 2"),
    );
    sb.run(&["run", "p.yaml"]).expect_code(0);
    assert_fix_forward_to_2_3(&sb);
}

#[test]
fn policies_then_fix_forward_refuses_the_value_that_failed_and_falls_back_to_pause() {
    let sb = Sandbox::new();
    // `max: 3` keeps the restart count out of the way: the value itself is refused.
    sb.write(
        "p.yaml",
        &fix_forward_pipeline("echo version=2.2", ", max: 3"),
    );
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(1);
    let doc = status_json(&sb, "ff-1");
    assert_eq!(doc["status"], "failed");
    assert_eq!(labels(&doc), ["build", "deploy"]);
    let check = task(&doc, "check");
    assert_eq!(check["status"], "failed");
    let pause = decisions(check)
        .into_iter()
        .find(|d| d.0 == "pause")
        .unwrap_or_else(|| panic!("no pause decision: {check:#}"));
    assert_eq!(pause.1, "task check: on_failure.fix_forward.fallback");
    assert_eq!(pause.2, "version=2.2 already failed in this release");
    let log = log(&sb, "ff-1", "build", "check");
    assert!(
        log.contains(
            "Fix forward not possible: version=2.2 already failed in this release; falling back to pause"
        ),
        "{log}"
    );
    assert_eq!(ran(&sb), ["prep-2.2", "check-2.2"]);
}

#[test]

fn policies_then_fix_forward_max_exhausted_falls_back() {
    let sb = Sandbox::new();
    // Never passes; the resolver proposes a new version each time (2.3, 2.4, ...).
    let yaml = fix_forward_pipeline(
        "n=$(cat n 2>/dev/null || echo 3); echo $((n+1)) > n; echo version=2.$n",
        ", fallback: skip",
    )
    .replace("test ${version} = 2.3", "exit 1");
    sb.write("p.yaml", &yaml);
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(0);
    let doc = status_json(&sb, "ff-1");
    assert_eq!(labels(&doc), ["build", "build#2", "deploy"]);
    assert_eq!(phase(&doc, "build#2")["variables"]["version"], "2.3");
    let second = task_in(&doc, "build#2", "check");
    assert_eq!(second["status"], "skipped");
    let skip = decisions(second)
        .into_iter()
        .find(|d| d.0 == "skip")
        .unwrap_or_else(|| panic!("no skip decision: {second:#}"));
    assert_eq!(skip.2, "fix_forward.max (1) restart(s) already used");
    assert_eq!(
        ran(&sb),
        ["prep-2.2", "check-2.2", "prep-2.3", "check-2.3", "ship-2.3"]
    );
}

#[test]

fn policies_fix_forward_decisions_name_the_phase_policy_that_produced_them() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: ff
variables: { version: "2.2" }
phases:
  - name: build
    on_failure:
      then: fix_forward
      fix_forward: { resolve: [sh, -c, "echo version=2.2"], max: 3 }
    tasks:
      - { name: check, command: { run: [sh, -c, "exit 1"] } }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(1);
    let doc = status_json(&sb, "ff-1");
    let rules: Vec<String> = decisions(task(&doc, "check"))
        .into_iter()
        .map(|d| d.1)
        .collect();
    assert_eq!(
        rules,
        [
            "phase build: on_failure.then = fix_forward",
            "phase build: on_failure.fix_forward.fallback"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// 3. Triggers and order.

#[test]
fn policies_this_task_action_of_an_earlier_task_does_not_run_in_a_later_rollback() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: tr
phases:
  - name: build
    tasks:
      - name: a
        command: {{ run: [sh, -c, "true"] }}
        on_failure: {{ actions: [{a_own}, {a_any}] }}
      - name: b
        command: {{ run: [sh, -c, "exit 1"] }}
        on_failure: {{ then: rollback, actions: [{b_own}] }}
"#,
            a_own = act("a-own"),
            a_any = act_any("a-any"),
            b_own = act("b-own"),
        ),
    );
    sb.run(&["run", "p.yaml"]).expect_code(4);
    assert_eq!(order(&sb), ["b-own", "a-any"]);
}

#[test]
fn policies_any_task_actions_of_two_earlier_tasks_run_newest_first_across_phases() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: tr
phases:
  - name: build
    tasks:
      - name: a
        command: {{ run: [sh, -c, "true"] }}
        on_failure: {{ actions: [{a1}, {a2}] }}
      - name: b
        command: {{ run: [sh, -c, "true"] }}
        on_failure: {{ actions: [{b1}] }}
  - name: deploy
    tasks:
      - name: c
        command: {{ run: [sh, -c, "exit 1"] }}
        on_failure: {{ then: rollback }}
"#,
            a1 = act_any("a-any-1"),
            a2 = act_any("a-any-2"),
            b1 = act_any("b-any"),
        ),
    );
    sb.run(&["run", "p.yaml"]).expect_code(4);
    // Newest task first; one task's actions in their written order.
    assert_eq!(order(&sb), ["b-any", "a-any-1", "a-any-2"]);
    let steps = lines_starting(&rollback_log(&sb, "tr-1", "deploy", "c"), "step ");
    assert_eq!(steps.len(), 4, "{steps:#?}");
    assert_eq!(steps[3], "step 4: backend rollback of task c: ok");
}

#[test]
fn policies_earlier_skipped_or_ignored_tasks_do_not_contribute_any_task_actions() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: tr
phases:
  - name: build
    tasks:
      - name: s
        command: {{ run: [sh, -c, "exit 1"] }}
        on_failure: {{ then: skip, actions: [{s_any}] }}
      - name: i
        command: {{ run: [sh, -c, "exit 1"] }}
        on_failure: {{ then: ignore, actions: [{i_any}] }}
      - name: ok
        command: {{ run: [sh, -c, "true"] }}
        on_failure: {{ actions: [{ok_any}] }}
      - name: bad
        command: {{ run: [sh, -c, "exit 1"] }}
        on_failure: {{ then: rollback, actions: [{bad_own}] }}
"#,
            s_any = act_any("s-any"),
            i_any = act_any("i-any"),
            ok_any = act_any("ok-any"),
            bad_own = act("bad-own"),
        ),
    );
    sb.run(&["run", "p.yaml"]).expect_code(4);
    let doc = status_json(&sb, "tr-1");
    assert_eq!(task(&doc, "s")["status"], "skipped");
    assert_eq!(task(&doc, "i")["status"], "ignored");
    // s-any and i-any ran once each, for their own task's failure; not again in the rollback.
    assert_eq!(order(&sb), ["s-any", "i-any", "bad-own", "ok-any"]);
}

#[test]
fn policies_a_failing_rollback_step_is_logged_the_rest_run_and_the_reason_names_it() {
    let sb = Sandbox::new();
    sb.write_script(
        "undo.sh",
        "#!/bin/sh\necho \"undo for $RELFLOW_FAILED_TASK\" >> order.log\n",
    );
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: tr
rollback: {{ script: undo.sh }}
phases:
  - name: build
    tasks:
      - name: a
        command: {{ run: [sh, -c, "true"] }}
        on_failure: {{ actions: [{a_any}] }}
      - name: b
        command: {{ run: [sh, -c, "exit 1"] }}
        on_failure:
          then: rollback_release
          actions:
            - {b_own}
            - {{ run: [sh, -c, "echo b-bad >> order.log; exit 7"] }}
            - {b_any}
"#,
            a_any = act_any("a-any"),
            b_own = act("b-own"),
            b_any = act_any("b-any"),
        ),
    );
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(4);
    assert_eq!(
        order(&sb),
        ["b-own", "b-bad", "b-any", "a-any", "undo for b"]
    );
    let rollback = rollback_log(&sb, "tr-1", "build", "b");
    let steps = lines_starting(&rollback, "step ");
    assert_eq!(steps.len(), 6, "{rollback}");
    assert_eq!(
        steps[1],
        "step 2: action `sh -c echo b-bad >> order.log; exit 7` of task b: failed: sh exited with code 7"
    );
    for (n, step) in steps.iter().enumerate().filter(|(n, _)| *n != 1) {
        assert!(step.ends_with(": ok"), "step {}: {step}", n + 1);
    }
    assert_eq!(steps[5], "step 6: flow-level rollback: ok");

    let doc = status_json(&sb, "tr-1");
    assert_eq!(doc["status"], "rolled_back");
    let reason = doc["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("these steps failed")
            && reason.contains("action `sh -c echo b-bad >> order.log; exit 7` of task b"),
        "{reason}"
    );
    let failed: Vec<_> = decisions(task(&doc, "b"))
        .into_iter()
        .filter(|d| d.0 == "rollback_step" && d.2.starts_with("failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].2, "failed: sh exited with code 7");
}

// ---------------------------------------------------------------------------------------
// 4. Retry.

#[test]
fn policies_retry_when_filters_classes_a_class_not_listed_is_not_retried() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: rw
on_failure:
  retry: { retries: 2, when: [transient], delay: 10ms, backoff: fixed, jitter: false }
  then: ignore
phases:
  - name: build
    tasks:
      - name: exits
        command: { run: [sh, -c, "echo run >> exits.runs; exit 1"] }
      - name: hangs
        command: { run: [sh, -c, "echo run >> hangs.runs; exec sleep 5"], timeout: 100ms }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(0);
    let doc = status_json(&sb, "rw-1");
    let exits = task(&doc, "exits");
    assert_eq!(exits["status"], "ignored");
    assert_eq!(attempts(exits), 1);
    assert_eq!(
        decisions(exits),
        [(
            "ignore".to_string(),
            "release: on_failure.then = ignore".to_string(),
            "task_failed is not retried by this policy".to_string()
        )]
    );
    assert_eq!(sb.read("exits.runs").lines().count(), 1);

    let hangs = task(&doc, "hangs");
    assert_eq!(hangs["status"], "ignored");
    assert_eq!(hangs["error_class"], "timeout");
    assert_eq!(attempts(hangs), 3);
    assert_eq!(decision_kinds(hangs), ["retry", "retry", "ignore"]);
    assert_eq!(sb.read("hangs.runs").lines().count(), 3);
}

#[test]
fn policies_retries_2_makes_3_attempts_and_logs_each_retry() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: rt
phases:
  - name: build
    tasks:
      - name: flaky
        command: { run: [sh, -c, "echo run >> flaky.runs; exit 1"] }
        on_failure:
          retry: { retries: 2, when: [task_failed], delay: 10ms, backoff: fixed, jitter: false }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(1);
    assert_eq!(sb.read("flaky.runs").lines().count(), 3);
    let log = log(&sb, "rt-1", "build", "flaky");
    assert_eq!(
        lines_starting(&log, "Retrying in "),
        [
            "Retrying in 10ms (attempt 2 of 3): task_failed: sh exited with code 1",
            "Retrying in 10ms (attempt 3 of 3): task_failed: sh exited with code 1",
        ],
        "{log}"
    );
    assert_eq!(lines_starting(&log, "=== attempt ").len(), 3, "{log}");
    let doc = status_json(&sb, "rt-1");
    let flaky = task(&doc, "flaky");
    assert_eq!(flaky["status"], "failed");
    assert_eq!(attempts(flaky), 3);
    let d = decisions(flaky);
    assert_eq!(
        d.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
        ["retry", "retry", "pause"]
    );
    assert_eq!(d[0].1, "task flaky: on_failure.retry");
    assert_eq!(d[2].2, "2 of 2 retries used");
}

#[test]
fn policies_retry_budget_1_stops_the_second_retry() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: rb
retry_budget: 1
on_failure:
  retry: { retries: 3, when: [task_failed], delay: 10ms, backoff: fixed, jitter: false }
  then: skip
phases:
  - name: build
    tasks:
      - { name: one, command: { run: [sh, -c, "echo run >> one.runs; exit 1"] } }
      - { name: two, command: { run: [sh, -c, "echo run >> two.runs; exit 1"] } }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(0);
    assert_eq!(sb.read("one.runs").lines().count(), 2);
    assert_eq!(sb.read("two.runs").lines().count(), 1);
    let doc = status_json(&sb, "rb-1");
    for (name, kinds) in [("one", vec!["retry", "skip"]), ("two", vec!["skip"])] {
        let t = task(&doc, name);
        assert_eq!(t["status"], "skipped");
        assert_eq!(decision_kinds(t), kinds, "{t:#}");
        let last = decisions(t).pop().unwrap();
        assert_eq!(last.2, "the release's retry budget of 1 is used up");
    }
}

#[test]
fn policies_nearest_policy_wins_as_a_whole_task_over_phase_over_release() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: np
on_failure:
  retry: { retries: 2, when: [task_failed], delay: 10ms, backoff: fixed, jitter: false }
  then: ignore
phases:
  - name: one
    on_failure: { then: skip }
    tasks:
      - { name: by-phase, command: { run: [sh, -c, "exit 1"] } }
      - name: by-task
        command: { run: [sh, -c, "exit 1"] }
        on_failure:
          retry: { retries: 1, when: [task_failed], delay: 10ms, backoff: fixed, jitter: false }
          then: ignore
  - name: two
    tasks:
      - { name: by-release, command: { run: [sh, -c, "exit 1"] } }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(0);
    let doc = status_json(&sb, "np-1");
    let cases = [
        // The phase's policy has no retry: the release's retry is not merged in.
        (
            "by-phase",
            "skipped",
            1,
            "phase one: on_failure.then = skip",
        ),
        (
            "by-task",
            "ignored",
            2,
            "task by-task: on_failure.then = ignore",
        ),
        (
            "by-release",
            "ignored",
            3,
            "release: on_failure.then = ignore",
        ),
    ];
    for (name, status, n, rule) in cases {
        let t = task(&doc, name);
        assert_eq!(t["status"], status, "{name}");
        assert_eq!(attempts(t), n, "{name}");
        assert_eq!(decisions(t).pop().unwrap().1, rule, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// 6. SIGKILL and resume.

#[test]
fn policies_sigkill_during_a_retry_wait_then_resume_continues_the_same_schedule() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: kw
phases:
  - name: build
    tasks:
      - name: flaky
        command: { run: [sh, -c, "echo run >> flaky.runs; test -f fixed"] }
        on_failure:
          retry: { retries: 3, when: [task_failed], delay: 3s, backoff: fixed, jitter: false }
      - { name: after, command: { run: [sh, -c, "echo after >> ran.log"] } }
"#,
    );
    let mut runner = sb.spawn(&["run", "p.yaml"]);
    let mut retry_at = None;
    let mut last = String::new();
    let waiting = wait_until(20, || {
        let out = sb.run(&["status", "kw-1", "--json"]);
        last = format!("{out:?}");
        let Ok(doc) = serde_json::from_str::<Value>(&out.stdout) else {
            return false;
        };
        let t = task(&doc, "flaky");
        if t["status"] == "waiting_retry" {
            retry_at = t["retry_at"].as_i64();
            return true;
        }
        false
    });
    assert!(waiting, "the task never waited for its retry: {last}");
    runner.kill().expect("SIGKILL the runner");
    runner.wait().expect("reap the runner");
    let retry_at = retry_at.expect("retry_at stored");

    let doc = status_json(&sb, "kw-1");
    let t = task(&doc, "flaky");
    assert_eq!(t["status"], "waiting_retry");
    assert_eq!(decision_kinds(t), ["retry"]);
    assert_eq!(sb.read("flaky.runs").lines().count(), 1);

    sb.write("fixed", "");
    let out = sb.run(&["resume", "kw-1"]);
    out.expect_code(0);
    assert_eq!(
        sb.read("flaky.runs").lines().count(),
        2,
        "the first attempt ran again, or the second never"
    );
    assert_eq!(ran(&sb), ["after"]);
    let doc = status_json(&sb, "kw-1");
    let t = task(&doc, "flaky");
    assert_eq!(t["status"], "completed");
    let history = t["attempt_history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{t:#}");
    assert_eq!(history[0]["number"], 1);
    assert_eq!(history[0]["status"], "failed");
    assert_eq!(history[1]["number"], 2);
    assert_eq!(history[1]["status"], "succeeded");
    // The schedule made before the kill holds: attempt 2 waited for its stored time.
    let started = history[1]["started_at"].as_i64().unwrap();
    assert!(
        started >= retry_at,
        "attempt 2 started at {started}, before its time {retry_at}"
    );
    assert_eq!(decision_kinds(t), ["retry"]);
    let log = log(&sb, "kw-1", "build", "flaky");
    assert_eq!(
        lines_starting(&log, "=== attempt "),
        ["=== attempt 1 ===", "=== attempt 2 ==="],
        "{log}"
    );
    assert_eq!(lines_starting(&log, "Retrying in ").len(), 1, "{log}");
}

#[test]
fn policies_sigkill_half_way_through_a_rollback_then_resume_finishes_it_without_repeats() {
    let sb = Sandbox::new();
    let root = sb.path().display().to_string();
    sb.write_script(
        "block.sh",
        &format!(
            "#!/bin/sh\necho $$ > '{root}/block.pid'\nwhile [ ! -f '{root}/go' ]; do sleep 0.05; done\necho second >> '{root}/order.log'\n"
        ),
    );
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: kr
phases:
  - name: build
    tasks:
      - name: a
        command: {{ run: [sh, -c, "true"] }}
        on_failure: {{ actions: [{a_any}] }}
      - name: b
        command: {{ run: [sh, -c, "exit 1"] }}
        on_failure:
          then: rollback
          actions: [{first}, {{ script: block.sh }}]
"#,
            a_any = act_any("a-any"),
            first = act("first"),
        ),
    );
    let mut runner = sb.spawn(&["run", "p.yaml"]);
    assert!(
        wait_until(20, || sb.exists("block.pid")
            && !sb.read("block.pid").trim().is_empty()),
        "the blocking action never started"
    );
    assert_eq!(order(&sb), ["first"]);
    runner.kill().expect("SIGKILL the runner");
    runner.wait().expect("reap the runner");
    let pid: i32 = sb.read("block.pid").trim().parse().unwrap();
    // SAFETY: signal 0 only checks existence.
    let gone = wait_until(10, || unsafe { libc::kill(pid, 0) } != 0);
    assert!(gone, "the action {pid} outlived the killed runner");

    let doc = status_json(&sb, "kr-1");
    let steps: Vec<_> = decisions(task(&doc, "b"))
        .into_iter()
        .filter(|d| d.0 == "rollback_step")
        .collect();
    assert_eq!(steps.len(), 1, "{steps:#?}");

    sb.write("go", "");
    let out = sb.run(&["resume", "kr-1"]);
    out.expect_code(4);
    assert_eq!(order(&sb), ["first", "second", "a-any"]);
    let doc = status_json(&sb, "kr-1");
    assert_eq!(doc["status"], "failed");
    let b = task(&doc, "b");
    assert_eq!(b["status"], "rolled_back");
    assert_eq!(attempts(b), 1, "the failed attempt ran again: {b:#}");
    let step_decisions: Vec<String> = decisions(b)
        .into_iter()
        .filter(|d| d.0 == "rollback_step")
        .map(|d| d.1)
        .collect();
    assert_eq!(step_decisions.len(), 4, "{step_decisions:#?}");
    let rollback = rollback_log(&sb, "kr-1", "build", "b");
    let steps = lines_starting(&rollback, "step ");
    assert_eq!(steps.len(), 4, "{rollback}");
    assert!(
        steps[0].starts_with("step 1: action `sh -c echo first"),
        "{rollback}"
    );
    assert!(steps[1].starts_with("step 2: action `"), "{rollback}");
    assert!(steps[1].contains("block.sh"), "{rollback}");
    assert!(
        steps[2].starts_with("step 3: any_task action"),
        "{rollback}"
    );
    assert_eq!(steps[3], "step 4: backend rollback of task b: ok");
    let log = log(&sb, "kr-1", "build", "b");
    let resumed = log
        .find("Resuming the interrupted `rollback` decision")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(log.find("Going to rollback").unwrap() < resumed, "{log}");
    // The step that ended before the kill is not run again; the one killed runs again.
    assert_eq!(
        log.matches("$ sh -c echo first >> order.log").count(),
        1,
        "{log}"
    );
    assert_eq!(log[resumed..].matches("block.sh").count(), 1, "{log}");
}
