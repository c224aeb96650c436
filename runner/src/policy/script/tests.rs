//! Each decision, each way a script can fail, and the sandbox.

use std::collections::BTreeMap;
use std::time::Duration;

use relflow_plugin::ErrorClass;

use super::*;
use crate::policy::decide::{Decision, EffectivePolicy, decide};
use crate::policy::model::OnFailure;

const NAME: &str = "policies/test.rhai";

fn compile(source: &str) -> ScriptPolicy {
    ScriptPolicy::compile(format!("/p/{NAME}"), NAME, source)
        .unwrap_or_else(|e| panic!("{e} at {}:{}", e.line, e.column))
}

fn failure() -> Failure {
    let mut f = Failure::new(ErrorClass::TaskFailed, "./smoke.sh exited with code 3", 1);
    f.task = "smoke".into();
    f.phase = "deploy".into();
    f.kind = "command".into();
    f.exit_code = Some(3);
    f.elapsed = Duration::from_millis(2500);
    f.log_tail = vec!["=== attempt 1 ===".into(), "checking /health".into()];
    f.vars = BTreeMap::from([
        ("version".to_string(), "2.2".to_string()),
        ("token".to_string(), "***".to_string()),
    ]);
    f
}

const HISTORY: History = History {
    task_retries: 0,
    retries_used: 0,
    retry_budget: 20,
};

fn decided_with(source: &str, failure: &Failure, history: History) -> Decided {
    let script = compile(source);
    let on_failure = OnFailure::Script(script);
    let policy = EffectivePolicy {
        on_failure: Some(&on_failure),
        source: "task smoke",
    };
    decide(policy, failure, history, 0.0)
}

fn decided(source: &str) -> Decided {
    decided_with(source, &failure(), HISTORY)
}

fn paused_because(source: &str) -> String {
    let d = decided(source);
    assert_eq!(d.decision, Decision::Then(Then::Pause), "{d:?}");
    d.reason
}

#[test]
fn script_each_then_decision() {
    for then in [
        Then::Rollback,
        Then::RollbackRelease,
        Then::Skip,
        Then::Ignore,
        Then::Cancel,
        Then::Pause,
    ] {
        let d = decided(&format!("{}()", then.keyword()));
        assert_eq!(d.decision, Decision::Then(then));
        assert_eq!(d.rule, "task smoke: on_failure.script policies/test.rhai");
        assert_eq!(
            d.reason,
            format!("script policies/test.rhai returned {}()", then.keyword())
        );
    }
}

