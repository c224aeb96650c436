//! `relflow plan`: effective policies and simulated failures, computed by the engine's own
//! decision function, running nothing.

use crate::harness::Sandbox;

const PIPELINE: &str = r#"
name: planned
on_failure: { then: pause }
rollback: { undo_completed: true, run: [touch, flow-rollback-ran] }
phases:
  - name: deploy
    on_failure: { retry: { retries: 2, delay: 1s, jitter: false }, then: rollback }
    tasks:
      - { name: first, command: { run: [touch, first-ran] } }
      - name: smoke
        command: { run: [touch, smoke-ran] }
        on_failure:
          retry: { retries: 1, when: [timeout], delay: 5s, jitter: false }
          then: rollback_release
      - name: notify
        command: { run: [touch, notify-ran] }
        on_failure: { then: skip }
"#;

#[test]
fn plan_shows_the_nearest_policy_of_each_task() {
    let sb = Sandbox::new();
    sb.write("p.yaml", PIPELINE);
    let out = sb.run(&["plan", "p.yaml"]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("first (command: touch first-ran) — on failure [phase deploy]: retry 2×"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "smoke (command: touch smoke-ran) — on failure [task smoke]: retry 1× on [timeout]"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("then rollback_release"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("notify (command: touch notify-ran) — on failure [task notify]: skip"),
        "{}",
        out.stdout
    );
    assert!(
        !sb.exists("first-ran") && !sb.exists(".relflow"),
        "plan ran something"
    );
}

#[test]
fn simulated_failures_follow_the_policy_and_predict_the_exit_code() {
    let sb = Sandbox::new();
    sb.write("p.yaml", PIPELINE);
    // The phase policy retries transient classes only (its `when` defaults to transient).
    let out = sb.run(&["plan", "p.yaml", "--simulate", "first=timeoutx2"]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("attempt 1 fails (timeout) → retry in 1s"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("attempt 2 fails (timeout) → retry in 2s"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("attempt 3 succeeds"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("result: the release completes (exit 0)"),
        "{}",
        out.stdout
    );

    let out = sb.run(&["plan", "p.yaml", "--simulate", "smoke=task_failed"]);
    assert!(out.stdout.contains("attempt 1 fails (task_failed) → rollback_release [task smoke: on_failure.then = rollback_release: task_failed is not retried by this policy]"), "{}", out.stdout);
    assert!(
        out.stdout.contains("result: release rolled back (exit 4)"),
        "{}",
        out.stdout
    );

    let out = sb.run(&[
        "plan",
        "p.yaml",
        "--simulate",
        "notify=timeoutx9",
        "--simulate",
        "first=timeoutx3",
    ]);
    assert!(
        out.stdout
            .contains("result: task first rolled back; release failed (exit 4)"),
        "{}",
        out.stdout
    );
    assert!(
        !sb.exists("first-ran") && !sb.exists(".relflow"),
        "plan ran something"
    );
}

#[test]
fn bad_simulations_are_input_errors() {
    let sb = Sandbox::new();
    sb.write("p.yaml", PIPELINE);
    let out = sb.run(&["plan", "p.yaml", "--simulate", "nope=timeout"]);
    out.expect_code(2);
    assert!(out.stderr.contains("has no task `nope`"), "{}", out.stderr);
    let out = sb.run(&["plan", "p.yaml", "--simulate", "first=flaky"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("unknown error class `flaky`"),
        "{}",
        out.stderr
    );
}

#[test]
fn plan_json_has_each_task_policy_and_the_simulated_outcome() {
    let sb = Sandbox::new();
    sb.write("p.yaml", PIPELINE);
    let out = sb.run(&["plan", "p.yaml", "--json", "--simulate", "smoke=timeoutx2"]);
    out.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["format"], 1);
    assert_eq!(doc["pipeline"], "planned");
    let tasks = &doc["phases"][0]["tasks"];
    assert_eq!(tasks[0]["name"], "first");
    assert_eq!(tasks[0]["kind"], "command");
    assert_eq!(tasks[0]["policy"]["source"], "phase deploy");
    assert_eq!(tasks[0]["policy"]["retry"]["retries"], 2);
    assert_eq!(tasks[0]["policy"]["retry"]["delay"], "1s");
    assert_eq!(tasks[0]["policy"]["then"], "rollback");
    assert_eq!(tasks[1]["policy"]["source"], "task smoke");
    assert_eq!(
        tasks[1]["policy"]["retry"]["when"],
        serde_json::json!(["timeout"])
    );
    assert_eq!(tasks[2]["policy"]["then"], "skip");
    let sim = &doc["simulation"];
    assert_eq!(sim["exit_code"], 4);
    assert_eq!(sim["outcome"], "release rolled back");
    let steps = sim["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["step"], "failing");
    assert_eq!(steps[1]["step"], "retry");
    assert_eq!(steps[1]["delay"], "5s");
    assert_eq!(steps[2]["step"], "then");
    assert_eq!(steps[2]["action"], "rollback_release");
    assert!(
        !sb.exists("first-ran") && !sb.exists(".relflow"),
        "plan ran something"
    );
    let out = sb.run(&["plan", "p.yaml", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["simulation"], serde_json::Value::Null);
}

/// A CI job that forgets `--var version` is stopped by `plan` as `run` would stop it.
#[test]
fn plan_refuses_a_required_variable_without_a_value() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: p\nvariables:\n  version: { required: true }\nphases:\n  - name: a\n    tasks:\n      - { name: t, command: { run: [echo, \"${version}\"] } }\n",
    );
    let out = sb.run(&["plan", "p.yaml"]);
    out.expect_code(2);
    assert_eq!(
        out.stderr,
        "error: variable `version` is declared `required: true` and has no value: pass --var version=...\n"
    );
    let out = sb.run(&["plan", "p.yaml", "--var", "versoin=2.3"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("(did you mean `version`?)"),
        "{}",
        out.stderr
    );
    let out = sb.run(&["plan", "p.yaml", "--var", "version=2.3"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("variables: version=2.3"),
        "{}",
        out.stdout
    );
}
