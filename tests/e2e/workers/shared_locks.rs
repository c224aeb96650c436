//! Target locks live in a shared store: two machines (here two folders with their own state
//! and lock folders) deploying the same XL Deploy environment and application take turns.

use std::time::Duration;

use super::{PROD, finished, petportal};
use crate::fake_xld::{FakeXld, TaskScript};
use crate::harness::{Sandbox, wait_until};
use crate::postgres::PgServer;

#[tokio::test(flavor = "multi_thread")]
async fn a_target_locked_on_one_machine_waits_on_another_until_it_is_free() {
    let fake = FakeXld::start().await;
    fake.with_deployed(PROD, "Applications/PetPortal/1.0")
        .with_package("Applications/PetPortal/2.2")
        .script_deploy(TaskScript::endless());
    let pg = PgServer::start();
    let db = pg.create_database();
    let machine = || {
        let mut sb = Sandbox::new();
        sb.env("RELFLOW_STORE", &pg.url(&db));
        sb.env("XLD_PASSWORD", "s3cret");
        sb.write("p.yaml", &petportal(&fake.url(), 0));
        sb
    };
    let (a, b) = (machine(), machine());
    let status = |release: &str| {
        pg.psql(
            &db,
            &format!("SELECT status FROM task_runs WHERE release_id = '{release}'"),
        )
    };

    tokio::task::block_in_place(|| {
        let first = a.spawn(&["run", "p.yaml"]);
        assert!(
            wait_until(30, || fake.count("POST /deployit/deployment") == 1),
            "the first machine never deployed"
        );
        let second = b.spawn(&["run", "p.yaml"]);
        assert!(
            wait_until(30, || status("petportal-2") == "waiting_lock"),
            "the second machine did not wait for the lock: {}",
            status("petportal-2")
        );
        // Either machine lists the lock and its holder.
        let listed = b.run(&["locks", "--json"]);
        listed.expect_code(0);
        assert!(
            listed.stdout.contains("petportal-1") && listed.stdout.contains("xl-deploy:"),
            "{}",
            listed.stdout
        );
        assert_eq!(
            fake.count("POST /deployit/deployment"),
            1,
            "both deployed at once"
        );

        // The first deployment ends; the second machine takes the lock and deploys.
        fake.script_deploy(TaskScript::succeed());
        let task = fake.task_ids().remove(0);
        if let Some(t) = fake.world().tasks.get_mut(&task) {
            t.polls_left = 0;
        }
        finished(first, Duration::from_secs(60)).expect_code(0);
        finished(second, Duration::from_secs(60)).expect_code(0);
        assert_eq!(fake.count("POST /deployit/deployment"), 2);
        let log = b.read(".relflow/releases/petportal-2/deploy/deploy-petportal/script_output.log");
        assert!(
            log.contains("petportal-1"),
            "the wait names the holder: {log}"
        );
        // Both ended: the lock is free again.
        let listed = a.run(&["locks", "--json"]);
        listed.expect_code(0);
        assert!(!listed.stdout.contains("petportal-"), "{}", listed.stdout);
    });
}
