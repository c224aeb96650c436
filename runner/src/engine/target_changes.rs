//! Which status changes change what a target runs: a deploy (or undeploy) task completed, a
//! deployment rolled back (by the policy, a release rollback, `abort --rollback` or a
//! `relflow rollback` job), some of its components rolled back, a deployment that failed or
//! was cancelled after it began changing its target. The engine works the change out from the
//! task's stored handle; the store records it with the status, in one transaction.

use relflow_plugin::Handle;

use crate::engine::deploy::split_package;
use crate::engine::event::{Event, TaskRef};
use crate::engine::{Engine, EngineError};
use crate::pipeline::TaskKind;
use crate::store::{ChangeKind, ControlAction, NewTargetChange, RollbackJobStatus, TaskStatus};

/// `Applications/Dir/PetPortal` → `PetPortal`: an XL Deploy application's name is its CI's
/// last segment; local and exec applications have none.
fn application_name(application: &str) -> &str {
    application.rsplit('/').next().unwrap_or(application)
}

/// The change an event reports, before the target is worked out.
struct Reported<'a> {
    task: &'a TaskRef,
    change: ChangeKind,
    components: Vec<String>,
}

fn reported(event: &Event) -> Option<Reported<'_>> {
    let (task, change, components) = match event {
        Event::TaskStatus {
            task,
            status: TaskStatus::Completed,
            ..
        } => (task, ChangeKind::Deployed, Vec::new()),
        Event::TaskStatus {
            task,
            status: TaskStatus::RolledBack,
            ..
        } => (task, ChangeKind::RolledBack, Vec::new()),
        Event::TaskStatus {
            task,
            status: TaskStatus::Failed | TaskStatus::Cancelled,
            ..
        } => (task, ChangeKind::Failed, Vec::new()),
        // A job that reverted every component also rolls its task back: that status carries
        // the change, so only a partial job is a change of its own.
        Event::RollbackJob {
            task,
            status: RollbackJobStatus::Completed,
            components,
            ..
        } if !components.is_empty() => (task, ChangeKind::ComponentsRolledBack, components.clone()),
        _ => return None,
    };
    Some(Reported {
        task,
        change,
        components,
    })
}

impl Engine {
    /// What `event` changes on a target, if anything; `job` is the rollback job reporting it
    /// and who ordered the job.
    pub(super) fn target_change_of(
        &self,
        event: &Event,
        job: Option<(i64, &str)>,
    ) -> Result<Option<NewTargetChange>, EngineError> {
        match reported(event) {
            Some(r) => self.target_change(r.task, r.change, r.components, job),
            None => Ok(None),
        }
    }

    /// Reports `event` (a rollback step's record) together with the rollback of `task_ref`'s
    /// deployment it made: the failing task of an `abort --rollback` keeps its status, so
    /// the step is what says its target went back.
    pub(super) fn emit_with_rollback_of(
        &self,
        event: Event,
        task_ref: &TaskRef,
    ) -> Result<(), EngineError> {
        let target = self.target_change(task_ref, ChangeKind::RolledBack, Vec::new(), None)?;
        self.reporter.borrow_mut().emit_with_target(event, target)?;
        Ok(())
    }

    /// `change` of the target `task_ref` deployed to, if it has one.
    fn target_change(
        &self,
        task_ref: &TaskRef,
        mut change: ChangeKind,
        components: Vec<String>,
        job: Option<(i64, &str)>,
    ) -> Result<Option<NewTargetChange>, EngineError> {
        let phase_name = task_ref.phase.label.split('#').next().unwrap_or_default();
        let Ok(phase) = self.phase_def(phase_name) else {
            return Ok(None);
        };
        let Ok((task, _)) = self.task_def(phase, &task_ref.task) else {
            return Ok(None);
        };
        let Some(spec) = Self::deploy_spec(task) else {
            return Ok(None);
        };
        match (&task.kind, change) {
            (TaskKind::Undeploy(_), ChangeKind::Deployed) => change = ChangeKind::Undeployed,
            (TaskKind::Deploy(_), _) => {}
            // An undeployment is not rolled back: its rollback changes nothing recorded.
            _ => return Ok(None),
        }
        let Some(run) = self
            .with_store(|s| s.task_runs(&self.release))?
            .into_iter()
            .find(|t| t.id == task_ref.id)
        else {
            return Ok(None);
        };
        // Without a handle the backend never started: the target was not touched.
        let Some(Ok(handle)) = run.handle.as_deref().map(Handle::from_json) else {
            return Ok(None);
        };
        if change == ChangeKind::ComponentsRolledBack && run.status == TaskStatus::RolledBack {
            return Ok(None);
        }
        // A failure before delivery began left the target as it was.
        if change == ChangeKind::Failed && !self.may_have_changed_target(task_ref)? {
            return Ok(None);
        }
        let (target_key, target) = self.target_identity(phase, task, &spec.backend, &handle);
        let previous_hint = match &handle {
            Handle::XlDeploy(h) => h
                .previous_version
                .as_deref()
                .map(|p| split_package(p).map_or(p, |(_, v)| v).to_string()),
            _ => None,
        };
        Ok(Some(NewTargetChange {
            backend: spec.backend.clone(),
            backend_kind: self
                .pipeline
                .backends
                .get(&spec.backend)
                .map_or("unknown", crate::pipeline::Backend::kind)
                .to_string(),
            target_key,
            target,
            application: application_name(handle.application()).to_string(),
            version: handle.version().to_string(),
            change,
            components,
            previous_hint,
            release: self.release.clone(),
            phase_run: task_ref.phase.label.clone(),
            task: task_ref.task.clone(),
            task_run: run.id,
            job: job.map(|(id, _)| id),
            actor: self.actor_of(change, job)?,
        }))
    }

    /// (identity, name shown) of the target a deployment went to: the target lock's key
    /// (it already tells targets apart per backend), shown as the folder, the XL Deploy
    /// environment, or the exec backend's lock key.
    fn target_identity(
        &self,
        phase: &crate::pipeline::Phase,
        task: &crate::pipeline::Task,
        backend: &str,
        handle: &Handle,
    ) -> (String, String) {
        let key = match self.target_lock(phase, task, Some(handle)) {
            Ok(Some(lock)) => lock.key.target,
            _ => format!("{backend}:{}", handle.application()),
        };
        let shown = match handle {
            Handle::XlDeploy(h) => h.environment.clone(),
            Handle::Exec(_) => key.strip_prefix("exec:").unwrap_or(&key).to_string(),
            Handle::Local(_) => key.clone(),
        };
        (key, shown)
    }

    /// Who ordered a rollback: the person behind the job, or behind an `abort --rollback`
    /// still being carried out. A policy's rollback and a deployment have none.
    fn actor_of(
        &self,
        change: ChangeKind,
        job: Option<(i64, &str)>,
    ) -> Result<Option<String>, EngineError> {
        if let Some((_, actor)) = job {
            return Ok(Some(actor.to_string()));
        }
        if change != ChangeKind::RolledBack {
            return Ok(None);
        }
        let requests = self.with_store(|s| s.open_control_requests(&self.release))?;
        Ok(requests
            .into_iter()
            .find(|r| r.action == ControlAction::Abort { rollback: true })
            .map(|r| r.actor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xl_deploy_applications_are_named_by_their_last_segment() {
        assert_eq!(application_name("Applications/PetPortal"), "PetPortal");
        assert_eq!(application_name("Applications/Dir/Web"), "Web");
        assert_eq!(application_name("PetPortal"), "PetPortal");
    }
}
