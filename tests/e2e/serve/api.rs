//! Every route × no token × viewer × operator, refusals, the event stream and actions.

use serde_json::{Value, json};

use super::{FLAKY, GATED, Server, body_json, expect_error};
use crate::harness::Sandbox;

fn viewer(sb: &Sandbox) -> String {
    let out = sb.run(&["token", "create", "vera", "--role", "viewer"]);
    out.expect_code(0);
    out.stdout.trim().to_string()
}

#[test]
fn every_route_needs_a_token_viewers_read_and_operators_act_as_themselves() {
    let sb = Sandbox::new();
    sb.write("pipelines/gated.yaml", GATED);
    let server = Server::start(&sb);
    let vera = viewer(&sb);
    let op = server.token.clone();

    let started = server.post("/releases", Some(&op), &json!({ "pipeline": "gated.yaml" }));
    assert_eq!(started.status().as_u16(), 202);
    let accepted = body_json(started);
    assert_eq!(accepted["release"], "gated-1", "{accepted}");
    assert!(
        accepted["action"].as_i64().is_some_and(|id| id > 0),
        "{accepted}"
    );
    server.wait_for("gated-1", |s| s == "paused");

    let reads = [
        "/releases",
        "/releases/gated-1",
        "/releases/gated-1/logs/deploy/before",
        "/targets",
        "/pipelines",
    ];
    for route in reads {
        expect_error(server.get(route, None), 401);
        expect_error(server.get(route, Some("relflow_not-a-token")), 401);
        assert_eq!(
            server.get(route, Some(&vera)).status().as_u16(),
            200,
            "{route}"
        );
    }
    expect_error(server.get("/releases/gated-1/events", None), 401);
    let list = body_json(server.get("/releases", Some(&vera)));
    assert_eq!(list["format"], 1);
    assert_eq!(list["releases"][0]["id"], "gated-1", "{list}");
    let pipelines = body_json(server.get("/pipelines", Some(&vera)));
    assert_eq!(pipelines["pipelines"][0]["file"], "gated.yaml");
    assert_eq!(pipelines["pipelines"][0]["name"], "gated");
    assert_eq!(pipelines["pipelines"][0]["valid"], true);
    assert_eq!(pipelines["pipelines"][0]["variables"]["version"], "2.3");
    let log = server
        .get(
            "/releases/gated-1/logs/deploy/before?attempt=1",
            Some(&vera),
        )
        .text()
        .expect("log");
    assert!(
        log.starts_with("=== attempt 1 ===") && log.contains("before 2.3"),
        "{log}"
    );

    let approve = json!({ "task": "promote", "comment": "looks good" });
    for verb in [
        "retry",
        "skip",
        "abort",
        "pause",
        "resume",
        "restart-phase",
        "rollback",
        "approve",
        "reject",
    ] {
        let path = format!("/releases/gated-1/{verb}");
        expect_error(server.post(&path, None, &approve), 401);
        let message = expect_error(server.post(&path, Some(&vera), &approve), 403);
        assert!(message.contains("viewer"), "{message}");
    }
    expect_error(
        server.post(
            "/releases",
            Some(&vera),
            &json!({ "pipeline": "gated.yaml" }),
        ),
        403,
    );

    let answered = server.post("/releases/gated-1/approve", Some(&op), &approve);
    assert_eq!(answered.status().as_u16(), 202);
    let doc = server.wait_for("gated-1", |s| s == "completed");
    assert!(sb.exists("pipelines/after-ran") || sb.exists("after-ran"));
    let decision = &doc["phases"][0]["tasks"][1]["decisions"][0];
    assert_eq!(decision["decision"], "approve", "{doc:#}");
    assert_eq!(decision["rule"], "relflow approve by admin", "{doc:#}");
    let text = sb.run(&["status", "gated-1"]).stdout;
    assert!(
        text.contains("admin") && text.contains("looks good"),
        "{text}"
    );
}

