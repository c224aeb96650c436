//! Values from `${env.*}` never reach logs, events, the store or `status`; a missing one stops
//! the release before it starts.

use crate::harness::Sandbox;

const SECRET: &str = "tok-9f3a7c1e5d";

#[test]
fn env_secrets_are_redacted_everywhere() {
    let mut sb = Sandbox::new();
    sb.env("DEPLOY_TOKEN", SECRET);
    sb.write(
        "p.yaml",
        r#"
name: secretive
variables: { token_echo: "" }
phases:
  - name: deploy
    tasks:
      - name: uses-arg
        command: { run: [echo, "token is ${env.DEPLOY_TOKEN}"] }
      - name: uses-env
        command:
          run: [sh, -c, "echo from env $TOKEN; echo token_echo=$TOKEN >> $RELFLOW_OUTPUT"]
          env: { TOKEN: "${env.DEPLOY_TOKEN}" }
      - name: fails-loudly
        command: { run: [sh, -c, "echo $0 >&2; exit 1", "${env.DEPLOY_TOKEN}"] }
"#,
    );
    let run = sb.run(&["run", "p.yaml"]);
    run.expect_code(1);
    let status = sb.run(&["status", "secretive-1"]);
    let json = sb.run(&["status", "secretive-1", "--json"]);
    let logs = sb.run(&["logs", "secretive-1"]);
    let state = String::from_utf8_lossy(&sb.state_bytes()).into_owned();

    assert!(logs.stdout.contains("token is ***"), "{}", logs.stdout);
    assert!(logs.stdout.contains("from env ***"), "{}", logs.stdout);
    // The grep below covers real content: events were written and the variable set from
    // $RELFLOW_OUTPUT reached the store, masked.
    let events = sb.read(".relflow/releases/secretive-1/events.jsonl");
    assert!(events.contains(r#""token_echo":"***""#), "{events}");
    assert!(
        state.contains("SQLite format 3"),
        "relflow.db is not among the files grepped"
    );
    for (what, text) in [
        ("run output", format!("{}{}", run.stdout, run.stderr)),
        ("status", status.stdout),
        ("status --json", json.stdout),
        ("logs", logs.stdout),
        (
            "files under .relflow (script_output.log, events.jsonl, relflow.db)",
            state,
        ),
    ] {
        assert!(!text.contains(SECRET), "the secret leaked into {what}");
    }
}

#[test]
fn a_missing_secret_is_refused_before_the_release_starts() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: needs\nphases:\n  - name: a\n    tasks:\n      - { name: t, command: { run: [echo, \"${env.RELFLOW_TEST_UNSET_VAR}\"] } }\n",
    );
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("RELFLOW_TEST_UNSET_VAR"),
        "{}",
        out.stderr
    );
    assert!(!sb.exists(".relflow/releases"));
}

/// Only templates count: `${env.X}` in a YAML comment is not a reference, so an unset `X`
/// does not stop the release.
#[test]
fn an_env_reference_in_a_comment_is_not_required() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: commented\n# later: token ${env.RELFLOW_TEST_UNSET_VAR}\nphases:\n  - name: a\n    tasks:\n      - { name: t, command: { run: [echo, hi] } }\n",
    );
    sb.run(&["run", "p.yaml"]).expect_code(0);
}
