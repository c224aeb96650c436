//! A fake XL Deploy server on wiremock: the real paths and XML shapes, a task state machine,
//! behaviour scripted per test (failing tasks, validation errors, HTTP faults, slow answers,
//! dropped connections) and a record of every request for asserting the exact call sequence.
#![allow(
    dead_code,
    reason = "each test binary (e2e, the benchmark) uses a part of the fake"
)]

mod proxy;
mod respond;
mod shapes;
mod world;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wiremock::matchers::any;
use wiremock::{Mock, MockServer};

use world::World;
pub use world::{Fault, FaultKind, Recorded, TaskScript};

/// A running fake. Dropping it stops the server (and the drop proxy).
pub struct FakeXld {
    server: MockServer,
    world: Arc<Mutex<World>>,
    proxy: Option<proxy::DropProxy>,
}

impl FakeXld {
    /// A fake with no environments; user `admin`, password `s3cret`.
    pub async fn start() -> FakeXld {
        let server = MockServer::builder().start().await;
        let world = Arc::new(Mutex::new(World::new()));
        Mock::given(any())
            .respond_with(respond::Responder {
                world: Arc::clone(&world),
            })
            .mount(&server)
            .await;
        FakeXld {
            server,
            world,
            proxy: None,
        }
    }

    /// A fake behind a proxy that can drop connections ([`FaultKind::DropBefore`] /
    /// [`FaultKind::DropAfter`]); every answer closes its connection so each request is seen.
    pub async fn start_with_drop_proxy() -> FakeXld {
        let mut fake = FakeXld::start().await;
        fake.world().close_connections = true;
        let upstream = *fake.server.address();
        fake.proxy = Some(proxy::DropProxy::start(upstream, Arc::clone(&fake.world)).await);
        fake
    }

    /// The base URL a backend is given.
    pub fn url(&self) -> String {
        match &self.proxy {
            Some(p) => format!("http://{}", p.address),
            None => self.server.uri(),
        }
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Imports a package, e.g. `Applications/PetPortal/2.2`.
    pub fn with_package(&self, package: &str) -> &Self {
        self.world().packages.push(package.to_string());
        self
    }

    /// Marks `package` (`Applications/App/1.0`) as deployed to `environment`.
    pub fn with_deployed(&self, environment: &str, package: &str) -> &Self {
        let app = package.rsplit('/').nth(1).unwrap_or(package).to_string();
        let mut world = self.world();
        world.packages.push(package.to_string());
        world
            .environments
            .entry(environment.to_string())
            .or_default()
            .insert(app, package.to_string());
        self
    }

    pub fn script_deploy(&self, script: TaskScript) -> &Self {
        self.world().deploy_script = script;
        self
    }

    pub fn script_rollback(&self, script: TaskScript) -> &Self {
        self.world().rollback_script = script;
        self
    }

    /// Makes `validate` answer with these (ci, message) validation errors.
    pub fn with_validation_errors(&self, errors: &[(&str, &str)]) -> &Self {
        self.world().validation_errors = errors
            .iter()
            .map(|(ci, m)| (ci.to_string(), m.to_string()))
            .collect();
        self
    }

    /// Injects `kind` into the next `times` requests of `method` to `path` (exact, or with one
    /// `*` wildcard: `/deployit/task/*`).
    pub fn fault(&self, method: &str, path: &str, kind: FaultKind, times: u32) -> &Self {
        self.world().faults.push(Fault {
            method: method.to_string(),
            path: path.to_string(),
            kind,
            times,
        });
        self
    }

    /// Lets one answer held by [`FaultKind::HoldAnswer`] go (or the next one, if none waits).
    pub fn release_held(&self) {
        self.world().held.add_permits(1);
    }

    /// Every answer comes this much later.
    pub fn with_latency(&self, latency: Duration) -> &Self {
        self.world().latency = latency;
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.world().requests.clone()
    }

    /// `METHOD /path` of every request, in order.
    pub fn calls(&self) -> Vec<String> {
        self.world().requests.iter().map(Recorded::call).collect()
    }

    /// How many requests were `METHOD /path` exactly.
    pub fn count(&self, call: &str) -> usize {
        self.calls().iter().filter(|c| *c == call).count()
    }

    /// The package deployed as `app` in `environment`, if any.
    pub fn deployed(&self, environment: &str, app: &str) -> Option<String> {
        self.world()
            .environments
            .get(environment)
            .and_then(|apps| apps.get(app))
            .cloned()
    }

    /// The state of a task, and whether it left the active tasks.
    pub fn task_state(&self, id: &str) -> Option<(String, bool)> {
        self.world()
            .tasks
            .get(id)
            .map(|t| (t.state.clone(), t.is_gone))
    }

    pub fn task_ids(&self) -> Vec<String> {
        self.world().tasks.keys().cloned().collect()
    }
}
