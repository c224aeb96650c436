//! Manual tasks: the release pauses (exit 5) until `relflow approve` or `reject`.

use crate::harness::Sandbox;

const GATED: &str = r#"
name: gated
variables: { version: "2.3" }
phases:
  - name: deploy
    tasks:
      - { name: before, command: { run: [echo, before] } }
      - { name: promote, manual: { prompt: "Promote ${version}?" } }
      - { name: after, command: { run: [touch, after-ran] } }
"#;

#[test]
fn a_manual_task_pauses_until_approved_then_the_release_continues() {
    let sb = Sandbox::new();
    sb.write("p.yaml", GATED);
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(5);
    assert!(
        out.stdout
            .contains("relflow approve gated-1 --task promote"),
        "{}",
        out.stdout
    );
    let log = sb.read(".relflow/releases/gated-1/deploy/promote/script_output.log");
    assert!(log.contains("Waiting for approval: Promote 2.3?"), "{log}");
    assert!(!sb.exists("after-ran"));
    let resume = sb.run(&["resume", "gated-1"]);
    resume.expect_code(2);
    assert!(
        resume.stderr.contains("waiting for approval of promote"),
        "{}",
        resume.stderr
    );

    sb.run(&["approve", "gated-1", "--task", "promote"])
        .expect_code(0);
    assert!(sb.exists("after-ran"));
    let status = sb.run(&["status", "gated-1", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(doc["status"], "completed");
    assert_eq!(
        doc["phases"][0]["tasks"][1]["decisions"][0]["decision"],
        "approve"
    );
    // Approving again is refused: nothing is waiting.
    let again = sb.run(&["approve", "gated-1", "--task", "promote"]);
    again.expect_code(2);
    assert!(
        again
            .stderr
            .contains("not waiting for approval (it is completed)"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_rejected_task_fails_and_halts_the_release() {
    let sb = Sandbox::new();
    sb.write("p.yaml", GATED);
    sb.run(&["run", "p.yaml"]).expect_code(5);
    sb.run(&["reject", "gated-1", "--task", "promote"])
        .expect_code(1);
    assert!(!sb.exists("after-ran"));
    let status = sb.run(&["status", "gated-1"]);
    assert!(
        status.stdout.contains("release gated-1  failed"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("rejected"), "{}", status.stdout);
}
