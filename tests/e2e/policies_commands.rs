//! The release manager's commands on a halted release, through the CLI: `retry`, `skip`,
//! `abort [--rollback]`, `restart-phase [--from-task] [--var] [--no-resume]`, `resume`, and
//! their refusals (exit 2 with a clear message) when the release's state does not allow them.

use crate::harness::Sandbox;
use crate::policies::{
    act, act_any, attempts, decision_kinds, decisions, labels, lines_starting, log, order, phase,
    ran, rollback_log, status_json, task, task_in,
};

/// build: `a` (any_task action `a-any`); `b` fails until `fixed` exists (1 policy retry,
/// then pause; own action `b-own`); `c`. deploy: `d`.
const HALTING: &str = r#"
name: cm
rollback: { run: [sh, -c, "echo flow >> order.log"] }
phases:
  - name: build
    tasks:
      - name: a
        command: { run: [sh, -c, "echo a >> ran.log"] }
        on_failure: { actions: [A_ANY] }
      - name: b
        command: { run: [sh, -c, "echo b >> ran.log; test -f fixed"] }
        on_failure:
          retry: { retries: 1, when: [task_failed], delay: 10ms, backoff: fixed, jitter: false }
          actions: [B_OWN]
      - { name: c, command: { run: [sh, -c, "echo c >> ran.log"] } }
  - name: deploy
    tasks:
      - { name: d, command: { run: [sh, -c, "echo d >> ran.log"] } }
"#;

/// Runs [`HALTING`] until it halts on `b` (exit 1, two attempts of `b`).
fn halted(sb: &Sandbox) {
    let yaml = HALTING
        .replace("A_ANY", &act_any("a-any"))
        .replace("B_OWN", &act("b-own"));
    sb.write("p.yaml", &yaml);
    sb.run(&["run", "p.yaml"]).expect_code(1);
    assert_eq!(ran(sb), ["a", "b", "b"]);
    assert_eq!(order(sb), ["b-own"]);
    let doc = status_json(sb, "cm-1");
    assert_eq!(doc["status"], "failed");
    assert_eq!(task(&doc, "b")["status"], "failed");
}

/// What the release records: its status document and its events.
fn recorded(sb: &Sandbox, release: &str) -> (serde_json::Value, String) {
    (
        status_json(sb, release),
        sb.read(&format!(".relflow/releases/{release}/events.jsonl")),
    )
}

#[track_caller]
fn refused(sb: &Sandbox, args: &[&str], message: &str) {
    let out = sb.run(args);
    out.expect_code(2);
    assert!(
        out.stderr.contains(message),
        "`relflow {}`: expected `{message}` in:\n{}",
        args.join(" "),
        out.stderr
    );
}

#[test]
fn policies_commands_retry_succeeds_the_second_time_and_the_release_completes() {
    let sb = Sandbox::new();
    halted(&sb);
    sb.write("fixed", "");
    let out = sb.run(&["retry", "cm-1"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("release cm-1 completed"),
        "{}",
        out.stdout
    );
    assert_eq!(ran(&sb), ["a", "b", "b", "b", "c", "d"]);
    let doc = status_json(&sb, "cm-1");
    assert_eq!(doc["status"], "completed");
    let b = task(&doc, "b");
    assert_eq!(b["status"], "completed");
    assert_eq!(attempts(b), 3);
    assert_eq!(b["attempt_history"][2]["status"], "succeeded");
    let retry = decisions(b)
        .into_iter()
        .find(|d| d.0 == "retry" && d.1.starts_with("relflow retry by "))
        .unwrap_or_else(|| panic!("the person's retry is not recorded: {b:#}"));
    assert_eq!(retry.2, "");
    assert_eq!(
        order(&sb),
        ["b-own"],
        "an action ran for a task that passed"
    );
}

#[test]
fn policies_commands_retry_that_fails_again_halts_exit_1_without_policy_retries() {
    let sb = Sandbox::new();
    halted(&sb);
    let out = sb.run(&["retry", "cm-1", "--task", "b"]);
    out.expect_code(1);
    // One attempt, although the policy still has `retries: 1`.
    assert_eq!(ran(&sb), ["a", "b", "b", "b"]);
    let doc = status_json(&sb, "cm-1");
    assert_eq!(doc["status"], "failed");
    let b = task(&doc, "b");
    assert_eq!(b["status"], "failed");
    assert_eq!(attempts(b), 3);
    let d = decisions(b);
    let last = d.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str()),
        ("pause", "relflow retry: one attempt ordered by a person")
    );
    assert_eq!(last.2, "task_failed: sh exited with code 1");
    let log = log(&sb, "cm-1", "build", "b");
    assert_eq!(lines_starting(&log, "Retrying in ").len(), 1, "{log}");
    assert_eq!(lines_starting(&log, "=== attempt ").len(), 3, "{log}");
    assert_eq!(task(&doc, "c")["status"], "planned");
}

