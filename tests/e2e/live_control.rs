//! A live release is controlled from another shell (`abort`, `pause`), stops cleanly on
//! SIGINT/SIGTERM, is never taken over from a live (even stopped) runner, and a runner whose
//! lease went to another host writes nothing more (issue 9 findings 4 and 5).

use std::process::Child;

use serde_json::Value;

use crate::harness::{Sandbox, assert_none_left, signal, wait_until};
use crate::policies::{status_json, task};

/// `hold` writes `hold.started`, then waits (a `sleep` whose argv carries a unique token)
/// until `go` exists; `after` records that it ran.
fn holding_pipeline(sb: &Sandbox, token: &str) {
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: live
phases:
  - name: work
    tasks:
      - name: hold
        command:
          run: [sh, -c, "echo run >> hold.runs; touch hold.started; while [ ! -f go ]; do sleep 0.05 {token}; done"]
      - {{ name: after, command: {{ run: [sh, -c, "echo ran >> after.runs"] }} }}
"#
        ),
    );
}

fn start_holding(sb: &Sandbox) -> Child {
    let runner = sb.spawn(&["run", "p.yaml"]);
    assert!(
        wait_until(30, || sb.exists("hold.started")),
        "the task never started"
    );
    runner
}

fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().expect("wait for the runner");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn abort_from_another_shell_stops_the_live_runner_and_both_exit_3() {
    let sb = Sandbox::new();
    let token = "3.0e-2"; // `sleep 0.05 3.0e-2`: a unique, harmless argument
    holding_pipeline(&sb, token);
    let runner = start_holding(&sb);

    let out = sb.run(&["abort", "live-1", "--comment", "wrong build"]);
    out.expect_code(3);
    assert!(
        out.stderr.contains("asked it to abort"),
        "the requester says what it did: {}",
        out.stderr
    );
    let (code, _, stderr) = finish(runner);
    assert_eq!(
        code, 3,
        "the runner exits with the release's code: {stderr}"
    );

    let doc = status_json(&sb, "live-1");
    assert_eq!(doc["status"], "aborted");
    let reason = doc["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("wrong build"), "{reason}");
    assert_eq!(task(&doc, "hold")["status"], "cancelled");
    assert_eq!(
        task(&doc, "hold")["attempt_history"][0]["status"],
        "cancelled"
    );
    assert_eq!(task(&doc, "after")["status"], "cancelled");
    assert!(!sb.exists("after.runs"), "nothing runs after an abort");
    assert_none_left(token);
}

#[test]
fn pause_from_another_shell_lets_the_running_task_finish_then_resume_goes_on() {
    let sb = Sandbox::new();
    holding_pipeline(&sb, "4.0e-2");
    let runner = start_holding(&sb);

    let pauser = sb.spawn(&["pause", "live-1"]);
    // The request is stored before the running task is let go.
    assert!(
        wait_until(30, || {
            db(&sb)
                .query_row("SELECT count(*) FROM control_requests", [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap_or(0)
                == 1
        }),
        "the pause request was never stored"
    );
    sb.write("go", "");
    let (code, _, stderr) = finish(pauser);
    assert_eq!(code, 5, "pause exits 5 once the runner paused: {stderr}");
    let (code, _, _) = finish(runner);
    assert_eq!(code, 5);

    let doc = status_json(&sb, "live-1");
    assert_eq!(doc["status"], "paused");
    assert_eq!(task(&doc, "hold")["status"], "completed");
    assert_eq!(task(&doc, "after")["status"], "planned");
    assert!(!sb.exists("after.runs"), "no new task starts after a pause");

    sb.run(&["resume", "live-1"]).expect_code(0);
    assert_eq!(sb.read("hold.runs").lines().count(), 1);
    assert_eq!(sb.read("after.runs").lines().count(), 1);
}

#[test]
fn sigterm_pauses_the_release_names_the_resume_command_and_exits_5() {
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let sb = Sandbox::new();
        let token = "5.0e-2";
        holding_pipeline(&sb, token);
        let runner = start_holding(&sb);
        signal(&runner, sig);
        let (code, _, stderr) = finish(runner);
        assert_eq!(code, 5, "{name}: {stderr}");
        assert!(
            stderr.contains("relflow resume live-1"),
            "{name}: the next command is printed: {stderr}"
        );
        assert_none_left(token);

        let doc = status_json(&sb, "live-1");
        assert_eq!(doc["status"], "paused");
        let reason = doc["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(name), "{reason}");
        assert_eq!(
            task(&doc, "hold")["attempt_history"][0]["status"],
            "interrupted"
        );

        sb.write("go", "");
        sb.run(&["resume", "live-1"]).expect_code(0);
        assert_eq!(sb.read("hold.runs").lines().count(), 2);
        assert_eq!(sb.read("after.runs").lines().count(), 1);
    }
}

fn db(sb: &Sandbox) -> rusqlite::Connection {
    rusqlite::Connection::open(sb.path().join(".relflow/relflow.db")).expect("open the store")
}

#[test]
fn a_stopped_runner_with_an_old_heartbeat_is_not_taken_over() {
    let sb = Sandbox::new();
    holding_pipeline(&sb, "6.0e-2");
    let runner = start_holding(&sb);
    signal(&runner, libc::SIGSTOP);
    // As if it had been stopped for an hour.
    db(&sb)
        .execute("UPDATE leases SET heartbeat_at = 0", [])
        .expect("age the heartbeat");

    let out = sb.run(&["resume", "live-1"]);
    out.expect_code(6);
    assert!(
        out.stderr
            .contains(&format!("held by another runner (pid {}", runner.id())),
        "{}",
        out.stderr
    );

    signal(&runner, libc::SIGCONT);
    sb.write("go", "");
    let (code, _, stderr) = finish(runner);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(sb.read("hold.runs").lines().count(), 1, "ran once");
    assert_eq!(sb.read("after.runs").lines().count(), 1);
    assert_eq!(status_json(&sb, "live-1")["status"], "completed");
}

#[test]
fn a_runner_whose_lease_another_host_took_writes_nothing_more_and_exits_6() {
    let sb = Sandbox::new();
    let token = "7.0e-2";
    holding_pipeline(&sb, token);
    let runner = start_holding(&sb);
    let events = ".relflow/releases/live-1/events.jsonl";
    // Another host's runner claims the release (its lease's epoch goes up).
    db(&sb)
        .execute(
            "UPDATE leases SET host = 'elsewhere', pid = 4242, epoch = epoch + 1, heartbeat_at = 9999999999999",
            [],
        )
        .expect("take the lease over");
    let before = sb.read(events);
    let (code, _, stderr) = finish(runner);
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("another runner took release live-1 over"),
        "{stderr}"
    );
    assert_none_left(token);
    assert!(!sb.exists("after.runs"), "nothing more ran");
    let doc: Value = status_json(&sb, "live-1");
    assert_eq!(
        task(&doc, "hold")["status"],
        "running",
        "the store still shows what the new holder took over"
    );
    assert_eq!(
        sb.read(events),
        before,
        "no event written after the takeover"
    );
}
