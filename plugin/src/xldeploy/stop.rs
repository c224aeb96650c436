//! When the attempt must stop while relflow waits on an XL Deploy task: at the deadline
//! (`timeout:`) and on abort the task is stopped (`POST /deployit/task/{id}/stop`, XL Deploy's
//! graceful stop after the running step); on SIGINT/SIGTERM it keeps running on the server and
//! `resume` re-attaches to it by its stored id.

use super::backend::XlDeployBackend;
use super::client::Call;
use super::task::TaskState;
use crate::StopCause;
use crate::backend::{BackendError, LogSink};

impl XlDeployBackend {
    /// Acts on `cause` for task `task_id` (last seen in state `last`) and returns the
    /// attempt's error: class `timeout` at the deadline, `interrupted` otherwise.
    pub(super) fn stop_waiting(
        &self,
        task_id: &str,
        cause: StopCause,
        last: Option<&TaskState>,
        what: &str,
        log: LogSink<'_>,
    ) -> BackendError {
        let error = self.interrupt.error(cause, what);
        match cause {
            StopCause::Signal => log(&format!(
                "Task {task_id} keeps running in XL Deploy; `relflow resume` re-attaches to it"
            )),
            StopCause::Deadline | StopCause::Abort => {
                let why = match cause {
                    StopCause::Deadline => format!(
                        "the attempt's timeout of {} passed",
                        error
                            .message
                            .rsplit("timed out after ")
                            .next()
                            .unwrap_or("")
                    ),
                    _ => "the release was aborted".to_string(),
                };
                self.stop_task(task_id, last, &why, log);
            }
        }
        error
    }

    /// `POST /deployit/task/{id}/stop` when the task may be running (a task never started, or
    /// one already halted, has nothing to stop). A failed stop is logged, not raised: the
    /// attempt fails either way.
    fn stop_task(&self, task_id: &str, last: Option<&TaskState>, why: &str, log: LogSink<'_>) {
        let may_run = last.is_none_or(|s| s.is_running() || *s == TaskState::Stopping);
        if !may_run {
            log(&format!(
                "Task {task_id} is not running: nothing to stop ({why})"
            ));
            return;
        }
        let call = Call::post(format!("/deployit/task/{task_id}/stop"), None);
        match self.call_regardless(&call, log) {
            Ok(_) => log(&format!("Stopped task {task_id}: {why}")),
            Err(e) => log(&format!(
                "Could not stop task {task_id} ({why}): {}; it may still be running in XL Deploy",
                e.message
            )),
        }
    }
}
