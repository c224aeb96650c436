//! Edges: the attempt's deadline and stop flag while waiting on XL Deploy, one task per
//! attempt when a create answer is lost, HTML where XML was expected, `Retry-After` dates and
//! absurd values, an unreadable `ca_cert`.

use std::time::Instant;

use relflow_plugin::{Interrupt, StopCause};

use super::*;
use crate::harness::wait_for;

/// Starts a deploy of 2.2 on a task that never settles, with `interrupt`; returns once the
/// task is being polled, with the running call and the task id.
async fn deploy_endless(
    fake: &FakeXld,
    interrupt: Interrupt,
) -> (tokio::task::JoinHandle<Ran<DeployOutcome>>, String) {
    fake.script_deploy(TaskScript::endless());
    let mut b = backend(fake);
    b.interrupt = interrupt;
    let running = tokio::spawn(async move { deploy(&b, "2.2").await });
    let polled = wait_for(30, || {
        fake.calls()
            .iter()
            .any(|c| c.starts_with("GET /deployit/task/"))
    })
    .await;
    assert!(polled, "the task was never polled: {:?}", fake.calls());
    let id = fake.task_ids().remove(0);
    (running, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_signal_stops_polling_and_leaves_the_task_running_for_resume() {
    let fake = petportal().await;
    let flag = Interrupt::none();
    let (running, id) = deploy_endless(&fake, flag.clone()).await;
    flag.raise(StopCause::Signal);
    let ran = running.await.expect("join");
    assert_eq!(ran.class(), ErrorClass::Interrupted, "{:?}", ran.result);
    assert!(
        ran.err().message.contains("the runner was interrupted"),
        "{}",
        ran.err()
    );
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/stop")), 0);
    assert_eq!(fake.task_state(&id), Some(("EXECUTING".into(), false)));
    assert!(
        ran.log
            .iter()
            .any(|l| l.contains("keeps running in XL Deploy")),
        "{:?}",
        ran.log
    );

    // The task finishes on the server; resume re-attaches to it by its id.
    if let Some(task) = fake.world().tasks.get_mut(&id) {
        task.polls_left = 0;
    }
    let handle = ran.handle.clone().expect("handle stored before polling");
    let resumed = resume(&backend(&fake), &handle).await;
    assert!(resumed.result.is_ok(), "{:?}", resumed.result);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/start")), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_abort_stops_the_task_and_fails_interrupted() {
    let fake = petportal().await;
    let flag = Interrupt::none();
    let (running, id) = deploy_endless(&fake, flag.clone()).await;
    flag.raise(StopCause::Abort);
    let ran = running.await.expect("join");
    assert_eq!(ran.class(), ErrorClass::Interrupted, "{:?}", ran.result);
    assert!(
        ran.err().message.contains("the release was aborted"),
        "{}",
        ran.err()
    );
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/stop")), 1);
    assert_eq!(fake.task_state(&id), Some(("STOPPED".into(), false)));
    assert!(
        ran.log
            .contains(&format!("Stopped task {id}: the release was aborted")),
        "{:?}",
        ran.log
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_deadline_stops_the_task_and_fails_with_timeout() {
    let fake = petportal().await;
    fake.script_deploy(TaskScript::endless());
    let mut b = backend(&fake);
    b.interrupt = Interrupt::none().with_timeout(Some(Duration::from_secs(1)));
    let started = Instant::now();
    let ran = deploy(&b, "2.2").await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ran.class(), ErrorClass::Timeout, "{:?}", ran.result);
    assert!(
        ran.err().message.contains("timed out after 1s"),
        "{}",
        ran.err()
    );
    let id = task_id(&ran.handle);
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/stop")), 1);
    // Then the policy's rollback stops nothing more and rolls the stopped task back.
    let handle = ran.handle.clone().expect("handle");
    let rolled = roll_back(&backend(&fake), &handle).await;
    assert!(rolled.result.is_ok(), "{:?}", rolled.result);
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/1.0")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_a_wait_for_retry_after_ends_when_the_runner_is_interrupted() {
    let fake = petportal().await;
    fake.fault(
        "GET",
        "/deployit/deployment/exists",
        FaultKind::RateLimited {
            retry_after_secs: 60,
        },
        1,
    );
    let flag = Interrupt::none();
    let mut b = XlDeployBackend::new(XlDeployConfig {
        http_retry: HttpRetry {
            max_retry_after: Duration::from_secs(120),
            ..config(&fake.url()).http_retry
        },
        ..config(&fake.url())
    })
    .expect("config");
    b.interrupt = flag.clone();
    let running = tokio::spawn(async move { deploy(&b, "2.2").await });
    assert!(wait_for(30, || fake.count("GET /deployit/deployment/exists") == 1).await);
    let raised = Instant::now();
    flag.raise(StopCause::Signal);
    let ran = running.await.expect("join");
    assert!(
        raised.elapsed() < Duration::from_secs(30),
        "{:?}",
        raised.elapsed()
    );
    assert_eq!(ran.class(), ErrorClass::Interrupted, "{:?}", ran.result);
    assert_eq!(fake.count("GET /deployit/deployment/exists"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_create_lost_before_the_server_saw_it_is_created_once_by_the_next_try() {
    let fake = FakeXld::start_with_drop_proxy().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2")
        .fault("POST", "/deployit/deployment", FaultKind::DropBefore, 1);
    let b = backend(&fake);
    let request = request("2.2");
    let try_once = || {
        let (b, request) = (b.clone(), request.clone());
        run(move |on_handle, log| b.deploy(&request, on_handle, log))
    };
    let first = try_once().await;
    assert_eq!(first.class(), ErrorClass::Connection, "{:?}", first.result);
    assert!(
        first.err().message.contains("may have created the task"),
        "{}",
        first.err()
    );
    assert!(fake.task_ids().is_empty(), "nothing reached the server");
    assert!(request.work_dir.join("xldeploy-create.json").exists());

    // The next try finds the intent, finds no task, and creates one.
    let second = try_once().await;
    assert!(second.result.is_ok(), "{:?}", second.result);
    assert!(
        !second.log.iter().any(|l| l.starts_with("Adopted")),
        "{:?}",
        second.log
    );
    // The server saw one create (the first never reached it) and holds one task.
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    assert_eq!(fake.task_ids().len(), 1);
    assert!(!request.work_dir.join("xldeploy-create.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_a_task_active_before_the_create_is_not_adopted() {
    let fake = FakeXld::start_with_drop_proxy().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2");
    // Someone prepared the same deployment in XL Deploy and left it PENDING.
    let b = backend(&fake);
    let left = {
        let (b, request) = (b.clone(), request("2.2"));
        run(move |_, _| {
            b.deploy(
                &request,
                &mut |_| {
                    Err(BackendError::new(
                        ErrorClass::Interrupted,
                        "stop here, leave the task",
                    ))
                },
                &mut |_| {},
            )
        })
        .await
    };
    assert!(left.result.is_err());
    let orphan = fake.task_ids().remove(0);
    // hand_over cancelled it; make it look like a PENDING task someone else left.
    if let Some(task) = fake.world().tasks.get_mut(&orphan) {
        task.state = "PENDING".into();
        task.is_gone = false;
    }
    fake.fault("POST", "/deployit/deployment", FaultKind::DropAfter, 1);
    let ran = deploy(&b, "2.2").await;
    assert!(ran.result.is_ok(), "{:?}", ran.result);
    let id = task_id(&ran.handle);
    assert_ne!(id, orphan, "the task listed before the create was adopted");
    assert_eq!(fake.task_state(&orphan), Some(("PENDING".into(), false)));
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_undeploy_adopts_a_task_whose_create_answer_was_lost() {
    let fake = FakeXld::start_with_drop_proxy().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .fault("POST", "/deployit/deployment", FaultKind::DropAfter, 1);
    let b = backend(&fake);
    let request = UndeployRequest {
        application: "Applications/PetPortal".into(),
        environment: Some(PROD.into()),
        work_dir: work_dir(),
        fail_if_missing: true,
    };
    let ran = run(move |on_handle, log| b.undeploy(&request, on_handle, log)).await;
    assert!(ran.result.is_ok(), "{:?} {:?}", ran.result, ran.log);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    assert_eq!(fake.task_ids().len(), 1);
    assert!(
        ran.log.iter().any(|l| l.starts_with("Adopted task ")),
        "{:?}",
        ran.log
    );
    assert_eq!(fake.deployed(PROD, "PetPortal"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_html_where_xml_was_expected_is_a_protocol_error() {
    let fake = petportal().await;
    let page = FaultKind::Html {
        status: 200,
        body: "<!DOCTYPE html><html><head><title>Maintenance</title></head><body>Back at 6</body></html>".into(),
    };
    fake.fault("GET", "/deployit/task/*", page.clone(), 1);
    let ran = deploy(&backend(&fake), "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Protocol, "{:?}", ran.result);
    assert!(
        ran.err()
            .message
            .contains("HTML page instead of XL Deploy's answer: `Maintenance Back at 6`"),
        "{}",
        ran.err()
    );
    // A start answered by a page is not taken for a start either.
    let fake = petportal().await;
    fake.fault("POST", "*/start", page, 1);
    let ran = deploy(&backend(&fake), "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Protocol, "{:?}", ran.result);
    // A 503 page stays a (transient) 5xx: the status says what happened.
    let fake = petportal().await;
    fake.fault(
        "GET",
        "/deployit/deployment/exists",
        FaultKind::Html {
            status: 503,
            body: "<html><body>maintenance</body></html>".into(),
        },
        10,
    );
    let ran = deploy(&backend(&fake), "2.2").await;
    assert_eq!(ran.class(), ErrorClass::Http5xx, "{:?}", ran.result);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_retry_after_as_an_http_date_is_honoured_in_place() {
    let fake = petportal().await;
    let at = std::time::SystemTime::now() + Duration::from_secs(3);
    fake.fault(
        "GET",
        "/deployit/deployment/exists",
        FaultKind::RetryAfter(httpdate::fmt_http_date(at)),
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
    assert!(gap < Duration::from_secs(30), "retried after {gap:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_an_absurd_retry_after_is_cut_to_an_hour_and_left_to_the_policy() {
    let fake = petportal().await;
    fake.fault(
        "GET",
        "/deployit/deployment/exists",
        FaultKind::RetryAfter("18446744073709551615".into()),
        1,
    );
    let started = Instant::now();
    let ran = deploy(&backend(&fake), "2.2").await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(ran.class(), ErrorClass::RateLimited, "{:?}", ran.result);
    assert!(
        ran.err().message.contains("(Retry-After: 3600s;"),
        "{}",
        ran.err()
    );
    assert_eq!(fake.count("GET /deployit/deployment/exists"), 1);
}

#[test]
fn xld_an_unreadable_ca_cert_is_a_precondition() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").expect("write");
    for path in [missing, not_pem] {
        let err = XlDeployBackend::new(XlDeployConfig {
            ca_cert: Some(path.clone()),
            ..config("https://xld.example:4516")
        })
        .expect_err("refused");
        assert_eq!(err.class, ErrorClass::Precondition, "{err}");
        assert!(err.message.contains("ca_cert"), "{err}");
    }
}
