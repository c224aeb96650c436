//! Creating a deployment (or undeployment) task at most once per attempt. `POST
//! /deployit/deployment` is never repeated blindly: before it, the matching active tasks are
//! listed (`GET /deployit/tasks/v2/current`) and the intent is recorded durably; after it, the
//! id. When the answer is lost — a dropped connection, a timeout, a killed runner — the task is
//! looked for among the active tasks (metadata `application`, `environment_id`, `version`,
//! `taskType`, minus those listed before) and adopted; only when none is there is one created.

use super::backend::XlDeployBackend;
use super::client::Call;
use super::deploy::{Target, protocol};
use super::intent::{self, Intent};
use super::xml::{self, ActiveTask, Element};
use crate::backend::{BackendError, LogSink};
use crate::{ErrorClass, failpoint};

/// A task this try will drive: created now, or adopted from an earlier try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Obtained {
    pub task_id: String,
    pub is_adopted: bool,
    /// From the intent: the package deployed before this deployment.
    pub previous_version: Option<String>,
}

impl XlDeployBackend {
    /// Before preparing anything: when an earlier try of this task run recorded an intent for
    /// the same deployment (`version`; `None` for an undeployment) but no handle reached the
    /// runner, the task it may have created.
    pub(super) fn adopt_lost(
        &self,
        target: &Target,
        version: Option<&str>,
        work_dir: &std::path::Path,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<Option<Obtained>, BackendError> {
        let Some(recorded) = intent::load(work_dir)? else {
            return Ok(None);
        };
        if !recorded.is_about(&target.application, &target.environment, version) {
            intent::remove(work_dir);
            return Ok(None);
        }
        let found = match &recorded.task_id {
            Some(id) => self.still_active(id, what, log)?,
            None => self.find_created(&recorded, what, log)?,
        };
        Ok(found.map(|task_id| {
            log(&format!(
                "Adopted task {task_id} created by an earlier try whose answer was lost"
            ));
            Obtained {
                task_id,
                is_adopted: true,
                previous_version: recorded.previous_version.clone(),
            }
        }))
    }

    /// Lists the matching active tasks, records the intent, then `POST /deployit/deployment`
    /// once. A lost answer is recovered at once when the task shows up among the active tasks.
    pub(super) fn create_once(
        &self,
        spec: &Element,
        mut recorded: Intent,
        work_dir: &std::path::Path,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<Obtained, BackendError> {
        self.interrupt.check(what)?;
        recorded.known_tasks = self
            .active_tasks(what, log)?
            .map(|active| active.iter().map(|t| t.id.clone()).collect());
        intent::save(work_dir, &recorded)?;
        failpoint::hit("xld.create_intent");
        log("Creating a deployment task");
        let call = Call::post("/deployit/deployment", Some(spec.to_xml()));
        let answer = self.call_once(&call);
        let obtained = |task_id: String, is_adopted: bool| Obtained {
            task_id,
            is_adopted,
            previous_version: recorded.previous_version.clone(),
        };
        let task_id = match answer {
            Ok(body) => xml::parse_task_id(&body).map_err(|e| protocol(what, &call, e))?,
            Err(e) if e.class.is_transient() => {
                // Not when the attempt is stopping: the next try looks (the intent stays).
                if self.interrupt.cause().is_none()
                    && let Ok(Some(id)) = self.find_created(&recorded, what, log)
                {
                    log(&format!(
                        "Adopted task {id} created before the connection dropped"
                    ));
                    return Ok(obtained(id, true));
                }
                return Err(BackendError::new(
                    e.class,
                    format!(
                        "{what}: {} (XL Deploy may have created the task anyway; relflow looks \
                         for it among the active tasks before it creates another)",
                        e.message
                    ),
                ));
            }
            Err(e) => return Err(BackendError::new(e.class, format!("{what}: {}", e.message))),
        };
        recorded.task_id = Some(task_id.clone());
        intent::save(work_dir, &recorded)?;
        failpoint::hit("xld.task_created");
        Ok(obtained(task_id, false))
    }

    /// `GET /deployit/tasks/v2/current`; `None` when the server does not have it (404).
    fn active_tasks(
        &self,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<Option<Vec<ActiveTask>>, BackendError> {
        let call = Call::get("/deployit/tasks/v2/current");
        match self.call(&call, log) {
            Ok(body) => xml::parse_active_tasks(&body)
                .map(Some)
                .map_err(|e| protocol(what, &call, e)),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(BackendError::new(e.class, format!("{what}: {}", e.message))),
        }
    }

    /// The one active task that may be the intent's; `None` when there is none (then it was
    /// never created); an error when several are (a person must say which).
    fn find_created(
        &self,
        recorded: &Intent,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<Option<String>, BackendError> {
        let active = self.active_tasks(what, log)?.unwrap_or_default();
        let candidates = recorded.candidates(&active);
        match candidates.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.id.clone())),
            several => {
                let ids: Vec<&str> = several.iter().map(|t| t.id.as_str()).collect();
                Err(BackendError::new(
                    ErrorClass::Precondition,
                    format!(
                        "{what}: an earlier try's answer was lost and XL Deploy has {} tasks \
                         that may be it ({}); cancel the ones not wanted in XL Deploy, then retry",
                        ids.len(),
                        ids.join(", ")
                    ),
                ))
            }
        }
    }

    /// A recorded task id, if XL Deploy still has the task.
    fn still_active(
        &self,
        task_id: &str,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<Option<String>, BackendError> {
        match super::poll::task_state(&self.client, &self.interrupt, task_id, log) {
            Ok(_) => Ok(Some(task_id.to_string())),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(BackendError::new(e.class, format!("{what}: {}", e.message))),
        }
    }
}
