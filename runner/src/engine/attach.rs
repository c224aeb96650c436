//! Creating a release, and attaching a runner to one: lease, stored pipeline, secrets.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::{Engine, Reporter};
use crate::output::Redactor;
use crate::output::terminal::Terminal;
use crate::pipeline::{self, Pipeline, Step};
use crate::store::{Lease, LeaseError, PlannedPhase, PlannedTask, Store, StoreError};

/// Why a runner could not take a release.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the pipeline stored with release {release} no longer loads:\n{error}")]
    Pipeline {
        release: String,
        error: pipeline::LoadError,
    },
    #[error("environment variable{} {} not set (the pipeline uses {})", if .0.len() > 1 { "s" } else { "" }, .0.join(", "), if .0.len() > 1 { "them" } else { "it" })]
    MissingEnv(Vec<String>),
    #[error(transparent)]
    Report(#[from] crate::engine::ReportError),
}

/// Plans the phases and tasks of `pipeline` into a new release; returns its id.
pub fn start_release(
    store: &mut Store,
    pipeline: &Pipeline,
    source: &str,
    variables: &BTreeMap<String, String>,
) -> Result<String, StoreError> {
    let phases: Vec<PlannedPhase> = pipeline.phases.iter().map(plan_phase).collect();
    let file = std::path::absolute(&pipeline.file).unwrap_or_else(|_| pipeline.file.clone());
    store.create_release(
        &pipeline.name,
        &file.to_string_lossy(),
        source,
        variables,
        &phases,
    )
}

/// The task runs of one run of `phase`, in order; tasks of a parallel group share a step.
pub fn plan_phase(phase: &pipeline::Phase) -> PlannedPhase {
    let mut tasks = Vec::new();
    for (step, entry) in phase.steps.iter().enumerate() {
        let group: &[pipeline::Task] = match entry {
            Step::Task(task) => std::slice::from_ref(task),
            Step::Parallel { tasks, .. } => tasks,
        };
        tasks.extend(group.iter().map(|task| PlannedTask {
            step: step as i64,
            task: task.name.clone(),
            kind: task.kind.keyword().to_string(),
        }));
    }
    PlannedPhase {
        phase: phase.name.clone(),
        tasks,
    }
}

/// The secret values of a pipeline: every `${env.*}` it uses and every backend password.
pub fn secrets_of(
    pipeline: &Pipeline,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Redactor, AttachError> {
    let mut redactor = Redactor::new();
    let mut missing = Vec::new();
    for name in &pipeline.env_references {
        match env(name) {
            Some(value) => redactor.add(&value),
            None => missing.push(name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(AttachError::MissingEnv(missing));
    }
    for backend in pipeline.backends.values() {
        if let pipeline::Backend::XlDeploy { password, .. } = backend
            && password.references().next().is_none()
        {
            redactor.add(password.source());
        }
    }
    Ok(redactor)
}

/// Takes the lease on `release` and prepares an engine to drive it.
pub fn attach(
    mut store: Store,
    release: &str,
    terminal: Terminal,
) -> Result<(Engine, Lease), AttachError> {
    let record = store.release(release)?;
    let control = std::sync::Arc::new(crate::engine::control::LiveControl::default());
    let lease = {
        let control = control.clone();
        store.acquire_lease(release, Box::new(move |news| control.on_news(news)))?
    };
    let pipeline = pipeline::load_str(Path::new(&record.pipeline_file), &record.pipeline_source)
        .map_err(|error| AttachError::Pipeline {
            release: release.to_string(),
            error,
        })?;
    let env = |name: &str| std::env::var(name).ok();
    let redactor = secrets_of(&pipeline, &env)?;
    let mut reporter = Reporter::new(store, release, redactor, terminal)?;
    reporter.lease_lost = control.lost_flag();
    let engine = Engine {
        pipeline,
        release: release.to_string(),
        reporter: RefCell::new(reporter),
        variables: RefCell::new(record.variables),
        person_ordered: RefCell::default(),
        unfinished: RefCell::default(),
        undecided: RefCell::default(),
        env: Box::new(env),
        interrupt: control.interrupt.clone(),
        control,
        ending_reason: RefCell::default(),
        target_locks: RefCell::default(),
    };
    Ok((engine, lease))
}
