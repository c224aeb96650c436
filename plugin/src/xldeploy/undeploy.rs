//! Undeploy: exists? → prepare/undeploy → create the task (once: see `create.rs`) → hand its
//! id over → start → poll → archive. `fail_if_missing` decides what an absent application
//! means.

use super::backend::XlDeployBackend;
use super::client::Call;
use super::create::Obtained;
use super::deploy::{Target, context, protocol};
use super::intent::{Intent, TaskType};
use super::xml;
use crate::ErrorClass;
use crate::backend::{
    BackendError, HANDLE_FORMAT, Handle, LogSink, UndeployRequest, XlDeployHandle,
};

impl XlDeployBackend {
    pub(super) fn run_undeploy(
        &self,
        request: &UndeployRequest,
        on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        log: LogSink<'_>,
    ) -> Result<(), BackendError> {
        let intent = format!("undeploy {}", request.application);
        let environment = self.environment(request.environment.as_deref(), &intent)?;
        let target = Target::new(&request.application, environment);
        let what = format!("undeploy {} from {environment}", target.application);
        let work_dir = &request.work_dir;
        let obtained = match self.adopt_lost(&target, None, work_dir, &what, log)? {
            Some(obtained) => obtained,
            None => match self.create_undeploy(&target, request, &what, log)? {
                Some(obtained) => obtained,
                None => return Ok(()),
            },
        };
        let version = obtained
            .previous_version
            .as_deref()
            .and_then(|p| p.rsplit_once('/'))
            .map_or(String::new(), |(_, v)| v.to_string());
        let handle = XlDeployHandle {
            format: HANDLE_FORMAT,
            task_id: obtained.task_id.clone(),
            application: target.application.clone(),
            version,
            environment: target.environment.clone(),
            previous_version: obtained.previous_version.clone(),
            is_undeploy: true,
            work_dir: request.work_dir.clone(),
            components: Vec::new(),
        };
        self.hand_over(&handle, on_handle, log)?;
        self.drive(&handle, &obtained, log).map(|_| ())
    }

    /// exists? → prepare/undeploy → create the task once; `None` when there is nothing to
    /// undeploy and `fail_if_missing` is off.
    fn create_undeploy(
        &self,
        target: &Target,
        request: &UndeployRequest,
        what: &str,
        log: LogSink<'_>,
    ) -> Result<Option<Obtained>, BackendError> {
        self.interrupt.check(what)?;
        if !self.exists(target, what, log)? {
            if request.fail_if_missing {
                return Err(BackendError::new(
                    ErrorClass::NotFound,
                    format!("{what}: it is not deployed there"),
                ));
            }
            log(&format!(
                "{} is not deployed to {}: nothing to undeploy",
                target.application, target.environment
            ));
            return Ok(None);
        }
        let previous = self.deployed_package(&target.application, &target.environment, log)?;
        log(&format!("Undeploying {}", target.deployed_application()));
        let call = Call::get("/deployit/deployment/prepare/undeploy")
            .query("deployedApplication", target.deployed_application());
        let body = self.call(&call, log).map_err(context(what))?;
        let mut spec = xml::parse_deployment(&body).map_err(|e| protocol(what, &call, e))?;
        xml::customize_deployment(
            &mut spec,
            &self.config.orchestrators,
            &self.config.deployed_application_properties,
        )
        .map_err(|e| protocol(what, &call, e))?;
        let version = previous
            .as_deref()
            .and_then(|p| p.rsplit_once('/'))
            .map_or("", |(_, v)| v);
        let recorded = Intent::new(
            &target.application,
            &target.environment,
            version,
            TaskType::Undeploy,
            previous.clone(),
        );
        self.create_once(&spec, recorded, &request.work_dir, what, log)
            .map(Some)
    }
}
