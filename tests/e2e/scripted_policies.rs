//! Scripted failure policies (Rhai) through the CLI: the three example pipelines under
//! `pipelines/` with their policies in `pipelines/policies/`, the bounds on what a script
//! may do (retry budget, one restart per task, values that already failed), scripts that
//! break at run time, masked secrets, and `relflow plan --simulate` showing a script's choice.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::Sandbox;
use crate::policies::{
    attempts, decision_kinds, decisions, labels, log, phase, status_json, task, task_in,
};
use crate::tree;

const RETRY: &str = "pipelines/scripted-retry.yaml";
const RATE_LIMIT: &str = "pipelines/scripted-rate-limit.yaml";
const FIX_FORWARD: &str = "pipelines/scripted-fix-forward.yaml";

/// A sandbox with the repository's `pipelines/` copied in.
fn with_examples() -> Sandbox {
    let sb = Sandbox::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    tree::copy_dir(&repo, &sb.path().join("pipelines"));
    sb
}

fn rule_of(policy: &str, task: &str) -> String {
    format!("task {task}: on_failure.script policies/{policy}")
}

// ---------------------------------------------------------------------------------------
// pipelines/scripted-retry.yaml: retry only transient failures, 3 at most, then roll back.

#[test]
fn script_retry_example_retries_transient_exits_then_completes() {
    let sb = with_examples();
    let out = sb.run(&["run", RETRY, "--var", "retry_base_secs=0"]);
    out.expect_code(0);
    let doc = status_json(&sb, "scripted-retry-1");
    assert_eq!(doc["status"], "completed");
    let publish = task(&doc, "publish");
    assert_eq!(publish["status"], "completed");
    assert_eq!(attempts(publish), 3);
    let made = decisions(publish);
    assert_eq!(decision_kinds(publish), ["retry", "retry"]);
    assert_eq!(made[0].1, rule_of("retry-transient.rhai", "publish"));
    assert_eq!(
        made[0].2,
        "script policies/retry-transient.rhai returned retry_after(\"0s\"): transient \
         (task_failed, exit 75): retry 1 of 3 in 0s"
    );
    let log = log(&sb, "scripted-retry-1", "publish", "publish");
    assert!(
        log.contains("Policy: script policies/retry-transient.rhai returned retry_after(\"0s\")"),
        "{log}"
    );
    assert!(
        log.contains("Retrying in 0s (attempt 2): task_failed"),
        "{log}"
    );
    assert!(log.contains("publish attempt 3: published"), "{log}");
}

#[test]
fn script_retry_example_escalates_to_rollback_after_three_retries() {
    let sb = with_examples();
    let out = sb.run(&[
        "run",
        RETRY,
        "--var",
        "failures=9",
        "--var",
        "retry_base_secs=0",
    ]);
    out.expect_code(4);
    let doc = status_json(&sb, "scripted-retry-1");
    assert_eq!(doc["status"], "failed");
    let publish = task(&doc, "publish");
    assert_eq!(publish["status"], "rolled_back");
    assert_eq!(attempts(publish), 4);
    let kinds = decision_kinds(publish);
    assert_eq!(
        kinds[..4],
        ["retry", "retry", "retry", "rollback"],
        "{kinds:?}"
    );
    let rollback = &decisions(publish)[3];
    assert_eq!(
        rollback.2,
        "script policies/retry-transient.rhai returned rollback(): still failing after 4 \
         attempts: rolling back"
    );
    let log = log(&sb, "scripted-retry-1", "publish", "publish");
    assert!(log.contains("Going to rollback"), "{log}");
}

#[test]
fn script_retry_example_rolls_back_a_real_failure_at_once() {
    let sb = with_examples();
    let out = sb.run(&["run", RETRY, "--var", "exit_code=1"]);
    out.expect_code(4);
    let doc = status_json(&sb, "scripted-retry-1");
    let publish = task(&doc, "publish");
    assert_eq!(publish["status"], "rolled_back");
    assert_eq!(attempts(publish), 1);
    assert_eq!(
        decisions(publish)[0].2,
        "script policies/retry-transient.rhai returned rollback(): task_failed is not \
         transient: rolling back"
    );
}

