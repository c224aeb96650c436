//! What each target runs, and its history: one row per change of what a backend target runs
//! (a deployment completed or undone, some of its components undone), written in the same
//! transaction as the status change it reflects.

use super::db::{Db, DbError, OptionalExtension, Row, params};

use super::target_records::{ChangeKind, NewTargetChange, Origin, TargetChangeRecord, TargetNow};
use super::{Store, StoreError, now_ms};

const COLUMNS: &str = "c.id, c.backend, c.backend_kind, c.target, c.application, c.version,
    c.change, c.components, c.runs_version, c.components_version, c.release_id, c.phase_run,
    c.task, c.job_id, c.actor, c.at, c.target_key, c.task_run_id,
    o.release_id, o.phase_run, o.task, o.at";

/// Every change with the deployment its running version came from.
const SELECT: &str = "FROM target_changes c LEFT JOIN target_changes o ON o.id = c.origin_id";

fn from_row(row: &Row) -> Result<(TargetChangeRecord, String, String), DbError> {
    let origin = match row.get::<_, Option<String>>(18)? {
        Some(release) => Some(Origin {
            release,
            phase: row.get(19)?,
            task: row.get(20)?,
            at: row.get(21)?,
        }),
        None => None,
    };
    let record = TargetChangeRecord {
        id: row.get(0)?,
        backend: row.get(1)?,
        backend_kind: row.get(2)?,
        target: row.get(3)?,
        application: row.get(4)?,
        version: row.get(5)?,
        change: ChangeKind::Deployed,
        components: Vec::new(),
        runs: row.get(8)?,
        components_runs: row.get(9)?,
        runs_from: origin,
        release: row.get(10)?,
        phase: row.get(11)?,
        task: row.get(12)?,
        rollback_job: row.get(13)?,
        actor: row.get(14)?,
        at: row.get(15)?,
        target_key: row.get(16)?,
        task_run: row.get(17)?,
    };
    Ok((record, row.get(6)?, row.get(7)?))
}

fn finish(
    (mut record, change, components): (TargetChangeRecord, String, String),
) -> Result<TargetChangeRecord, StoreError> {
    record.change = ChangeKind::parse(&change)?;
    record.components = serde_json::from_str(&components)
        .map_err(|e| StoreError::Corrupt(format!("target change {}: {e}", record.id)))?;
    Ok(record)
}

/// What a target runs after a row: the version (`None`: nothing) and the row that delivered it.
type Runs = (Option<String>, Option<i64>);

/// What the target ran before row `before` (or now, without one).
fn state_before(
    conn: &Db,
    key: &str,
    application: &str,
    before: Option<i64>,
) -> Result<Option<Runs>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT runs_version, origin_id FROM target_changes
             WHERE target_key = ?1 AND application = ?2 AND id < ?3 ORDER BY id DESC LIMIT 1",
            params![key, application, before.unwrap_or(i64::MAX)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}

impl Store {
    /// Runs `write`, then records `change` (if any), in one transaction: a kill never leaves
    /// the status change without its target change.
    pub fn with_target_change<T>(
        &self,
        change: Option<&NewTargetChange>,
        write: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(change) = change else {
            return write(self);
        };
        self.atomically(|_| {
            let value = write(self)?;
            self.record_target_change(change)?;
            Ok(value)
        })
    }

    /// Records `change` once (the same change of the same task run and job is not recorded
    /// twice), working out what the target runs after it from the earlier rows.
    fn record_target_change(&self, c: &NewTargetChange) -> Result<(), StoreError> {
        let conn = &self.conn;
        let known: Option<i64> = conn
            .query_row(
                "SELECT id FROM target_changes
                 WHERE task_run_id = ?1 AND change = ?2 AND COALESCE(job_id, 0) = COALESCE(?3, 0)",
                params![c.task_run, c.change.as_str(), c.job],
                |row| row.get(0),
            )
            .optional()?;
        if known.is_some() {
            return Ok(());
        }
        // The rows of the deployment this change undoes: its first (completed, or failed
        // before a retry completed it) and its completion.
        let own = |changes: &str, newest: bool| -> Result<Option<i64>, StoreError> {
            let order = if newest { "DESC" } else { "ASC" };
            Ok(conn
                .query_row(
                    &format!(
                        "SELECT id FROM target_changes WHERE task_run_id = ?1 AND change IN ({changes})
                         AND target_key = ?2 AND application = ?3 ORDER BY id {order} LIMIT 1"
                    ),
                    params![c.task_run, c.target_key, c.application],
                    |row| row.get(0),
                )
                .optional()?)
        };
        let first = own("'deployed', 'failed'", false)?;
        let deployed = own("'deployed'", true)?;
        // What ran before the undone deployment; one that left no row (it failed and was
        // rolled back at once) came after the newest row.
        let before = state_before(conn, &c.target_key, &c.application, first)?
            .unwrap_or((c.previous_hint.clone(), None));
        let (runs, origin, components_runs) = match c.change {
            ChangeKind::Deployed | ChangeKind::Failed => (Some(c.version.clone()), None, None),
            ChangeKind::Undeployed => (None, None, None),
            ChangeKind::RolledBack => (before.0, before.1, None),
            ChangeKind::ComponentsRolledBack => (Some(c.version.clone()), deployed, before.0),
        };
        let components =
            serde_json::to_string(&c.components).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let id = conn.insert_returning_id(
            "INSERT INTO target_changes (backend, backend_kind, target_key, target, application,
                version, change, components, runs_version, components_version, origin_id,
                release_id, phase_run, task, task_run_id, job_id, actor, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
             RETURNING id",
            params![
                c.backend,
                c.backend_kind,
                c.target_key,
                c.target,
                c.application,
                c.version,
                c.change.as_str(),
                components,
                runs,
                components_runs,
                origin,
                c.release,
                c.phase_run,
                c.task,
                c.task_run,
                c.job,
                c.actor,
                now_ms()
            ],
        )?;
        if matches!(c.change, ChangeKind::Deployed | ChangeKind::Failed) {
            // A deployment is the origin of what it delivered.
            conn.execute(
                "UPDATE target_changes SET origin_id = ?1 WHERE id = ?1",
                [id],
            )?;
        }
        Ok(())
    }

