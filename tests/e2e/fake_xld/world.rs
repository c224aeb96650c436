//! The fake's state: environments with deployed applications, packages, tasks and their
//! state machine, scripted behaviour, injected faults and the record of every request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the tasks of one kind run, scripted per test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskScript {
    /// Runs that end FAILED before one succeeds (`u32::MAX`: stays FAILED). A `start` of a
    /// FAILED task resumes it: the next run.
    pub failures: u32,
    /// Every run ends STOPPED (a pause step).
    pub stops: bool,
    /// Polls answered EXECUTING before a run settles.
    pub executing_polls: u32,
    /// When set, a run settles this long after its start instead of after `executing_polls`.
    pub duration: Option<Duration>,
}

impl TaskScript {
    pub fn succeed() -> TaskScript {
        TaskScript {
            failures: 0,
            stops: false,
            executing_polls: 1,
            duration: None,
        }
    }

    pub fn fail_times(n: u32) -> TaskScript {
        TaskScript {
            failures: n,
            ..TaskScript::succeed()
        }
    }

    pub fn always_fail() -> TaskScript {
        TaskScript::fail_times(u32::MAX)
    }

    pub fn stop() -> TaskScript {
        TaskScript {
            stops: true,
            ..TaskScript::succeed()
        }
    }

    pub fn lasting(duration: Duration) -> TaskScript {
        TaskScript {
            duration: Some(duration),
            ..TaskScript::succeed()
        }
    }

    pub fn executing_for(polls: u32) -> TaskScript {
        TaskScript {
            executing_polls: polls,
            ..TaskScript::succeed()
        }
    }

    /// Runs stay EXECUTING until stopped (or the test changes the script).
    pub fn endless() -> TaskScript {
        TaskScript::executing_for(u32::MAX)
    }
}

/// A fault injected into matching requests, `times` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (and a short HTML error page).
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    RateLimited { retry_after_secs: u64 },
    /// 200 with a body that is not XML.
    Garbage,
    /// Answer normally, this much later.
    Slow(Duration),
    /// Close the connection before the request reaches the server (needs the drop proxy).
    DropBefore,
    /// Let the server handle the request, then close the connection instead of answering.
    DropAfter,
    /// Let the server handle the request, then hold its answer until the test calls
    /// [`crate::fake_xld::FakeXld::release_held`] (needs the drop proxy).
    HoldAnswer,
    /// Answer with this status and an HTML page (`text/html`) holding `body`.
    Html { status: u16, body: String },
    /// 429 with this exact `Retry-After` header value (an HTTP date, a huge number...).
    RetryAfter(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub method: String,
    /// The request path, exactly, or with one `*` standing for any text
    /// (`/deployit/task/*`, `*/start`).
    pub path: String,
    pub kind: FaultKind,
    pub times: u32,
}

fn matches_path(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((head, tail)) => {
            path.len() >= head.len() + tail.len() && path.starts_with(head) && path.ends_with(tail)
        }
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    pub at: Instant,
}

