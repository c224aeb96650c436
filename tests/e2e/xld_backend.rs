//! The xl-deploy backend against the fake XL Deploy: one test per scripted behaviour, each
//! asserting the exact requests, the error class and the `script_output.log` lines.

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

#[tokio::test(flavor = "multi_thread")]
async fn xld_initial_deploy_runs_the_xl_sequence_and_archives() {
    let fake = FakeXld::start().await;
    fake.with_package("Applications/PetPortal/1.0");
    let ran = deploy(&backend(&fake), "1.0").await;
    assert!(ran.result.is_ok(), "{:?}", ran.result);
    let id = task_id(&ran.handle);
    assert_eq!(
        fake.calls(),
        strings(&[
            "GET /deployit/deployment/exists",
            "GET /deployit/deployment/prepare/initial",
            "POST /deployit/deployment/prepare/deployeds",
            "POST /deployit/deployment/validate",
            "POST /deployit/deployment",
        ])
        .into_iter()
        .chain([
            format!("POST /deployit/task/{id}/start"),
            format!("GET /deployit/task/{id}"),
            format!("GET /deployit/task/{id}"),
            format!("POST /deployit/task/{id}/archive"),
        ])
        .collect::<Vec<_>>()
    );
    assert_eq!(
        ran.log,
        vec![
            "Creating initial deploy".to_string(),
            "Mapping all deployables".into(),
            "Creating a deployment task".into(),
            format!("Execute task with id: {id}"),
            format!("Task {id} now in state EXECUTING"),
            format!("Task {id} now in state EXECUTED"),
        ]
    );
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/1.0")
    );
    assert_eq!(fake.task_state(&id), Some(("DONE".into(), true)));
    let prepare = &fake.requests()[1];
    assert!(
        prepare
            .query
            .contains("version=Applications%2FPetPortal%2F1.0"),
        "{}",
        prepare.query
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_failing_task_is_retried_by_starting_the_same_task_until_it_succeeds() {
    let fake = petportal().await;
    fake.script_deploy(TaskScript::fail_times(2));
    let b = backend(&fake);
    let first = deploy(&b, "2.2").await;
    assert_eq!(first.class(), ErrorClass::TaskFailed);
    let handle = first.handle.clone().expect("handle handed over");
    let id = task_id(&first.handle);
    assert!(
        first
            .err()
            .message
            .contains(&format!("task {id} is FAILED")),
        "{}",
        first.err()
    );
    let second = retry(&b, &handle).await;
    assert_eq!(second.class(), ErrorClass::TaskFailed);
    let third = retry(&b, &handle).await;
    assert!(third.result.is_ok(), "{:?}", third.result);

    let mut log = first.log.clone();
    log.extend(second.log.iter().cloned());
    log.extend(third.log.iter().cloned());
    let executing = format!("Task {id} now in state EXECUTING");
    let failed = format!("Task {id} now in state FAILED");
    assert_in_order(
        &log,
        &[
            "Upgrading deployment".into(),
            "Mapping all deployables".into(),
            "Creating a deployment task".into(),
            format!("Execute task with id: {id}"),
            executing.clone(),
            failed.clone(),
            executing.clone(),
            failed.clone(),
            executing.clone(),
            format!("Task {id} now in state EXECUTED"),
        ],
    );
    assert_eq!(log.iter().filter(|l| **l == executing).count(), 3);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/start")), 3);
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/archive")), 1);
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/2.2")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_task_that_stays_failed_is_rolled_back_to_the_previous_version() {
    let fake = petportal().await;
    fake.script_deploy(TaskScript::always_fail());
    let b = backend(&fake);
    let first = deploy(&b, "2.2").await;
    let handle = first.handle.clone().expect("handle");
    let id = task_id(&first.handle);
    for _ in 0..3 {
        assert_eq!(retry(&b, &handle).await.class(), ErrorClass::TaskFailed);
    }
    let before = fake.calls().len();
    let rolled = roll_back(&b, &handle).await;
    let report = rolled.result.as_ref().expect("rollback succeeds");
    assert!(report.failure().is_none());
    let rollback_id = fake
        .task_ids()
        .into_iter()
        .find(|t| *t != id)
        .expect("a rollback task");
    assert_eq!(
        fake.calls()[before..].to_vec(),
        vec![
            format!("GET /deployit/task/{id}"),
            format!("POST /deployit/deployment/rollback/{id}"),
            format!("POST /deployit/task/{rollback_id}/start"),
            format!("GET /deployit/task/{rollback_id}"),
            format!("GET /deployit/task/{rollback_id}"),
            format!("POST /deployit/task/{rollback_id}/archive"),
        ]
    );
    assert_eq!(
        rolled.log,
        vec![
            format!("Task {rollback_id} now in state EXECUTING"),
            format!("Task {rollback_id} now in state EXECUTED"),
        ]
    );
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/1.0")
    );
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/start")), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_rollback_task_that_fails_is_reattached_not_created_again() {
    let fake = petportal().await;
    fake.script_deploy(TaskScript::always_fail())
        .script_rollback(TaskScript::fail_times(1));
    let b = backend(&fake);
    let first = deploy(&b, "2.2").await;
    let handle = first.handle.clone().expect("handle");
    let id = task_id(&first.handle);
    let failed = roll_back(&b, &handle).await;
    assert_eq!(failed.class(), ErrorClass::TaskFailed);
    assert!(
        failed.err().message.contains("rollback task"),
        "{}",
        failed.err()
    );
    let again = roll_back(&b, &handle).await;
    assert!(again.result.is_ok(), "{:?}", again.result);
    assert_eq!(
        fake.count(&format!("POST /deployit/deployment/rollback/{id}")),
        1
    );
    let rollback_id = fake
        .task_ids()
        .into_iter()
        .find(|t| *t != id)
        .expect("rollback task");
    assert_eq!(
        fake.count(&format!("POST /deployit/task/{rollback_id}/start")),
        2
    );
    assert_in_order(
        &again.log,
        &[
            format!("Task {rollback_id} now in state EXECUTING"),
            format!("Task {rollback_id} now in state EXECUTED"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_stopped_task_fails_unless_fail_on_pause_is_off() {
    let fake = petportal().await;
    fake.script_deploy(TaskScript::stop());
    let ran = deploy(&backend(&fake), "2.2").await;
    assert_eq!(ran.class(), ErrorClass::TaskFailed);
    assert!(ran.err().message.contains("STOPPED"), "{}", ran.err());

    // With fail_on_pause off relflow keeps waiting for a person; the polling budget ends it.
    let patient = XlDeployBackend::new(XlDeployConfig {
        fail_on_pause: false,
        polling_budget: 5,
        ..config(&fake.url())
    })
    .expect("config");
    let ran = deploy(&patient, "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Timeout, "{:?}", ran.result);
    let id = task_id(&ran.handle);
    assert_eq!(fake.count(&format!("GET /deployit/task/{id}")), 5);
    let stopped = format!("Task {id} now in state STOPPED");
    assert_eq!(
        ran.log.iter().filter(|l| **l == stopped).count(),
        1,
        "{:?}",
        ran.log
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_validation_errors_are_printed_and_no_task_is_created() {
    let fake = petportal().await;
    fake.with_validation_errors(&[
        (
            "Infrastructure/Prod/Appserver-1/JBoss/PetPortal-ear",
            "Context root is required",
        ),
        (
            "Infrastructure/Prod/Appserver-1/JBoss/PetPortal-ear",
            "Port 80 < 1024 & not allowed",
        ),
    ]);
    let ran = deploy(&backend(&fake), "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Validation);
    assert!(ran.handle.is_none());
    assert_in_order(
        &ran.log,
        &strings(&[
            "Mapping all deployables",
            "* ERROR : CI: Infrastructure/Prod/Appserver-1/JBoss/PetPortal-ear Message: Context root is required",
            "* ERROR : CI: Infrastructure/Prod/Appserver-1/JBoss/PetPortal-ear Message: Port 80 < 1024 & not allowed",
        ]),
    );
    assert!(!ran.log.iter().any(|l| l == "Creating a deployment task"));
    assert_eq!(fake.count("POST /deployit/deployment"), 0);
    assert!(fake.task_ids().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_5xx_on_safe_calls_is_retried_in_place() {
    let fake = petportal().await;
    fake.fault(
        "POST",
        "/deployit/deployment/prepare/deployeds",
        FaultKind::Status(500),
        1,
    )
    .fault("GET", "/deployit/task/*", FaultKind::Status(503), 2);
    let ran = deploy(&backend(&fake), "2.2").await;
    assert!(ran.result.is_ok(), "{:?}", ran.result);
    let id = task_id(&ran.handle);
    assert_eq!(fake.count("POST /deployit/deployment/prepare/deployeds"), 2);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    assert_eq!(fake.count(&format!("GET /deployit/task/{id}")), 4);
    let retries: Vec<&String> = ran
        .log
        .iter()
        .filter(|l| l.contains("retrying in"))
        .collect();
    assert_eq!(retries.len(), 3, "{:?}", ran.log);
    assert!(
        retries[0].starts_with("POST /deployit/deployment/prepare/deployeds: HTTP 500"),
        "{}",
        retries[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_persistent_5xx_fails_with_class_http_5xx_after_the_retries() {
    let fake = petportal().await;
    fake.fault(
        "GET",
        "/deployit/deployment/exists",
        FaultKind::Status(503),
        10,
    );
    let ran = deploy(&backend(&fake), "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Http5xx);
    assert_eq!(fake.count("GET /deployit/deployment/exists"), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_429_is_retried_after_its_retry_after() {
    let fake = petportal().await;
    fake.fault(
        "GET",
        "/deployit/deployment/exists",
        FaultKind::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let ran = deploy(&backend(&fake), "2.2").await;
    assert!(ran.result.is_ok(), "{:?}", ran.result);
    let exists: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/deployit/deployment/exists")
        .collect();
    assert_eq!(exists.len(), 2);
    let gap = exists[1].at - exists[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(2), "retried after {gap:?}");
    assert!(
        ran.log[0].contains("429") && ran.log[0].contains("retrying in 1.0s"),
        "{}",
        ran.log[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_429_with_a_long_retry_after_is_left_to_the_policy() {
    let fake = petportal().await;
    fake.fault(
        "GET",
        "/deployit/deployment/exists",
        FaultKind::RateLimited {
            retry_after_secs: 120,
        },
        1,
    );
    let ran = deploy(&backend(&fake), "2.2").await;
    assert_eq!(ran.class(), ErrorClass::RateLimited);
    assert!(
        ran.err().message.contains("Retry-After: 120s"),
        "{}",
        ran.err()
    );
    assert_eq!(fake.count("GET /deployit/deployment/exists"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_garbage_xml_is_a_protocol_error_and_resume_recovers() {
    let fake = petportal().await;
    fake.fault("GET", "/deployit/task/*", FaultKind::Garbage, 1);
    let b = backend(&fake);
    let ran = deploy(&b, "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Protocol, "{:?}", ran.result);
    let handle = ran.handle.clone().expect("handle stored before polling");
    let resumed = resume(&b, &handle).await;
    assert!(resumed.result.is_ok(), "{:?}", resumed.result);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    assert_eq!(
        fake.count(&format!(
            "POST /deployit/task/{}/start",
            task_id(&ran.handle)
        )),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_slow_answers_time_out_and_safe_calls_are_retried() {
    let fake = petportal().await;
    fake.fault(
        "GET",
        "/deployit/deployment/exists",
        FaultKind::Slow(Duration::from_secs(3)),
        1,
    );
    let b = XlDeployBackend::new(XlDeployConfig {
        request_timeout: Duration::from_millis(500),
        ..config(&fake.url())
    })
    .expect("config");
    let ran = deploy(&b, "2.2").await;
    assert!(ran.result.is_ok(), "{:?}", ran.result);
    assert_eq!(fake.count("GET /deployit/deployment/exists"), 2);
    assert!(ran.log[0].contains("retrying"), "{:?}", ran.log);

    // A slow create is a timeout, and is not sent again.
    let fake = petportal().await;
    fake.fault(
        "POST",
        "/deployit/deployment",
        FaultKind::Slow(Duration::from_secs(3)),
        3,
    );
    let b = XlDeployBackend::new(XlDeployConfig {
        request_timeout: Duration::from_millis(500),
        ..config(&fake.url())
    })
    .expect("config");
    let ran = deploy(&b, "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Timeout, "{:?}", ran.result);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    assert!(
        ran.err().message.contains("may have created the task"),
        "{}",
        ran.err()
    );
    assert!(ran.handle.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_create_task_is_never_sent_twice_even_on_503() {
    let fake = petportal().await;
    fake.fault("POST", "/deployit/deployment", FaultKind::Status(503), 1);
    let ran = deploy(&backend(&fake), "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Http5xx);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    assert!(!fake.calls().iter().any(|c| c.ends_with("/start")));
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_connection_dropped_after_create_is_not_repeated() {
    let fake = FakeXld::start_with_drop_proxy().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2")
        .fault("POST", "/deployit/deployment", FaultKind::DropAfter, 1);
    let ran = deploy(&backend(&fake), "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Connection, "{:?}", ran.result);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    // The server did create the task; relflow did not create a second one.
    assert_eq!(fake.task_ids().len(), 1);
    assert!(
        ran.err().message.contains("may have created the task"),
        "{}",
        ran.err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_connection_dropped_on_polls_is_retried() {
    let fake = FakeXld::start_with_drop_proxy().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2")
        .fault("GET", "/deployit/task/*", FaultKind::DropBefore, 2)
        .fault("POST", "*/start", FaultKind::DropAfter, 1);
    let ran = deploy(&backend(&fake), "2.2").await;
    assert!(ran.result.is_ok(), "{:?} {:?}", ran.result, ran.log);
    let id = task_id(&ran.handle);
    // The lost start answer: relflow read the state (EXECUTING) instead of starting again.
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/start")), 1);
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/2.2")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_refused_connection_is_class_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let b = XlDeployBackend::new(config(&url)).expect("config");
    let ran = deploy(&b, "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Connection);
    assert_eq!(ran.log.iter().filter(|l| l.contains("retrying")).count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_wrong_password_is_auth_and_the_password_is_never_shown() {
    let fake = petportal().await;
    let b = XlDeployBackend::new(XlDeployConfig {
        password: "hunter2-wrong".into(),
        ..config(&fake.url())
    })
    .expect("config");
    let ran = deploy(&b, "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Auth);
    assert_eq!(fake.calls().len(), 1, "auth errors are not retried");
    let everything = format!("{} {:?} {b:?}", ran.err(), ran.log);
    assert!(!everything.contains("hunter2"), "{everything}");
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_cancel_sends_exactly_one_delete() {
    let fake = petportal().await;
    fake.script_deploy(TaskScript::always_fail());
    let b = backend(&fake);
    let ran = deploy(&b, "2.2").await;
    let handle = ran.handle.clone().expect("handle");
    let id = task_id(&ran.handle);
    let before = fake.calls().len();
    let cancelled = {
        let (b, handle) = (b.clone(), handle.clone());
        run(move |_, log| b.cancel(&handle, log)).await
    };
    assert!(cancelled.result.is_ok(), "{:?}", cancelled.result);
    assert_eq!(
        fake.calls()[before..].to_vec(),
        vec![format!("DELETE /deployit/task/{id}")]
    );
    assert_eq!(fake.task_state(&id), Some(("CANCELLED".into(), true)));
    assert!(
        cancelled.log[0].contains("half-updated"),
        "{:?}",
        cancelled.log
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_resume_reattaches_to_the_stored_task_without_deploying_again() {
    let fake = petportal().await;
    fake.script_deploy(TaskScript::executing_for(6));
    // The first runner gives up while the task runs (as if it were killed).
    let impatient = XlDeployBackend::new(XlDeployConfig {
        polling_budget: 2,
        ..config(&fake.url())
    })
    .expect("config");
    let first = deploy(&impatient, "2.2").await;
    assert_eq!(first.class(), ErrorClass::Timeout);
    let handle = first.handle.clone().expect("handle");
    let resumed = resume(&backend(&fake), &handle).await;
    assert!(resumed.result.is_ok(), "{:?}", resumed.result);
    let id = task_id(&first.handle);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/start")), 1);
    assert_eq!(
        resumed.log.last(),
        Some(&format!("Task {id} now in state EXECUTED"))
    );

    // Resuming again after the task was archived reads the environment instead.
    let again = resume(&backend(&fake), &handle).await;
    assert!(again.result.is_ok(), "{:?}", again.result);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_resume_leaves_a_failed_task_to_the_policy() {
    let fake = petportal().await;
    fake.script_deploy(TaskScript::always_fail());
    let b = backend(&fake);
    let first = deploy(&b, "2.2").await;
    let id = task_id(&first.handle);
    let resumed = resume(&b, &first.handle.clone().expect("handle")).await;
    assert_eq!(resumed.class(), ErrorClass::TaskFailed);
    assert_eq!(resumed.log, vec![format!("Task {id} now in state FAILED")]);
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/start")), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_completed_deployment_rolls_back_by_redeploying_the_previous_package() {
    let fake = petportal().await;
    let b = backend(&fake);
    let first = deploy(&b, "2.2").await;
    assert!(first.result.is_ok());
    let handle = first.handle.clone().expect("handle");
    let rolled = roll_back(&b, &handle).await;
    assert!(
        rolled.result.is_ok(),
        "{:?} {:?}",
        rolled.result,
        rolled.log
    );
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/1.0")
    );
    let update = fake
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/deployit/deployment/prepare/update")
        .expect("prepare/update");
    assert!(
        update.query.contains("Applications%2FPetPortal%2F1.0"),
        "{}",
        update.query
    );
    // Rolling back again finds the environment already back.
    let again = roll_back(&b, &handle).await;
    assert!(again.result.is_ok(), "{:?}", again.result);
    assert_eq!(fake.count("POST /deployit/deployment"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_undeploy_and_current_version() {
    let fake = petportal().await;
    let b = backend(&fake);
    let current = {
        let b = b.clone();
        run(move |_, log| b.current_version(log)).await
    };
    let current = current.result.expect("current version").expect("deployed");
    assert_eq!(current.version, "1.0");

    let undeploy = |fail_if_missing| {
        let b = b.clone();
        let request = UndeployRequest {
            application: "PetPortal".into(),
            environment: None,
            work_dir: work_dir(),
            fail_if_missing,
        };
        run(move |on_handle, log| b.undeploy(&request, on_handle, log))
    };
    let ran = undeploy(true).await;
    assert!(ran.result.is_ok(), "{:?}", ran.result);
    assert!(
        fake.calls()
            .contains(&"GET /deployit/deployment/prepare/undeploy".to_string())
    );
    assert_eq!(fake.deployed(PROD, "PetPortal"), None);
    assert_eq!(undeploy(true).await.class(), ErrorClass::NotFound);
    assert!(undeploy(false).await.result.is_ok());
    let none = {
        let b = b.clone();
        run(move |_, log| b.current_version(log)).await
    };
    assert_eq!(none.result.expect("current version"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_orchestrators_and_properties_reach_the_created_task() {
    let fake = petportal().await;
    let b = XlDeployBackend::new(XlDeployConfig {
        orchestrators: vec!["parallel-by-container".into()],
        deployed_application_properties: vec![("undeployDependencies".into(), "true".into())],
        ..config(&fake.url())
    })
    .expect("config");
    let ran = deploy(&b, "2.2").await;
    assert!(ran.result.is_ok(), "{:?}", ran.result);
    let create = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/deployit/deployment")
        .expect("create");
    assert!(
        create
            .body
            .contains("<orchestrator><value>parallel-by-container</value></orchestrator>"),
        "{}",
        create.body
    );
    assert!(
        create
            .body
            .contains("<undeployDependencies>true</undeployDependencies>"),
        "{}",
        create.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_insecure_mode_warns_loudly_in_every_operation() {
    let fake = petportal().await;
    let b = XlDeployBackend::new(XlDeployConfig {
        insecure: true,
        ..config(&fake.url())
    })
    .expect("config");
    let ran = deploy(&b, "2.2").await;
    assert!(
        ran.log[0].starts_with("WARNING: TLS certificate verification is OFF"),
        "{:?}",
        ran.log
    );
    assert!(!ran.log[0].contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_handle_is_stored_before_the_task_starts() {
    let fake = petportal().await;
    let b = backend(&fake);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let calls_at_handle = Arc::clone(&seen);
    let ran = {
        let b = b.clone();
        let request = request("2.2");
        tokio::task::spawn_blocking(move || {
            let mut on_handle = |_: &Handle| -> Result<(), BackendError> {
                calls_at_handle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push("handle".into());
                Err(BackendError::new(
                    ErrorClass::Precondition,
                    "store the handle: disk full",
                ))
            };
            b.deploy(&request, &mut on_handle, &mut |_| {})
        })
        .await
        .expect("no panic")
    };
    assert_eq!(ran.expect_err("refused").class, ErrorClass::Precondition);
    assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 1);
    // The task was never started, and the orphan was cancelled.
    assert!(!fake.calls().iter().any(|c| c.ends_with("/start")));
    assert_eq!(
        fake.calls()
            .last()
            .map(|c| c.starts_with("DELETE /deployit/task/")),
        Some(true)
    );
}