#[test]
fn policies_commands_skip_skips_the_failed_task_and_the_flow_goes_on() {
    let sb = Sandbox::new();
    halted(&sb);
    let out = sb.run(&["skip", "cm-1", "--task", "b"]);
    out.expect_code(0);
    assert_eq!(ran(&sb), ["a", "b", "b", "c", "d"]);
    let doc = status_json(&sb, "cm-1");
    assert_eq!(doc["status"], "completed");
    let b = task(&doc, "b");
    assert_eq!(b["status"], "skipped");
    assert_eq!(attempts(b), 2);
    assert!(
        decisions(b)
            .iter()
            .any(|d| d.0 == "skip" && d.1.starts_with("relflow skip by ")),
        "{b:#}"
    );
}

#[test]
fn policies_commands_abort_cancels_the_remaining_tasks_exit_3_without_a_rollback() {
    let sb = Sandbox::new();
    halted(&sb);
    let out = sb.run(&["abort", "cm-1"]);
    out.expect_code(3);
    let doc = status_json(&sb, "cm-1");
    assert_eq!(doc["status"], "aborted");
    assert_eq!(task(&doc, "b")["status"], "failed");
    assert_eq!(task(&doc, "c")["status"], "cancelled");
    assert_eq!(task(&doc, "d")["status"], "cancelled");
    assert_eq!(task(&doc, "a")["status"], "completed");
    assert_eq!(
        order(&sb),
        ["b-own"],
        "abort without --rollback ran actions"
    );
    assert!(!sb.exists(".relflow/releases/cm-1/build/b/rollback.log"));
    assert_eq!(ran(&sb), ["a", "b", "b"]);
}

