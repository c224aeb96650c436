//! The `xl-deploy` backend: drives XL Deploy's REST API (`/deployit/...`, XML bodies, basic
//! auth) the way the XL Release XL Deploy plugin does, with relflow's failure policy deciding
//! what happens after a task halts.
//!
//! # Wire calls implemented, and where their shapes come from
//!
//! Sources: (A) XebiaLabs' article "How to prepare, validate, and start a deployment using the
//! XL Deploy REST API" (full request/response XML of each call; stored in the reference
//! corpus); (B) "How to start a task and retrieve task info using the XL Deploy REST API"
//! (`chrisnoonan98675/site`, `_posts/2014-08-26-start-task-retrieve-task-info-xl-deploy-rest-api.markdown`);
//! (C) the XL Release plugin's client, `xebialabs-community/xlr-xldeploy-plugin`,
//! `XLDeployClient.py` (paths, query parameters, `state2`, validation messages, rollback,
//! archive, stop, cancel, undeploy, orchestrators) and its `deploy.py` (the log lines);
//! (D) `xebialabs-community/puppet-xldeploy`'s Ruby client (`exists` answers
//! `<boolean>true</boolean>`); (E) the XL Deploy REST API reference (apidocs.digital.ai,
//! `TaskBlockService`: "GET /tasks/v2/current — Returns the active tasks of the logged in user",
//! a list of `TaskWithBlock`, whose `<metadata>` example holds `application`, `environment`,
//! `taskType` (`INITIAL`), `environment_id` and `version`).
//!
//! | call | body in → out | source |
//! |---|---|---|
//! | `GET /deployit/deployment/exists?application=Applications/App&environment=Environments/Env` | → `<boolean>true</boolean>` | C, D |
//! | `GET /deployit/repository/ci/Environments/Env/App` | → `<udm.DeployedApplication id=..><version ref="Applications/App/1.0"/>..`; 404 when not deployed | C (`get_latest_deployed_version`) |
//! | `GET /deployit/deployment/prepare/initial?version=Applications/App/2.2&environment=Environments/Env` | → `<deployment id=.. type="INITIAL"><application><udm.DeployedApplication ..>..</application><deployeds/><deployables>..</deployables><containers>..</containers></deployment>` | A, C |
//! | `GET /deployit/deployment/prepare/update?version=..&deployedApplication=Environments/Env/App` | → `<deployment type="UPDATE">` with the current deployeds | A, C |
//! | `GET /deployit/deployment/prepare/undeploy?deployedApplication=Environments/Env/App` | → `<deployment type="UNDEPLOYMENT">` | C |
//! | `POST /deployit/deployment/prepare/deployeds` | `<deployment>` → `<deployment>` with `<deployeds>` mapped | A, C |
//! | `POST /deployit/deployment/validate` | `<deployment>` → `<deployment>`; errors as `<validation-messages><validation-message ci=".." property=".." level="ERROR">text</validation-message>` inside the CI at fault | A (names the block), C (reads `ci` and the text) |
//! | `GET /deployit/tasks/v2/current` | → `<list><task id=.. state=..><metadata><application>App</application><environment_id>Environments/Env</environment_id><version>2.2</version><taskType>UPGRADE</taskType>..</metadata>..</task></list>` | E |
//! | `POST /deployit/deployment` | `<deployment>` → the task id (a UUID) as plain text | A, C |
//! | `POST /deployit/task/{id}/start` | → empty | B, C |
//! | `GET /deployit/task/{id}` | → `<task id=.. state=.. state2=.. currentStep=.. totalSteps=.. failures=.. owner=..>` (`state2` preferred, `state` as fallback) | B, C |
//! | `POST /deployit/task/{id}/stop` | → empty | C |
//! | `POST /deployit/task/{id}/archive` | → empty | C |
//! | `DELETE /deployit/task/{id}` | cancel → empty | C |
//! | `POST /deployit/deployment/rollback/{id}` | → the rollback task id as plain text | C |
//!
//! Every request sends `Accept: application/xml` and, with a body, `Content-Type:
//! application/xml`; any non-2xx status is an error classed by status (401/403 `auth`, 404
//! `not_found`, 429 `rate_limited`, 5xx `http_5xx`, other 4xx `bad_request`); a body that is
//! not the expected XML, and any 2xx HTML page, is `protocol`; a refused TLS certificate is
//! `precondition` (see `faults.rs`). `Retry-After` is read as seconds or an HTTP date and cut
//! to one hour. Orchestrators go into the deployed application's
//! `<orchestrator><value>..</value></orchestrator>` and deployed-application properties become
//! its child elements (C: `add_orchestrators`, `set_deployed_application_properties`).
//!
//! Safe to repeat in place (connection errors, timeouts, 5xx, 429 after `Retry-After`): the
//! GETs, prepare deployeds, validate, stop, archive, and `start` after re-reading the task
//! state. Never repeated: `POST /deployit/deployment` (created at most once per attempt, see
//! `create.rs`), `POST .../rollback/{id}`, `DELETE`.
//!
//! Every call and wait honours the attempt's [`crate::Interrupt`]: at its deadline and on
//! abort the task being waited on is stopped (`stop.rs`); on a signal it is left running.

mod backend;
mod client;
mod create;
mod deploy;
mod faults;
mod intent;
mod poll;
mod rollback;
mod stop;
mod task;
mod undeploy;
mod xml;

pub use backend::{XlDeployBackend, XlDeployConfig};
pub use client::HttpRetry;
