//! Cancel, resume, later rollback, undeploy, current version, XL task options, insecure TLS, the handle.

use super::*;

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
