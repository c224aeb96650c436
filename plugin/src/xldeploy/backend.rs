//! The backend's configuration and its `Backend` implementation, which hands each operation
//! to the flows in `deploy.rs` and `rollback.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::client::{Call, Client, HttpRetry};
use super::poll::PollSettings;
use crate::backend::{
    Backend, BackendError, CurrentVersion, DeployOutcome, DeployRequest, Handle, LogSink,
    RollbackReport, UndeployRequest, XlDeployHandle,
};
use crate::{ErrorClass, Interrupt};

/// Everything the `xl-deploy` backend needs, rendered by the runner (passwords included: this
/// type's `Debug` shows `***`). `..XlDeployConfig::default()` fills in the XL plugin's defaults.
#[derive(Clone, PartialEq, Eq)]
pub struct XlDeployConfig {
    /// e.g. `http://localhost:4516`; the REST API lives under `/deployit/`.
    pub url: String,
    pub username: String,
    pub password: String,
    /// The longest wait between two polls of a task (default 10 s).
    pub polling_interval: Duration,
    /// Skips TLS certificate verification. Every operation then warns in the task's log.
    pub insecure: bool,
    /// A PEM file of CA certificates trusted besides the system's (a private CA).
    pub ca_cert: Option<PathBuf>,
    /// Timeout of one HTTP request (default 60 s).
    pub request_timeout: Duration,
    /// Default environment, e.g. `Environments/Prod`; a deploy request's own wins.
    pub environment: Option<String>,
    /// The application `current_version` reports on, e.g. `Applications/PetPortal`.
    pub application: Option<String>,
    /// Orchestrators set on the deployed application, e.g. `parallel-by-container`.
    pub orchestrators: Vec<String>,
    /// Properties set on the deployed application (name, value).
    pub deployed_application_properties: Vec<(String, String)>,
    /// STOPPED (a pause step) fails the attempt (default true); else relflow keeps waiting.
    pub fail_on_pause: bool,
    /// Polls of one task at most; 0 (default) = until `task_timeout`, if any.
    pub polling_budget: u32,
    /// The task's `timeout:`. When the runner hands over no deadline of its own
    /// ([`XlDeployBackend::interrupt`]), each deploy, retry, resume or undeploy gets this long
    /// from its start; at the deadline the XL Deploy task is stopped (class `timeout`).
    pub task_timeout: Option<Duration>,
    /// In-place retries of calls that are safe to repeat.
    pub http_retry: HttpRetry,
}

impl Default for XlDeployConfig {
    fn default() -> Self {
        XlDeployConfig {
            url: String::new(),
            username: String::new(),
            password: String::new(),
            polling_interval: Duration::from_secs(10),
            insecure: false,
            ca_cert: None,
            request_timeout: Duration::from_secs(60),
            environment: None,
            application: None,
            orchestrators: Vec::new(),
            deployed_application_properties: Vec::new(),
            fail_on_pause: true,
            polling_budget: 0,
            task_timeout: None,
            http_retry: HttpRetry::default(),
        }
    }
}

impl XlDeployConfig {
    fn client_url(&self) -> String {
        if self.password.is_empty() {
            self.url.clone()
        } else {
            self.url.replace(&self.password, "***")
        }
    }
}

impl std::fmt::Debug for XlDeployConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XlDeployConfig")
            .field("url", &self.client_url())
            .field("username", &self.username)
            .field("password", &"***")
            .field("polling_interval", &self.polling_interval)
            .field("insecure", &self.insecure)
            .field("ca_cert", &self.ca_cert)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// Deploys through an XL Deploy server's REST API. Cheap to clone (clones share one HTTP
/// client) and safe to build inside an async runtime: the blocking HTTP client is made on
/// first use, on the caller's blocking thread.
#[derive(Debug, Clone)]
pub struct XlDeployBackend {
    pub(super) config: Arc<XlDeployConfig>,
    pub(super) client: Arc<Client>,
    /// The attempt's deadline and stop flag: at the deadline, or when a person aborts, the XL
    /// Deploy task is stopped; on a signal polling stops and the task keeps running on the
    /// server (`resume` re-attaches to it).
    pub interrupt: Interrupt,
}

/// Reads the CA certificates of `ca_cert` (one or more PEM blocks).
fn extra_roots(path: Option<&PathBuf>) -> Result<Vec<reqwest::Certificate>, BackendError> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let refused = |why: String| {
        BackendError::new(
            ErrorClass::Precondition,
            format!("trust the CA in `ca_cert` {}: {why}", path.display()),
        )
    };
    let pem = std::fs::read(path).map_err(|e| refused(e.to_string()))?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| refused(e.to_string()))?;
    if roots.is_empty() {
        return Err(refused("the file holds no PEM certificate".into()));
    }
    Ok(roots)
}

impl XlDeployBackend {
    /// Checks the configuration; fails with class `validation` on a URL that is not http(s)
    /// and `precondition` when `ca_cert` cannot be read as PEM certificates.
    pub fn new(config: XlDeployConfig) -> Result<XlDeployBackend, BackendError> {
        let scheme_ok = config.url.starts_with("http://") || config.url.starts_with("https://");
        if !scheme_ok {
            return Err(BackendError::new(
                ErrorClass::Validation,
                format!(
                    "use XL Deploy at `{}`: the URL must start with http:// or https://",
                    config.url
                ),
            ));
        }
        let client = Client::new(
            &config.url,
            &config.username,
            &config.password,
            config.request_timeout,
            config.insecure,
            extra_roots(config.ca_cert.as_ref())?,
            config.http_retry,
        );
        Ok(XlDeployBackend {
            interrupt: Interrupt::none(),
            config: Arc::new(config),
            client: Arc::new(client),
        })
    }