    /// Every target change, newest first (`relflow targets --history`).
    pub fn target_history(&self) -> Result<Vec<TargetChangeRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} {SELECT} ORDER BY c.id DESC"))?;
        let rows = stmt.query_map([], from_row)?;
        rows.map(|row| finish(row?)).collect()
    }

    /// What every target runs now, one entry per target and application, in the order they
    /// were first changed.
    pub fn targets_now(&self) -> Result<Vec<TargetNow>, StoreError> {
        let mut history = self.target_history()?;
        history.reverse();
        Ok(now_of(&history, |_| true))
    }

    /// What each target a release changed runs now (which may be another release's version),
    /// in the order the release first changed them: the end-of-run summary's lines.
    pub fn targets_touched_by(&self, release: &str) -> Result<Vec<TargetNow>, StoreError> {
        let mut history = self.target_history()?;
        history.reverse();
        let touched: Vec<(String, String)> = history
            .iter()
            .filter(|c| c.release == release)
            .map(|c| (c.target_key.clone(), c.application.clone()))
            .collect();
        let mut now = now_of(&history, |c| {
            touched
                .iter()
                .any(|(k, a)| *k == c.target_key && *a == c.application)
        });
        now.sort_by_key(|n| {
            let last = &n.last_change;
            touched
                .iter()
                .position(|(k, a)| *k == last.target_key && *a == last.application)
        });
        Ok(now)
    }

    /// Per release (`release`, or every one), the targets whose deployments `relflow
    /// rollback` undid later, whole (`prod`) or in part (`prod (web)`): `list` shows them
    /// beside the release's status.
    pub fn rolled_back_later(
        &self,
        release: Option<&str>,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT release_id, backend, change, components FROM target_changes
             WHERE job_id IS NOT NULL AND (CAST(?1 AS TEXT) IS NULL OR release_id = ?1) ORDER BY id",
        )?;
        let rows = stmt.query_map([release], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?;
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for row in rows {
            let (release, backend, change, components) = row?;
            let components: Vec<String> = serde_json::from_str(&components).unwrap_or_default();
            let entry = out.entry(release).or_default();
            if change == ChangeKind::RolledBack.as_str() || components.is_empty() {
                // Undone whole: earlier partial mentions of this backend say less.
                entry.retain(|e| e != &backend && !e.starts_with(&format!("{backend} (")));
                entry.push(backend);
            } else if !entry.contains(&backend) {
                entry.push(format!("{backend} ({})", components.join(", ")));
            }
        }
        Ok(out)
    }
}

