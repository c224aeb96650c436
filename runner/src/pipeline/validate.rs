//! Raw pipeline → validated model. Every problem is collected, not just the first, each
//! pointing at the node it is about.

mod backends;
mod checks;
mod policy;
mod tasks;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::diagnostic::Diagnostic;
use super::model::{Backend, FlowRollback, Phase, Pipeline};
use super::raw::{RawBackend, RawFlowRollback, RawPhase, RawPipeline, Scalar, Text};
use checks::{is_env_name, is_step_name};
pub(super) use policy::Level;

/// Default `retry_budget`.
const DEFAULT_RETRY_BUDGET: u32 = 20;
const RESERVED_VARIABLES: [&str; 4] = ["env", "release", "phase", "task"];

/// Turns the raw file into a [`Pipeline`], or every problem found, sorted by position.
pub(super) fn validate(
    raw: Spanned<RawPipeline>,
    file: &Path,
    source: &str,
    base_dir: &Path,
) -> Result<Pipeline, Vec<Diagnostic>> {
    let mut checker = Checker::new(file, source, base_dir);
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
    diags: Vec<Diagnostic>,
    variables: BTreeMap<String, String>,
    /// Backend name → kind keyword.
    backend_kinds: BTreeMap<String, &'static str>,
    has_flow_rollback: bool,
    /// Task name → the path of the task that took it first.
    task_names: HashMap<String, String>,
}

impl<'a> Checker<'a> {
    fn new(file: &'a Path, source: &'a str, base_dir: &'a Path) -> Checker<'a> {
        Checker {
            file,
            source,
            base_dir,
            diags: Vec::new(),
            variables: BTreeMap::new(),
            backend_kinds: BTreeMap::new(),
            has_flow_rollback: false,
            task_names: HashMap::new(),
        }
    }

    /// Records a problem at `at`.
    pub(super) fn error(&mut self, at: impl Into<Pos>, message: impl Into<String>) {
        let at = at.into();
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: at.line,
            column: at.column,
            message: message.into(),
        });
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
            rollback,
            on_failure: on_failure?,
            retry_budget: retry_budget?,
            phases: phases?,
        })
    }

    fn pipeline_name(&mut self, name: &Spanned<Text>) -> Option<String> {
        if !self.is_string_name(name, "name") {
            return None;
        }
        let text = &name.value.0;
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

    fn variables(&mut self, entries: &[(Spanned<Text>, Spanned<Scalar>)]) {
        for (key, value) in entries {
            let name = &key.value.0;
            let mut chars = name.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                self.error(
                    key.referenced,
                    format!(
                        "variables: `{name}` is not a valid variable name: use letters, digits, \
                         `_` and `-`, starting with a letter or `_`"
                    ),
                );
            } else if RESERVED_VARIABLES.contains(&name.as_str()) {
                self.error(
                    key.referenced,
                    format!("variables: `{name}` is reserved for `${{{name}.…}}` references"),
                );
            }
            // Declared even when invalid, so references to it are not reported twice.
            self.variables.insert(name.clone(), value.value.0.clone());
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
            let backend = self.backend(raw, &path);
            if let Some(backend) = &backend {
                self.backend_kinds
                    .insert(key.value.0.clone(), backend.kind());
            }
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
            Some(run) => Some(self.argv(run, "rollback.run")?),
            None => None,
        };
        let script = match &rollback.script {
            Some(script) => Some(self.template(script)?),
            None => None,
        };
        Some(FlowRollback {
            undo_completed: rollback.undo_completed.as_ref().is_some_and(|b| b.value),
            run,
            script,
        })
    }

    /// A name written as a number or boolean is refused: YAML would not keep its text.
    fn is_string_name(&mut self, name: &Spanned<Text>, path: &str) -> bool {
        if name.value.is_string() {
            return true;
        }
        let text = &name.value.0;
        self.error(
            name.referenced,
            format!("{path}: a name must be a string: write `\"{text}\"` in quotes"),
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
