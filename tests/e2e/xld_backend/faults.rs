//! HTTP faults: 5xx, 429 with Retry-After, garbage XML, slow answers, dropped and refused connections, wrong password.

use super::*;

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

    // A slow create times out and is not sent again: the task XL Deploy created meanwhile
    // is found among the active tasks and adopted.
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
    assert!(ran.result.is_ok(), "{:?}", ran.result);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    assert_eq!(fake.task_ids().len(), 1);
    let id = task_id(&ran.handle);
    assert!(
        ran.log.contains(&format!(
            "Adopted task {id} created before the connection dropped"
        )),
        "{:?}",
        ran.log
    );
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
async fn xld_connection_dropped_after_create_adopts_the_created_task() {
    let fake = FakeXld::start_with_drop_proxy().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2")
        .fault("POST", "/deployit/deployment", FaultKind::DropAfter, 1);
    let ran = deploy(&backend(&fake), "2.2").await;
    assert!(ran.result.is_ok(), "{:?} {:?}", ran.result, ran.log);
    assert_eq!(fake.count("POST /deployit/deployment"), 1);
    // The server did create the task; relflow adopted it instead of creating a second one.
    assert_eq!(fake.task_ids().len(), 1);
    let id = task_id(&ran.handle);
    assert_in_order(
        &ran.log,
        &[
            "Creating a deployment task".into(),
            format!("Adopted task {id} created before the connection dropped"),
            format!("Execute task with id: {id}"),
            format!("Task {id} now in state EXECUTED"),
        ],
    );
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/start")), 1);
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/2.2")
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
