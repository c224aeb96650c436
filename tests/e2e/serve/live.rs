//! Releases that are moving: one another runner holds (abort and pause reach it through the
//! store; other actions are refused), and the server's own drives on SIGTERM.

use serde_json::json;

use super::{Server, expect_error};
use crate::harness::{Sandbox, signal, wait_until};

/// `hold` waits until `go` exists in the pipeline's folder; `after` records that it ran.
const HOLDING: &str = r#"
name: live
phases:
  - name: work
    tasks:
      - name: hold
        command:
          run: [sh, -c, "touch hold.started; while [ ! -f go ]; do sleep 0.05; done"]
      - { name: after, command: { run: [touch, after.ran] } }
"#;

#[test]
fn a_release_another_runner_holds_takes_abort_through_the_store_and_refuses_the_rest() {
    let sb = Sandbox::new();
    sb.write("pipelines/live.yaml", HOLDING);
    let server = Server::start(&sb);
    let runner = sb.spawn(&["run", "pipelines/live.yaml"]);
    assert!(
        wait_until(30, || sb.exists("pipelines/hold.started")),
        "never started"
    );

    let retry = expect_error(
        server.post("/releases/live-1/retry", Some(&server.token), &json!({})),
        409,
    );
    assert!(retry.contains("is held by another runner (pid"), "{retry}");
    let cli = sb.run(&["retry", "live-1"]);
    cli.expect_code(6);
    assert!(
        cli.stderr.contains(&retry),
        "the CLI's words: {}\n{retry}",
        cli.stderr
    );
    let abort = server.post(
        "/releases/live-1/abort",
        Some(&server.token),
        &json!({ "comment": "wrong build" }),
    );
    assert_eq!(abort.status().as_u16(), 202);
    let out = runner.wait_with_output().expect("runner");
    assert_eq!(out.status.code(), Some(3), "the holder acted on the abort");
    let doc = server.wait_for("live-1", |s| s == "aborted");
    let reason = doc["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("admin") && reason.contains("wrong build"),
        "{reason}"
    );
    assert!(!sb.exists("pipelines/after.ran"));
}

#[test]
fn sigterm_pauses_the_releases_the_server_drives_and_exits_0() {
    let sb = Sandbox::new();
    sb.write("pipelines/live.yaml", HOLDING);
    let mut server = Server::start(&sb);
    let started = server.post(
        "/releases",
        Some(&server.token),
        &json!({ "pipeline": "live.yaml" }),
    );
    assert_eq!(started.status().as_u16(), 202);
    assert!(
        wait_until(30, || sb.exists("pipelines/hold.started")),
        "never started"
    );
    // An open event stream must not keep the server up.
    let events = super::send(
        server.client.get(server.url("/releases/live-1/events")),
        Some(&server.token),
    );
    assert_eq!(events.status().as_u16(), 200);
    signal(server.child(), libc::SIGTERM);
    let code = server.wait();
    assert_eq!(code, Some(0));
    let status = sb.run(&["status", "live-1", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(doc["status"], "paused", "{doc:#}");
    assert_eq!(
        doc["phases"][0]["tasks"][0]["attempt_history"][0]["status"], "interrupted",
        "{doc:#}"
    );
    // It goes on from the CLI.
    sb.write("pipelines/go", "");
    sb.run(&["resume", "live-1"]).expect_code(0);
    assert!(sb.exists("pipelines/after.ran"));
}

#[test]
fn the_event_stream_delivers_a_running_release_live_until_it_ends() {
    use std::io::{BufRead, BufReader};
    let sb = Sandbox::new();
    sb.write("pipelines/live.yaml", HOLDING);
    let server = Server::start(&sb);
    let started = server.post(
        "/releases",
        Some(&server.token),
        &json!({ "pipeline": "live.yaml" }),
    );
    assert_eq!(started.status().as_u16(), 202);
    let stream = super::send(
        server.client.get(server.url("/releases/live-1/events")),
        Some(&server.token),
    );
    let mut lines = BufReader::new(stream).lines();
    let mut next_event = || -> Option<serde_json::Value> {
        for line in lines.by_ref() {
            if let Some(data) = line.expect("line").strip_prefix("data: ") {
                return Some(serde_json::from_str(data).expect("json"));
            }
        }
        None
    };
    // Events come while the task runs, before anything lets it finish.
    let mut seen = Vec::new();
    while let Some(event) = next_event() {
        let running = event["event"] == "task_status" && event["status"] == "running";
        seen.push(event);
        if running {
            break;
        }
    }
    assert!(!sb.exists("pipelines/go"), "{seen:?}");
    assert_eq!(
        seen.last().map(|e| e["status"].clone()),
        Some(json!("running")),
        "{seen:#?}"
    );
    sb.write("pipelines/go", "");
    let mut ended = false;
    while let Some(event) = next_event() {
        if event["event"] == "release_status" && event["status"] == "completed" {
            ended = true;
        }
    }
    assert!(ended, "the stream carried the release to its end");
}
