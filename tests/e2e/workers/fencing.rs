//! A worker stopped (SIGSTOP) past its lease TTL is taken over by another; when it continues
//! (SIGCONT) it makes no write and no backend call, and exits 6.

use std::time::Duration;

use super::{PROD, Shared, finished, petportal};
use crate::fake_xld::{FakeXld, TaskScript};
use crate::harness::{signal, wait_until};

/// Every row of the tables a runner writes, as text: what "no write" is checked against.
fn written(shared: &Shared) -> String {
    [
        "SELECT * FROM releases ORDER BY id",
        "SELECT * FROM phase_runs ORDER BY id",
        "SELECT * FROM task_runs ORDER BY id",
        "SELECT * FROM attempts ORDER BY task_run_id, number",
        "SELECT * FROM decisions ORDER BY id",
        "SELECT * FROM actions ORDER BY id",
        "SELECT * FROM target_changes ORDER BY id",
        "SELECT release_id, pid, host, epoch FROM leases ORDER BY release_id",
    ]
    .iter()
    .map(|q| shared.sql(q))
    .collect::<Vec<_>>()
    .join("\n--\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_stopped_past_its_ttl_makes_no_write_and_no_call_once_it_continues() {
    let fake = FakeXld::start().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2")
        .script_deploy(TaskScript::endless());
    let mut shared = Shared::start();
    shared.sb.env("XLD_PASSWORD", "s3cret");
    shared.sb.env("RELFLOW_LEASE_TTL", "2s");
    shared.sb.write("p.yaml", &petportal(&fake.url(), 1));

    tokio::task::block_in_place(|| {
        shared.sb.run(&["run", "p.yaml", "--detach"]).expect_code(0);
        let first = shared.worker(&["--poll", "100ms"], &[]);
        // The first worker has the deployment running and polls it.
        assert!(
            wait_until(30, || fake
                .calls()
                .iter()
                .filter(|c| c.starts_with("GET /deployit/task/"))
                .count()
                >= 2),
            "the first worker never polled the task: {:?}",
            fake.calls()
        );
        signal(&first, libc::SIGSTOP);

        // Past the TTL a second worker takes the release over, re-attaching the same task.
        let second = shared.worker(&["--poll", "100ms"], &[]);
        assert!(
            wait_until(30, || shared
                .sql("SELECT count(*) FROM actions WHERE actor LIKE 'worker@%'")
                == "2"),
            "the second worker did not take over"
        );
        let task = fake.task_ids().remove(0);
        if let Some(t) = fake.world().tasks.get_mut(&task) {
            t.polls_left = 0;
        }
        assert!(
            wait_until(30, || shared
                .sql("SELECT status FROM releases WHERE id = 'petportal-1'")
                == "completed"),
            "the second worker did not complete the release"
        );
        // Asked to stop, an idle worker ends at once.
        signal(&second, libc::SIGTERM);
        finished(second, Duration::from_secs(30)).expect_code(0);
        let calls_before = fake.calls();
        let rows_before = written(&shared);

        signal(&first, libc::SIGCONT);
        let out = finished(first, Duration::from_secs(30));
        out.expect_code(6);
        assert!(
            out.stderr.contains("another runner took over"),
            "{}",
            out.stderr
        );
        assert_eq!(
            fake.calls(),
            calls_before,
            "the stopped worker called XL Deploy again"
        );
        assert_eq!(
            written(&shared),
            rows_before,
            "the stopped worker wrote to the store"
        );
        assert_eq!(fake.count("POST /deployit/deployment"), 1);
    });
}
