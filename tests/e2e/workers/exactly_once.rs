//! Four worker processes share 200 releases: each release is driven by exactly one worker and
//! each task runs once.

use std::time::Duration;

use super::{Shared, finished};

const RELEASES: usize = 200;
const WORKERS: usize = 4;

#[test]
fn four_workers_drive_two_hundred_releases_each_exactly_once() {
    let shared = Shared::start();
    let runs = shared.sb.path().join("runs.txt");
    shared.sb.write(
        "batch.yaml",
        &format!(
            r#"
name: batch
phases:
  - name: work
    tasks:
      - {{ name: one, command: {{ run: [sh, -c, 'echo "${{release.id}} one" >> {runs}'] }} }}
      - {{ name: two, command: {{ run: [sh, -c, 'echo "${{release.id}} two" >> {runs}'] }} }}
"#,
            runs = runs.display()
        ),
    );
    // The first order creates the schema; the rest are ordered from four shells at once.
    shared
        .sb
        .run(&["run", "batch.yaml", "--detach"])
        .expect_code(0);
    std::thread::scope(|scope| {
        for shell in 0..WORKERS {
            let sb = &shared.sb;
            scope.spawn(move || {
                for _ in (1 + shell..RELEASES).step_by(WORKERS) {
                    sb.run(&["run", "batch.yaml", "--detach"]).expect_code(0);
                }
            });
        }
    });
    assert_eq!(
        shared.sql("SELECT count(*) FROM drive_requests WHERE taken_at IS NULL"),
        RELEASES.to_string()
    );

    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            shared.worker(
                &["--until-idle", "--concurrency", "4", "--poll", "200ms"],
                &[],
            )
        })
        .collect();
    for worker in workers {
        finished(worker, Duration::from_secs(300)).expect_code(0);
    }

    // Every release completed, every task ran once.
    assert_eq!(
        shared.sql("SELECT count(*) FROM releases WHERE status = 'completed'"),
        RELEASES.to_string()
    );
    let text = std::fs::read_to_string(&runs).expect("runs.txt");
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 * RELEASES, "a task ran twice or not at all");
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), 2 * RELEASES, "a task ran twice");
    // Each release was driven by exactly one worker (one recorded take-over of the order)...
    assert_eq!(
        shared.sql(
            "SELECT count(*) FROM (SELECT release_id FROM actions WHERE actor LIKE 'worker@%'
             GROUP BY release_id HAVING count(*) <> 1) x"
        ),
        "0"
    );
    assert_eq!(
        shared.sql("SELECT count(DISTINCT release_id) FROM actions WHERE actor LIKE 'worker@%'"),
        RELEASES.to_string()
    );
    // ... and every order was carried out.
    assert_eq!(
        shared.sql("SELECT count(*) FROM drive_requests WHERE taken_at IS NULL"),
        "0"
    );
    // Each attempt ran once: one attempt per task run.
    assert_eq!(
        shared.sql("SELECT count(*) FROM attempts"),
        (2 * RELEASES).to_string()
    );
}
