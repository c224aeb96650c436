//! SIGKILL during a retry wait or half-way through a rollback, then `resume`.

use super::*;

/// The runner kills itself right after the retry is scheduled (failpoint
/// `store.retry_scheduled`): deterministic whatever the machine's load.
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
    let crashed = sb.run_crashing_at(&["run", "p.yaml"], "store.retry_scheduled", 1);
    assert_eq!(
        crashed.code, -1,
        "the failpoint killed the runner: {crashed:?}"
    );
    let doc = status_json(&sb, "kw-1");
    // RFC 3339 times of one format and zone order as text does.
    let retry_at = task(&doc, "flaky")["retry_at"].as_str().map(str::to_string);
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
    let started = history[1]["started_at"].as_str().unwrap();
    assert!(
        started >= retry_at.as_str(),
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
    // b is a command task: it has no deployment, so no backend rollback step.
    assert_eq!(step_decisions.len(), 3, "{step_decisions:#?}");
    let rollback = rollback_log(&sb, "kr-1", "build", "b");
    let steps = lines_starting(&rollback, "step ");
    assert_eq!(steps.len(), 3, "{rollback}");
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
