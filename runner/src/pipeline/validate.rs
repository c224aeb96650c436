//! Raw pipeline → validated model. Every problem is collected, not just the first, each
//! pointing at the node it is about.

mod backends;
mod checks;
mod deploy;
mod files;
mod policy;
mod tasks;
mod variables;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::diagnostic::Diagnostic;
use super::model::{Backend, FlowRollback, Phase, Pipeline};
use super::raw::{RawBackend, RawFlowRollback, RawPhase, RawPipeline, Scalar, Text};
pub(super) use checks::{closest, did_you_mean};
use checks::{is_env_name, is_step_name, name_too_long};
pub(super) use policy::Level;

/// Default `retry_budget`.
const DEFAULT_RETRY_BUDGET: u32 = 20;

/// Turns the raw file into a [`Pipeline`], or every problem found, sorted by position.
pub(super) fn validate(
    raw: Spanned<RawPipeline>,
    file: &Path,
    source: &str,
    base_dir: &Path,
    check_files: bool,
) -> Result<Pipeline, Vec<Diagnostic>> {
    let mut checker = Checker::new(file, source, base_dir);
    checker.check_files = check_files;
    let pipeline = checker.pipeline(&raw);
    let mut diags = checker.diags;
    if diags.is_empty()
        && let Some(pipeline) = pipeline
    {
        return Ok(pipeline);
    }
    diags.sort();
    diags.dedup();
    if diags.is_empty() {
        diags.push(Diagnostic::whole_file(file, "the pipeline is not valid"));
    }
    Err(diags)
}

/// A 1-based line and column (in chars); line 0 = the whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl From<Location> for Pos {
    fn from(loc: Location) -> Pos {
        Pos {
            line: usize::try_from(loc.line()).unwrap_or(0),
            column: usize::try_from(loc.column()).unwrap_or(0),
        }
    }
}

/// Validation state: what is declared so far, and the problems found.
pub(super) struct Checker<'a> {
    file: &'a Path,
    source: &'a str,
    base_dir: &'a Path,
    /// Whether the files the pipeline names are checked (see `files`).
    check_files: bool,
    diags: Vec<Diagnostic>,
    variables: BTreeMap<String, String>,
    /// Backend name → kind keyword (`None`: the kind is missing or unknown, already reported).
    backend_kinds: BTreeMap<String, Option<&'static str>>,
    has_flow_rollback: bool,
    /// Task name → the path of the task that took it first.
    task_names: HashMap<String, String>,
    /// While checking a backend's commands, `${application}`, `${version}` and
    /// `${components}` name the deployment being run.
    in_backend_commands: bool,
    /// Every `${env.NAME}` the pipeline's templates use.
    env_references: std::collections::BTreeSet<String>,
    /// Variables declared `secret: true` / `required: true`.
    secret_variables: std::collections::BTreeSet<String>,
    required_variables: std::collections::BTreeSet<String>,
    variable_descriptions: BTreeMap<String, String>,
}

