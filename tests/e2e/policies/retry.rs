//! Retries: `when`, count, budget, and the nearest policy.

use super::*;

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