#[test]
fn refusals_are_404_409_400_and_413_with_the_clis_words() {
    let sb = Sandbox::new();
    sb.write("pipelines/gated.yaml", GATED);
    sb.write("outside.yaml", GATED);
    std::os::unix::fs::symlink(
        sb.path().join("outside.yaml"),
        sb.path().join("pipelines/link.yaml"),
    )
    .expect("symlink");
    let server = Server::start(&sb);
    let op = server.token.clone();
    let cli = sb.run(&["run", "pipelines/gated.yaml"]);
    cli.expect_code(5);

    expect_error(server.get("/releases/nope-9", Some(&op)), 404);
    expect_error(
        server.post("/releases/nope-9/retry", Some(&op), &json!({})),
        404,
    );
    expect_error(server.get("/nowhere", Some(&op)), 404);
    expect_error(
        server.get("/releases/gated-1/logs/deploy/nope", Some(&op)),
        404,
    );

    // The state refuses: the same words as the CLI.
    let message = expect_error(
        server.post("/releases/gated-1/retry", Some(&op), &json!({})),
        409,
    );
    let refused = sb.run(&["retry", "gated-1"]);
    refused.expect_code(2);
    assert!(
        message.starts_with("release gated-1 is paused"),
        "{message}"
    );
    assert!(
        refused.stderr.contains(&message),
        "{message}\n{}",
        refused.stderr
    );

    let rollback = expect_error(
        server.post(
            "/releases/gated-1/rollback",
            Some(&op),
            &json!({ "components": ["web"] }),
        ),
        409,
    );
    assert_eq!(
        rollback,
        "release gated-1 has no completed deployment to roll back"
    );
    let cli_rollback = sb.run(&["rollback", "gated-1", "--component", "web"]);
    assert!(
        cli_rollback.stderr.contains(&rollback),
        "{}",
        cli_rollback.stderr
    );

    // Malformed JSON names the field; unknown fields are refused.
    let typed = expect_error(
        server.post(
            "/releases/gated-1/approve",
            Some(&op),
            &json!({ "task": 5 }),
        ),
        400,
    );
    assert!(typed.contains("task"), "{typed}");
    let unknown = expect_error(
        server.post(
            "/releases/gated-1/approve",
            Some(&op),
            &json!({ "tsk": "promote" }),
        ),
        400,
    );
    assert!(unknown.contains("tsk"), "{unknown}");
    let big = json!({ "task": "promote", "comment": "x".repeat(70 * 1024) });
    expect_error(
        server.post("/releases/gated-1/approve", Some(&op), &big),
        413,
    );

    // No path leaves the pipelines folder.
    for name in ["../outside.yaml", "/etc/passwd", "link.yaml", ".."] {
        let message = expect_error(
            server.post("/releases", Some(&op), &json!({ "pipeline": name })),
            400,
        );
        assert!(message.contains("pipeline"), "{name}: {message}");
    }
    assert_eq!(
        body_json(server.get("/releases", Some(&op)))["releases"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// `(id, data)` of each event in an SSE body.
fn sse_events(text: &str) -> Vec<(u64, Value)> {
    let mut events = Vec::new();
    let mut id = None;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("id: ") {
            id = value.parse().ok();
        } else if let Some(data) = line.strip_prefix("data: ") {
            events.push((
                id.take().expect("id before data"),
                serde_json::from_str(data).expect("json"),
            ));
        }
    }
    events
}

#[test]
fn events_stream_in_order_and_resume_after_last_event_id() {
    let sb = Sandbox::new();
    sb.write("pipelines/gated.yaml", GATED);
    let server = Server::start(&sb);
    sb.run(&["run", "pipelines/gated.yaml"]).expect_code(5);
    let file: Vec<Value> = sb
        .read(".relflow/releases/gated-1/events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("event"))
        .collect();
    assert!(file.len() > 4);
    let all = super::send(
        server.client.get(server.url("/releases/gated-1/events")),
        Some(&server.token),
    );
    assert_eq!(all.headers()["content-type"], "text/event-stream");
    let events = sse_events(&all.text().expect("stream"));
    let ids: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=file.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        events.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
        file
    );

    let resumed = super::send(
        server
            .client
            .get(server.url("/releases/gated-1/events"))
            .header("Last-Event-ID", "3"),
        Some(&server.token),
    );
    let rest = sse_events(&resumed.text().expect("stream"));
    assert_eq!(rest.first().map(|(id, _)| *id), Some(4));
    assert_eq!(rest.len(), file.len() - 3);
}

#[test]
fn restart_phase_with_vars_through_the_api_fixes_forward() {
    let sb = Sandbox::new();
    sb.write("pipelines/flaky.yaml", FLAKY);
    let server = Server::start(&sb);
    let op = server.token.clone();
    let started = server.post("/releases", Some(&op), &json!({ "pipeline": "flaky.yaml" }));
    assert_eq!(started.status().as_u16(), 202);
    server.wait_for("flaky-1", |s| s == "failed");
    let unknown = expect_error(
        server.post(
            "/releases/flaky-1/restart-phase",
            Some(&op),
            &json!({ "phase": "deploy", "vars": { "colour": "red" } }),
        ),
        400,
    );
    assert!(unknown.contains("colour"), "{unknown}");
    let restart = json!({ "phase": "deploy", "vars": { "version": "2.3" }, "comment": "fixed" });
    let answer = server.post("/releases/flaky-1/restart-phase", Some(&op), &restart);
    assert_eq!(answer.status().as_u16(), 202);
    let doc = server.wait_for("flaky-1", |s| s == "completed");
    assert_eq!(doc["phases"][1]["label"], "deploy#2", "{doc:#}");
    let text = sb.run(&["status", "flaky-1"]).stdout;
    assert!(text.contains("admin ran relflow restart-phase"), "{text}");
}
