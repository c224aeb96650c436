//! XL Deploy's task states and what each means for relflow.

use std::fmt;

/// A task state as XL Deploy reports it (`state2`, else `state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskState {
    Pending,
    Scheduled,
    Queued,
    Executing,
    Failing,
    Stopping,
    Aborting,
    Cancelling,
    Executed,
    Done,
    Failed,
    Stopped,
    Aborted,
    Cancelled,
    /// A state this build does not know; kept verbatim for the log and the error.
    Other(String),
}

/// What a state means for the caller waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Still moving: keep polling.
    InFlight,
    /// Finished well (EXECUTED, or DONE once archived).
    Succeeded,
    /// Halted and waiting for a decision: retry (start again), roll back or cancel.
    NeedsDecision,
    /// Cancelled: gone from XL Deploy's active tasks.
    Cancelled,
    /// Not a state relflow knows.
    Unknown,
}

impl TaskState {
    pub fn parse(s: &str) -> TaskState {
        match s {
            "PENDING" => TaskState::Pending,
            "SCHEDULED" => TaskState::Scheduled,
            "QUEUED" => TaskState::Queued,
            "EXECUTING" => TaskState::Executing,
            "FAILING" => TaskState::Failing,
            "STOPPING" => TaskState::Stopping,
            "ABORTING" => TaskState::Aborting,
            "CANCELLING" => TaskState::Cancelling,
            "EXECUTED" => TaskState::Executed,
            "DONE" => TaskState::Done,
            "FAILED" => TaskState::Failed,
            "STOPPED" => TaskState::Stopped,
            "ABORTED" => TaskState::Aborted,
            "CANCELLED" => TaskState::Cancelled,
            other => TaskState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TaskState::Pending => "PENDING",
            TaskState::Scheduled => "SCHEDULED",
            TaskState::Queued => "QUEUED",
            TaskState::Executing => "EXECUTING",
            TaskState::Failing => "FAILING",
            TaskState::Stopping => "STOPPING",
            TaskState::Aborting => "ABORTING",
            TaskState::Cancelling => "CANCELLING",
            TaskState::Executed => "EXECUTED",
            TaskState::Done => "DONE",
            TaskState::Failed => "FAILED",
            TaskState::Stopped => "STOPPED",
            TaskState::Aborted => "ABORTED",
            TaskState::Cancelled => "CANCELLED",
            TaskState::Other(s) => s,
        }
    }

    pub fn phase(&self) -> Phase {
        match self {
            TaskState::Pending
            | TaskState::Scheduled
            | TaskState::Queued
            | TaskState::Executing
            | TaskState::Failing
            | TaskState::Stopping
            | TaskState::Aborting
            | TaskState::Cancelling => Phase::InFlight,
            TaskState::Executed | TaskState::Done => Phase::Succeeded,
            TaskState::Failed | TaskState::Stopped | TaskState::Aborted => Phase::NeedsDecision,
            TaskState::Cancelled => Phase::Cancelled,
            TaskState::Other(_) => Phase::Unknown,
        }
    }

    /// Whether `POST /deployit/task/{id}/start` (re)starts it: a task never started, or one
    /// halted at a failed or stopped step, which XL Deploy resumes at that step.
    pub fn is_startable(&self) -> bool {
        matches!(
            self,
            TaskState::Pending | TaskState::Failed | TaskState::Stopped | TaskState::Aborted
        )
    }

    /// Whether the task runs and may be stopped (`POST /deployit/task/{id}/stop`).
    pub fn is_running(&self) -> bool {
        matches!(
            self,
            TaskState::Scheduled | TaskState::Queued | TaskState::Executing | TaskState::Failing
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_state_has_its_phase() {
        let cases = [
            ("PENDING", Phase::InFlight),
            ("SCHEDULED", Phase::InFlight),
            ("QUEUED", Phase::InFlight),
            ("EXECUTING", Phase::InFlight),
            ("FAILING", Phase::InFlight),
            ("STOPPING", Phase::InFlight),
            ("ABORTING", Phase::InFlight),
            ("CANCELLING", Phase::InFlight),
            ("EXECUTED", Phase::Succeeded),
            ("DONE", Phase::Succeeded),
            ("FAILED", Phase::NeedsDecision),
            ("STOPPED", Phase::NeedsDecision),
            ("ABORTED", Phase::NeedsDecision),
            ("CANCELLED", Phase::Cancelled),
            ("SLEEPING", Phase::Unknown),
        ];
        for (name, phase) in cases {
            let state = TaskState::parse(name);
            assert_eq!(state.phase(), phase, "{name}");
            assert_eq!(state.as_str(), name);
        }
        assert!(TaskState::Failed.is_startable());
        assert!(!TaskState::Executing.is_startable());
    }
}
