//! Validated pipeline model: the types the engine runs. They cannot hold an invalid pipeline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::template::Template;
use crate::policy::OnFailure;

/// A loaded and validated pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// `[a-z0-9][a-z0-9_-]*`
    pub name: String,
    /// The pipeline file as given on the command line.
    pub file: PathBuf,
    /// Folder against which relative paths in the pipeline are resolved.
    pub base_dir: PathBuf,
    /// Declared variables and their default values, in file order.
    pub variables: BTreeMap<String, String>,
    pub backends: BTreeMap<String, Backend>,
    /// How each backend's deployments share their target, by backend name.
    pub backend_locks: BTreeMap<String, BackendLock>,
    /// Flow-level rollback (JFrog "Rollback on Failure").
    pub rollback: Option<FlowRollback>,
    /// Release-wide default policy (`on_failure` at the top level).
    pub on_failure: Option<OnFailure>,
    /// Bounds all retries of a release together. Default 20.
    pub retry_budget: u32,
    pub phases: Vec<Phase>,
    /// Names of the environment variables its templates use as `${env.NAME}` (secrets).
    pub env_references: std::collections::BTreeSet<String>,
    /// Variables declared `secret: true`: their values are masked wherever shown and kept
    /// encrypted in the store.
    pub secret_variables: std::collections::BTreeSet<String>,
    /// Variables declared `required: true`: a release starts only with a non-empty value.
    pub required_variables: std::collections::BTreeSet<String>,
    /// `description:` of the variables that have one.
    pub variable_descriptions: BTreeMap<String, String>,
}

impl Pipeline {
    /// The required variables that have no non-empty value in `values`, by name.
    pub fn missing_required(&self, values: &BTreeMap<String, String>) -> Vec<String> {
        self.required_variables
            .iter()
            .filter(|name| values.get(*name).is_none_or(String::is_empty))
            .cloned()
            .collect()
    }
}

/// What `run` and `plan` say when required variables have no value: each name, and the
/// `--var` options that give them one.
pub fn missing_required_message(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    let options: Vec<String> = names.iter().map(|n| format!("--var {n}=...")).collect();
    let (noun, verb) = if names.len() == 1 {
        ("variable", "is declared `required: true` and has")
    } else {
        ("variables", "are declared `required: true` and have")
    };
    format!(
        "{noun} {} {verb} no value: pass {}",
        quoted.join(", "),
        options.join(" ")
    )
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub on_failure: Option<OnFailure>,
    pub steps: Vec<Step>,
}

/// One entry of a phase's `tasks:` list: a task, or a group run in parallel.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once per load; boxing would only add noise to every match"
)]
pub enum Step {
    Task(Task),
    Parallel { max: usize, tasks: Vec<Task> },
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub kind: TaskKind,
    /// Per-attempt timeout for the whole task (a `command`'s own `timeout` wins if both are absent/present: validation forbids both).
    pub timeout: Option<Duration>,
    /// How long a deploy or undeploy task waits for its target's lock (else the backend's).
    pub lock_timeout: Option<Duration>,
    pub on_failure: Option<OnFailure>,
}

#[derive(Debug, Clone)]
pub enum TaskKind {
    Command(CommandSpec),
    Script(ScriptSpec),
    Deploy(DeploySpec),
    Undeploy(DeploySpec),
    Manual { prompt: Template },
    Wait(Duration),
}

impl TaskKind {
    /// The YAML key of this kind, for messages.
    pub fn keyword(&self) -> &'static str {
        match self {
            TaskKind::Command(_) => "command",
            TaskKind::Script(_) => "script",
            TaskKind::Deploy(_) => "deploy",
            TaskKind::Undeploy(_) => "undeploy",
            TaskKind::Manual { .. } => "manual",
            TaskKind::Wait(_) => "wait",
        }
    }
}

/// A process to run: argv exec'd directly, or one command line through `sh -c` when `shell: true`.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub run: Vec<Template>,
    pub shell: bool,
    pub timeout: Option<Duration>,
    pub env: BTreeMap<String, Template>,
    /// Relative to the pipeline folder when not absolute. `None` = the pipeline folder.
    pub cwd: Option<Template>,
}

/// A script file (relative to the pipeline folder), exec'd directly with its args.
#[derive(Debug, Clone)]
pub struct ScriptSpec {
    pub path: Template,
    pub args: Vec<Template>,
    pub timeout: Option<Duration>,
    pub env: BTreeMap<String, Template>,
    pub cwd: Option<Template>,
}

