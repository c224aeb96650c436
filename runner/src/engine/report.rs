//! Fans each engine event out to its consumers, after redacting secrets: the store first
//! (it is the durable truth), then events.jsonl, script_output.log and the terminal. A shared
//! store also gets each event line (in the transaction of its state change) and each log line
//! (in batches, see [`LogShipper`]), for readers on other machines.

use std::path::Path;

use crate::engine::event::Event;
use crate::engine::secrets;
use crate::output::events_file::{self, EventsFile};
use crate::output::log_shipper::LogShipper;
use crate::output::script_log::ScriptLogs;
use crate::output::terminal::Terminal;
use crate::output::{Redactor, paths};
use crate::store::secrets::{SecretError, SecretKey, SecretValues};
use crate::store::{NewTargetChange, Store, StoreError, now_ms};

/// A consumer failed: the release's record can no longer be trusted.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] crate::store::secrets::SecretError),
    #[error("cannot write {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

pub struct Reporter {
    release: String,
    pub store: Store,
    pub redactor: Redactor,
    events: EventsFile,
    logs: ScriptLogs,
    /// A shared store's log lines, started with the first line.
    shipper: Option<LogShipper>,
    pub terminal: Terminal,
    /// Set when another runner took the release over: nothing more is written.
    pub lease_lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Variables declared `secret: true`: their values are masked and kept encrypted.
    pub secret_variables: std::collections::BTreeSet<String>,
}

impl Reporter {
    pub fn new(
        store: Store,
        release: &str,
        redactor: Redactor,
        terminal: Terminal,
    ) -> Result<Reporter, ReportError> {
        let state_dir = store.dir().to_path_buf();
        let events =
            EventsFile::open(&paths::events_file(&state_dir, release)).map_err(|source| {
                ReportError::Io {
                    what: "events.jsonl",
                    source,
                }
            })?;
        Ok(Reporter {
            release: release.to_string(),
            logs: ScriptLogs::new(state_dir, release),
            shipper: None,
            store,
            redactor,
            events,
            terminal,
            lease_lost: std::sync::Arc::default(),
            secret_variables: std::collections::BTreeSet::new(),
        })
    }

    pub fn state_dir(&self) -> &Path {
        self.store.dir()
    }

    /// Redacts `event`, then hands it to every consumer. Variables that are secret keep their
    /// real value, encrypted, beside their masked one (redaction never changes a value the
    /// release uses).
    pub fn emit(&mut self, event: Event) -> Result<(), ReportError> {
        self.emit_with_target(event, None)
    }

    /// Like [`Reporter::emit`]; the store records `target` (what a target runs after the
    /// change `event` reports) in the same transaction as the event itself.
    pub fn emit_with_target(
        &mut self,
        mut event: Event,
        mut target: Option<NewTargetChange>,
    ) -> Result<(), ReportError> {
        let kept = match &event {
            Event::VariablesSet { values } => {
                secrets::add_secret_variables(&self.redactor, &self.secret_variables, values);
                let kept =
                    secrets::secret_values_of(&self.secret_variables, &self.redactor, values);
                Some(kept).filter(|k| !k.is_empty())
            }
            _ => None,
        };
        if !self.redactor.is_empty() {
            let redactor = &self.redactor;
            event.map_text(&|text| redactor.redact_changed(text));
            if let Some(target) = &mut target {
                target.map_text(&|text| redactor.redact_changed(text));
            }
        }
        let at = now_ms();
        if self.shipper.as_ref().is_some_and(LogShipper::is_lost) {
            self.lease_lost
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if self.lease_lost.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::LeaseLost {
                release: self.release.clone(),
            }
            .into());
        }
        let line =
            events_file::line_of(&self.release, at, &event).map_err(|source| ReportError::Io {
                what: "events.jsonl",
                source,
            })?;
        self.ship_log_line(&event)?;
        if let Some(point) = event.failpoint() {
            self.write_to_store(&event, line.as_deref(), kept.as_ref(), target.as_ref())?;
            if let Some(target) = &target {
                crate::failpoint::hit_with("store.target_change", || {
                    format!(
                        "{} {} {}",
                        target.task,
                        target.change.as_str(),
                        target.version
                    )
                });
            }
            crate::failpoint::hit_with(point, || event.trace_detail());
        }
        if let Some(line) = &line {
            self.events
                .write_line(line)
                .map_err(|source| ReportError::Io {
                    what: "events.jsonl",
                    source,
                })?;
        }
        self.logs.write(&event).map_err(|source| ReportError::Io {
            what: "script_output.log",
            source,
        })?;
        event.trace(&self.release);
        self.terminal
            .write_with_store(&self.release, &event, &self.store);
        Ok(())
    }
}