    /// This backend for one attempt: the runner's deadline, or else the task's `timeout:`
    /// counted from now, with the runner's stop flag either way.
    fn for_attempt(&self) -> XlDeployBackend {
        let mut attempt = self.clone();
        if self.interrupt.deadline().is_none() && self.config.task_timeout.is_some() {
            attempt.interrupt = self.interrupt.with_timeout(self.config.task_timeout);
        }
        attempt
    }

    /// A call that is safe to repeat, within the attempt's deadline and stop flag.
    pub(super) fn call(&self, call: &Call, log: LogSink<'_>) -> Result<String, BackendError> {
        self.client.idempotent(call, &self.interrupt, log)
    }

    /// A call sent exactly once, within the attempt's deadline and stop flag.
    pub(super) fn call_once(&self, call: &Call) -> Result<String, BackendError> {
        self.client.once(call, &self.interrupt)
    }

    /// A clean-up call that must go out even when the attempt is stopping (stopping the XL
    /// task at the deadline, cancelling a task that could not be handed over).
    pub(super) fn call_regardless(
        &self,
        call: &Call,
        log: LogSink<'_>,
    ) -> Result<String, BackendError> {
        self.client.idempotent(call, &Interrupt::none(), log)
    }

    pub(super) fn poll_settings(&self) -> PollSettings {
        PollSettings {
            interval: self.config.polling_interval,
            budget: self.config.polling_budget,
            fail_on_pause: self.config.fail_on_pause,
        }
    }

    /// The loud line every operation starts with when TLS is not verified.
    pub(super) fn warn_if_insecure(&self, log: LogSink<'_>) {
        if self.config.insecure {
            log(&format!(
                "WARNING: TLS certificate verification is OFF for {} (insecure): anyone on the network path can impersonate XL Deploy and read its password",
                self.client.base()
            ));
        }
    }

    pub(super) fn environment<'a>(
        &'a self,
        requested: Option<&'a str>,
        what: &str,
    ) -> Result<&'a str, BackendError> {
        requested
            .or(self.config.environment.as_deref())
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                BackendError::new(
                    ErrorClass::Validation,
                    format!("{what}: no XL Deploy environment given (e.g. `environment: Environments/Prod`)"),
                )
            })
    }
}

pub(super) fn xl_handle(handle: &Handle) -> Result<&XlDeployHandle, BackendError> {
    match handle {
        Handle::XlDeploy(h) => Ok(h),
        other => Err(BackendError::new(
            ErrorClass::Validation,
            format!(
                "use a handle of another backend with the xl-deploy backend: {}",
                other.to_json()
            ),
        )),
    }
}

impl Backend for XlDeployBackend {
    fn deploy(
        &self,
        request: &DeployRequest,
        on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        log: LogSink<'_>,
    ) -> Result<DeployOutcome, BackendError> {
        self.warn_if_insecure(log);
        self.for_attempt().run_deploy(request, on_handle, log)
    }

    fn resume(&self, handle: &Handle, log: LogSink<'_>) -> Result<DeployOutcome, BackendError> {
        self.warn_if_insecure(log);
        self.for_attempt().attach(xl_handle(handle)?, false, log)
    }

    fn retry(&self, handle: &Handle, log: LogSink<'_>) -> Result<DeployOutcome, BackendError> {
        self.warn_if_insecure(log);
        self.for_attempt().attach(xl_handle(handle)?, true, log)
    }

    fn roll_back(&self, handle: &Handle, log: LogSink<'_>) -> Result<RollbackReport, BackendError> {
        self.warn_if_insecure(log);
        self.run_rollback(xl_handle(handle)?, log)
    }

    fn roll_back_components(
        &self,
        handle: &Handle,
        components: &[String],
        log: LogSink<'_>,
    ) -> Result<RollbackReport, BackendError> {
        let h = xl_handle(handle)?;
        if components.is_empty() || components == h.components.as_slice() {
            return self.roll_back(handle, log);
        }
        Err(BackendError::new(
            ErrorClass::Precondition,
            format!(
                "roll back components {} of {} {}: XL Deploy rolls back whole deployments",
                components.join(", "),
                h.application,
                h.version
            ),
        ))
    }

    fn cancel(&self, handle: &Handle, log: LogSink<'_>) -> Result<(), BackendError> {
        self.warn_if_insecure(log);
        self.run_cancel(xl_handle(handle)?, log)
    }

    fn current_version(&self, log: LogSink<'_>) -> Result<Option<CurrentVersion>, BackendError> {
        let application = self.config.application.as_deref().ok_or_else(|| {
            BackendError::new(
                ErrorClass::Validation,
                "ask XL Deploy for the current version: the backend names no application",
            )
        })?;
        let environment = self.environment(None, "ask XL Deploy for the current version")?;
        let package = self.deployed_package(application, environment, log)?;
        Ok(package.map(|package| CurrentVersion {
            application: Some(application.to_string()),
            version: package
                .rsplit_once('/')
                .map_or(package.as_str(), |(_, v)| v)
                .to_string(),
            components: Vec::new(),
            deployed_at: None,
        }))
    }

    fn undeploy(
        &self,
        request: &UndeployRequest,
        on_handle: &mut dyn FnMut(&Handle) -> Result<(), BackendError>,
        log: LogSink<'_>,
    ) -> Result<(), BackendError> {
        self.warn_if_insecure(log);
        self.for_attempt().run_undeploy(request, on_handle, log)
    }
}