impl Recorded {
    /// `GET /deployit/task/abc`
    pub fn call(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    /// A deployment (initial, update) or undeployment (`package` None) of `app` in `environment`.
    Deploy {
        environment: String,
        app: String,
        package: Option<String>,
        previous: Option<String>,
    },
    /// Puts `app` back at `restore` (None: removes it).
    Rollback {
        environment: String,
        app: String,
        restore: Option<String>,
    },
}

impl TaskKind {
    /// `taskType` in the task's metadata, as XL Deploy names it.
    pub fn task_type(&self) -> &'static str {
        match self {
            TaskKind::Deploy { package: None, .. } => "UNDEPLOY",
            TaskKind::Deploy { previous: None, .. } => "INITIAL",
            TaskKind::Deploy { .. } => "UPGRADE",
            TaskKind::Rollback { .. } => "ROLLBACK",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub kind: TaskKind,
    pub state: String,
    pub runs_failed: u32,
    pub polls_left: u32,
    pub started: Option<Instant>,
    /// Archived, cancelled or rolled back: no longer among the active tasks.
    pub is_gone: bool,
    pub is_rolled_back: bool,
}

#[derive(Debug)]
pub struct World {
    pub username: String,
    pub password: String,
    /// environment → application name → package deployed.
    pub environments: BTreeMap<String, BTreeMap<String, String>>,
    pub packages: Vec<String>,
    pub tasks: BTreeMap<String, Task>,
    pub deploy_script: TaskScript,
    pub rollback_script: TaskScript,
    pub validation_errors: Vec<(String, String)>,
    pub faults: Vec<Fault>,
    pub latency: Duration,
    pub requests: Vec<Recorded>,
    pub next_id: u64,
    /// Add `Connection: close` to every answer, so the drop proxy sees each request.
    pub close_connections: bool,
    /// Answers held by [`FaultKind::HoldAnswer`] wait for a permit here.
    pub held: Arc<tokio::sync::Semaphore>,
}

impl World {
    pub fn new() -> World {
        World {
            username: "admin".into(),
            password: "s3cret".into(),
            environments: BTreeMap::new(),
            packages: Vec::new(),
            tasks: BTreeMap::new(),
            deploy_script: TaskScript::succeed(),
            rollback_script: TaskScript::succeed(),
            validation_errors: Vec::new(),
            faults: Vec::new(),
            latency: Duration::ZERO,
            requests: Vec::new(),
            next_id: 1,
            close_connections: false,
            held: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }

    pub fn new_id(&mut self, prefix: u32) -> String {
        let n = self.next_id;
        self.next_id += 1;
        format!("{prefix:08x}-0e6c-45bf-9abe-{n:012x}")
    }

    /// Takes one use of the first fault matching the request, if any.
    pub fn take_fault(&mut self, method: &str, path: &str, drops: bool) -> Option<FaultKind> {
        let is_drop = |k: &FaultKind| {
            matches!(
                k,
                FaultKind::DropBefore | FaultKind::DropAfter | FaultKind::HoldAnswer
            )
        };
        let fault = self.faults.iter_mut().find(|f| {
            f.times > 0
                && f.method == method
                && matches_path(&f.path, path)
                && is_drop(&f.kind) == drops
        })?;
        fault.times -= 1;
        Some(fault.kind.clone())
    }

    pub fn script(&self, kind: &TaskKind) -> &TaskScript {
        match kind {
            TaskKind::Deploy { .. } => &self.deploy_script,
            TaskKind::Rollback { .. } => &self.rollback_script,
        }
    }

    /// `GET /deployit/task/{id}` moves a running task on: EXECUTING for the scripted number of
    /// polls (or time), then the run settles.
    pub fn poll(&mut self, id: &str) -> Option<String> {
        let task = self.tasks.get(id).filter(|t| !t.is_gone)?.clone();
        if task.state != "EXECUTING" {
            return Some(task.state);
        }
        let script = self.script(&task.kind).clone();
        let is_done = match script.duration {
            Some(d) => task.started.is_some_and(|s| s.elapsed() >= d),
            None => task.polls_left == 0,
        };
        if !is_done {
            if let Some(t) = self.tasks.get_mut(id) {
                t.polls_left = t.polls_left.saturating_sub(1);
            }
            return Some(task.state);
        }
        let state = if script.stops {
            "STOPPED"
        } else if task.runs_failed < script.failures {
            "FAILED"
        } else {
            self.apply(&task.kind);
            "EXECUTED"
        };
        let t = self.tasks.get_mut(id)?;
        t.state = state.to_string();
        if state == "FAILED" {
            t.runs_failed += 1;
        }
        Some(state.to_string())
    }

    fn apply(&mut self, kind: &TaskKind) {
        let (environment, app, package) = match kind {
            TaskKind::Deploy {
                environment,
                app,
                package,
                ..
            } => (environment, app, package),
            TaskKind::Rollback {
                environment,
                app,
                restore,
            } => (environment, app, restore),
        };
        let apps = self.environments.entry(environment.clone()).or_default();
        match package {
            Some(p) => {
                apps.insert(app.clone(), p.clone());
            }
            None => {
                apps.remove(app);
            }
        }
    }

    /// `POST /deployit/task/{id}/start`.
    pub fn start(&mut self, id: &str) -> Result<(), String> {
        let polls = {
            let task = self.tasks.get(id).filter(|t| !t.is_gone);
            let task = task.ok_or_else(|| format!("Task {id} not found"))?;
            if !matches!(
                task.state.as_str(),
                "PENDING" | "FAILED" | "STOPPED" | "ABORTED"
            ) {
                return Err(format!("Task {id} is {} and cannot be started", task.state));
            }
            self.script(&task.kind).executing_polls
        };
        let task = self.tasks.get_mut(id).ok_or("gone")?;
        task.state = "EXECUTING".into();
        task.polls_left = polls;
        task.started = Some(Instant::now());
        Ok(())
    }
}
