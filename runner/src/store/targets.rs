//! What each target runs, and its history: one row per change of what a backend target runs
//! (a deployment completed or undone, some of its components undone), written in the same
//! transaction as the status change it reflects.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::{Store, StoreError, now_ms};
use crate::output::json::rfc3339;

/// How a change altered what a target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A deployment completed: the target runs its version.
    Deployed,
    /// An undeployment completed: the target runs nothing of the application.
    Undeployed,
    /// A deployment was undone whole: the target runs what it ran before it.
    RolledBack,
    /// Some components of a deployment were undone (`relflow rollback --component`).
    ComponentsRolledBack,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Deployed => "deployed",
            ChangeKind::Undeployed => "undeployed",
            ChangeKind::RolledBack => "rolled_back",
            ChangeKind::ComponentsRolledBack => "components_rolled_back",
        }
    }

    fn parse(text: &str) -> Result<ChangeKind, StoreError> {
        [
            ChangeKind::Deployed,
            ChangeKind::Undeployed,
            ChangeKind::RolledBack,
            ChangeKind::ComponentsRolledBack,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown target change `{text}`")))
    }

    /// Whether the change undid (part of) a deployment.
    pub fn is_rollback(self) -> bool {
        matches!(self, ChangeKind::RolledBack | ChangeKind::ComponentsRolledBack)
    }
}

/// A change the engine records with the status change it reflects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTargetChange {
    /// The backend's name in the pipeline (`prod`).
    pub backend: String,
    /// `local`, `xl-deploy` or `exec`.
    pub backend_kind: String,
    /// What identifies the target across releases and pipelines (the target lock's key).
    pub target_key: String,
    /// The target as people name it: the folder, the XL Deploy environment, the exec key.
    pub target: String,
    pub application: String,
    /// The version deployed, undeployed or rolled back.
    pub version: String,
    pub change: ChangeKind,
    /// The components rolled back (`ComponentsRolledBack` only).
    pub components: Vec<String>,
    /// What the backend says ran before the deployment, used when no earlier row knows
    /// (an XL Deploy environment deployed to outside relflow).
    pub previous_hint: Option<String>,
    pub release: String,
    /// The phase run's label (`deploy#2`).
    pub phase_run: String,
    pub task: String,
    pub task_run: i64,
    /// The `relflow rollback` job that made the change.
    pub job: Option<i64>,
    /// Who ordered the change, when a person did (a rollback job, `abort --rollback`).
    pub actor: Option<String>,
}

impl NewTargetChange {
    /// Rewrites every free-text field with `f` (secrets are masked before anything is stored).
    pub fn map_text(&mut self, f: &dyn Fn(&str) -> Option<String>) {
        let fix = |s: &mut String| {
            if let Some(new) = f(s) {
                *s = new;
            }
        };
        for text in [
            &mut self.target_key,
            &mut self.target,
            &mut self.application,
            &mut self.version,
        ] {
            fix(text);
        }
        self.components.iter_mut().for_each(fix);
        self.previous_hint.iter_mut().for_each(fix);
        self.actor.iter_mut().for_each(fix);
    }
}

/// Where a version came from: the deployment that delivered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub release: String,
    pub phase: String,
    pub task: String,
    #[serde(serialize_with = "rfc3339")]
    pub at: i64,
}

/// One recorded change (`relflow targets --history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetChangeRecord {
    pub id: i64,
    pub backend: String,
    pub backend_kind: String,
    pub target: String,
    pub application: String,
    /// The version the change deployed, undeployed or rolled back.
    pub version: String,
    pub change: ChangeKind,
    /// The components a partial rollback reverted.
    pub components: Vec<String>,
    /// What the target runs after the change (`None`: nothing of the application).
    pub runs: Option<String>,
    /// After a partial rollback: the version its components went back to (`None`: removed).
    pub components_runs: Option<String>,
    /// The deployment that delivered what the target runs after the change, when known.
    pub runs_from: Option<Origin>,
    pub release: String,
    pub phase: String,
    pub task: String,
    pub rollback_job: Option<i64>,
    pub actor: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub at: i64,
    /// Identifies the target across pipelines (not shown; the rows of one target share it).
    #[serde(skip)]
    pub target_key: String,
    #[serde(skip)]
    pub task_run: i64,
}

