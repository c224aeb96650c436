//! The xl-deploy backend against the fake XL Deploy: one test per scripted behaviour, each
//! asserting the exact requests, the error class and the `script_output.log` lines.
//!
//! Shared helpers live here; each child module holds one area.

mod edges;
mod faults;
mod flow;
mod operations;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relflow_plugin::{
    Backend, BackendError, DeployOutcome, DeployRequest, ErrorClass, Handle, HttpRetry,
    RollbackReport, UndeployRequest, XlDeployBackend, XlDeployConfig,
};

use crate::fake_xld::{FakeXld, FaultKind, TaskScript};

const PROD: &str = "Environments/Prod";

fn config(url: &str) -> XlDeployConfig {
    XlDeployConfig {
        url: url.to_string(),
        username: "admin".into(),
        password: "s3cret".into(),
        polling_interval: Duration::from_millis(5),
        request_timeout: Duration::from_secs(2),
        environment: Some(PROD.into()),
        application: Some("Applications/PetPortal".into()),
        http_retry: HttpRetry {
            times: 3,
            first_delay: Duration::from_millis(10),
            max_retry_after: Duration::from_secs(5),
        },
        ..XlDeployConfig::default()
    }
}

fn backend(fake: &FakeXld) -> XlDeployBackend {
    XlDeployBackend::new(config(&fake.url())).expect("valid config")
}

/// What one backend call left: its result, the log lines, the handle it handed over.
struct Ran<T> {
    result: Result<T, BackendError>,
    log: Vec<String>,
    handle: Option<Handle>,
}

impl<T: std::fmt::Debug> Ran<T> {
    fn err(&self) -> &BackendError {
        self.result.as_ref().expect_err("the call should fail")
    }

    fn class(&self) -> ErrorClass {
        self.err().class
    }
}

/// Runs a blocking backend call on the blocking pool, as the runner does.
async fn run<T: Send + 'static>(
    op: impl FnOnce(
        &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        &mut dyn FnMut(&str),
    ) -> Result<T, BackendError>
    + Send
    + 'static,
) -> Ran<T> {
    tokio::task::spawn_blocking(move || {
        let mut log = Vec::new();
        let mut handle = None;
        let result = op(
            &mut |h| {
                handle = Some(h.clone());
                Ok(())
            },
            &mut |line| log.push(line.to_string()),
        );
        Ran {
            result,
            log,
            handle,
        }
    })
    .await
    .expect("the backend call panicked")
}

fn request(version: &str) -> DeployRequest {
    DeployRequest {
        application: "Applications/PetPortal".into(),
        version: version.into(),
        components: vec![],
        work_dir: work_dir(),
        verify: None,
        environment: Some(PROD.into()),
    }
}

fn work_dir() -> PathBuf {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    dir.join("deploy")
}

async fn deploy(b: &XlDeployBackend, version: &str) -> Ran<DeployOutcome> {
    let (b, request) = (b.clone(), request(version));
    run(move |on_handle, log| b.deploy(&request, on_handle, log)).await
}

async fn retry(b: &XlDeployBackend, handle: &Handle) -> Ran<DeployOutcome> {
    let (b, handle) = (b.clone(), handle.clone());
    run(move |_, log| b.retry(&handle, log)).await
}

async fn resume(b: &XlDeployBackend, handle: &Handle) -> Ran<DeployOutcome> {
    let (b, handle) = (b.clone(), handle.clone());
    run(move |_, log| b.resume(&handle, log)).await
}

async fn roll_back(b: &XlDeployBackend, handle: &Handle) -> Ran<RollbackReport> {
    let (b, handle) = (b.clone(), handle.clone());
    run(move |_, log| b.roll_back(&handle, log)).await
}

fn task_id(handle: &Option<Handle>) -> String {
    match handle {
        Some(Handle::XlDeploy(h)) => h.task_id.clone(),
        other => panic!("expected an xl-deploy handle, got {other:?}"),
    }
}

/// Checks that `expected` appear in `log` in this order (other lines may sit between).
fn assert_in_order(log: &[String], expected: &[String]) {
    let mut rest = log.iter();
    for want in expected {
        assert!(
            rest.any(|line| line == want),
            "`{want}` missing (in order) from the log:\n{}",
            log.join("\n")
        );
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The fake with PetPortal 1.0 deployed to Prod and 2.2 imported.
async fn petportal() -> FakeXld {
    let fake = FakeXld::start().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2");
    fake
}
