//! Executing one attempt of each task kind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use relflow_plugin::ErrorClass;

use crate::engine::event::{Event, TaskRef};
use crate::engine::process::{ProcessEnd, ProcessSpec, run_process};
use crate::engine::shell::shell_line;
use crate::engine::{Engine, EngineError};
use crate::output::paths;
use crate::pipeline::paths::resolve;
use crate::pipeline::template::{RenderContext, RenderError, Rendered, Template};
use crate::pipeline::{Phase, Task, TaskKind};
use crate::policy::Failure;

/// How one attempt ended.
pub enum AttemptResult {
    Succeeded,
    Failed {
        /// Boxed: a failure carries its context (log tail, variables) for the policy.
        failure: Box<Failure>,
        exit_code: Option<i32>,
    },
}

pub(super) fn failed(class: ErrorClass, message: impl Into<String>, attempt: u32) -> AttemptResult {
    AttemptResult::Failed {
        failure: Box::new(Failure::new(class, message, attempt)),
        exit_code: None,
    }
}

/// What a process task runs, before rendering.
struct ProcessTemplate<'a> {
    program_and_args: Vec<&'a Template>,
    shell: bool,
    timeout: Option<Duration>,
    env: &'a BTreeMap<String, Template>,
    cwd: Option<&'a Template>,
    /// A script path is relative to the pipeline folder, whatever the cwd.
    program_is_file: bool,
}