impl Reporter {
    /// The event's store write; with `kept`, the real values it masks, encrypted, in the same
    /// transaction (a kill never leaves `***` without the value behind it); likewise `target`.
    fn write_to_store(
        &mut self,
        event: &Event,
        line: Option<&str>,
        kept: Option<&SecretValues>,
        target: Option<&NewTargetChange>,
    ) -> Result<(), ReportError> {
        let release = &self.release;
        // A shared store: the event's line and the log lines before it, in its transaction.
        let body = line.filter(|_| self.store.is_shared());
        let lines = self
            .shipper
            .as_ref()
            .map(LogShipper::take)
            .unwrap_or_default();
        let apply = |store: &Store| {
            store.with_event(release, body, |s| {
                if !lines.is_empty() {
                    s.append_log_lines(release, &lines)?;
                }
                s.with_target_change(target, |s| apply_to_store(s, release, event))
            })
        };
        let written = match kept {
            None => self.store.guarded_write(apply).map_err(ReportError::from),
            Some(kept) => {
                let key = SecretKey::load_or_create(self.store.dir())?;
                self.store
                    .guarded_write(|store| {
                        store
                            .with_secrets(release, kept, &key, apply)
                            .map_err(|e| match e {
                                SecretError::Store(e) => e,
                                other => StoreError::Corrupt(other.to_string()),
                            })
                    })
                    .map_err(ReportError::from)
            }
        };
        if written.is_err()
            && let Some(shipper) = &self.shipper
        {
            shipper.put_back(lines);
        }
        written
    }

    /// A shared store: buffers the log line `event` adds (the first starts the shipper).
    fn ship_log_line(&mut self, event: &Event) -> Result<(), ReportError> {
        if !self.store.is_shared()
            || self.store.is_read_only()
            || crate::output::log_shipper::script_line(event).is_none()
        {
            return Ok(());
        }
        if self.shipper.is_none() {
            self.shipper = Some(LogShipper::start(&self.store, &self.release)?);
        }
        if let Some(shipper) = &mut self.shipper {
            shipper.push(&self.store, event)?;
        }
        Ok(())
    }
}

/// The store as a consumer: each event becomes the write that makes it durable.
fn apply_to_store(store: &Store, release: &str, event: &Event) -> Result<(), StoreError> {
    let error_of = |e: &Option<crate::engine::event::FailureInfo>| {
        e.as_ref()
            .map(|e| (e.class.as_str().to_string(), e.message.clone()))
    };
    match event {
        Event::ReleaseStatus { status, reason } => {
            store.set_release_status(release, *status, reason.as_deref())
        }
        Event::PhaseStatus {
            phase,
            status,
            variables,
        } => {
            if let Some(variables) = variables {
                store.set_phase_variables(phase.id, variables)?;
            }
            store.set_phase_status(phase.id, *status)
        }
        Event::TaskStatus {
            task,
            status,
            error,
        } => {
            let error = error_of(error);
            store.set_task_status(
                task.id,
                *status,
                error.as_ref().map(|(c, m)| (c.as_str(), m.as_str())),
            )
        }
        Event::AttemptStarted { task, attempt } => {
            store.start_attempt(task.id, i64::from(*attempt))
        }
        Event::AttemptFinished {
            task,
            attempt,
            status,
            error,
            exit_code,
        } => {
            let error = error_of(error);
            store.finish_attempt(
                task.id,
                i64::from(*attempt),
                *status,
                error.as_ref().map(|(c, m)| (c.as_str(), m.as_str())),
                *exit_code,
            )
        }
        Event::RetryScheduled { task, at_ms, .. } => store.schedule_retry(task.id, *at_ms),
        Event::Decision {
            task,
            decision,
            rule,
            detail,
        } => store.record_decision(release, Some(task.id), decision, rule, detail.as_deref()),
        Event::VariablesSet { values } => store.set_variables(release, values),
        Event::HandleStored { task, handle } => store.set_handle(task.id, handle),
        Event::PhaseRestarted {
            from,
            runs,
            by,
            values,
        } => {
            let detail = format!("from {from}: new runs {} {values}", runs.join(", "));
            store.record_decision(release, None, "restart_phase", by, Some(detail.trim_end()))
        }
        Event::RollbackJob {
            job, status, error, ..
        } => store.set_rollback_job_status(*job, *status, error.as_deref()),
        Event::ReleaseDecision {
            decision,
            rule,
            detail,
        } => store.record_decision(release, None, decision, rule, detail.as_deref()),
        Event::PersonAction {
            task,
            action,
            person,
        } => store.record_action(release, task.as_ref().map(|t| t.id), action, person),
        Event::Output { .. } | Event::RollbackOutput { .. } => Ok(()),
    }
}
