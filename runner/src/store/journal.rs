//! Events and log lines in the store, so `logs`, the server's event stream and its log routes
//! read them from any machine that reaches a shared store (a runner still writes its local
//! `events.jsonl` and `script_output.log`; only a shared store gets these rows).

use super::db::{OptionalExtension, ToSql, params};
use super::{Store, StoreError};

/// A log line waiting to be written: which task run and attempt it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLine {
    pub task_run: i64,
    pub attempt: i64,
    pub line: String,
}

/// One stored log line; `id` orders the lines of a task run and resumes a follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub id: i64,
    pub attempt: i64,
    pub line: String,
}

/// Rows per INSERT: 4 parameters each stays far below either database's parameter limit.
const ROWS_PER_INSERT: usize = 200;

impl Store {
    /// Runs `write` and appends the event line `body` to the release's events in the same
    /// transaction, numbered after the release's last event (whichever runner wrote it), so
    /// a kill never leaves a state change without its event or an event without its change.
    pub fn with_event<T>(
        &self,
        release: &str,
        body: Option<&str>,
        write: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(body) = body else {
            return write(self);
        };
        self.atomically(|_| {
            let value = write(self)?;
            self.append_event(release, body)?;
            Ok(value)
        })
    }

    /// Appends one event row. A command acting on a release another runner drives (a pause,
    /// an approval) may number an event at the same time: the loser of that race inserts
    /// nothing (no error, so the transaction goes on) and numbers again after the winner.
    fn append_event(&self, release: &str, body: &str) -> Result<(), StoreError> {
        for _ in 0..10 {
            let added = self.conn.execute(
                "INSERT INTO events (release_id, seq, body)
                 SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2 FROM events WHERE release_id = ?1
                 ON CONFLICT (release_id, seq) DO NOTHING",
                params![release, body],
            )?;
            if added == 1 {
                return Ok(());
            }
        }
        Err(StoreError::Corrupt(format!(
            "release {release}: no free event number after 10 tries"
        )))
    }

    /// Appends `lines` to the release's log lines, a few hundred rows per statement (one
    /// round trip per batch, never one per line).
    pub fn append_log_lines(&self, release: &str, lines: &[PendingLine]) -> Result<(), StoreError> {
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO log_lines (release_id, task_run_id, attempt, line) VALUES ",
            );
            let mut values: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 3 + 1);
            values.push(&release);
            for (i, line) in chunk.iter().enumerate() {
                let at = 2 + i * 3;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(?1, ?{at}, ?{}, ?{})", at + 1, at + 2));
                values.extend([&line.task_run as &dyn ToSql, &line.attempt, &line.line]);
            }
            self.conn.execute(&sql, &values[..])?;
        }
        Ok(())
    }

    /// [`Store::append_log_lines`] for a runner's second connection: refused with
    /// [`StoreError::LeaseLost`] once `guard`'s epoch is no longer the release's. Unlike
    /// [`Store::guarded_write`] it reads the lease row without locking it: a runner stopped
    /// (SIGSTOP) inside this transaction must not keep another from taking the release over.
    /// A takeover that commits between the check and the insert lets this one batch land
    /// after it; it is the old runner's true output, and nothing follows it.
    pub fn append_log_lines_fenced(
        &self,
        release: &str,
        guard: Option<&(String, i64)>,
        lines: &[PendingLine],
    ) -> Result<(), StoreError> {
        let Some((held_release, epoch)) = guard else {
            return self.atomically(|_| self.append_log_lines(release, lines));
        };
        self.atomically(|db| {
            let held: Option<i64> = db
                .query_row(
                    "SELECT epoch FROM leases WHERE release_id = ?1 AND pid > 0",
                    [held_release],
                    |row| row.get(0),
                )
                .optional()?;
            if held != Some(*epoch) {
                return Err(StoreError::LeaseLost {
                    release: held_release.clone(),
                });
            }
            self.append_log_lines(release, lines)
        })
    }

    /// The release's events after number `after`, in order: `(seq, body)`.
    pub fn events_after(
        &self,
        release: &str,
        after: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(self.conn.query_map(
            "SELECT seq, body FROM events WHERE release_id = ?1 AND seq > ?2 ORDER BY seq",
            params![release, after],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?)
    }

    /// A task run's log lines after line id `after`, in the order they were written.
    pub fn log_lines_after(
        &self,
        task_run: i64,
        after: i64,
    ) -> Result<Vec<StoredLine>, StoreError> {
        Ok(self.conn.query_map(
            "SELECT id, attempt, line FROM log_lines WHERE task_run_id = ?1 AND id > ?2 ORDER BY id",
            params![task_run, after],
            |row| {
                Ok(StoredLine {
                    id: row.get(0)?,
                    attempt: row.get(1)?,
                    line: row.get(2)?,
                })
            },
        )?)
    }

    /// Whether a task run has any log line in the store.
    pub fn has_log_lines(&self, task_run: i64) -> Result<bool, StoreError> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM log_lines WHERE task_run_id = ?1 LIMIT 1",
                [task_run],
                |row| row.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// The newest attempt a task run has started (0 before the first): what a line written
    /// by a runner that did not start the attempt itself (a resumed one) belongs to.
    pub fn latest_attempt(&self, task_run: i64) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(MAX(number), 0) FROM attempts WHERE task_run_id = ?1",
            [task_run],
            |row| row.get(0),
        )?)
    }

    /// The (release, epoch) this store's writes are guarded by, if any.
    pub fn write_guard(&self) -> Option<(String, i64)> {
        self.guard.clone()
    }

    /// What opens a second connection to the same store, with the same guard, on a thread
    /// of its own (PostgreSQL connects there: not on a thread that drives async tasks).
    pub fn reconnector(&self) -> impl FnOnce() -> Result<Store, StoreError> + Send + 'static {
        let (location, dir, guard) = (self.location.clone(), self.dir.clone(), self.guard.clone());
        let is_read_only = self.is_read_only;
        move || {
            let conn = location.connect()?;
            if conn.dialect() == super::db::Dialect::Postgres {
                // Told apart from the runner's own connection in `pg_stat_activity`.
                conn.execute_batch("SET application_name = 'relflow-log-shipper'")?;
            }
            Ok(Store {
                conn,
                location,
                dir,
                guard,
                is_read_only,
            })
        }
    }
}