/// `a 'b c'` — argv shown the way a shell user would type it.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Engine {
    /// Renders a template of `task` with the release's current values; secrets it used are
    /// added to the redactor before anything can print them.
    pub(super) fn render(
        &self,
        phase: &Phase,
        task: &Task,
        template: &Template,
    ) -> Result<Rendered, RenderError> {
        self.render_with(phase, task, template, &[])
    }

    /// `render`, with `extra` values taking precedence over the release's variables.
    pub(super) fn render_with(
        &self,
        phase: &Phase,
        task: &Task,
        template: &Template,
        extra: &[(&str, &str)],
    ) -> Result<Rendered, RenderError> {
        let release_variables = self.variables.borrow();
        // Copy the release's variables only when a deployment adds its own (every argv
        // element of every task is rendered here).
        let with_extra;
        let variables = if extra.is_empty() {
            &*release_variables
        } else {
            let mut merged = release_variables.clone();
            for (name, value) in extra {
                merged.insert(name.to_string(), value.to_string());
            }
            with_extra = merged;
            &with_extra
        };
        let ctx = RenderContext {
            variables,
            release_id: &self.release,
            phase_name: &phase.name,
            task_name: &task.name,
            env: &*self.env,
        };
        let rendered = template.render(&ctx)?;
        let reporter = self.reporter.borrow();
        for secret in &rendered.secrets {
            reporter.redactor.add(secret);
        }
        Ok(rendered)
    }

    pub(super) async fn execute(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        attempt: u32,
    ) -> Result<AttemptResult, EngineError> {
        let process = match &task.kind {
            TaskKind::Command(c) => ProcessTemplate {
                program_and_args: c.run.iter().collect(),
                shell: c.shell,
                timeout: c.timeout.or(task.timeout),
                env: &c.env,
                cwd: c.cwd.as_ref(),
                program_is_file: false,
            },
            TaskKind::Script(s) => ProcessTemplate {
                program_and_args: std::iter::once(&s.path).chain(&s.args).collect(),
                shell: false,
                timeout: s.timeout.or(task.timeout),
                env: &s.env,
                cwd: s.cwd.as_ref(),
                program_is_file: true,
            },
            TaskKind::Wait(duration) => {
                let shown = crate::pipeline::duration::format_duration(*duration);
                self.output(task_ref, format!("Waiting {shown}"))?;
                // tokio's timer ticks in milliseconds: even a zero sleep would cost one tick.
                if !duration.is_zero() {
                    let interrupt = self.interrupt.with_timeout(task.timeout);
                    let what = format!("wait {shown}");
                    if let Err(e) = wait_for(*duration, &interrupt, &what).await {
                        return Ok(failed(e.class, e.message, attempt));
                    }
                }
                return Ok(AttemptResult::Succeeded);
            }
            TaskKind::Deploy(spec) => {
                return self.run_deploy(phase, task_ref, task, spec, attempt).await;
            }
            TaskKind::Undeploy(spec) => {
                return self
                    .run_undeploy(phase, task_ref, task, spec, attempt)
                    .await;
            }
            TaskKind::Manual { .. } => return Ok(AttemptResult::Succeeded),
        };
        self.run_process_task(phase, task_ref, task, attempt, &process)
            .await
    }

    async fn run_process_task(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        attempt: u32,
        process: &ProcessTemplate<'_>,
    ) -> Result<AttemptResult, EngineError> {
        let spec = match self.process_spec(phase, task_ref, task, attempt, process) {
            Ok(spec) => spec,
            Err(message) => return Ok(failed(ErrorClass::Precondition, message, attempt)),
        };
        let output_file = spec
            .env
            .iter()
            .find(|(k, _)| k == "RELFLOW_OUTPUT")
            .map(|(_, v)| PathBuf::from(v));
        let mut shown = vec![spec.program.clone()];
        shown.extend(spec.args.iter().cloned());
        let command_line = if process.shell {
            shown_shell_line(&spec)
        } else {
            format!("$ {}", shell_words(&shown))
        };
        self.output(task_ref, command_line)?;
        let end = self
            .run_logged_with(&spec, &self.interrupt, task_ref, None)
            .await?;
        let program = &shown[0];
        let outputs = output_file.as_deref().map(read_outputs).transpose();
        if let Some(file) = &output_file {
            // It may hold secrets (a task can write `${env.*}` values to it): never leave it.
            let _ = std::fs::remove_file(file);
        }
        Ok(match end {
            ProcessEnd::Exited(0) => match outputs {
                Ok(values) => {
                    if let Some(values) = values.filter(|v| !v.is_empty()) {
                        self.set_variables(task_ref, values)?;
                    }
                    AttemptResult::Succeeded
                }
                Err(message) => failed(ErrorClass::Validation, message, attempt),
            },
            ProcessEnd::Exited(code) => {
                let message = end.failure(program).unwrap_or_default();
                let mut failure = Failure::new(ErrorClass::TaskFailed, message, attempt);
                failure.exit_code = Some(code);
                AttemptResult::Failed {
                    failure: Box::new(failure),
                    exit_code: Some(code),
                }
            }
            ProcessEnd::Signalled(_) => failed(
                ErrorClass::TaskFailed,
                end.failure(program).unwrap_or_default(),
                attempt,
            ),
            ProcessEnd::TimedOut(_) => failed(
                ErrorClass::Timeout,
                end.failure(program).unwrap_or_default(),
                attempt,
            ),
            ProcessEnd::Interrupted(_) => failed(
                ErrorClass::Interrupted,
                end.failure(program).unwrap_or_default(),
                attempt,
            ),
            ProcessEnd::SpawnFailed(_) => failed(
                ErrorClass::Precondition,
                end.failure(program).unwrap_or_default(),
                attempt,
            ),
        })
    }

    /// Renders argv, env and cwd; creates the empty `$RELFLOW_OUTPUT` file.
    fn process_spec(
        &self,
        phase: &Phase,
        task_ref: &TaskRef,
        task: &Task,
        attempt: u32,
        process: &ProcessTemplate<'_>,
    ) -> Result<ProcessSpec, String> {
        let render = |t: &Template| {
            self.render(phase, task, t)
                .map(|r| r.value)
                .map_err(|e| e.to_string())
        };
        let base = &self.pipeline.base_dir;
        let shell_line = match (process.shell, process.program_and_args.as_slice()) {
            (true, [line]) => Some(shell_line(line, render)?),
            _ => None,
        };
        let mut argv = match &shell_line {
            Some(line) => vec![line.text.clone()],
            None => process
                .program_and_args
                .iter()
                .map(|t| render(t))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if argv.is_empty() {
            return Err("nothing to run".to_string());
        }
        if process.program_is_file && !Path::new(&argv[0]).is_absolute() {
            argv[0] = resolve(base, &argv[0]).to_string_lossy().into_owned();
        }
        let cwd = match process.cwd {
            Some(t) => resolve(base, render(t)?),
            None => base.clone(),
        };
        let state_dir = self.reporter.borrow().state_dir().to_path_buf();
        let task_dir =
            paths::task_dir(&state_dir, &self.release, &task_ref.phase.label, &task.name);
        crate::store::create_private_dir(&task_dir).map_err(|e| e.to_string())?;
        let output_file = task_dir.join(crate::engine::secrets::OUTPUT_FILE);
        crate::store::open_private_file(
            &output_file,
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true),
        )
        .map_err(|e| format!("cannot create {}: {e}", output_file.display()))?;
        let mut env = vec![
            (
                "RELFLOW_OUTPUT".to_string(),
                output_file.to_string_lossy().into_owned(),
            ),
            ("RELFLOW_RELEASE_ID".to_string(), self.release.clone()),
            ("RELFLOW_PHASE".to_string(), phase.name.clone()),
            ("RELFLOW_TASK".to_string(), task.name.clone()),
            ("RELFLOW_ATTEMPT".to_string(), attempt.to_string()),
        ];
        for (key, value) in process.env {
            env.push((key.clone(), render(value)?));
        }
        let (program, args) = if let Some(line) = shell_line {
            // Values reach the shell as variables its text expands, never as its text.
            env.extend(line.values);
            ("sh".to_string(), vec!["-c".to_string(), line.text])
        } else {
            (argv.remove(0), argv)
        };
        Ok(ProcessSpec {
            program,
            args,
            cwd,
            env,
            timeout: process.timeout,
        })
    }

    /// Runs a process of the failure handling (an action, a fix-forward resolver), writing
    /// each of its lines to `task_ref`'s log (and into `keep`, when given). It is bounded by
    /// its own timeout only: it may run after the release's stop flag was raised (`abort
    /// --rollback` runs the rollback order). Fails only when the log cannot be written.
    pub(super) async fn run_logged(
        &self,
        spec: &ProcessSpec,
        task_ref: &TaskRef,
        keep: Option<&mut Vec<String>>,
    ) -> Result<ProcessEnd, EngineError> {
        self.run_logged_with(spec, &relflow_plugin::Interrupt::none(), task_ref, keep)
            .await
    }

    /// [`Engine::run_logged`] with `interrupt`'s stop flag (a task attempt passes the
    /// release's, so an abort or a signal ends it).
    pub(super) async fn run_logged_with(
        &self,
        spec: &ProcessSpec,
        interrupt: &relflow_plugin::Interrupt,
        task_ref: &TaskRef,
        mut keep: Option<&mut Vec<String>>,
    ) -> Result<ProcessEnd, EngineError> {
        let mut write_error = None;
        let end = run_process(spec, interrupt, &mut |line| {
            if let Some(kept) = keep.as_deref_mut() {
                kept.push(line.clone());
            }
            if write_error.is_none()
                && let Err(e) = self.output(task_ref, line)
            {
                write_error = Some(e);
            }
        })
        .await;
        match write_error {
            Some(e) => Err(e),
            None => Ok(end),
        }
    }

    fn set_variables(
        &self,
        task_ref: &TaskRef,
        values: BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let undeclared: Vec<&str> = values
            .keys()
            .filter(|k| !self.pipeline.variables.contains_key(*k))
            .map(String::as_str)
            .collect();
        if !undeclared.is_empty() {
            let names = undeclared;
            self.output(
                task_ref,
                format!(
                    "note: {} not declared under `variables:`; set anyway",
                    names.join(", ")
                ),
            )?;
        }
        let all = {
            let mut vars = self.variables.borrow_mut();
            vars.extend(values);
            vars.clone()
        };
        self.emit(Event::VariablesSet { values: all })
    }
}

