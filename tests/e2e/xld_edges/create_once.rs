//! At most one XL Deploy deployment task per attempt: the intent is recorded before `POST
//! /deployit/deployment`, and a lost answer is recovered by adopting the task from `GET
//! /deployit/tasks/v2/current` instead of creating another.

use super::*;
use crate::fake_xld::FaultKind;

/// What every scenario must end with: one create, one task in XL Deploy, 2.2 deployed.
fn assert_one_task_and_deployed(fake: &FakeXld) {
    assert_eq!(
        fake.count("POST /deployit/deployment"),
        1,
        "{:?}",
        fake.calls()
    );
    assert_eq!(fake.task_ids().len(), 1, "an orphan task was left behind");
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/2.2")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_edges_dropped_create_answer_adopts_the_task_instead_of_creating_another() {
    let fake = FakeXld::start_with_drop_proxy().await;
    petportal(&fake);
    fake.fault("POST", "/deployit/deployment", FaultKind::DropAfter, 1);
    let sb = sandbox(&pipeline(&fake.url(), "", "", RETRY_TRANSIENT));

    relflow(&sb, &["run", "p.yaml"]).await.expect_code(0);

    assert_one_task_and_deployed(&fake);
    let id = fake.task_ids().remove(0);
    let log = sb.read(LOG);
    assert!(
        log.contains(&format!(
            "Adopted task {id} created before the connection dropped"
        )),
        "{log}"
    );
    assert_eq!(executed_ids(&log), vec![id.clone()], "{log}");
    // The lookup came after the lost create, and the adopted task was started once.
    let calls = fake.calls();
    let create = calls.iter().position(|c| c == "POST /deployit/deployment");
    let lookups: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| *c == "GET /deployit/tasks/v2/current")
        .map(|(i, _)| i)
        .collect();
    assert!(
        lookups.iter().any(|i| Some(*i) > create),
        "no lookup after the create: {calls:?}"
    );
    assert_eq!(fake.count(&format!("POST /deployit/task/{id}/start")), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_edges_runner_killed_while_the_create_is_in_flight_resumes_with_the_same_task() {
    let fake = FakeXld::start_with_drop_proxy().await;
    petportal(&fake);
    fake.fault("POST", "/deployit/deployment", FaultKind::HoldAnswer, 1);
    let sb = sandbox(&pipeline(&fake.url(), "", "", RETRY_TRANSIENT));

    let mut runner = sb.spawn(&["run", "p.yaml"]);
    // The server has created the task; its answer is held in the proxy.
    assert!(
        wait_for(30, || fake.count("POST /deployit/deployment") == 1).await,
        "the create never reached the server: {:?}",
        fake.calls()
    );
    runner.kill().expect("SIGKILL the runner");
    runner.wait().expect("reap the runner");
    fake.release_held();

    relflow(&sb, &["resume", RELEASE]).await.expect_code(0);

    assert_one_task_and_deployed(&fake);
    let id = fake.task_ids().remove(0);
    let log = sb.read(LOG);
    assert!(log.contains(&format!("Adopted task {id}")), "{log}");
    assert_eq!(executed_ids(&log), vec![id.clone()], "{log}");
    let doc = status_json(&sb).await;
    assert_eq!(doc["status"], "completed", "{doc:#}");
    assert_eq!(deploy_task(&doc)["status"], "completed", "{doc:#}");
}

/// Kills the runner at failpoint `name`, then resumes; returns the resumed log.
async fn crash_at_then_resume(fake: &FakeXld, name: &str) -> String {
    let sb = sandbox(&pipeline(&fake.url(), "", "", RETRY_TRANSIENT));
    let trace = sb.path().join("failpoints.trace");
    let mut command = sb.command(&["run", "p.yaml"]);
    command
        .env("RELFLOW_FAILPOINT", name)
        .env("RELFLOW_FAILPOINT_TRACE", &trace);
    let crashed = finish(command).await;
    assert_eq!(crashed.code, -1, "not killed at {name}: {crashed:?}");
    let hits = std::fs::read_to_string(&trace).unwrap_or_default();
    assert_eq!(hits.lines().last(), Some(name), "{hits}");

    relflow(&sb, &["resume", RELEASE]).await.expect_code(0);
    sb.read(LOG)
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_edges_crash_right_after_the_create_intent_creates_the_task_once() {
    let fake = FakeXld::start().await;
    petportal(&fake);
    let log = crash_at_then_resume(&fake, "xld.create_intent").await;
    // Killed before the POST: the resumed attempt found nothing to adopt and created it.
    assert_one_task_and_deployed(&fake);
    assert!(!log.contains("Adopted task"), "{log}");
    assert_eq!(executed_ids(&log).len(), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_edges_crash_after_the_task_id_is_recorded_adopts_it_on_resume() {
    let fake = FakeXld::start().await;
    petportal(&fake);
    let log = crash_at_then_resume(&fake, "xld.task_created").await;
    assert_one_task_and_deployed(&fake);
    let id = fake.task_ids().remove(0);
    assert!(log.contains(&format!("Adopted task {id}")), "{log}");
    assert_eq!(executed_ids(&log), vec![id], "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_edges_create_lost_before_the_server_saw_it_is_created_by_the_next_attempt() {
    let fake = FakeXld::start_with_drop_proxy().await;
    petportal(&fake);
    fake.fault("POST", "/deployit/deployment", FaultKind::DropBefore, 1);
    let sb = sandbox(&pipeline(&fake.url(), "", "", RETRY_TRANSIENT));

    relflow(&sb, &["run", "p.yaml"]).await.expect_code(0);

    // The first create never arrived: nothing to adopt, so the second attempt created it.
    assert_one_task_and_deployed(&fake);
    let log = sb.read(LOG);
    assert!(!log.contains("Adopted task"), "{log}");
    assert!(log.contains("=== attempt 2 ==="), "{log}");
    let doc = status_json(&sb).await;
    let history = deploy_task(&doc)["attempt_history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(history.len(), 2, "{doc:#}");
    assert_eq!(history[0]["error_class"], "connection", "{doc:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_edges_a_crash_at_any_durable_write_of_an_xl_deploy_leaves_one_task() {
    // List the durable writes a deployment passes, then kill the runner at each in turn.
    let fake = FakeXld::start().await;
    petportal(&fake);
    let sb = sandbox(&pipeline(&fake.url(), "", "", RETRY_TRANSIENT));
    let trace = sb.path().join("failpoints.trace");
    let mut command = sb.command(&["run", "p.yaml"]);
    command.env("RELFLOW_FAILPOINT_TRACE", &trace);
    finish(command).await.expect_code(0);
    let points: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    for name in ["xld.create_intent", "xld.task_created"] {
        assert!(
            points.iter().any(|p| p == name),
            "{name} not reached: {points:?}"
        );
    }

    for n in 1..=points.len() {
        let at = format!("{} (write {n} of {})", points[n - 1], points.len());
        let fake = FakeXld::start().await;
        petportal(&fake);
        let sb = sandbox(&pipeline(&fake.url(), "", "", RETRY_TRANSIENT));
        let mut command = sb.command(&["run", "p.yaml"]);
        command.env("RELFLOW_FAILPOINT", format!("*@{n}"));
        let crashed = finish(command).await;
        assert_eq!(crashed.code, -1, "not killed at {at}: {crashed:?}");
        if status_json(&sb).await["status"] != "completed" {
            let resumed = relflow(&sb, &["resume", RELEASE]).await;
            assert_eq!(resumed.code, 0, "resume after a kill at {at}: {resumed:?}");
        }
        let doc = status_json(&sb).await;
        assert_eq!(doc["status"], "completed", "after a kill at {at}: {doc:#}");
        assert_eq!(
            fake.count("POST /deployit/deployment"),
            1,
            "after a kill at {at}: {:?}",
            fake.calls()
        );
        assert_eq!(fake.task_ids().len(), 1, "after a kill at {at}");
        let id = fake.task_ids().remove(0);
        assert_eq!(
            fake.count(&format!("POST /deployit/task/{id}/start")),
            1,
            "after a kill at {at}: {:?}",
            fake.calls()
        );
        assert_eq!(
            fake.deployed(PROD, "PetPortal").as_deref(),
            Some("Applications/PetPortal/2.2"),
            "after a kill at {at}"
        );
    }
}
