//! Creating a release, and attaching a runner to one: lease, stored pipeline, secrets.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::{Engine, Reporter};
use crate::engine::{person, secrets};
use crate::output::terminal::Terminal;
use crate::pipeline::{self, Pipeline, Step};
use crate::store::secrets::SecretKey;
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
    #[error("{}", pipeline::missing_required_message(.0))]
    MissingRequired(Vec<String>),
    #[error(
        "the secret value{} of {} in release {release} {} lost (the runner was killed as the \
         release started): start a new release",
        if .names.len() > 1 { "s" } else { "" }, .names.join(", "),
        if .names.len() > 1 { "were" } else { "was" }
    )]
    SecretLost { release: String, names: Vec<String> },
    #[error(transparent)]
    Secrets(#[from] crate::store::secrets::SecretError),
    #[error(transparent)]
    Report(#[from] crate::engine::ReportError),
}

/// Plans the phases and tasks of `pipeline` into a new release; returns its id. The store
/// gets the pipeline text and the variables with their secrets masked; the real values are
/// kept encrypted beside them.
pub fn start_release(
    store: &mut Store,
    pipeline: &Pipeline,
    source: &str,
    variables: &BTreeMap<String, String>,
) -> Result<String, AttachError> {
    let missing = pipeline.missing_required(variables);
    if !missing.is_empty() {
        return Err(AttachError::MissingRequired(missing));
    }
    let redactor = secrets::secrets_of(pipeline, &|name| std::env::var(name).ok())?;
    secrets::add_secret_variables(&redactor, &pipeline.secret_variables, variables);
    redactor.install_global();
    let masked = secrets::mask_release(pipeline, &redactor, source, variables);
    let phases: Vec<PlannedPhase> = pipeline.phases.iter().map(plan_phase).collect();
    let file = std::path::absolute(&pipeline.file).unwrap_or_else(|_| pipeline.file.clone());
    // The key first: a state folder where it cannot be made gets no release at all.
    let key = if masked.kept.is_empty() {
        None
    } else {
        Some(SecretKey::load_or_create(store.dir())?)
    };
    // One transaction: a kill never leaves a release whose masked values have no real ones.
    let release = store.create_release(
        &pipeline.name,
        &file.to_string_lossy(),
        &masked.source,
        &masked.variables,
        &phases,
        key.as_ref().map(|key| (&masked.kept, key)),
    )?;
    crate::failpoint::hit("store.release_created");
    Ok(release)
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
    {
        // No backend call once the lease may have gone to another runner (a stopped runner
        // that wakes past its TTL asks the store first).
        let gate = lease.gate();
        let weak = std::sync::Arc::downgrade(&control);
        control.interrupt.set_fence(move || {
            let may = gate.may_act();
            if !may && let Some(control) = weak.upgrade() {
                control.on_news(crate::store::LeaseNews::Lost);
            }
            may
        });
    }
    let restored = secrets::restore(&store, &record)?;
    let pipeline = pipeline::load_str(Path::new(&record.pipeline_file), &restored.source).map_err(
        |error| AttachError::Pipeline {
            release: release.to_string(),
            error,
        },
    )?;
    let lost = secrets::lost_secrets(&pipeline, &restored);
    if !lost.is_empty() {
        return Err(AttachError::SecretLost {
            release: release.to_string(),
            names: lost,
        });
    }
    let env = |name: &str| std::env::var(name).ok();
    let redactor = secrets::secrets_of(&pipeline, &env)?;
    secrets::add_secret_variables(&redactor, &pipeline.secret_variables, &restored.variables);
    redactor.install_global();
    // A killed runner may have left a task's `$RELFLOW_OUTPUT` file, secrets and all.
    secrets::remove_output_files(&crate::output::paths::release_dir(store.dir(), release));
    let mut reporter = Reporter::new(store, release, redactor, terminal)?;
    reporter.lease_lost = control.lost_flag();
    reporter.secret_variables = pipeline.secret_variables.clone();
    let engine = Engine {
        pipeline,
        release: release.to_string(),
        reporter: RefCell::new(reporter),
        variables: RefCell::new(restored.variables),
        person_ordered: RefCell::default(),
        unfinished: RefCell::default(),
        undecided: RefCell::default(),
        env: Box::new(env),
        interrupt: control.interrupt.clone(),
        control,
        ending_reason: RefCell::default(),
        target_locks: RefCell::default(),
        person: person::Person::from_os(),
    };
    Ok((engine, lease))
}
