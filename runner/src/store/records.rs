//! Rows of the store as the engine and the CLI read them.

use std::collections::BTreeMap;

use super::status::{AttemptStatus, PhaseStatus, ReleaseStatus, RollbackJobStatus, TaskStatus};

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReleaseRecord {
    pub id: String,
    pub pipeline: String,
    pub pipeline_file: String,
    #[serde(skip)]
    pub pipeline_source: String,
    pub status: ReleaseStatus,
    pub variables: BTreeMap<String, String>,
    /// Why the release stopped where it did, when it did not complete.
    pub reason: Option<String>,
    #[serde(serialize_with = "crate::output::json::rfc3339")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::output::json::rfc3339")]
    pub updated_at: i64,
    /// Targets whose deployments by this release `relflow rollback` undid later: `prod`, or
    /// `prod (web)` when only some components were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rolled_back_later: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PhaseRunRecord {
    pub id: i64,
    pub position: i64,
    pub phase: String,
    pub run_no: i64,
    pub status: PhaseStatus,
    /// The release variables when this run started (`None` before it started).
    pub variables: Option<BTreeMap<String, String>>,
    #[serde(serialize_with = "crate::output::json::rfc3339_opt")]
    pub started_at: Option<i64>,
    #[serde(serialize_with = "crate::output::json::rfc3339_opt")]
    pub ended_at: Option<i64>,
}

impl PhaseRunRecord {
    /// `deploy` for the first run, `deploy#2` for the second: also its log folder's name.
    pub fn label(&self) -> String {
        phase_label(&self.phase, self.run_no)
    }
}

/// `phase` for run 1, `phase#n` after.
pub fn phase_label(phase: &str, run_no: i64) -> String {
    if run_no <= 1 {
        phase.to_string()
    } else {
        format!("{phase}#{run_no}")
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskRunRecord {
    pub id: i64,
    pub phase_run_id: i64,
    pub position: i64,
    /// Tasks of one parallel group share a step.
    pub step: i64,
    pub task: String,
    pub kind: String,
    pub status: TaskStatus,
    pub attempts: i64,
    /// The backend's own record (shown as a nested object).
    #[serde(serialize_with = "crate::output::json::embedded_json")]
    pub handle: Option<String>,
    /// When a task `waiting_retry` starts its next attempt (ms since epoch).
    #[serde(serialize_with = "crate::output::json::rfc3339_opt")]
    pub retry_at: Option<i64>,
    pub error_class: Option<String>,
    pub error: Option<String>,
    #[serde(serialize_with = "crate::output::json::rfc3339_opt")]
    pub started_at: Option<i64>,
    #[serde(serialize_with = "crate::output::json::rfc3339_opt")]
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AttemptRecord {
    pub task_run_id: i64,
    pub number: i64,
    pub status: AttemptStatus,
    pub error_class: Option<String>,
    pub message: Option<String>,
    pub exit_code: Option<i64>,
    #[serde(serialize_with = "crate::output::json::rfc3339")]
    pub started_at: i64,
    #[serde(serialize_with = "crate::output::json::rfc3339_opt")]
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DecisionRecord {
    pub task_run_id: Option<i64>,
    pub decision: String,
    pub rule: String,
    pub detail: Option<String>,
    #[serde(serialize_with = "crate::output::json::rfc3339")]
    pub at: i64,
}

/// A command a person ran on a release (`relflow retry --comment ...`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActionRecord {
    #[serde(skip)]
    pub task_run_id: Option<i64>,
    pub action: String,
    #[serde(flatten)]
    pub person: crate::engine::person::Person,
    #[serde(serialize_with = "crate::output::json::rfc3339")]
    pub at: i64,
}

/// One task to plan into a new release: (phase position, step, task name, kind).
#[derive(Debug, Clone)]
pub struct PlannedTask {
    pub step: i64,
    pub task: String,
    pub kind: String,
}

/// One phase to plan into a new release.
#[derive(Debug, Clone)]
pub struct PlannedPhase {
    pub phase: String,
    pub tasks: Vec<PlannedTask>,
}

/// A rollback of a completed deployment (`relflow rollback`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RollbackJobRecord {
    pub id: i64,
    pub task_run_id: i64,
    pub status: RollbackJobStatus,
    /// Components asked for; empty = all of the deployment's.
    pub components: Vec<String>,
    pub error: Option<String>,
    #[serde(serialize_with = "crate::output::json::rfc3339")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::output::json::rfc3339_opt")]
    pub ended_at: Option<i64>,
}
