//! Customized actions (`actions:` of a task's `on_failure`): commands run when the task — or,
//! with `trigger: any_task`, a later task — fails.

use std::time::Duration;

use crate::engine::event::TaskRef;
use crate::engine::process::ProcessSpec;
use crate::engine::{Engine, EngineError};
use crate::pipeline::paths::resolve;
use crate::pipeline::{Phase, Task};
use crate::policy::{Action, ActionCommand, OnFailure, Trigger};

/// How long an action may run before it is stopped.
const ACTION_TIMEOUT: Duration = Duration::from_secs(600);

/// The `docker` CLI for the docker actions, each call bound by [`ACTION_TIMEOUT`] (like a
/// `run:` action, not by the release's stop flag: actions belong to the rollback order).
fn docker_for_actions() -> relflow_plugin::Docker {
    relflow_plugin::Docker {
        interrupt: relflow_plugin::Interrupt::none().with_timeout(Some(ACTION_TIMEOUT)),
        ..relflow_plugin::Docker::default()
    }
}

/// The actions a task's own `on_failure` declares (with their index, for step ids).
pub(super) fn actions_of(task: &Task) -> Vec<(usize, &Action)> {
    match &task.on_failure {
        Some(OnFailure::Declarative(d)) => d.actions.iter().enumerate().collect(),
        _ => Vec::new(),
    }
}

/// The `any_task` actions of a task: they also run when a later task fails.
pub(super) fn any_task_actions_of(task: &Task) -> Vec<(usize, &Action)> {
    actions_of(task)
        .into_iter()
        .filter(|(_, a)| a.trigger == Trigger::AnyTask)
        .collect()
}

impl Engine {
    /// Runs one action of `owner` (templates rendered in the owner's context) while handling
    /// the failure of `failing`; its lines go to the failing task's log. `Err` says why it failed.
    pub(super) async fn run_action(
        &self,
        owner_phase: &Phase,
        owner: &Task,
        action: &Action,
        failing: &TaskRef,
    ) -> Result<Result<(), String>, EngineError> {
        let render = |t| {
            self.render(owner_phase, owner, t)
                .map(|r| r.value)
                .map_err(|e| e.to_string())
        };
        let base = &self.pipeline.base_dir;
        let argv: Result<Vec<String>, String> = match &action.command {
            ActionCommand::Run(argv) => argv.iter().map(render).collect(),
            ActionCommand::Script(path) => {
                render(path).map(|p| vec![resolve(base, p).to_string_lossy().into_owned()])
            }
            ActionCommand::RevertCompose { file, previous } => {
                let (file, previous) = match (render(file), render(previous)) {
                    (Ok(f), Ok(p)) => (resolve(base, f), resolve(base, p)),
                    (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
                };
                self.output(
                    failing,
                    format!(
                        "Running action of task {}: revert {} to {}",
                        owner.name,
                        file.display(),
                        previous.display()
                    ),
                )?;
                let docker = docker_for_actions();
                let result = self
                    .call_blocking(failing, move |_, log| {
                        docker.revert_compose(&file, &previous, log)
                    })
                    .await?;
                return Ok(result.map_err(|e| e.to_string()));
            }
            ActionCommand::RestartPreviousContainer {
                container,
                image,
                run_args,
            } => {
                let rendered = (
                    render(container),
                    render(image),
                    run_args.iter().map(render).collect::<Result<Vec<_>, _>>(),
                );
                let (container, image, run_args) = match rendered {
                    (Ok(c), Ok(i), Ok(a)) => (c, i, a),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Ok(Err(e)),
                };
                self.output(
                    failing,
                    format!(
                        "Running action of task {}: restart container {container} from {image}",
                        owner.name
                    ),
                )?;
                let docker = docker_for_actions();
                let result = self
                    .call_blocking(failing, move |_, log| {
                        docker.restart_previous_container(&container, &image, &run_args, log)
                    })
                    .await?;
                return Ok(result.map_err(|e| e.to_string()));
            }
        };
        let mut argv = match argv {
            Ok(argv) if !argv.is_empty() => argv,
            Ok(_) => return Ok(Err("the action is empty".to_string())),
            Err(e) => return Ok(Err(e)),
        };
        let program = argv.remove(0);
        self.output(
            failing,
            format!(
                "Running action of task {}: $ {program} {}",
                owner.name,
                argv.join(" ")
            ),
        )?;
        let spec = ProcessSpec {
            program: program.clone(),
            args: argv,
            cwd: base.clone(),
            env: vec![
                ("RELFLOW_RELEASE_ID".to_string(), self.release.clone()),
                ("RELFLOW_TASK".to_string(), owner.name.clone()),
                ("RELFLOW_FAILED_TASK".to_string(), failing.task.clone()),
            ],
            timeout: Some(ACTION_TIMEOUT),
        };
        let end = self.run_logged(&spec, failing, None).await?;
        Ok(end.failure(&program).map_or(Ok(()), Err))
    }
}
