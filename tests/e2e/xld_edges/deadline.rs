//! The attempt's `timeout:` covers the wait on XL Deploy: at the deadline the XL Deploy task
//! is stopped and the attempt fails with class `timeout`.

use super::*;
use crate::fake_xld::TaskScript;

#[tokio::test(flavor = "multi_thread")]
async fn xld_edges_a_task_that_never_settles_is_stopped_at_the_attempt_timeout() {
    let fake = FakeXld::start().await;
    petportal(&fake);
    fake.script_deploy(TaskScript::endless());
    let sb = sandbox(&pipeline(
        &fake.url(),
        "",
        ", timeout: 2s",
        "{ then: pause }",
    ));

    let (out, took) = relflow_within(&sb, &["run", "p.yaml"], Duration::from_secs(60)).await;

    out.expect_code(1);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let id = fake.task_ids().remove(0);
    assert_eq!(
        fake.count(&format!("POST /deployit/task/{id}/stop")),
        1,
        "{:?}",
        fake.calls()
    );
    assert_eq!(fake.task_state(&id), Some(("STOPPED".into(), false)));
    let doc = status_json(&sb).await;
    let task = deploy_task(&doc);
    assert_eq!(task["error_class"], "timeout", "{doc:#}");
    let message = task["error"].as_str().unwrap_or_default();
    assert!(message.contains("timed out after 2s"), "{message}");
    let log = sb.read(LOG);
    assert!(
        log.contains(&format!(
            "Stopped task {id}: the attempt's timeout of 2s passed"
        )),
        "{log}"
    );
}
