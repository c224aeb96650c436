//! Validation of `tasks:` entries: tasks, parallel groups, and each task kind but deploys.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::{Checker, Level, Pos};
use crate::pipeline::model::{CommandSpec, ScriptSpec, Step, Task, TaskKind};
use crate::pipeline::raw::{Argv, RawCommand, RawManual, RawParallel, RawScript, RawStep, Scalar};
use crate::pipeline::template::Template;

const KINDS: [&str; 6] = ["command", "script", "deploy", "undeploy", "manual", "wait"];
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);
const MIN_TIMEOUT: Duration = Duration::from_millis(1);
const DEFAULT_PROMPT: &str = "Approve task ${task.name}?";

impl RawStep {
    /// The kind keys present, in the order of [`KINDS`].
    fn kinds(&self) -> Vec<&'static str> {
        let present = [
            self.command.is_some(),
            self.script.is_some(),
            self.deploy.is_some(),
            self.undeploy.is_some(),
            self.manual.is_some(),
            self.wait.is_some(),
        ];
        KINDS
            .iter()
            .zip(present)
            .filter_map(|(kind, is_present)| is_present.then_some(*kind))
            .collect()
    }

    /// Every key present besides `parallel`.
    fn task_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.name.is_some() {
            keys.push("name");
        }
        keys.extend(self.kinds());
        if self.timeout.is_some() {
            keys.push("timeout");
        }
        if self.lock_timeout.is_some() {
            keys.push("lock_timeout");
        }
        if self.on_failure.is_some() {
            keys.push("on_failure");
        }
        keys
    }
}

