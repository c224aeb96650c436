//! `relflow worker` on a shared PostgreSQL store: exactly-once claims by many worker processes,
//! takeover of a release whose worker was SIGKILLed at each durable write (XL Deploy tasks
//! re-attached, never created again), and fencing of a worker stopped past its lease TTL.

mod exactly_once;
mod fencing;
mod shared_locks;
mod takeover;

use std::process::Child;
use std::time::Duration;

use crate::harness::{Outcome, Sandbox, wait_or_kill};
use crate::postgres::PgServer;

/// A PostgreSQL with one fresh database, and a sandbox whose relflow uses it.
struct Shared {
    pg: PgServer,
    db: String,
    sb: Sandbox,
}

impl Shared {
    fn start() -> Shared {
        let pg = PgServer::start();
        let db = pg.create_database();
        let mut sb = Sandbox::new();
        sb.env("RELFLOW_STORE", &pg.url(&db));
        Shared { pg, db, sb }
    }

    /// One value of a SQL query on the store.
    fn sql(&self, query: &str) -> String {
        self.pg.psql(&self.db, query)
    }

    /// Starts `relflow worker ARGS` with extra environment.
    fn worker(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut all = vec!["worker"];
        all.extend_from_slice(args);
        self.sb
            .command(&all)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn relflow worker")
    }
}

const PROD: &str = "Environments/Prod";

/// PetPortal 2.2 deployed to Prod through the fake XL Deploy at `url`, then `after` command
/// tasks that do nothing.
fn petportal(url: &str, after: usize) -> String {
    let mut tasks = String::new();
    for n in 0..after {
        tasks.push_str(&format!(
            "      - {{ name: after-{n}, command: {{ run: [\"true\"] }} }}\n"
        ));
    }
    format!(
        r#"
name: petportal
variables: {{ version: "2.2" }}
backends:
  xld: {{ kind: xl-deploy, url: "{url}", username: admin, password: "${{env.XLD_PASSWORD}}", polling_interval: 100ms }}
phases:
  - name: deploy
    tasks:
      - {{ name: deploy-petportal, deploy: {{ backend: xld, package: "Applications/PetPortal/${{version}}", environment: {PROD} }} }}
{tasks}"#
    )
}

/// Waits for a worker to exit, failing the test when it does not within `limit`.
#[track_caller]
fn finished(child: Child, limit: Duration) -> Outcome {
    let (out, exited) = wait_or_kill(child, limit);
    assert!(exited, "the worker did not end within {limit:?}: {out:?}");
    out
}
