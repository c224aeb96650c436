//! Building a plugin backend from the pipeline's `backends:` entry, rendered for one task.

use std::path::Path;

use relflow_plugin::{AnyBackend, ExecBackend, LocalBackend, XlDeployBackend, XlDeployConfig};

use crate::engine::Engine;
use crate::pipeline::paths::resolve;
use crate::pipeline::template::Template;
use crate::pipeline::{Backend, DeploySpec, Phase, Task};

/// The deployment a backend's commands are rendered for: `${application}`, `${version}`,
/// `${components}`.
pub(super) struct DeployVars<'a> {
    pub application: &'a str,
    pub version: &'a str,
    pub components: &'a [String],
}

/// A relative program with a slash (`./scripts/health.sh`) is relative to the pipeline folder,
/// whatever folder the command then runs in.
pub(super) fn resolve_program(mut argv: Vec<String>, base_dir: &Path) -> Vec<String> {
    if let Some(program) = argv.first_mut()
        && program.contains('/')
        && !program.starts_with('/')
    {
        *program = resolve(base_dir, &*program).to_string_lossy().into_owned();
    }
    argv
}

impl Engine {
    /// Renders `template` with the release's values plus the deployment's own.
    fn render_for_deploy(
        &self,
        phase: &Phase,
        task: &Task,
        deploy: &DeployVars<'_>,
        template: &Template,
    ) -> Result<String, String> {
        let components = deploy.components.join(",");
        let extra = [
            ("application", deploy.application),
            ("version", deploy.version),
            ("components", components.as_str()),
        ];
        self.render_with(phase, task, template, &extra)
            .map(|rendered| rendered.value)
            .map_err(|e| e.to_string())
    }

    pub(super) fn render_argv_for_deploy(
        &self,
        phase: &Phase,
        task: &Task,
        deploy: &DeployVars<'_>,
        argv: &[Template],
    ) -> Result<Vec<String>, String> {
        let argv = argv
            .iter()
            .map(|t| self.render_for_deploy(phase, task, deploy, t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(resolve_program(argv, &self.pipeline.base_dir))
    }

    /// The plugin backend of a deploy task, its paths and commands rendered for this deployment.
    pub(super) fn backend(
        &self,
        phase: &Phase,
        task: &Task,
        spec: &DeploySpec,
        deploy: &DeployVars<'_>,
    ) -> Result<AnyBackend, String> {
        let name = spec.backend.as_str();
        let base = &self.pipeline.base_dir;
        let render = |t: &Template| self.render_for_deploy(phase, task, deploy, t);
        let argv = |a: &[Template]| self.render_argv_for_deploy(phase, task, deploy, a);
        let optional = |a: &Option<Vec<Template>>| a.as_deref().map(argv).transpose();
        match self.pipeline.backends.get(name) {
            Some(Backend::Local {
                target,
                packages,
                verify,
                keep_setid,
                layout,
                keep_releases,
                keep_snapshots,
                trust_mtime,
                ..
            }) => {
                let mut local = LocalBackend::new(
                    resolve(base, render(target)?),
                    resolve(base, render(packages)?),
                );
                local.verify = optional(verify)?;
                local.keep_setid = *keep_setid;
                local.layout = *layout;
                local.keep_releases = *keep_releases;
                local.keep_snapshots = *keep_snapshots;
                local.trust_mtime = *trust_mtime;
                Ok(AnyBackend::Local(local))
            }
            Some(Backend::Exec {
                deploy,
                rollback,
                current,
                status,
                ..
            }) => Ok(AnyBackend::Exec(ExecBackend {
                deploy: argv(deploy)?,
                rollback: optional(rollback)?,
                current: optional(current)?,
                status: optional(status)?,
                cwd: Some(base.clone()),
                interrupt: relflow_plugin::Interrupt::none(),
            })),
            Some(Backend::XlDeploy {
                url,
                username,
                password,
                polling_interval,
                insecure_skip_tls_verify,
                ca_cert,
                timeout,
            }) => {
                let config = XlDeployConfig {
                    url: render(url)?,
                    username: render(username)?,
                    password: render(password)?,
                    polling_interval: *polling_interval,
                    insecure: *insecure_skip_tls_verify,
                    ca_cert: ca_cert
                        .as_ref()
                        .map(|path| render(path).map(|p| resolve(base, p)))
                        .transpose()?,
                    application: Some(deploy.application.to_string()),
                    orchestrators: spec.xl.orchestrators.clone(),
                    deployed_application_properties: spec
                        .xl
                        .deployed_application_properties
                        .clone(),
                    fail_on_pause: spec.xl.fail_on_pause,
                    polling_budget: spec.xl.polling_budget,
                    task_timeout: task.timeout.or(*timeout),
                    ..XlDeployConfig::default()
                };
                XlDeployBackend::new(config)
                    .map(AnyBackend::XlDeploy)
                    .map_err(|e| e.message)
            }
            None => Err(format!("no backend `{name}`")),
        }
    }
}