// ---------------------------------------------------------------------------------------
// pipelines/scripted-rate-limit.yaml: wait the server's Retry-After.

#[test]
fn script_rate_limit_example_waits_the_servers_retry_after() {
    let sb = with_examples();
    let started = Instant::now();
    let out = sb.run(&["run", RATE_LIMIT]);
    out.expect_code(0);
    assert!(started.elapsed() >= Duration::from_secs(1), "did not wait");
    let doc = status_json(&sb, "scripted-rate-limit-1");
    let call = task(&doc, "notify-api");
    assert_eq!(call["status"], "completed");
    assert_eq!(attempts(call), 2);
    assert_eq!(decision_kinds(call), ["retry"]);
    assert_eq!(
        decisions(call)[0].2,
        "script policies/rate-limited.rhai returned retry_after(\"1s\"): rate limited: the \
         server asks to wait 1s"
    );
    let log = log(&sb, "scripted-rate-limit-1", "announce", "notify-api");
    assert!(log.contains("HTTP/1.1 429 Too Many Requests"), "{log}");
    assert!(log.contains("Retrying in 1s (attempt 2)"), "{log}");
    assert!(log.contains("HTTP/1.1 200 OK"), "{log}");
}

#[test]
fn script_rate_limit_example_pauses_on_other_errors() {
    let sb = with_examples();
    let out = sb.run(&["run", RATE_LIMIT, "--var", "status=500"]);
    out.expect_code(1);
    let doc = status_json(&sb, "scripted-rate-limit-1");
    assert_eq!(doc["status"], "failed");
    let call = task(&doc, "notify-api");
    assert_eq!(call["status"], "failed");
    assert_eq!(attempts(call), 1);
    assert_eq!(decision_kinds(call), ["pause"]);
    assert_eq!(
        decisions(call)[0].2,
        "script policies/rate-limited.rhai returned pause()"
    );
}

// ---------------------------------------------------------------------------------------
// pipelines/scripted-fix-forward.yaml: 2.2 → 2.3 once, else roll back.

#[test]
fn script_fix_forward_example_restarts_the_phase_with_the_next_patch() {
    let sb = with_examples();
    let out = sb.run(&["run", FIX_FORWARD]);
    out.expect_code(0);
    let doc = status_json(&sb, "scripted-fix-forward-1");
    assert_eq!(doc["status"], "completed");
    assert_eq!(doc["variables"]["version"], "2.3");
    assert_eq!(doc["variables"]["fixed_forward_from"], "2.2");
    assert_eq!(labels(&doc), ["release", "release#2"]);
    assert_eq!(phase(&doc, "release")["status"], "failed");
    let first = task_in(&doc, "release", "smoke");
    assert_eq!(first["status"], "failed");
    assert_eq!(
        decisions(first),
        [(
            "restart_phase".to_string(),
            rule_of("fix-forward-patch.rhai", "smoke"),
            "restart phase release with fixed_forward_from=2.2 version=2.3".to_string()
        )]
    );
    assert_eq!(task_in(&doc, "release#2", "smoke")["status"], "completed");
    let first_log = log(&sb, "scripted-fix-forward-1", "release", "smoke");
    assert!(
        first_log.contains(
            "Policy: script policies/fix-forward-patch.rhai returned restart_phase(#{ \
             fixed_forward_from: \"2.2\", version: \"2.3\" }): fixing forward from 2.2 to 2.3"
        ),
        "{first_log}"
    );
    let second_log = log(&sb, "scripted-fix-forward-1", "release#2", "smoke");
    assert!(
        second_log.contains("smoke test of PetPortal 2.3: ok"),
        "{second_log}"
    );
}

