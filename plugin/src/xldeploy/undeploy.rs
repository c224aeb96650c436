//! Undeploy: exists? → prepare/undeploy → create the task → hand its id over → start →
//! poll → archive. `fail_if_missing` decides what an absent application means.

use super::backend::XlDeployBackend;
use super::client::Call;
use super::deploy::{Target, context, protocol};
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
        if !self.exists(&target, &what, log)? {
            if request.fail_if_missing {
                return Err(BackendError::new(
                    ErrorClass::NotFound,
                    format!("{what}: it is not deployed there"),
                ));
            }
            log(&format!(
                "{} is not deployed to {environment}: nothing to undeploy",
                target.application
            ));
            return Ok(());
        }
        let previous = self.deployed_package(&target.application, environment, log)?;
        log(&format!("Undeploying {}", target.deployed_application()));
        let call = Call::get("/deployit/deployment/prepare/undeploy")
            .query("deployedApplication", target.deployed_application());
        let body = self.client.idempotent(&call, log).map_err(context(&what))?;
        let mut spec = xml::parse_deployment(&body).map_err(|e| protocol(&what, &call, e))?;
        xml::customize_deployment(
            &mut spec,
            &self.config.orchestrators,
            &self.config.deployed_application_properties,
        )
        .map_err(|e| protocol(&what, &call, e))?;
        let task_id = self.create_task(&spec, &what, log)?;
        let version = previous
            .as_deref()
            .and_then(|p| p.rsplit_once('/'))
            .map_or(String::new(), |(_, v)| v.to_string());
        let handle = XlDeployHandle {
            format: HANDLE_FORMAT,
            task_id,
            application: target.application.clone(),
            version,
            environment: target.environment.clone(),
            previous_version: previous,
            is_undeploy: true,
            work_dir: request.work_dir.clone(),
            components: Vec::new(),
        };
        self.hand_over(&handle, on_handle, log)?;
        self.start_and_follow(&handle, log).map(|_| ())
    }
}
