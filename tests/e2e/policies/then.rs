//! Each `then`: pause, skip, ignore, rollback, rollback_release, cancel, fix_forward.

use super::*;

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
    // b is a command task: nothing of it to roll back, so no backend step is reported.
    assert_eq!(steps.len(), 3, "{steps:#?}");
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
    let kinds = decision_kinds(b);
    assert_eq!(kinds[0], "rollback");
    assert_eq!(kinds.iter().filter(|k| *k == "rollback_step").count(), 3);
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
    // b is a command task: no backend rollback step for it.
    assert_eq!(steps.len(), 4, "{steps:#?}");
    assert_eq!(steps[3], "step 4: flow-level rollback: ok");
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

/// The same restart with `max: 2`.
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
