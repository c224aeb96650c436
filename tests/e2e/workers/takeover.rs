//! A worker SIGKILLed at each durable write of a release (every point it passes, at least 50):
//! another worker finishes the release within the lease TTL and a few seconds; XL Deploy sees
//! one deployment task created for it (re-attached by its stored id, never deployed again);
//! what the targets run matches the release's status.

use std::time::Duration;

use super::{PROD, Shared, finished, petportal};
use crate::fake_xld::FakeXld;

/// Command tasks after the deployment, so a release passes many durable writes.
const COMMAND_TASKS: usize = 10;

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_at_any_durable_write_is_taken_over_without_a_second_deployment() {
    let fake = FakeXld::start().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2");
    let mut shared = Shared::start();
    shared.sb.env("XLD_PASSWORD", "s3cret");
    shared.sb.env("RELFLOW_LEASE_TTL", "3s");
    shared
        .sb
        .write("p.yaml", &petportal(&fake.url(), COMMAND_TASKS));

    // A first release, traced: the durable writes a worker passes driving one.
    let trace = shared.sb.path().join("trace.txt");
    let trace_text = trace.display().to_string();
    let shared = tokio::task::spawn_blocking(move || {
        shared.sb.run(&["run", "p.yaml", "--detach"]).expect_code(0);
        let worker = shared.worker(
            &["--until-idle", "--poll", "100ms"],
            &[("RELFLOW_FAILPOINT_TRACE", &trace_text)],
        );
        finished(worker, Duration::from_secs(60)).expect_code(0);
        shared
    })
    .await
    .expect("join");
    let traced = std::fs::read_to_string(&trace).expect("trace");
    eprintln!("{traced}");
    let points = traced.lines().count();
    assert!(
        points >= 50,
        "only {points} durable writes: not enough kill points"
    );
    assert_eq!(fake.count("POST /deployit/deployment"), 1);

    for point in 1..=points {
        eprintln!("kill point {point} of {points}");
        let creates_before = fake.count("POST /deployit/deployment");
        let release = format!("petportal-{}", point + 1);
        let shared_ref = &shared;
        let (killed, taken_over) = tokio::task::block_in_place(|| {
            shared_ref
                .sb
                .run(&["run", "p.yaml", "--detach"])
                .expect_code(0);
            let doomed = shared_ref.worker(
                &["--until-idle", "--poll", "100ms"],
                &[("RELFLOW_FAILPOINT", &format!("*@{point}"))],
            );
            let killed = finished(doomed, Duration::from_secs(60));
            // Lease TTL (3 s) and a few seconds more.
            let rescuer = shared_ref.worker(&["--until-idle", "--poll", "100ms"], &[]);
            (killed, finished(rescuer, Duration::from_secs(10)))
        });
        assert_eq!(
            killed.code, -1,
            "point {point}: the failpoint did not fire: {killed:?}"
        );
        taken_over.expect_code(0);
        assert_eq!(
            shared.sql(&format!(
                "SELECT status FROM releases WHERE id = '{release}'"
            )),
            "completed",
            "point {point}"
        );
        assert_eq!(
            fake.count("POST /deployit/deployment") - creates_before,
            1,
            "point {point}: a deployment was created again: {:?}",
            fake.calls()
        );
        assert_eq!(
            fake.deployed(PROD, "PetPortal").as_deref(),
            Some("Applications/PetPortal/2.2")
        );
    }
    // What the target runs, as relflow tells it, matches the last release's status.
    let targets = tokio::task::block_in_place(|| shared.sb.run(&["targets", "--json"]));
    targets.expect_code(0);
    assert!(
        targets.stdout.contains("2.2"),
        "targets do not show 2.2: {}",
        targets.stdout
    );
}