impl<'a> Checker<'a> {
    fn new(file: &'a Path, source: &'a str, base_dir: &'a Path) -> Checker<'a> {
        Checker {
            file,
            source,
            base_dir,
            check_files: false,
            diags: Vec::new(),
            variables: BTreeMap::new(),
            backend_kinds: BTreeMap::new(),
            has_flow_rollback: false,
            task_names: HashMap::new(),
            in_backend_commands: false,
            env_references: std::collections::BTreeSet::new(),
            secret_variables: std::collections::BTreeSet::new(),
            required_variables: std::collections::BTreeSet::new(),
            variable_descriptions: BTreeMap::new(),
        }
    }

    /// Runs `check` with the deployment's own variables known (see `DEPLOY_VARIABLES`).
    pub(super) fn with_deploy_variables<T>(&mut self, check: impl FnOnce(&mut Self) -> T) -> T {
        self.in_backend_commands = true;
        let result = check(self);
        self.in_backend_commands = false;
        result
    }

    /// Records a problem at `at`. A message that starts with a field path
    /// (`phases[0].tasks[1].script: ...`) names that field.
    pub(super) fn error(&mut self, at: impl Into<Pos>, message: impl Into<String>) {
        let at = at.into();
        let message = message.into();
        let (field, message) = split_field(&message);
        self.diags.push(Diagnostic {
            field,
            ..Diagnostic::at(self.file, at.line, at.column, message)
        });
    }

    /// Records a problem at `at` with a `help:` line saying what to do.
    pub(super) fn error_with_help(
        &mut self,
        at: impl Into<Pos>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.error(at, message);
        if let Some(last) = self.diags.last_mut() {
            last.help = Some(help.into());
        }
    }

    fn pipeline(&mut self, raw: &Spanned<RawPipeline>) -> Option<Pipeline> {
        let top = &raw.value;
        let name = match &top.name {
            Some(name) => self.pipeline_name(name),
            None => {
                self.error(raw.referenced, "missing `name`: the pipeline needs a name");
                None
            }
        };
        if let Some(variables) = &top.variables {
            self.variables(&variables.0);
        }
        let backends = self.backends(top.backends.as_ref().map(|b| b.0.as_slice()));
        let backend_locks = self.backend_locks(top.backends.as_ref().map(|b| b.0.as_slice()));
        let rollback = top.rollback.as_ref().and_then(|r| self.flow_rollback(r));
        self.has_flow_rollback = top.rollback.is_some();
        let on_failure = match &top.on_failure {
            Some(policy) => self.on_failure(policy, "on_failure", Level::Release),
            None => Some(None),
        };
        let retry_budget = match &top.retry_budget {
            Some(budget) => self.count(budget, "retry_budget", 0, 10_000),
            None => Some(DEFAULT_RETRY_BUDGET),
        };
        let phases = self.phases(raw, top.phases.as_ref());
        Some(Pipeline {
            name: name?,
            file: self.file.to_path_buf(),
            base_dir: self.base_dir.to_path_buf(),
            variables: self.variables.clone(),
            backends: backends?,
            backend_locks: backend_locks?,
            rollback,
            on_failure: on_failure?,
            retry_budget: retry_budget?,
            phases: phases?,
            env_references: std::mem::take(&mut self.env_references),
            secret_variables: std::mem::take(&mut self.secret_variables),
            required_variables: std::mem::take(&mut self.required_variables),
            variable_descriptions: std::mem::take(&mut self.variable_descriptions),
        })
    }

    fn pipeline_name(&mut self, name: &Spanned<Text>) -> Option<String> {
        if !self.is_string_name(name, "name") {
            return None;
        }
        let text = &name.value.0;
        if let Some(problem) = name_too_long(text, "pipeline") {
            self.error(name.referenced, format!("name: {problem}"));
            return None;
        }
        let mut chars = text.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if first_ok && rest_ok {
            Some(text.clone())
        } else {
            self.error(
                name.referenced,
                format!(
                    "name: `{text}` is not a valid pipeline name: use lowercase letters, digits, \
                     `_` and `-`, starting with a letter or digit"
                ),
            );
            None
        }
    }

    fn phases(
        &mut self,
        raw: &Spanned<RawPipeline>,
        phases: Option<&Spanned<Vec<Spanned<RawPhase>>>>,
    ) -> Option<Vec<Phase>> {
        let Some(phases) = phases else {
            self.error(
                raw.referenced,
                "missing `phases`: a pipeline needs at least one phase",
            );
            return None;
        };
        if phases.value.is_empty() {
            self.error(
                phases.referenced,
                "phases: a pipeline needs at least one phase",
            );
            return None;
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        let mut ok = true;
        for (index, phase) in phases.value.iter().enumerate() {
            let path = format!("phases[{index}]");
            if let Some(name) = &phase.value.name
                && let Some(first) = seen.insert(name.value.0.clone(), index)
            {
                self.error(
                    name.referenced,
                    format!(
                        "{path}: phase name `{}` is already used by phases[{first}]",
                        name.value.0
                    ),
                );
            }
            match self.phase(phase, &path) {
                Some(phase) => out.push(phase),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn phase(&mut self, raw: &Spanned<RawPhase>, path: &str) -> Option<Phase> {
        let phase = &raw.value;
        let name = match &phase.name {
            Some(name) => self.step_name(name, path, "phase"),
            None => {
                self.error(raw.referenced, format!("{path}: a phase needs a `name`"));
                None
            }
        };
        let on_failure = match &phase.on_failure {
            Some(policy) => self.on_failure(policy, &format!("{path}.on_failure"), Level::Phase),
            None => Some(None),
        };
        let steps = match &phase.tasks {
            Some(tasks) if tasks.value.is_empty() => {
                self.error(
                    tasks.referenced,
                    format!("{path}.tasks: a phase needs at least one task"),
                );
                None
            }
            Some(tasks) => self.steps(&tasks.value, path),
            None => {
                self.error(raw.referenced, format!("{path}: a phase needs `tasks`"));
                None
            }
        };
        Some(Phase {
            name: name?,
            on_failure: on_failure?,
            steps: steps?,
        })
    }

    /// Checks a phase, task or backend name; `what` names it in the message.
    pub(super) fn step_name(
        &mut self,
        name: &Spanned<Text>,
        path: &str,
        what: &str,
    ) -> Option<String> {
        if !self.is_string_name(name, path) {
            return None;
        }
        let text = &name.value.0;
        if let Some(problem) = name_too_long(text, what) {
            self.error(name.referenced, format!("{path}: {problem}"));
            return None;
        }
        if is_step_name(text) {
            return Some(text.clone());
        }
        self.error(
            name.referenced,
            format!(
                "{path}: `{text}` is not a valid {what} name: use letters, digits, `_`, `.` and \
                 `-`, starting with a letter or digit"
            ),
        );
        None
    }

    fn backends(
        &mut self,
        entries: Option<&[(Spanned<Text>, Spanned<RawBackend>)]>,
    ) -> Option<BTreeMap<String, Backend>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, raw) in entries.unwrap_or_default() {
            let path = format!("backends.{}", key.value.0);
            let name = self.step_name(key, &path, "backend");
            // Known even when the backend has errors of its own, so its deploy tasks are
            // checked against its kind instead of being told it does not exist.
            let kind = raw.value.kind.as_ref().and_then(|kind| {
                backends::BACKEND_KINDS
                    .into_iter()
                    .find(|known| *known == kind.value.0)
            });
            self.backend_kinds.insert(key.value.0.clone(), kind);
            let backend = self.backend(raw, &path);
            match (name, backend) {
                (Some(name), Some(backend)) => {
                    out.insert(name, backend);
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn flow_rollback(&mut self, raw: &Spanned<RawFlowRollback>) -> Option<FlowRollback> {
        let rollback = &raw.value;
        if let (Some(_), Some(script)) = (&rollback.run, &rollback.script) {
            self.error(
                script.referenced,
                "rollback: `run` and `script` exclude each other: keep one",
            );
            return None;
        }
        let run = match &rollback.run {
            Some(run) => {
                self.check_program(&run.value, "rollback.run", None);
                Some(self.argv(run, "rollback.run")?)
            }
            None => None,
        };
        let script = match &rollback.script {
            Some(script) => {
                self.check_script_file(script, "rollback.script");
                Some(self.template(script)?)
            }
            None => None,
        };
        Some(FlowRollback {
            // `rollback: {}` undoes every completed deployment (DESIGN: default true).
            undo_completed: rollback.undo_completed.as_ref().is_none_or(|b| b.value),
            run,
            script,
        })
    }

    /// A name written as a number or boolean is refused: YAML would not keep its text.
    fn is_string_name(&mut self, name: &Spanned<Text>, path: &str) -> bool {
        if name.value.is_string() {
            return true;
        }
        self.error(
            name.referenced,
            format!("{path}: this name reads as a number or a boolean: write it in quotes"),
        );
        false
    }

    /// Checks an integer in `min..=max`.
    pub(super) fn count(
        &mut self,
        value: &Spanned<i64>,
        path: &str,
        min: u32,
        max: u32,
    ) -> Option<u32> {
        match u32::try_from(value.value) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(
                    value.referenced,
                    format!(
                        "{path}: {} is out of range: expected {min} to {max}",
                        value.value
                    ),
                );
                None
            }
        }
    }

    /// Checks a duration in `min..=max`.
    pub(super) fn duration(
        &mut self,
        value: &Spanned<Scalar>,
        path: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        use super::duration::{format_duration, parse_duration};
        match parse_duration(&value.value.0) {
            Ok(d) if d >= min && d <= max => Some(d),
            Ok(_) => {
                self.error(
                    value.referenced,
                    format!(
                        "{path}: `{}` is out of range: expected {} to {}",
                        value.value.0,
                        format_duration(min),
                        format_duration(max)
                    ),
                );
                None
            }
            Err(message) => {
                self.error(value.referenced, format!("{path}: {message}"));
                None
            }
        }
    }

    /// Checks `KEY: value` environment entries.
    pub(super) fn env(
        &mut self,
        entries: Option<&[(Spanned<Text>, Spanned<Scalar>)]>,
        path: &str,
    ) -> Option<BTreeMap<String, super::template::Template>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, value) in entries.unwrap_or_default() {
            if !is_env_name(&key.value.0) {
                self.error(
                    key.referenced,
                    format!(
                        "{path}: `{}` is not a valid environment variable name: use letters, \
                         digits and `_`, not starting with a digit",
                        key.value.0
                    ),
                );
                ok = false;
            }
            match self.template(value) {
                Some(t) => {
                    out.insert(key.value.0.clone(), t);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A relative path in the pipeline, resolved against the pipeline folder.
    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }

    /// Names of declared variables, for suggestions.
    fn declared(&self) -> BTreeSet<&str> {
        self.variables.keys().map(String::as_str).collect()
    }
}

/// `(Some("phases[0].timeout"), "rest")` for `phases[0].timeout: rest`; the message alone
/// when it does not start with a field path.
fn split_field(message: &str) -> (Option<String>, String) {
    let Some((head, rest)) = message.split_once(": ") else {
        return (None, message.to_string());
    };
    let is_path = head.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']'));
    if is_path {
        (Some(head.to_string()), rest.to_string())
    } else {
        (None, message.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::pipeline::model::{Backend, Pipeline, Step, TaskKind};
    use crate::pipeline::{LoadError, load_str};
    use crate::policy::{ErrorClass, OnFailure, Then};

    fn load(source: &str) -> Result<Pipeline, LoadError> {
        load_str(Path::new("/tmp/relflow-test/p.yaml"), source)
    }

    fn messages(source: &str) -> Vec<String> {
        load(source)
            .err()
            .map(|e| e.diagnostics().iter().map(|d| d.title()).collect())
            .unwrap_or_default()
    }

    fn one_task(task: &str) -> String {
        format!("name: p\nvariables: {{ v: '1' }}\nphases:\n  - name: a\n    tasks:\n{task}")
    }

    #[test]
    fn variables_take_a_value_or_a_mapping_with_secret_and_required() {
        let p = load(
            "name: p\nvariables:\n  plain: 2.10\n  token: { value: 1.50, secret: true }\n  \
             needed: { required: true, description: \"the build\" }\nphases:\n  - name: a\n    tasks:\n      - { name: w, wait: 0s }\n",
        )
        .unwrap();
        assert_eq!(p.variables["plain"], "2.10");
        assert_eq!(p.variables["token"], "1.50");
        assert_eq!(p.variables["needed"], "");
        assert!(p.secret_variables.contains("token") && p.secret_variables.len() == 1);
        assert!(p.required_variables.contains("needed") && p.required_variables.len() == 1);
        let values = p.variables.clone();
        assert_eq!(p.missing_required(&values), ["needed"]);
        assert_eq!(
            crate::pipeline::missing_required_message(&p.missing_required(&values)),
            "variable `needed` is declared `required: true` and has no value: pass --var needed=..."
        );
        let msgs = messages("name: p\nvariables: { t: { secrt: true } }\nphases: []\n");
        assert!(msgs[0].contains("unknown field `secrt`"), "{msgs:?}");
    }

    #[test]
    fn pipeline_defaults_fill_what_is_not_written() {
        let source = one_task(
            "      - parallel:\n          tasks:\n            - { name: x, manual: }\n            \
             - { name: y, script: run.sh }\n",
        );
        let p = load(&source).unwrap();
        assert_eq!(p.retry_budget, 20);
        let Step::Parallel { max, tasks } = &p.phases[0].steps[0] else {
            panic!("a parallel group");
        };
        assert_eq!(*max, 2);
        let TaskKind::Manual { prompt } = &tasks[0].kind else {
            panic!("manual");
        };
        assert_eq!(prompt.source(), "Approve task ${task.name}?");
        let TaskKind::Script(script) = &tasks[1].kind else {
            panic!("script");
        };
        assert_eq!(script.path.source(), "run.sh");
    }

    #[test]
    fn pipeline_policy_defaults_and_expansions() {
        let source = one_task(
            "      - name: x\n        wait: 1s\n        on_failure:\n          retry: { retries: 2, \
             delay: 10m, when: [transient, timeout, auth] }\n          then: skip\n",
        );
        let p = load(&source).unwrap();
        let Some(OnFailure::Declarative(policy)) =
            &p.phases[0].steps.first().and_then(|s| match s {
                Step::Task(t) => t.on_failure.clone(),
                Step::Parallel { .. } => None,
            })
        else {
            panic!("a declarative policy");
        };
        assert_eq!(policy.then, Then::Skip);
        assert_eq!(policy.retry.retries, 2);
        // max_delay defaults to 5m but never below the delay.
        assert_eq!(policy.retry.max_delay, Duration::from_secs(600));
        assert_eq!(policy.retry.when.len(), 6);
        assert!(policy.retry.when.contains(&ErrorClass::Auth));
        assert!(policy.retry.jitter);
    }

    #[test]
    fn pipeline_script_policy_is_resolved_against_the_pipeline_folder_and_compiled() {
        let source = one_task(
            "      - name: x\n        wait: 1s\n        on_failure: { script: policies/p.rhai }\n",
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        let err = load_str(&file, &source).unwrap_err();
        assert_eq!(
            err.diagnostics()[0].title(),
            "phases[0].tasks[0].on_failure.script: cannot read `policies/p.rhai`: no such file"
        );
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/p.rhai"), "retry()\n").unwrap();
        let p = load_str(&file, &source).unwrap();
        let Step::Task(task) = &p.phases[0].steps[0] else {
            panic!("a task");
        };
        let Some(OnFailure::Script(script)) = &task.on_failure else {
            panic!("a script policy");
        };
        assert!(script.path().ends_with("policies/p.rhai"));
        assert!(script.path().is_absolute());
        assert_eq!(script.name(), "policies/p.rhai");
    }

    #[test]
    fn pipeline_shell_commands_take_one_string() {
        let p = load(&one_task(
            "      - name: x\n        command: { run: \"echo ${v} | wc -c\", shell: true }\n",
        ))
        .unwrap();
        let Step::Task(task) = &p.phases[0].steps[0] else {
            panic!("a task");
        };
        let TaskKind::Command(command) = &task.kind else {
            panic!("a command");
        };
        assert!(command.shell);
        assert_eq!(command.run.len(), 1);
    }

    #[test]
    fn pipeline_backend_kinds_take_their_own_fields() {
        let source = "name: p\nbackends:\n  xld: { kind: xl-deploy, url: u, username: a, \
                      password: b }\n  box: { kind: exec, deploy: [true] }\nphases:\n  - name: a\n    \
                      tasks:\n      - name: x\n        deploy: { backend: xld, package: P/1, \
                      components: [web] }\n";
        assert_eq!(
            messages(source),
            vec![
                "phases[0].tasks[0].deploy: `environment` is required with an xl-deploy backend",
                "phases[0].tasks[0].deploy.components: `components` is only for a local backend, \
                 and `xl-deploy` is not one",
            ]
        );
        let ok = source.replace("components: [web]", "environment: Environments/Prod");
        let p = load(&ok).unwrap();
        assert!(matches!(
            p.backends["xld"],
            Backend::XlDeploy { polling_interval, insecure_skip_tls_verify: false, .. }
                if polling_interval == Duration::from_secs(10)
        ));
    }

    #[test]
    fn pipeline_reserved_and_invalid_variable_names_are_refused() {
        let msgs = messages("name: p\nvariables: { env: x, 9lives: y }\nphases: []\n");
        assert_eq!(msgs.len(), 3, "{msgs:#?}");
        assert!(msgs[0].contains("`env` is reserved"));
        assert!(msgs[1].contains("`9lives` is not a valid variable name"));
        assert!(msgs[2].contains("at least one phase"));
    }
}
