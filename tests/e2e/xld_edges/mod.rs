//! XL Deploy at the edges, through the real CLI: one deployment task per attempt whatever
//! happens to the create call (dropped answer, runner killed while it is in flight, crash
//! right after the intent is recorded), pages that are not XML, unbounded or dated
//! `Retry-After`, refused certificates and a private CA, and the attempt's deadline.

mod create_once;
mod deadline;
mod faults;
pub(crate) mod tls;

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_xld::FakeXld;
use crate::harness::{Outcome, Sandbox, finish, wait_for, wait_or_kill};

const PROD: &str = "Environments/Prod";
/// The fake accepts `admin` with this password.
const PASSWORD: &str = "s3cret";
const RELEASE: &str = "petportal-1";
const LOG: &str = ".relflow/releases/petportal-1/deploy/deploy-petportal/script_output.log";

/// A one-task pipeline deploying PetPortal 2.2 to Prod through `url`. `backend_extra` and
/// `task_extra` are YAML flow-mapping entries added to the backend and the task
/// (`", ca_cert: ca.pem"`), `policy` the phase's `on_failure`.
fn pipeline(url: &str, backend_extra: &str, task_extra: &str, policy: &str) -> String {
    format!(
        r#"
name: petportal
variables: {{ version: "2.2" }}
backends:
  xld: {{ kind: xl-deploy, url: "{url}", username: admin, password: "${{env.XLD_PASSWORD}}", polling_interval: 100ms{backend_extra} }}
phases:
  - name: deploy
    on_failure: {policy}
    tasks:
      - {{ name: deploy-petportal, deploy: {{ backend: xld, package: "Applications/PetPortal/${{version}}", environment: {PROD} }}{task_extra} }}
"#
    )
}

/// Retries transient failures twice, quickly.
const RETRY_TRANSIENT: &str = "{ retry: { retries: 2, delay: 10ms, jitter: false } }";

/// The fake with PetPortal 1.0 deployed to Prod and 2.2 imported.
fn petportal(fake: &FakeXld) {
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2");
}

fn sandbox(yaml: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.env("XLD_PASSWORD", PASSWORD);
    sb.write("p.yaml", yaml);
    sb
}

async fn relflow(sb: &Sandbox, args: &[&str]) -> Outcome {
    finish(sb.command(args)).await
}

/// Runs `relflow ARGS` but kills it after `limit`: a release that would wait for ever fails
/// the test instead of hanging it. Returns the outcome and how long it took.
async fn relflow_within(sb: &Sandbox, args: &[&str], limit: Duration) -> (Outcome, Duration) {
    let started = Instant::now();
    let child = sb.spawn(args);
    let (out, _) = tokio::task::spawn_blocking(move || wait_or_kill(child, limit))
        .await
        .expect("join");
    (out, started.elapsed())
}

async fn status_json(sb: &Sandbox) -> Value {
    let out = relflow(sb, &["status", RELEASE, "--json"]).await;
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The deploy task of the `status --json` document.
fn deploy_task(doc: &Value) -> &Value {
    &doc["phases"][0]["tasks"][0]
}

/// The id every `Execute task with id:` line of the log names.
fn executed_ids(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.strip_prefix("Execute task with id: "))
        .map(str::to_string)
        .collect()
}