impl Checker<'_> {
    /// A phase's `tasks:`.
    pub(super) fn steps(
        &mut self,
        raw: &[Spanned<RawStep>],
        phase_path: &str,
    ) -> Option<Vec<Step>> {
        let steps: Vec<Option<Step>> = raw
            .iter()
            .enumerate()
            .map(|(index, step)| self.step(step, &format!("{phase_path}.tasks[{index}]")))
            .collect();
        steps.into_iter().collect()
    }

    fn step(&mut self, raw: &Spanned<RawStep>, path: &str) -> Option<Step> {
        match &raw.value.parallel {
            Some(parallel) => {
                let others = raw.value.task_keys();
                if !others.is_empty() {
                    self.error(
                        raw.referenced,
                        format!(
                            "{path}: a `parallel` entry takes no other keys (found: {})",
                            others.join(", ")
                        ),
                    );
                }
                let step = self.parallel(parallel, &format!("{path}.parallel"));
                if others.is_empty() { step } else { None }
            }
            None => self.task(raw, path).map(Step::Task),
        }
    }

    fn parallel(&mut self, raw: &Spanned<RawParallel>, path: &str) -> Option<Step> {
        let Some(tasks) = &raw.value.tasks else {
            self.error(
                raw.referenced,
                format!("{path}: a parallel group needs `tasks`"),
            );
            return None;
        };
        if tasks.value.is_empty() {
            self.error(
                tasks.referenced,
                format!("{path}.tasks: a parallel group needs at least one task"),
            );
            return None;
        }
        let max = match &raw.value.max {
            Some(max) => self.count(max, &format!("{path}.max"), 1, 1000),
            None => u32::try_from(tasks.value.len()).ok(),
        };
        let mut members = Vec::new();
        let mut ok = true;
        for (index, task) in tasks.value.iter().enumerate() {
            let task_path = format!("{path}.tasks[{index}]");
            if task.value.parallel.is_some() {
                self.error(
                    task.referenced,
                    format!("{task_path}: parallel groups cannot be nested"),
                );
                ok = false;
                continue;
            }
            match self.task(task, &task_path) {
                Some(task) => members.push(task),
                None => ok = false,
            }
        }
        let max = usize::try_from(max?).ok()?;
        ok.then_some(Step::Parallel {
            max,
            tasks: members,
        })
    }

    fn task(&mut self, raw: &Spanned<RawStep>, path: &str) -> Option<Task> {
        let step = &raw.value;
        let name = match &step.name {
            Some(name) => self.task_name(name, path),
            None => {
                self.error(raw.referenced, format!("{path}: a task needs a `name`"));
                None
            }
        };
        // Not `?` here: the task's other fields are still checked when the timeout is wrong.
        let timeout = match &step.timeout {
            Some(t) => self
                .duration(t, &format!("{path}.timeout"), MIN_TIMEOUT, MAX_TIMEOUT)
                .map(Some),
            None => Some(None),
        };
        let lock_timeout = self.lock_timeout(step, path);
        let on_failure = match &step.on_failure {
            Some(policy) => self.on_failure(policy, &format!("{path}.on_failure"), Level::Task),
            None => Some(None),
        };
        let kinds = step.kinds();
        let kind = match kinds.as_slice() {
            [_] => self.task_kind(step, path),
            [] => {
                self.error(
                    raw.referenced,
                    format!(
                        "{path}: a task needs exactly one of {} (found none)",
                        KINDS.join(", ")
                    ),
                );
                None
            }
            _ => {
                self.error(
                    raw.referenced,
                    format!(
                        "{path}: a task needs exactly one of {} (found: {})",
                        KINDS.join(", "),
                        kinds.join(", ")
                    ),
                );
                None
            }
        };
        Some(Task {
            name: name?,
            kind: kind?,
            timeout: timeout?,
            lock_timeout: lock_timeout?,
            on_failure: on_failure?,
        })
    }

    /// `lock_timeout:` of a task: only deploy and undeploy tasks take a target's lock.
    fn lock_timeout(&mut self, step: &RawStep, path: &str) -> Option<Option<Duration>> {
        let Some(timeout) = &step.lock_timeout else {
            return Some(None);
        };
        if step.deploy.is_none() && step.undeploy.is_none() {
            self.error(
                timeout.referenced,
                format!(
                    "{path}.lock_timeout: `lock_timeout` is for deploy and undeploy tasks, which \
                     lock their target"
                ),
            );
            return None;
        }
        self.duration(
            timeout,
            &format!("{path}.lock_timeout"),
            Duration::ZERO,
            super::backends::MAX_LOCK_TIMEOUT,
        )
        .map(Some)
    }

    fn task_name(
        &mut self,
        name: &Spanned<crate::pipeline::raw::Text>,
        path: &str,
    ) -> Option<String> {
        let valid = self.step_name(name, path, "task")?;
        if let Some(first) = self.task_names.get(&valid) {
            let message = format!("{path}: task name `{valid}` is already used by {first}");
            self.error(name.referenced, message);
            return None;
        }
        self.task_names.insert(valid.clone(), path.to_string());
        Some(valid)
    }

    fn task_kind(&mut self, step: &RawStep, path: &str) -> Option<TaskKind> {
        if let Some(command) = &step.command {
            let has_task_timeout = step.timeout.is_some();
            return self
                .command(command, &format!("{path}.command"), has_task_timeout)
                .map(TaskKind::Command);
        }
        if let Some(script) = &step.script {
            let has_task_timeout = step.timeout.is_some();
            return self
                .script(script, &format!("{path}.script"), has_task_timeout)
                .map(TaskKind::Script);
        }
        if let Some(deploy) = &step.deploy {
            return self
                .deploy(deploy, &format!("{path}.deploy"))
                .map(TaskKind::Deploy);
        }
        if let Some(undeploy) = &step.undeploy {
            return self
                .deploy(undeploy, &format!("{path}.undeploy"))
                .map(TaskKind::Undeploy);
        }
        if let Some(manual) = &step.manual {
            return self.manual(manual.value.as_ref());
        }
        let wait = step.wait.as_ref()?;
        self.duration(wait, &format!("{path}.wait"), Duration::ZERO, MAX_TIMEOUT)
            .map(TaskKind::Wait)
    }

    fn own_timeout(
        &mut self,
        timeout: Option<&Spanned<Scalar>>,
        path: &str,
        has_task_timeout: bool,
    ) -> Option<Option<Duration>> {
        let Some(timeout) = timeout else {
            return Some(None);
        };
        if has_task_timeout {
            self.error(
                timeout.referenced,
                format!("{path}.timeout: `timeout` is set both on the task and here: keep one"),
            );
            return None;
        }
        self.duration(
            timeout,
            &format!("{path}.timeout"),
            MIN_TIMEOUT,
            MAX_TIMEOUT,
        )
        .map(Some)
    }

    fn command(
        &mut self,
        raw: &Spanned<RawCommand>,
        path: &str,
        has_task_timeout: bool,
    ) -> Option<CommandSpec> {
        let command = &raw.value;
        let shell = command.shell.as_ref().is_some_and(|s| s.value);
        let timeout = self.own_timeout(command.timeout.as_ref(), path, has_task_timeout);
        let env = self.env(
            command.env.as_ref().map(|e| e.0.as_slice()),
            &format!("{path}.env"),
        );
        let cwd = match &command.cwd {
            Some(cwd) => self.template(cwd).map(Some),
            None => Some(None),
        };
        if let Some(Argv::List(items)) = command.run.as_ref().map(|r| &r.value)
            && !shell
        {
            let cwd = command.cwd.as_ref().map(|c| c.value.0.as_str());
            self.check_program(items, &format!("{path}.run"), cwd);
        }
        let run = self.run(command.run.as_ref(), raw.referenced.into(), path, shell);
        Some(CommandSpec {
            run: run?,
            shell,
            timeout: timeout?,
            env: env?,
            cwd: cwd?,
        })
    }

    fn run(
        &mut self,
        run: Option<&Spanned<Argv>>,
        at: Pos,
        path: &str,
        shell: bool,
    ) -> Option<Vec<Template>> {
        let Some(run) = run else {
            self.error(at, format!("{path}: a command needs `run`"));
            return None;
        };
        match &run.value {
            Argv::One(line) if shell => {
                let line = Spanned::new(Scalar(line.clone()), run.referenced, run.defined);
                self.template(&line).map(|t| vec![t])
            }
            Argv::One(_) => {
                self.error(
                    run.referenced,
                    format!(
                        "{path}.run: a string is a shell command line and needs `shell: true`; \
                         without a shell, write the arguments as a list: [program, arg, ...]"
                    ),
                );
                None
            }
            Argv::List(items) if shell && items.len() > 1 => {
                self.error(
                    run.referenced,
                    format!(
                        "{path}.run: with `shell: true`, `run` is one command line: write it as \
                         one string"
                    ),
                );
                None
            }
            Argv::List(items) => {
                let list = Spanned::new(items.clone(), run.referenced, run.defined);
                self.argv(&list, &format!("{path}.run"))
            }
        }
    }

    fn script(
        &mut self,
        raw: &Spanned<RawScript>,
        path: &str,
        has_task_timeout: bool,
    ) -> Option<ScriptSpec> {
        let spec = match &raw.value {
            RawScript::Path(file) => {
                let file = Spanned::new(Scalar(file.clone()), raw.referenced, raw.defined);
                self.check_script_file(&file, path);
                return Some(ScriptSpec {
                    path: self.template(&file)?,
                    args: Vec::new(),
                    timeout: None,
                    env: Default::default(),
                    cwd: None,
                });
            }
            RawScript::Spec(spec) => spec,
        };
        let file = match &spec.path {
            Some(file) => {
                self.check_script_file(file, &format!("{path}.path"));
                self.template(file)
            }
            None => {
                self.error(raw.referenced, format!("{path}: a script needs a `path`"));
                None
            }
        };
        let args = self.templates(spec.args.as_deref().unwrap_or_default());
        let timeout = self.own_timeout(spec.timeout.as_ref(), path, has_task_timeout);
        let env = self.env(
            spec.env.as_ref().map(|e| e.0.as_slice()),
            &format!("{path}.env"),
        );
        let cwd = match &spec.cwd {
            Some(cwd) => self.template(cwd).map(Some),
            None => Some(None),
        };
        Some(ScriptSpec {
            path: file?,
            args: args?,
            timeout: timeout?,
            env: env?,
            cwd: cwd?,
        })
    }

    fn manual(&mut self, raw: Option<&RawManual>) -> Option<TaskKind> {
        let prompt = match raw.and_then(|m| m.prompt.as_ref()) {
            Some(prompt) => self.template(prompt)?,
            None => Template::parse(DEFAULT_PROMPT).ok()?,
        };
        Some(TaskKind::Manual { prompt })
    }
}