#[derive(Debug, Clone)]
pub struct DeploySpec {
    /// Name of an entry in `backends:` (validated to exist).
    pub backend: String,
    /// e.g. `PetPortal/${version}` or `Applications/Web/${version}`.
    pub package: Template,
    /// XL Deploy environment id, e.g. `Environments/Prod`.
    pub environment: Option<Template>,
    /// Subset of the package's top-level entries to deliver (local backend).
    pub components: Vec<String>,
    /// Health check run after delivery (local backend).
    pub verify: Option<Vec<Template>>,
    /// Options of the XL Release XL Deploy task (xl-deploy backend).
    pub xl: XlOptions,
}

/// Options of XL Release's XL Deploy task, on a deploy/undeploy task with an xl-deploy backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlOptions {
    pub orchestrators: Vec<String>,
    pub deployed_application_properties: Vec<(String, String)>,
    /// A STOPPED task fails the attempt (default); false keeps waiting.
    pub fail_on_pause: bool,
    /// Polls of one task at most; 0 = until the task timeout.
    pub polling_budget: u32,
    /// Undeploy of an application that is not deployed fails (default) or does nothing.
    pub fail_if_missing: bool,
}

impl Default for XlOptions {
    fn default() -> Self {
        XlOptions {
            orchestrators: Vec::new(),
            deployed_application_properties: Vec::new(),
            fail_on_pause: true,
            polling_budget: 0,
            fail_if_missing: true,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Backend {
    Local {
        target: Template,
        packages: Template,
        verify: Option<Vec<Template>>,
        /// Deliver setuid/setgid bits as the package has them; stripped otherwise.
        keep_setid: bool,
        /// `layout:` how deployments land in the target.
        layout: relflow_plugin::local::LocalLayout,
        /// `keep_releases:` release folders kept (`layout: releases`).
        keep_releases: u32,
        /// `keep_snapshots:` the newest deployments per target that stay revertible.
        keep_snapshots: u32,
        /// `trust_mtime:` link unchanged-looking files without comparing their bytes.
        trust_mtime: bool,
        timeout: Option<Duration>,
    },
    XlDeploy {
        url: Template,
        username: Template,
        /// Always treated as a secret.
        password: Template,
        polling_interval: Duration,
        insecure_skip_tls_verify: bool,
        /// A PEM file of CAs trusted besides the system's; relative to the pipeline's folder.
        ca_cert: Option<Template>,
        timeout: Option<Duration>,
    },
    Exec {
        deploy: Vec<Template>,
        rollback: Option<Vec<Template>>,
        current: Option<Vec<Template>>,
        status: Option<Vec<Template>>,
        timeout: Option<Duration>,
    },
}

impl Backend {
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Local { .. } => "local",
            Backend::XlDeploy { .. } => "xl-deploy",
            Backend::Exec { .. } => "exec",
        }
    }

    /// Per-attempt timeout of the deploy and undeploy tasks on this backend that set none.
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            Backend::Local { timeout, .. }
            | Backend::XlDeploy { timeout, .. }
            | Backend::Exec { timeout, .. } => *timeout,
        }
    }
}

/// How deployments through one backend share their target (DESIGN → Target locks).
#[derive(Debug, Clone, Default)]
pub struct BackendLock {
    /// `lock:` of an exec backend: the key of what its deployments change; `None` = the
    /// backend's name and the application.
    pub key: Option<Template>,
    /// `lock_timeout:`: how long its tasks wait for the target, unless a task says otherwise.
    pub timeout: Option<Duration>,
}

/// Top-level `rollback:` — the flow-level Rollback on Failure.
#[derive(Debug, Clone)]
pub struct FlowRollback {
    /// Roll back every completed deploy task, newest first.
    pub undo_completed: bool,
    pub run: Option<Vec<Template>>,
    pub script: Option<Template>,
}

impl Pipeline {
    /// Every task of the pipeline with the phase it stands in, in file order.
    pub fn tasks(&self) -> impl Iterator<Item = (&Phase, &Task)> {
        self.phases.iter().flat_map(|phase| {
            phase.steps.iter().flat_map(move |step| {
                let tasks: &[Task] = match step {
                    Step::Task(task) => std::slice::from_ref(task),
                    Step::Parallel { tasks, .. } => tasks,
                };
                tasks.iter().map(move |task| (phase, task))
            })
        })
    }

    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }
}