/// The newest state of every target and application among `history` (oldest first) that
/// `wanted` accepts; partial rollbacks of the running deployment are gathered.
fn now_of(
    history: &[TargetChangeRecord],
    wanted: impl Fn(&TargetChangeRecord) -> bool,
) -> Vec<TargetNow> {
    let mut now: Vec<TargetNow> = Vec::new();
    for change in history.iter().filter(|c| wanted(c)) {
        let slot = now.iter_mut().find(|n| {
            n.last_change.target_key == change.target_key
                && n.last_change.application == change.application
        });
        let mut reverted = match &slot {
            // Partial rollbacks of one deployment add up.
            Some(n)
                if change.change == ChangeKind::ComponentsRolledBack
                    && n.last_change.task_run == change.task_run =>
            {
                n.components_rolled_back.clone()
            }
            _ => Vec::new(),
        };
        for component in &change.components {
            if !reverted.contains(component) {
                reverted.push(component.clone());
            }
        }
        let entry = TargetNow {
            backend: change.backend.clone(),
            backend_kind: change.backend_kind.clone(),
            target: change.target.clone(),
            application: change.application.clone(),
            version: change.runs.clone(),
            is_state_unknown: change.change == ChangeKind::Failed,
            since: change.at,
            deployed_by: change.runs_from.clone().filter(|_| change.runs.is_some()),
            components_rolled_back: reverted,
            components_version: change.components_runs.clone(),
            last_change: change.clone(),
        };
        match slot {
            Some(slot) => *slot = entry,
            None => now.push(entry),
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(task_run: i64, kind: ChangeKind, version: &str) -> NewTargetChange {
        NewTargetChange {
            backend: "prod".into(),
            backend_kind: "local".into(),
            target_key: "/srv/app".into(),
            target: "/srv/app".into(),
            application: "App".into(),
            version: version.into(),
            change: kind,
            components: Vec::new(),
            previous_hint: None,
            release: format!("app-{task_run}"),
            phase_run: "deploy".into(),
            task: "ship".into(),
            task_run,
            job: None,
            actor: None,
        }
    }

    fn bare_store() -> Store {
        let store = Store::open_in_memory().unwrap();
        // The rows stand alone here: no release or task run behind them.
        store
            .conn
            .as_sqlite()
            .unwrap()
            .pragma_update(None, "foreign_keys", false)
            .unwrap();
        store
    }

    fn record(store: &Store, c: &NewTargetChange) {
        store.with_target_change(Some(c), |_| Ok(())).unwrap();
    }

    fn runs_now(store: &Store) -> Option<String> {
        let now = store.targets_now().unwrap();
        assert_eq!(now.len(), 1, "{now:#?}");
        now[0].version.clone()
    }

    #[test]
    fn a_rollback_brings_back_what_ran_before_the_undone_deployment() {
        let store = bare_store();
        record(&store, &change(1, ChangeKind::Deployed, "1.0"));
        assert_eq!(runs_now(&store).as_deref(), Some("1.0"));
        // 2.2 failed and was rolled back: it never completed, so it has no `deployed` row.
        record(&store, &change(2, ChangeKind::RolledBack, "2.2"));
        assert_eq!(runs_now(&store).as_deref(), Some("1.0"));
        record(&store, &change(3, ChangeKind::Deployed, "2.3"));
        let mut web = change(3, ChangeKind::ComponentsRolledBack, "2.3");
        web.components = vec!["web".into()];
        web.job = Some(1);
        record(&store, &web);
        let now = &store.targets_now().unwrap()[0];
        assert_eq!(now.version.as_deref(), Some("2.3"));
        assert_eq!(now.components_rolled_back, ["web"]);
        assert_eq!(now.components_version.as_deref(), Some("1.0"));
        let mut all = change(3, ChangeKind::RolledBack, "2.3");
        all.job = Some(2);
        record(&store, &all);
        record(&store, &all);
        let now = &store.targets_now().unwrap()[0];
        assert_eq!(now.version.as_deref(), Some("1.0"));
        let from = now.deployed_by.as_ref().expect("origin");
        assert_eq!(from.release, "app-1", "1.0 came from the first release");
        assert_eq!(store.target_history().unwrap().len(), 5, "recorded once");
        assert_eq!(
            store.rolled_back_later(None).unwrap().get("app-3"),
            Some(&vec!["prod".to_string()])
        );
        assert_eq!(store.targets_touched_by("app-2").unwrap().len(), 1);
        assert!(store.targets_touched_by("app-9").unwrap().is_empty());
    }

    #[test]
    fn a_failed_deployment_runs_until_rolled_back_to_what_ran_before_it() {
        let store = bare_store();
        record(&store, &change(1, ChangeKind::Deployed, "1.0"));
        record(&store, &change(2, ChangeKind::Failed, "2.2"));
        assert_eq!(runs_now(&store).as_deref(), Some("2.2"));
        assert!(store.targets_now().unwrap()[0].is_state_unknown);
        record(&store, &change(2, ChangeKind::RolledBack, "2.2"));
        assert_eq!(runs_now(&store).as_deref(), Some("1.0"));
        // Failed, retried by a person, completed, then rolled back later: before the failure.
        record(&store, &change(3, ChangeKind::Failed, "2.3"));
        record(&store, &change(3, ChangeKind::Deployed, "2.3"));
        assert!(!store.targets_now().unwrap()[0].is_state_unknown);
        record(&store, &change(3, ChangeKind::RolledBack, "2.3"));
        assert_eq!(runs_now(&store).as_deref(), Some("1.0"));
    }

    #[test]
    fn undoing_a_first_deployment_leaves_nothing_unless_the_backend_knew_better() {
        let store = bare_store();
        record(&store, &change(1, ChangeKind::Deployed, "1.0"));
        record(&store, &change(1, ChangeKind::RolledBack, "1.0"));
        assert_eq!(runs_now(&store), None);
        let store = bare_store();
        let mut xl = change(1, ChangeKind::RolledBack, "2.0");
        xl.previous_hint = Some("1.0".into());
        record(&store, &xl);
        assert_eq!(runs_now(&store).as_deref(), Some("1.0"));
        assert_eq!(store.targets_now().unwrap()[0].deployed_by, None);
    }
}
