//! Customized actions: triggers, and their order in a rollback.

use super::*;

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
    // c is a command task: no backend rollback step for it.
    assert_eq!(steps.len(), 3, "{steps:#?}");
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
    assert_eq!(steps.len(), 5, "{rollback}");
    assert_eq!(
        steps[1],
        "step 2: action `sh -c echo b-bad >> order.log; exit 7` of task b: failed: sh exited with code 7"
    );
    for (n, step) in steps.iter().enumerate().filter(|(n, _)| *n != 1) {
        assert!(step.ends_with(": ok"), "step {}: {step}", n + 1);
    }
    assert_eq!(steps[4], "step 5: flow-level rollback: ok");

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
        .filter(|d| d.0 == "rollback_step" && d.2.contains(": failed: "))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(
        failed[0].2,
        "action `sh -c echo b-bad >> order.log; exit 7` of task b: failed: sh exited with code 7"
    );
}
