//! The seed scenario through the real CLI against the fake XL Deploy: a deployment task that
//! keeps failing is retried by starting the same task, then rolled back; `restart-phase`
//! fixes forward with a new version.

use crate::fake_xld::{FakeXld, TaskScript};
use crate::harness::{Outcome, Sandbox};

const PROD: &str = "Environments/Prod";
/// The fake accepts `admin` with this password.
const PASSWORD: &str = "s3cret";

fn pipeline(url: &str) -> String {
    format!(
        r#"
name: petportal
variables: {{ version: "2.2" }}
backends:
  xld: {{ kind: xl-deploy, url: "{url}", username: admin, password: "${{env.XLD_PASSWORD}}", polling_interval: 100ms }}
phases:
  - name: deploy
    on_failure: {{ retry: {{ retries: 3, when: [transient, task_failed], delay: 10ms, jitter: false }}, then: rollback }}
    tasks:
      - name: deploy-petportal
        deploy: {{ backend: xld, package: "Applications/PetPortal/${{version}}", environment: {PROD} }}
"#
    )
}

/// Runs the CLI off the async runtime (the fake answers on the runtime's other threads).
async fn relflow(sb: &Sandbox, args: &[&str]) -> Outcome {
    sb.run_async(args).await
}

/// Positions of `expected` lines in `log`, in order; panics naming the first one missing.
fn assert_lines_in_order(log: &str, expected: &[String]) {
    let lines: Vec<&str> = log.lines().collect();
    let mut from = 0;
    for want in expected {
        match lines[from..].iter().position(|l| l == want) {
            Some(i) => from += i + 1,
            None => panic!("missing (in order) `{want}` in:\n{log}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_seed_scenario_retries_the_same_task_rolls_back_then_fixes_forward() {
    let fake = FakeXld::start().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2")
        .with_package("Applications/PetPortal/2.3")
        .script_deploy(TaskScript::always_fail());
    let mut sb = Sandbox::new();
    sb.env("XLD_PASSWORD", PASSWORD);
    sb.write("p.yaml", &pipeline(&fake.url()));

    let run = relflow(&sb, &["run", "p.yaml"]).await;
    run.expect_code(4);
    let log = sb.read(".relflow/releases/petportal-1/deploy/deploy-petportal/script_output.log");
    let ids = fake.task_ids();
    let deploy_id = fake
        .calls()
        .iter()
        .find_map(|c| {
            c.strip_prefix("POST /deployit/task/")
                .and_then(|r| r.strip_suffix("/start"))
                .map(String::from)
        })
        .unwrap_or_else(|| panic!("no task was started: {:?}\n{log}", fake.calls()));
    let rollback_id = ids
        .iter()
        .find(|id| **id != deploy_id)
        .expect("a rollback task")
        .clone();
    let mut expected = vec![
        "Upgrading deployment".to_string(),
        "Mapping all deployables".into(),
        "Creating a deployment task".into(),
        format!("Execute task with id: {deploy_id}"),
    ];
    for _ in 0..4 {
        expected.push(format!("Task {deploy_id} now in state EXECUTING"));
        expected.push(format!("Task {deploy_id} now in state FAILED"));
    }
    expected.push("Going to rollback".into());
    expected.push(format!("Task {rollback_id} now in state EXECUTING"));
    expected.push(format!("Task {rollback_id} now in state EXECUTED"));
    assert_lines_in_order(&log, &expected);
    assert_eq!(log.matches("=== attempt ").count(), 4, "{log}");
    assert_eq!(
        fake.count("POST /deployit/deployment"),
        1,
        "a retry must start the same task, not create one"
    );
    assert_eq!(
        fake.count(&format!("POST /deployit/task/{deploy_id}/start")),
        4
    );
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/1.0")
    );
    assert!(
        !log.contains(PASSWORD) && !String::from_utf8_lossy(&sb.state_bytes()).contains(PASSWORD)
    );

    fake.script_deploy(TaskScript::succeed());
    let fixed = relflow(
        &sb,
        &[
            "restart-phase",
            "petportal-1",
            "deploy",
            "--var",
            "version=2.3",
        ],
    )
    .await;
    fixed.expect_code(0);
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/2.3")
    );
    let log2 = sb.read(".relflow/releases/petportal-1/deploy#2/deploy-petportal/script_output.log");
    let new_id = log2
        .lines()
        .find_map(|l| l.strip_prefix("Execute task with id: "))
        .expect("a new deployment task")
        .to_string();
    assert_eq!(
        fake.task_state(&new_id).map(|(_, gone)| gone),
        Some(true),
        "the successful task is archived"
    );
    let status = relflow(&sb, &["status", "petportal-1", "--json"]).await;
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(doc["status"], "completed");
    assert_eq!(doc["phases"][0]["label"], "deploy");
    assert_eq!(doc["phases"][0]["status"], "rolled_back");
    assert_eq!(doc["phases"][0]["variables"]["version"], "2.2");
    assert_eq!(doc["phases"][1]["label"], "deploy#2");
    assert_eq!(doc["phases"][1]["status"], "completed");
    assert_eq!(doc["phases"][1]["variables"]["version"], "2.3");
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_cancel_policy_deletes_the_failed_task_once_and_aborts() {
    let fake = FakeXld::start().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2")
        .script_deploy(TaskScript::always_fail());
    let mut sb = Sandbox::new();
    sb.env("XLD_PASSWORD", PASSWORD);
    let yaml = pipeline(&fake.url())
        .replace("then: rollback", "then: cancel")
        .replace("retries: 3", "retries: 0");
    sb.write("p.yaml", &yaml);
    let run = relflow(&sb, &["run", "p.yaml"]).await;
    run.expect_code(3);
    let deletes = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("DELETE /deployit/task/"))
        .count();
    assert_eq!(deletes, 1, "{:?}", fake.calls());
    let log = sb.read(".relflow/releases/petportal-1/deploy/deploy-petportal/script_output.log");
    assert!(
        log.contains("the target may be in an unknown state"),
        "{log}"
    );
}