#[test]
fn policies_commands_abort_with_rollback_runs_the_rollback_order_then_cancels() {
    let sb = Sandbox::new();
    halted(&sb);
    let out = sb.run(&["abort", "cm-1", "--rollback"]);
    out.expect_code(3);
    // b-own once at the pause, then the rollback order: b's actions, a's any_task action,
    // the flow-level run (b is a command task: it has no backend rollback).
    assert_eq!(order(&sb), ["b-own", "b-own", "a-any", "flow"]);
    let steps = lines_starting(&rollback_log(&sb, "cm-1", "build", "b"), "step ");
    assert_eq!(steps.len(), 3, "{steps:#?}");
    assert!(
        steps[0].starts_with("step 1: action `sh -c echo b-own"),
        "{steps:#?}"
    );
    assert!(
        steps[1].starts_with("step 2: any_task action `sh -c echo a-any"),
        "{steps:#?}"
    );
    assert_eq!(steps[2], "step 3: flow-level rollback: ok");
    let log = log(&sb, "cm-1", "build", "b");
    assert!(
        log.contains("Going to rollback (relflow abort --rollback by "),
        "{log}"
    );
    let doc = status_json(&sb, "cm-1");
    assert_eq!(doc["status"], "aborted");
    let reason = doc["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("after a rollback"), "{reason}");
    assert_eq!(task(&doc, "c")["status"], "cancelled");
    assert_eq!(task(&doc, "d")["status"], "cancelled");
    assert_eq!(ran(&sb), ["a", "b", "b"]);
}

/// build: `one`, `two`, then `three` that passes only with `mode=good`. deploy: `four`.
const RESTARTABLE: &str = r#"
name: rp
variables: { mode: bad }
phases:
  - name: build
    tasks:
      - { name: one, command: { run: [sh, -c, "echo one-${mode} >> ran.log"] } }
      - { name: two, command: { run: [sh, -c, "echo two-${mode} >> ran.log"] } }
      - { name: three, command: { run: [sh, -c, "echo three-${mode} >> ran.log; test ${mode} = good"] } }
  - name: deploy
    tasks:
      - { name: four, command: { run: [sh, -c, "echo four-${mode} >> ran.log"] } }
"#;

#[test]
fn policies_commands_restart_phase_from_task_skips_the_tasks_before_it() {
    let sb = Sandbox::new();
    sb.write("p.yaml", RESTARTABLE);
    sb.run(&["run", "p.yaml"]).expect_code(1);
    let out = sb.run(&[
        "restart-phase",
        "rp-1",
        "build",
        "--from-task",
        "two",
        "--var",
        "mode=good",
    ]);
    out.expect_code(0);
    assert_eq!(
        ran(&sb),
        [
            "one-bad",
            "two-bad",
            "three-bad",
            "two-good",
            "three-good",
            "four-good"
        ]
    );
    let doc = status_json(&sb, "rp-1");
    assert_eq!(doc["status"], "completed");
    assert_eq!(labels(&doc), ["build", "build#2", "deploy"]);
    assert_eq!(phase(&doc, "build")["status"], "failed");
    assert_eq!(phase(&doc, "build")["variables"]["mode"], "bad");
    assert_eq!(phase(&doc, "build#2")["status"], "completed");
    assert_eq!(phase(&doc, "build#2")["variables"]["mode"], "good");
    assert_eq!(task_in(&doc, "build", "three")["status"], "failed");
    assert_eq!(task_in(&doc, "build#2", "one")["status"], "skipped");
    assert_eq!(task_in(&doc, "build#2", "two")["status"], "completed");
    assert_eq!(task_in(&doc, "build#2", "three")["status"], "completed");
    assert_eq!(task(&doc, "four")["status"], "completed");
    // The first run's logs stay.
    assert!(log(&sb, "rp-1", "build", "three").contains("three-bad"));
}

#[test]
fn policies_commands_restart_phase_no_resume_pauses_exit_5_then_resume_completes() {
    let sb = Sandbox::new();
    sb.write("p.yaml", RESTARTABLE);
    sb.run(&["run", "p.yaml"]).expect_code(1);
    let out = sb.run(&[
        "restart-phase",
        "rp-1",
        "build",
        "--var",
        "mode=good",
        "--no-resume",
    ]);
    out.expect_code(5);
    assert_eq!(ran(&sb), ["one-bad", "two-bad", "three-bad"]);
    let doc = status_json(&sb, "rp-1");
    assert_eq!(doc["status"], "paused");
    assert_eq!(labels(&doc), ["build", "build#2", "deploy"]);
    assert_eq!(phase(&doc, "build#2")["status"], "planned");
    assert_eq!(task_in(&doc, "build#2", "one")["status"], "planned");

    sb.run(&["resume", "rp-1"]).expect_code(0);
    assert_eq!(
        ran(&sb),
        [
            "one-bad",
            "two-bad",
            "three-bad",
            "one-good",
            "two-good",
            "three-good",
            "four-good"
        ]
    );
    let doc = status_json(&sb, "rp-1");
    assert_eq!(doc["status"], "completed");
    assert_eq!(phase(&doc, "build#2")["variables"]["mode"], "good");
}

#[test]
fn policies_commands_refuse_with_exit_2_on_a_halted_release() {
    let sb = Sandbox::new();
    halted(&sb);
    let before = recorded(&sb, "cm-1");
    refused(
        &sb,
        &["skip", "cm-1", "--task", "a"],
        "task `a` is completed: `skip` applies to a task that is failed or rolled_back",
    );
    refused(
        &sb,
        &["retry", "cm-1", "--task", "a"],
        "task `a` is completed: `retry` applies to a task that is failed",
    );
    refused(
        &sb,
        &["skip", "cm-1", "--task", "nope"],
        "release cm-1 has no task `nope`",
    );
    refused(
        &sb,
        &["restart-phase", "cm-1", "deploy"],
        "phase `deploy` comes after the current phase `build`",
    );
    refused(
        &sb,
        &["restart-phase", "cm-1", "nope"],
        "pipeline cm has no phase `nope`",
    );
    refused(
        &sb,
        &["restart-phase", "cm-1", "build", "--from-task", "nope"],
        "phase `build` has no task `nope`",
    );
    refused(
        &sb,
        &["resume", "cm-1"],
        "`resume` continues paused or interrupted releases",
    );
    assert_eq!(
        recorded(&sb, "cm-1"),
        before,
        "a refused command changed the release"
    );
    assert_eq!(ran(&sb), ["a", "b", "b"]);
}

#[test]
fn policies_commands_refuse_with_exit_2_on_a_completed_release() {
    let sb = Sandbox::new();
    halted(&sb);
    sb.write("fixed", "");
    sb.run(&["retry", "cm-1"]).expect_code(0);
    let before = recorded(&sb, "cm-1");
    refused(
        &sb,
        &["retry", "cm-1"],
        "release cm-1 is completed: `retry` needs a release that is failed",
    );
    refused(
        &sb,
        &["skip", "cm-1", "--task", "b"],
        "release cm-1 is completed: `skip` needs a release that is failed",
    );
    refused(
        &sb,
        &["abort", "cm-1"],
        "release cm-1 is completed: `abort` needs a release that is",
    );
    refused(
        &sb,
        &["abort", "cm-1", "--rollback"],
        "release cm-1 is completed: `abort` needs a release that is",
    );
    refused(
        &sb,
        &["restart-phase", "cm-1", "build"],
        "release cm-1 is completed: `restart-phase` needs a release that is",
    );
    refused(
        &sb,
        &["resume", "cm-1"],
        "release cm-1 is completed; there is nothing to resume",
    );
    assert_eq!(
        recorded(&sb, "cm-1"),
        before,
        "a refused command changed the release"
    );
    assert_eq!(order(&sb), ["b-own"]);
}

#[test]
fn policies_commands_refuse_with_exit_2_on_an_aborted_or_rolled_back_release() {
    let sb = Sandbox::new();
    halted(&sb);
    sb.run(&["abort", "cm-1"]).expect_code(3);
    for args in [
        vec!["retry", "cm-1"],
        vec!["skip", "cm-1", "--task", "b"],
        vec!["abort", "cm-1"],
        vec!["restart-phase", "cm-1", "build"],
    ] {
        refused(&sb, &args, "release cm-1 is aborted");
    }

    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: rr
rollback: { run: [sh, -c, "true"] }
phases:
  - name: build
    tasks:
      - name: t
        command: { run: [sh, -c, "exit 1"] }
        on_failure: { then: rollback_release }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(4);
    for args in [
        vec!["retry", "rr-1"],
        vec!["skip", "rr-1", "--task", "t"],
        vec!["abort", "rr-1", "--rollback"],
        vec!["restart-phase", "rr-1", "build"],
    ] {
        refused(&sb, &args, "release rr-1 is rolled_back");
    }
    let doc = status_json(&sb, "rr-1");
    assert_eq!(doc["status"], "rolled_back");
    assert_eq!(decision_kinds(task(&doc, "t"))[0], "rollback_release");
}