#[test]
fn script_fix_forward_example_rolls_back_when_the_next_patch_fails_too() {
    let sb = with_examples();
    let out = sb.run(&["run", FIX_FORWARD, "--var", "broken=2.2 2.3"]);
    out.expect_code(4);
    let doc = status_json(&sb, "scripted-fix-forward-1");
    assert_eq!(doc["status"], "failed");
    assert_eq!(labels(&doc), ["release", "release#2"]);
    let second = task_in(&doc, "release#2", "smoke");
    assert_eq!(second["status"], "rolled_back");
    assert_eq!(decision_kinds(second)[0], "rollback");
    assert_eq!(
        decisions(second)[0].2,
        "script policies/fix-forward-patch.rhai returned rollback(): 2.3 (fixed forward from \
         2.2) failed too"
    );
}

// ---------------------------------------------------------------------------------------
// Bounds the engine keeps whatever a script says.

/// A pipeline whose task `t` fails (exit 3) and is decided by `policies/p.rhai`.
fn failing_with_script(sb: &Sandbox, script: &str, extra_top: &str) {
    sb.write(
        "p.yaml",
        &format!(
            "name: sp\n{extra_top}variables: {{ version: \"2.2\" }}\nphases:\n  - name: build\n    \
             tasks:\n      - name: t\n        command: {{ run: [sh, -c, \"echo t $0; exit 3\", \
             \"${{version}}\"] }}\n        on_failure: {{ script: policies/p.rhai }}\n"
        ),
    );
    sb.write("policies/p.rhai", script);
}

#[test]
fn script_that_always_retries_stops_at_the_retry_budget() {
    let sb = Sandbox::new();
    failing_with_script(&sb, "retry_after(\"0s\")\n", "retry_budget: 2\n");
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(1);
    let doc = status_json(&sb, "sp-1");
    let t = task(&doc, "t");
    assert_eq!(t["status"], "failed");
    assert_eq!(attempts(t), 3);
    assert_eq!(decision_kinds(t), ["retry", "retry", "pause"]);
    assert_eq!(
        decisions(t)[2].2,
        "script policies/p.rhai returned retry_after(\"0s\"), but the release's retry budget \
         of 2 is used up"
    );
}

#[test]
fn script_restart_is_refused_for_a_failed_value_and_a_second_time() {
    // Same version again: refused at once.
    let sb = Sandbox::new();
    failing_with_script(&sb, "restart_phase(#{ version: vars.version })\n", "");
    sb.run(&["run", "p.yaml"]).expect_code(1);
    let doc = status_json(&sb, "sp-1");
    assert_eq!(labels(&doc), ["build"]);
    let t = task(&doc, "t");
    assert_eq!(t["status"], "failed");
    assert_eq!(decision_kinds(t), ["pause"]);
    assert_eq!(
        decisions(t)[0].2,
        "restart_phase refused: version=2.2 already failed in this release"
    );
    let log = log(&sb, "sp-1", "build", "t");
    assert!(
        log.contains("Restart of phase build with version=2.2 refused: version=2.2 already failed in this release; pausing"),
        "{log}"
    );

    // A new version each time: one restart, then refused.
    let sb = Sandbox::new();
    failing_with_script(
        &sb,
        "restart_phase(#{ version: vars.version + \"1\" })\n",
        "",
    );
    sb.run(&["run", "p.yaml"]).expect_code(1);
    let doc = status_json(&sb, "sp-1");
    assert_eq!(labels(&doc), ["build", "build#2"]);
    let second = task_in(&doc, "build#2", "t");
    assert_eq!(second["status"], "failed");
    assert_eq!(
        decisions(second)[0].2,
        "restart_phase refused: the script restart limit (1) restart(s) already used"
    );
}

#[test]
fn script_that_breaks_at_run_time_pauses_with_the_reason() {
    let sb = Sandbox::new();
    failing_with_script(
        &sb,
        "// look up the owner\nlet owner = vars.owner.to_upper();\nretry()\n",
        "",
    );
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(1);
    let doc = status_json(&sb, "sp-1");
    let t = task(&doc, "t");
    assert_eq!(t["status"], "failed");
    assert_eq!(decision_kinds(t), ["pause"]);
    let reason = &decisions(t)[0].2;
    assert!(
        reason.starts_with("script policies/p.rhai: runtime error at line 2, column "),
        "{reason}"
    );
    let log = log(&sb, "sp-1", "build", "t");
    assert!(
        log.contains("Policy: script policies/p.rhai: runtime error at line 2"),
        "{log}"
    );
}

