//! Answers that are not what XL Deploy sends: an HTML maintenance page, and `Retry-After`
//! hints that would make a release wait for ever.

use super::*;
use crate::fake_xld::FaultKind;

#[tokio::test(flavor = "multi_thread")]
async fn xld_edges_a_maintenance_page_answering_the_create_is_a_protocol_error() {
    let fake = FakeXld::start().await;
    petportal(&fake);
    fake.fault(
        "POST",
        "/deployit/deployment",
        FaultKind::Html {
            status: 200,
            body: "<h1>maintenance</h1>".into(),
        },
        1,
    );
    // `protocol` is not transient: the retry policy does not apply, the release halts.
    let sb = sandbox(&pipeline(&fake.url(), "", "", RETRY_TRANSIENT));

    relflow(&sb, &["run", "p.yaml"]).await.expect_code(1);

    let doc = status_json(&sb).await;
    let task = deploy_task(&doc);
    assert_eq!(task["status"], "failed", "{doc:#}");
    assert_eq!(task["error_class"], "protocol", "{doc:#}");
    assert_eq!(task["attempts"], 1, "{doc:#}");
    let message = task["error"].as_str().unwrap_or_default();
    assert!(message.contains("HTML"), "{message}");
    assert!(!message.contains("maintenance` not found"), "{message}");
    // Nothing was taken for a task id: no start, no poll of a task called `maintenance`.
    assert!(
        !fake.calls().iter().any(|c| c.contains("maintenance")),
        "{:?}",
        fake.calls()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn xld_edges_an_endless_retry_after_is_bounded_by_the_policy_max_delay() {
    let fake = FakeXld::start().await;
    petportal(&fake);
    fake.fault(
        "GET",
        "/deployit/deployment/exists",
        FaultKind::RetryAfter("18446744073709551615".into()),
        1,
    );
    let policy = "{ retry: { retries: 1, when: [rate_limited], delay: 10ms, max_delay: 1s, jitter: false } }";
    let sb = sandbox(&pipeline(&fake.url(), "", "", policy));

    let (out, took) = relflow_within(&sb, &["run", "p.yaml"], Duration::from_secs(60)).await;

    out.expect_code(0);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let log = sb.read(LOG);
    assert!(log.contains("Retrying in 1s"), "{log}");
    let doc = status_json(&sb).await;
    let history = deploy_task(&doc)["attempt_history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(history[0]["error_class"], "rate_limited", "{doc:#}");
    let first = history[0]["message"].as_str().unwrap_or_default();
    assert!(first.contains("Retry-After: 3600s"), "{first}");
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/2.2")
    );
}
