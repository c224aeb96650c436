//! `--actor`/`RELFLOW_ACTOR` and `--comment` on every command a person runs: recorded with
//! the action and shown by `status` and its JSON.

use super::status_doc;
use crate::harness::Sandbox;

const FLOW: &str = r#"
name: flow
phases:
  - name: build
    tasks:
      - { name: flaky, command: { run: [sh, -c, "test -e fixed"] } }
      - { name: gate, manual: { prompt: "Go?" } }
      - { name: last, command: { run: [echo, done] } }
"#;

fn actions(doc: &serde_json::Value) -> Vec<(String, String, Option<String>)> {
    let mut all: Vec<&serde_json::Value> = doc["actions"].as_array().unwrap().iter().collect();
    for phase in doc["phases"].as_array().unwrap() {
        for task in phase["tasks"].as_array().unwrap() {
            all.extend(task["actions"].as_array().unwrap());
        }
    }
    all.sort_by_key(|a| a["at"].as_str().unwrap_or_default().to_string());
    all.iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_string(),
                a["actor"].as_str().unwrap().to_string(),
                a["comment"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn every_person_command_records_who_and_why() {
    let sb = Sandbox::new();
    sb.write("p.yaml", FLOW);
    sb.run_env(&["run", "p.yaml", "--actor", "ci-bot"], &[])
        .expect_code(1);
    sb.write("fixed", "");
    sb.run(&[
        "retry",
        "flow-1",
        "--task",
        "flaky",
        "--actor",
        "ann",
        "--comment",
        "disk freed",
    ])
    .expect_code(5);
    sb.run_env(
        &[
            "approve",
            "flow-1",
            "--task",
            "gate",
            "--comment",
            "change 4711 approved",
        ],
        &[("RELFLOW_ACTOR", "bo")],
    )
    .expect_code(0);
    let doc = status_doc(&sb, "flow-1");
    assert_eq!(
        actions(&doc),
        [
            ("run".into(), "ci-bot".into(), None),
            ("retry".into(), "ann".into(), Some("disk freed".into())),
            (
                "approve".into(),
                "bo".into(),
                Some("change 4711 approved".into())
            ),
        ]
    );
    let text = sb.run(&["status", "flow-1"]).stdout;
    assert!(
        text.contains("ann ran relflow retry: \"disk freed\""),
        "{text}"
    );
    assert!(
        text.contains("bo ran relflow approve: \"change 4711 approved\""),
        "{text}"
    );
    assert!(text.contains("by ci-bot"), "{text}");
}

#[test]
fn reject_skip_and_abort_take_a_comment_too() {
    let sb = Sandbox::new();
    sb.write("p.yaml", FLOW);
    sb.run(&["run", "p.yaml"]).expect_code(1);
    sb.run(&[
        "skip",
        "flow-1",
        "--task",
        "flaky",
        "--actor",
        "ann",
        "--comment",
        "known flake",
    ])
    .expect_code(5);
    sb.run(&[
        "reject",
        "flow-1",
        "--task",
        "gate",
        "--actor",
        "bo",
        "--comment",
        "not today",
    ])
    .expect_code(1);
    sb.run(&[
        "abort",
        "flow-1",
        "--actor",
        "cy",
        "--comment",
        "window closed",
    ])
    .expect_code(3);
    let doc = status_doc(&sb, "flow-1");
    let got: Vec<_> = actions(&doc).into_iter().skip(1).collect();
    assert_eq!(
        got,
        [
            ("skip".into(), "ann".into(), Some("known flake".into())),
            ("reject".into(), "bo".into(), Some("not today".into())),
            ("abort".into(), "cy".into(), Some("window closed".into())),
        ]
    );
}

#[test]
fn without_user_or_logname_the_actor_is_the_account_name_not_an_unnamed_user() {
    let sb = Sandbox::new();
    sb.write("p.yaml", FLOW);
    let out = sb
        .command(&["run", "p.yaml"])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("RELFLOW_ACTOR")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let doc = status_doc(&sb, "flow-1");
    let actor = actions(&doc)[0].1.clone();
    assert!(!actor.is_empty() && !actor.contains("unnamed"), "{actor}");
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    if uid == 0 {
        assert_eq!(actor, "root");
    }
}
