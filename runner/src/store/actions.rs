//! Who ran which command on a release, and why: the `actions` table (`--actor`, `--comment`).

use super::db::params;

use super::{ActionRecord, Store, StoreError, now_ms};
use crate::engine::person::Person;

impl Store {
    pub fn record_action(
        &self,
        release: &str,
        task_run: Option<i64>,
        action: &str,
        person: &Person,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO actions (release_id, task_run_id, action, actor, comment, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                release,
                task_run,
                action,
                person.actor,
                person.comment,
                now_ms()
            ])?;
        Ok(())
    }

    /// The id of the newest action recorded on `release` (what the server answers with).
    pub fn last_action_id(&self, release: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT MAX(id) FROM actions WHERE release_id = ?1",
            [release],
            |row| row.get(0),
        )?)
    }

    /// Every action on `release`, oldest first.
    pub fn actions(&self, release: &str) -> Result<Vec<ActionRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT task_run_id, action, actor, comment, at FROM actions
             WHERE release_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([release], |row| {
            Ok(ActionRecord {
                task_run_id: row.get(0)?,
                action: row.get(1)?,
                person: Person {
                    actor: row.get(2)?,
                    comment: row.get(3)?,
                },
                at: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