/// What a target runs now, for one application (`relflow targets`, the end-of-run summary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetNow {
    /// The newest change of this target and application; `runs` is what it runs now.
    #[serde(flatten)]
    pub last: TargetChangeRecord,
    /// Components of the running deployment that partial rollbacks reverted so far.
    pub components_rolled_back: Vec<String>,
}

impl TargetNow {
    /// The version the target runs (`None`: nothing of the application).
    pub fn version(&self) -> Option<&str> {
        self.last.runs.as_deref()
    }
}

const COLUMNS: &str = "c.id, c.backend, c.backend_kind, c.target, c.application, c.version,
    c.change, c.components, c.runs_version, c.components_version, c.release_id, c.phase_run,
    c.task, c.job_id, c.actor, c.at, c.target_key, c.task_run_id,
    o.release_id, o.phase_run, o.task, o.at";

/// Every change with the deployment its running version came from.
const SELECT: &str = "FROM target_changes c LEFT JOIN target_changes o ON o.id = c.origin_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<(TargetChangeRecord, String, String)> {
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

fn finish((mut record, change, components): (TargetChangeRecord, String, String)) -> Result<TargetChangeRecord, StoreError> {
    record.change = ChangeKind::parse(&change)?;
    record.components = serde_json::from_str(&components)
        .map_err(|e| StoreError::Corrupt(format!("target change {}: {e}", record.id)))?;
    Ok(record)
}

/// What the target ran before row `before` (or now, without one): (version, origin row).
fn state_before(
    conn: &rusqlite::Connection,
    key: &str,
    application: &str,
    before: Option<i64>,
) -> Result<Option<(Option<String>, Option<i64>)>, StoreError> {
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
                 WHERE task_run_id = ?1 AND change = ?2 AND IFNULL(job_id, 0) = IFNULL(?3, 0)",
                params![c.task_run, c.change.as_str(), c.job],
                |row| row.get(0),
            )
            .optional()?;
        if known.is_some() {
            return Ok(());
        }
        // The deployment this change undoes, as recorded when it completed.
        let deployed: Option<i64> = conn
            .query_row(
                "SELECT id FROM target_changes WHERE task_run_id = ?1 AND change = 'deployed'
                 AND target_key = ?2 AND application = ?3 ORDER BY id DESC LIMIT 1",
                params![c.task_run, c.target_key, c.application],
                |row| row.get(0),
            )
            .optional()?;
        // Before the undone deployment; a deployment that never completed has no row, so
        // what ran before it is the newest row.
        let before = state_before(conn, &c.target_key, &c.application, deployed)?
            .unwrap_or((c.previous_hint.clone(), None));
        let (runs, origin, components_runs) = match c.change {
            ChangeKind::Deployed => (Some(c.version.clone()), None, None),
            ChangeKind::Undeployed => (None, None, None),
            ChangeKind::RolledBack => (before.0, before.1, None),
            ChangeKind::ComponentsRolledBack => (Some(c.version.clone()), deployed, before.0),
        };
        let components = serde_json::to_string(&c.components)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        conn.execute(
            "INSERT INTO target_changes (backend, backend_kind, target_key, target, application,
                version, change, components, runs_version, components_version, origin_id,
                release_id, phase_run, task, task_run_id, job_id, actor, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
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
        if c.change == ChangeKind::Deployed {
            // A deployment is the origin of what it delivered.
            let id = conn.last_insert_rowid();
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
            touched
                .iter()
                .position(|(k, a)| *k == n.last.target_key && *a == n.last.application)
        });
        Ok(now)
    }

    /// Per release, the targets whose deployments `relflow rollback` undid later, whole
    /// (`prod`) or in part (`prod (web)`): `list` shows them beside the release's status.
    pub fn rolled_back_later(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT release_id, backend, change, components FROM target_changes
             WHERE job_id IS NOT NULL ORDER BY id",
        )?;
        let rows = stmt.query_map([], |row| {
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
            n.last.target_key == change.target_key && n.last.application == change.application
        });
        let mut reverted = match &slot {
            // Partial rollbacks of one deployment add up.
            Some(n) if change.change == ChangeKind::ComponentsRolledBack
                && n.last.task_run == change.task_run =>
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
            last: change.clone(),
            components_rolled_back: reverted,
        };
        match slot {
            Some(slot) => *slot = entry,
            None => now.push(entry),
        }
    }
    now
}
