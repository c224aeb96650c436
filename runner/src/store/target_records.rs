//! The rows of `target_changes` as the engine writes them and `relflow targets` reads them.

use serde::Serialize;

use super::StoreError;
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
    /// A deployment failed or was cancelled after it began changing the target, and was not
    /// rolled back: the target may hold its version, whole or in part.
    Failed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Deployed => "deployed",
            ChangeKind::Undeployed => "undeployed",
            ChangeKind::RolledBack => "rolled_back",
            ChangeKind::ComponentsRolledBack => "components_rolled_back",
            ChangeKind::Failed => "failed",
        }
    }

    pub(super) fn parse(text: &str) -> Result<ChangeKind, StoreError> {
        [
            ChangeKind::Deployed,
            ChangeKind::Undeployed,
            ChangeKind::RolledBack,
            ChangeKind::ComponentsRolledBack,
            ChangeKind::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown target change `{text}`")))
    }

    /// Whether the change undid (part of) a deployment.
    pub fn is_rollback(self) -> bool {
        matches!(
            self,
            ChangeKind::RolledBack | ChangeKind::ComponentsRolledBack
        )
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
    pub backend: String,
    pub backend_kind: String,
    pub target: String,
    pub application: String,
    /// The version the target runs (`None`: nothing of the application).
    pub version: Option<String>,
    /// Whether a deployment of `version` failed half-way: the target may hold part of it.
    pub is_state_unknown: bool,
    /// Since when: the time of the last change.
    #[serde(serialize_with = "rfc3339")]
    pub since: i64,
    /// The deployment that delivered what runs, when relflow made it.
    pub deployed_by: Option<Origin>,
    /// Components of the running deployment that partial rollbacks reverted so far.
    pub components_rolled_back: Vec<String>,
    /// The version those components went back to (`None`: removed, or none reverted).
    pub components_version: Option<String>,
    /// The change that left the target so.
    pub last_change: TargetChangeRecord,
}

impl TargetNow {
    /// The version the target runs (`None`: nothing of the application).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}