/// Text of stored lines as the log file holds it: each line ended by a newline.
pub fn text_of(lines: &[StoredLine]) -> String {
    lines.iter().map(|l| format!("{}\n", l.line)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare store: rows without their release and task run.
    fn bare_store() -> Store {
        let store = Store::open_in_memory().unwrap();
        store
            .conn
            .execute_batch("PRAGMA foreign_keys = OFF")
            .unwrap();
        store
    }

    fn line(task_run: i64, attempt: i64, text: &str) -> PendingLine {
        PendingLine {
            task_run,
            attempt,
            line: text.to_string(),
        }
    }

    #[test]
    fn events_are_numbered_per_release_with_their_state_change() {
        let store = bare_store();
        for body in ["{\"a\":1}", "{\"b\":2}"] {
            store.with_event("r-1", Some(body), |_| Ok(())).unwrap();
        }
        store
            .with_event("r-2", Some("{\"c\":3}"), |_| Ok(()))
            .unwrap();
        // A failed state change takes its event with it.
        let failed = store.with_event("r-1", Some("{\"lost\":1}"), |_| {
            Err::<(), _>(StoreError::Corrupt("no".into()))
        });
        assert!(failed.is_err());
        assert_eq!(
            store.events_after("r-1", 0).unwrap(),
            [(1, "{\"a\":1}".to_string()), (2, "{\"b\":2}".to_string())]
        );
        assert_eq!(store.events_after("r-1", 1).unwrap().len(), 1);
        assert_eq!(store.events_after("r-2", 0).unwrap()[0].0, 1);
    }

    #[test]
    fn log_lines_go_in_batches_and_come_back_in_order() {
        let store = bare_store();
        let lines: Vec<PendingLine> = (0..450)
            .map(|n| line(7, 1 + n / 200, &format!("line {n}")))
            .collect();
        store.append_log_lines("r-1", &lines).unwrap();
        store
            .append_log_lines("r-1", &[line(8, 1, "other task")])
            .unwrap();
        let back = store.log_lines_after(7, 0).unwrap();
        assert_eq!(back.len(), 450);
        assert_eq!(back[449].line, "line 449");
        assert_eq!(back[449].attempt, 3);
        let after = store.log_lines_after(7, back[447].id).unwrap();
        assert_eq!(text_of(&after), "line 448\nline 449\n");
        assert!(store.has_log_lines(8).unwrap());
        assert!(!store.has_log_lines(9).unwrap());
    }
}