/// `$ TEXT` of a `shell: true` command, with the values its `"${RELFLOW_V_n}"` expand.
fn shown_shell_line(spec: &ProcessSpec) -> String {
    let text = spec.args.get(1).map_or("", String::as_str);
    let values: Vec<String> = spec
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("RELFLOW_V_"))
        .map(|(k, v)| format!("{k}={}", shell_words(std::slice::from_ref(v))))
        .collect();
    if values.is_empty() {
        format!("$ {text}")
    } else {
        format!("$ {text}  # {}", values.join(" "))
    }
}

/// Waits `duration`, or fails when `interrupt` fires first (class `timeout` at the task's
/// deadline, `interrupted` on an abort or a signal).
async fn wait_for(
    duration: Duration,
    interrupt: &relflow_plugin::Interrupt,
    what: &str,
) -> Result<(), relflow_plugin::BackendError> {
    const TICK: Duration = Duration::from_millis(100);
    let end = tokio::time::Instant::now() + duration;
    loop {
        interrupt.check(what)?;
        let now = tokio::time::Instant::now();
        if now >= end {
            return Ok(());
        }
        let mut wake = (now + TICK).min(end);
        if let Some(left) = interrupt.remaining() {
            wake = wake.min(now + left);
        }
        tokio::time::sleep_until(wake).await;
    }
}

/// Parses `key=value` lines written to `$RELFLOW_OUTPUT` (blank lines and `#` comments skipped).
fn read_outputs(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read $RELFLOW_OUTPUT: {e}"))?;
    let mut values = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let valid = |k: &str| {
            k.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        match line.split_once('=') {
            Some((key, value)) if valid(key.trim()) => {
                values.insert(key.trim().to_string(), value.to_string());
            }
            _ => {
                return Err(format!(
                    "$RELFLOW_OUTPUT line {}: expected `name=value`, found `{line}`",
                    n + 1
                ));
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_name_value_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        std::fs::write(&file, "# comment\nversion=2.3\n\nurl=http://x/?a=b\n").unwrap();
        let values = read_outputs(&file).unwrap();
        assert_eq!(values["version"], "2.3");
        assert_eq!(values["url"], "http://x/?a=b");
        std::fs::write(&file, "just text\n").unwrap();
        assert!(read_outputs(&file).unwrap_err().contains("line 1"));
    }

    #[test]
    fn shell_words_quotes_what_a_shell_would_split() {
        let argv = vec![
            "echo".to_string(),
            "a b".to_string(),
            "it's".to_string(),
            "x=1".to_string(),
        ];
        assert_eq!(shell_words(&argv), r"echo 'a b' 'it'\''s' x=1");
    }
}
