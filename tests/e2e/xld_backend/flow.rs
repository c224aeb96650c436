//! The deployment flow: initial deploy, retry of the same task, rollback tasks, STOPPED, validation.

use super::*;

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
            "GET /deployit/tasks/v2/current",
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
