//! Every command that prints has `--json`: one document that parses, starts with
//! `"format": 1`, and shows times as RFC 3339 text and backend handles as objects.

use super::with_examples;
use crate::harness::{Outcome, Sandbox};

const FLOW: &str = r#"
name: flow
variables: { version: "1" }
phases:
  - name: build
    tasks:
      - { name: flaky, command: { run: [sh, -c, "test -e fixed"] } }
      - { name: gate, manual: { prompt: "Go?" } }
"#;

/// The document `out` printed, checked for `"format": 1` as its first key.
fn document(what: &str, out: &Outcome) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{what} --json does not parse ({e}):\n{}", out.stdout));
    let first = doc.as_object().and_then(|o| o.keys().next().cloned());
    assert_eq!(first.as_deref(), Some("format"), "{what}: {}", out.stdout);
    assert_eq!(doc["format"], 1, "{what}");
    doc
}

fn is_rfc3339(value: &serde_json::Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 24 && s.as_bytes()[10] == b'T' && s.ends_with('Z'))
}

#[test]
fn every_command_on_a_release_prints_a_format_1_document() {
    let sb = Sandbox::new();
    sb.write("p.yaml", FLOW);
    let checks: Vec<(&str, Vec<&str>, i32)> = vec![
        ("run", vec!["run", "p.yaml", "--json"], 1),
        ("status", vec!["status", "flow-1", "--json"], 0),
        ("list", vec!["list", "--json"], 0),
        ("logs", vec!["logs", "flow-1", "--json"], 0),
        ("retry", vec!["retry", "flow-1", "--json"], 1),
        (
            "skip",
            vec!["skip", "flow-1", "--task", "flaky", "--json"],
            5,
        ),
        (
            "reject",
            vec!["reject", "flow-1", "--task", "gate", "--json"],
            1,
        ),
        (
            "restart-phase",
            vec!["restart-phase", "flow-1", "build", "--no-resume", "--json"],
            5,
        ),
        ("pause", vec!["pause", "flow-1", "--json"], 5),
        ("resume", vec!["resume", "flow-1", "--json"], 1),
        ("abort", vec!["abort", "flow-1", "--json"], 3),
        ("locks", vec!["locks", "--json"], 0),
        ("targets", vec!["targets", "--json"], 0),
        (
            "targets --history",
            vec!["targets", "--history", "--json"],
            0,
        ),
    ];
    for (what, args, code) in checks {
        let out = sb.run(&args);
        assert_eq!(out.code, code, "{what}: {}{}", out.stdout, out.stderr);
        document(what, &out);
    }
    // A second release for approve.
    sb.run(&["run", "p.yaml"]).expect_code(1);
    sb.write("fixed", "");
    sb.run(&["retry", "flow-2"]).expect_code(5);
    let approve = sb.run(&["approve", "flow-2", "--task", "gate", "--json"]);
    approve.expect_code(0);
    let doc = document("approve", &approve);
    assert_eq!(doc["status"], "completed");
}

#[test]
fn the_release_document_has_rfc3339_times_nested_handles_and_next_steps() {
    let sb = with_examples();
    let out = sb.run(&["run", "pipelines/petportal.yaml", "--json"]);
    out.expect_code(0);
    let doc = document("run", &out);
    assert!(is_rfc3339(&doc["created_at"]), "{doc:#}");
    let deploy = &doc["phases"][1]["tasks"][0];
    assert_eq!(deploy["task"], "deploy-petportal");
    assert!(is_rfc3339(&deploy["started_at"]), "{deploy:#}");
    assert!(
        is_rfc3339(&deploy["attempt_history"][0]["ended_at"]),
        "{deploy:#}"
    );
    assert!(
        deploy["handle"].is_object(),
        "the handle is an object, not JSON in a string: {deploy:#}"
    );
    assert_eq!(doc["actions"][0]["action"], "run");
    assert!(is_rfc3339(&doc["actions"][0]["at"]));
    assert_eq!(doc["next"][0]["command"], "relflow rollback petportal-1");

    let rollback = sb.run(&["rollback", "petportal-1", "--json"]);
    rollback.expect_code(0);
    let doc = document("rollback", &rollback);
    assert_eq!(
        doc["rollback_jobs"][0]["job"]["status"], "completed",
        "{doc:#}"
    );
    assert!(is_rfc3339(&doc["rollback_jobs"][0]["job"]["created_at"]));

    let logs = sb.run(&["logs", "petportal-1", "--task", "smoke", "--json"]);
    let doc = document("logs", &logs);
    assert_eq!(doc["logs"][0]["task"], "smoke");
    assert!(
        doc["logs"][0]["text"]
            .as_str()
            .unwrap()
            .contains("=== attempt 1 ===")
    );
}

#[test]
fn status_with_no_release_yet_is_still_a_document() {
    let sb = Sandbox::new();
    let out = sb.run(&["status", "--json"]);
    out.expect_code(0);
    let doc = document("status", &out);
    assert!(doc["release"].is_null());
}