#[test]
fn script_retry_follows_the_default_schedule_and_retry_after_its_own_delay() {
    let d = decided("retry()");
    assert_eq!(
        d.decision,
        Decision::Retry {
            delay: Duration::from_millis(500),
            next_attempt: 2
        }
    );
    let d = decided(r#"retry_after("30s")"#);
    assert_eq!(
        d.decision,
        Decision::Retry {
            delay: Duration::from_secs(30),
            next_attempt: 2
        }
    );
    assert_eq!(
        d.reason,
        "script policies/test.rhai returned retry_after(\"30s\")"
    );
    let d = decided("retry_after(2)");
    assert!(matches!(d.decision, Decision::Retry { delay, .. } if delay == Duration::from_secs(2)));
}

#[test]
fn script_restart_phase_returns_the_values_as_text() {
    let d = decided(
        r#"
        let parts = vars.version.split(".");
        let next = parse_int(parts[1]) + 1;
        restart_phase(#{ version: `${parts[0]}.${next}` })
        "#,
    );
    assert_eq!(
        d.decision,
        Decision::RestartPhase(BTreeMap::from([("version".to_string(), "2.3".to_string())]))
    );
    assert_eq!(
        d.reason,
        r#"script policies/test.rhai returned restart_phase(#{ version: "2.3" })"#
    );
    assert!(paused_because("restart_phase(#{})").contains("give the new values"));
    assert!(paused_because("restart_phase(#{ version: [1] })").contains("expected a string"));
}

#[test]
fn script_sees_every_failure_field() {
    let mut f = failure();
    f.http_status = Some(503);
    f.backend_state = Some("FAILED".into());
    f.retry_after = Some(Duration::from_secs(7));
    let source = r#"
        let f = failure;
        print(`${f.task} ${f.phase} ${f.kind} ${f.attempt} ${f.retries_left} ${f.class}`);
        print(`${f.message}|${f.http_status}|${f.exit_code}|${f.backend_state}|${f.retry_after_secs}`);
        print(`${f.elapsed}|${f.log_tail.len()}|${f.log_tail[-1]}|${f.is_transient}|${vars.version}`);
        pause()
    "#;
    let d = decided_with(source, &f, HISTORY);
    assert_eq!(
        d.reason,
        "script policies/test.rhai returned pause(): smoke deploy command 1 20 task_failed; \
         ./smoke.sh exited with code 3|503|3|FAILED|7; 2.5|2|checking /health|false|2.2"
    );
}

#[test]
fn script_absent_fields_are_unit_and_compare_unequal() {
    let d = decided(r#"if failure.http_status == 429 { retry() } else { skip() }"#);
    assert_eq!(d.decision, Decision::Then(Then::Skip));
    let d = decided(r#"if failure.backend_state == () { ignore() } else { skip() }"#);
    assert_eq!(d.decision, Decision::Then(Then::Ignore));
}

#[test]
fn script_retries_stop_at_the_release_budget_and_the_task_cap() {
    let spent = History {
        task_retries: 3,
        retries_used: 20,
        retry_budget: 20,
    };
    let d = decided_with("retry()", &failure(), spent);
    assert_eq!(d.decision, Decision::Then(Then::Pause));
    assert!(
        d.reason
            .ends_with("but the release's retry budget of 20 is used up"),
        "{}",
        d.reason
    );
    let capped = History {
        task_retries: MAX_SCRIPT_RETRIES_PER_TASK,
        retries_used: 100,
        retry_budget: 1000,
    };
    let d = decided_with("retry()", &failure(), capped);
    assert!(
        d.reason.contains("already retried 100 times"),
        "{}",
        d.reason
    );
    // The script sees what is left and can choose better than a pause.
    let d = decided_with(
        "if failure.retries_left > 0 { retry() } else { rollback() }",
        &failure(),
        spent,
    );
    assert_eq!(d.decision, Decision::Then(Then::Rollback));
}

#[test]
fn script_syntax_error_is_a_compile_error_with_line_and_column() {
    let err = ScriptPolicy::compile(NAME, NAME, "let x = 1;\nif x > {\n  retry()\n")
        .expect_err("syntax error");
    assert_eq!((err.line, err.column), (4, 1), "{err}");
    assert!(err.to_string().starts_with("syntax error: "), "{err}");
    // A misspelt variable is caught at load time too (strict variables).
    let err = ScriptPolicy::compile(NAME, NAME, "\nif faliure.attempt > 1 { rollback() }")
        .expect_err("undefined variable");
    assert_eq!((err.line, err.column), (2, 4), "{err}");
    assert!(err.message.contains("faliure"), "{err}");
}

#[test]
fn script_runtime_error_pauses_with_the_location() {
    let reason = paused_because("let n = 1;\nlet x = n / 0;\nretry()");
    assert!(
        reason.starts_with("script policies/test.rhai: runtime error at line 2, column "),
        "{reason}"
    );
    assert!(reason.contains("Division by zero"), "{reason}");
    let reason = paused_because(r#"retry_after("soon")"#);
    assert!(reason.contains("runtime error at line 1"), "{reason}");
    assert!(reason.contains("retry_after:"), "{reason}");
}

#[test]
fn script_endless_loop_is_stopped_by_the_operation_limit() {
    let reason = paused_because("loop { }\nretry()");
    assert!(
        reason.contains("stopped after 200000 operations (an endless loop?)"),
        "{reason}"
    );
    let reason = paused_because("fn f(n) { f(n + 1) }\nf(0)");
    assert!(reason.contains("nested calls"), "{reason}");
}

#[test]
fn script_wall_clock_limit_stops_a_slow_script() {
    let limits = ScriptLimits {
        max_operations: u64::MAX / 2,
        time_limit: Duration::from_millis(50),
        ..ScriptLimits::default()
    };
    let script = ScriptPolicy::compile_with_limits(NAME, NAME, "loop { }", limits).unwrap();
    let started = std::time::Instant::now();
    let (result, _) = script.evaluate(&failure(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        result,
        Err("script policies/test.rhai: stopped after the time limit of 50ms".to_string())
    );
}

#[test]
fn script_data_limits_hold() {
    let reason = paused_because(r#"let s = "x"; loop { s += s; }"#);
    assert!(reason.contains("too large"), "{reason}");
    let reason = paused_because("let a = []; loop { a.push(1); }");
    assert!(reason.contains("too large"), "{reason}");
}

#[test]
fn script_wrong_return_type_or_nothing_pauses() {
    let reason = paused_because(r#""rollback""#);
    assert_eq!(
        reason,
        "script policies/test.rhai: returned a string instead of a decision such as retry(), \
         rollback() or pause()"
    );
    let reason = paused_because("let x = 1;");
    assert!(reason.contains(": returned nothing"), "{reason}");
    let reason = paused_because("print(\"checked\"); 42");
    assert!(
        reason.ends_with("returned a i64 instead of a decision such as retry(), rollback() or pause() (printed: checked)"),
        "{reason}"
    );
    let reason = paused_because("if failure.attempt > 5 { rollback() }");
    assert!(reason.contains(": returned nothing"), "{reason}");
}

#[test]
fn script_cannot_import_open_eval_or_reach_the_environment() {
    let err = ScriptPolicy::compile(NAME, NAME, r#"import "secrets" as s; retry()"#)
        .expect_err("no modules");
    assert_eq!(err.line, 1, "{err}");
    let reason = paused_because(r#"let f = open("/etc/passwd"); retry()"#);
    assert!(reason.contains("Function not found: open"), "{reason}");
    let reason = paused_because(r#"let t = read_file("/etc/passwd"); retry()"#);
    assert!(reason.contains("Function not found"), "{reason}");
    assert!(ScriptPolicy::compile(NAME, NAME, r#"eval("retry()")"#).is_err());
    let reason = paused_because(r#"let h = env("HOME"); retry()"#);
    assert!(reason.contains("Function not found: env"), "{reason}");
    // Secrets arrive masked: what the engine put in `vars` is all a script can see.
    let d = decided(r#"print(vars.token); print(vars.keys().len()); pause()"#);
    assert!(d.reason.ends_with("pause(): ***; 2"), "{}", d.reason);
}

#[test]
fn script_output_never_reaches_the_terminal_and_is_bounded() {
    let d = decided(r#"for i in 0..50 { print(i); debug("d"); } skip()"#);
    assert_eq!(d.decision, Decision::Then(Then::Skip));
    assert_eq!(d.reason.matches("; ").count(), 9, "{}", d.reason);
}

#[test]
fn script_policies_compare_by_path_and_share_the_ast() {
    let a = compile("retry()");
    let b = a.clone();
    assert_eq!(a, b);
    let c = ScriptPolicy::compile("/p/other.rhai", "other.rhai", "retry()").unwrap();
    assert_ne!(a, c);
    assert!(format!("{a:?}").contains("/p/policies/test.rhai"));
}

#[test]
fn script_error_in_a_function_names_the_call_and_the_inner_location() {
    let reason = paused_because("fn half(n) {\n  n / 0\n}\nlet x = half(4);\nretry()");
    assert!(
        reason.starts_with(
            "script policies/test.rhai: runtime error at line 2, column 5 (in half() called at \
             line 4): Division by zero"
        ),
        "{reason}"
    );
}