#[test]
fn script_endless_loop_is_stopped_and_pauses() {
    let sb = Sandbox::new();
    failing_with_script(&sb, "let n = 0;\nwhile true { n += 1; }\nretry()\n", "");
    let started = Instant::now();
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(10));
    let doc = status_json(&sb, "sp-1");
    let reason = &decisions(task(&doc, "t"))[0].2;
    assert!(
        reason.contains("stopped after 200000 operations (an endless loop?)"),
        "{reason}"
    );
}

#[test]
fn script_sees_secrets_masked_and_the_log_tail() {
    let mut sb = Sandbox::new();
    sb.env("API_TOKEN", "s3cr3t-token-value");
    sb.write(
        "p.yaml",
        "name: sp\nvariables: { token: \"\" }\nphases:\n  - name: build\n    tasks:\n      \
         - name: login\n        command: { run: [sh, -c, 'echo \"token=$0\" >> \"$RELFLOW_OUTPUT\"', \"${env.API_TOKEN}\"] }\n      \
         - name: t\n        command: { run: [sh, -c, 'echo using token $0; exit 3', \"${token}\"] }\n        \
         on_failure: { script: policies/p.rhai }\n",
    );
    sb.write(
        "policies/p.rhai",
        "print(`token=${vars.token}`);\nprint(`tail=${failure.log_tail[-2]}`);\nprint(`exit=${failure.exit_code}`);\nskip()\n",
    );
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(0);
    let doc = status_json(&sb, "sp-1");
    let t = task(&doc, "t");
    assert_eq!(t["status"], "skipped");
    let reason = &decisions(t)[0].2;
    assert_eq!(
        reason,
        "script policies/p.rhai returned skip(): token=***; tail=using token ***; exit=3"
    );
    assert!(!out.stdout.contains("s3cr3t"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------------------
// relflow plan --simulate

#[test]
fn script_decisions_show_in_plan_simulate() {
    let sb = with_examples();
    let out = sb.run(&[
        "plan",
        RATE_LIMIT,
        "--simulate",
        "notify-api=rate_limitedx2",
    ]);
    out.expect_code(0);
    assert!(
        out.stdout.contains(
            "notify-api (command: ./scripts/rate-limited-api.sh ${limited} ${retry_after} \
             ${status}) — on failure [task notify-api]: script policies/rate-limited.rhai"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "    attempt 1 fails (rate_limited) → retry in 30s [task notify-api: \
             on_failure.script policies/rate-limited.rhai: returned retry_after(\"30s\"): rate \
             limited: the server asks to wait 30s]\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("    attempt 3 succeeds\n"),
        "{}",
        out.stdout
    );

    let out = sb.run(&["plan", FIX_FORWARD, "--simulate", "smoke=task_failed"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains(
            "    attempt 1 fails (task_failed) → restart phase release with \
             fixed_forward_from=2.2 version=2.3 [task smoke: on_failure.script \
             policies/fix-forward-patch.rhai: returned restart_phase(#{ fixed_forward_from: \
             \"2.2\", version: \"2.3\" }): fixing forward from 2.2 to 2.3]\n"
        ),
        "{}",
        out.stdout
    );

    let out = sb.run(&["plan", RETRY, "--simulate", "publish=timeoutx5"]);
    out.expect_code(0);
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("fails ("))
        .collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(lines[0].contains("→ retry in 1s"), "{}", out.stdout);
    assert!(lines[2].contains("→ retry in 4s"), "{}", out.stdout);
    assert!(
        lines[3].contains("→ rollback [task publish: on_failure.script policies/retry-transient.rhai: returned rollback(): still failing after 4 attempts: rolling back]"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("result: task publish rolled back; release failed (exit 4)"),
        "{}",
        out.stdout
    );
}
