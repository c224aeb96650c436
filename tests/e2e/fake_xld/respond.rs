//! Answers XL Deploy's REST calls from the shared world, after recording each request and
//! applying any scripted fault.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wiremock::{Request, Respond, ResponseTemplate};

use super::shapes::{self, Spec};
use super::world::{FaultKind, Recorded, Task, TaskKind, World};

pub struct Responder {
    pub world: Arc<Mutex<World>>,
}

fn xml(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "application/xml")
}

fn text(status: u16, body: impl Into<String>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into(), "text/plain")
}

fn error_page(status: u16) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(
        format!("<html><body><h1>HTTP Status {status}</h1></body></html>"),
        "text/html",
    )
}

fn is_authorized(world: &World, request: &Request) -> bool {
    use base64_shim::encode;
    let expected = format!(
        "Basic {}",
        encode(&format!("{}:{}", world.username, world.password))
    );
    request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
}

/// Base64 for the one header the fake checks (wiremock's own dependency is not re-exported).
mod base64_shim {
    pub fn encode(input: &str) -> String {
        const TABLE: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let bytes = input.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        let method = request.method.as_str().to_string();
        let path = request.url.path().to_string();
        world.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            query: request.url.query().unwrap_or_default().to_string(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            at: Instant::now(),
        });
        let mut delay = world.latency;
        let answer = match world.take_fault(&method, &path, false) {
            Some(FaultKind::Status(status)) => error_page(status),
            Some(FaultKind::RateLimited { retry_after_secs }) => {
                error_page(429).insert_header("retry-after", retry_after_secs.to_string().as_str())
            }
            Some(FaultKind::RetryAfter(value)) => {
                error_page(429).insert_header("retry-after", value.as_str())
            }
            Some(FaultKind::Html { status, body }) => {
                ResponseTemplate::new(status).set_body_raw(body, "text/html")
            }
            Some(FaultKind::Garbage) => xml("<task id=\"oops\" state=".to_string()),
            Some(FaultKind::Slow(extra)) => {
                delay += extra;
                answer(&mut world, request, &method, &path)
            }
            _ if !is_authorized(&world, request) => error_page(401),
            _ => answer(&mut world, request, &method, &path),
        };
        let answer = if world.close_connections {
            answer.insert_header("connection", "close")
        } else {
            answer
        };
        answer.set_delay(delay)
    }
}

fn query(request: &Request, key: &str) -> String {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn answer(world: &mut World, request: &Request, method: &str, path: &str) -> ResponseTemplate {
    let Some(rest) = path.strip_prefix("/deployit/") else {
        return error_page(404);
    };
    let rest = rest.trim_end_matches('/');
    let body = String::from_utf8_lossy(&request.body).into_owned();
    let segments: Vec<&str> = rest.split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["deployment", "exists"]) => {
            let app = query(request, "application");
            let app = app.rsplit('/').next().unwrap_or_default();
            let env = query(request, "environment");
            let exists = world
                .environments
                .get(&env)
                .is_some_and(|apps| apps.contains_key(app));
            xml(format!("<boolean>{exists}</boolean>"))
        }
        (
            "GET",
            [
                "deployment",
                "prepare",
                kind @ ("initial" | "update" | "undeploy"),
            ],
        ) => prepare(world, request, kind),
        ("POST", ["deployment", "prepare", "deployeds"]) => match shapes::read_spec(&body) {
            Some(spec) => xml(shapes::deployment(
                "deployment-1",
                &spec.kind,
                &spec,
                true,
                &[],
            )),
            None => text(400, "Cannot parse the deployment"),
        },
        ("POST", ["deployment", "validate"]) => match shapes::read_spec(&body) {
            Some(spec) => {
                let errors = world.validation_errors.clone();
                xml(shapes::deployment(
                    "deployment-1",
                    &spec.kind,
                    &spec,
                    true,
                    &errors,
                ))
            }
            None => text(400, "Cannot parse the deployment"),
        },
        ("POST", ["deployment"]) => create_task(world, &body),
        ("GET", ["tasks", "v2", "current"]) => xml(shapes::active_tasks(
            world
                .tasks
                .iter()
                .filter(|(_, t)| !t.is_gone)
                .map(|(id, t)| (id.as_str(), t)),
        )),
        ("POST", ["deployment", "rollback", id]) => rollback(world, id),
        ("GET", ["task", id]) => match world.poll(id) {
            Some(state) => xml(shapes::task(id, &state, "Update deployment")),
            None => text(404, format!("Task {id} not found")),
        },
        ("POST", ["task", id, "start"]) => match world.start(id) {
            Ok(()) => ResponseTemplate::new(204),
            Err(message) if message.contains("not found") => text(404, message),
            Err(message) => text(400, message),
        },
        ("POST", ["task", id, "stop"]) => with_task(world, id, |task| {
            if task.state != "EXECUTING" {
                return Err(format!("Task {id} is {}, not running", task.state));
            }
            task.state = "STOPPED".into();
            Ok(())
        }),
        ("POST", ["task", id, "archive"]) => with_task(world, id, |task| {
            if task.state != "EXECUTED" {
                return Err(format!(
                    "Task {id} is {} and cannot be archived",
                    task.state
                ));
            }
            task.state = "DONE".into();
            task.is_gone = true;
            Ok(())
        }),
        ("DELETE", ["task", id]) => with_task(world, id, |task| {
            if task.state == "EXECUTING" {
                return Err(format!("Task {id} is executing; stop it first"));
            }
            task.state = "CANCELLED".into();
            task.is_gone = true;
            Ok(())
        }),
        ("GET", ["repository", "ci", ..]) => {
            let id = rest.trim_start_matches("repository/ci/");
            let (env, app) = id.rsplit_once('/').unwrap_or((id, ""));
            match world.environments.get(env).and_then(|apps| apps.get(app)) {
                Some(package) => xml(shapes::deployed_application(env, app, package)),
                None => text(404, format!("Repository entity [{id}] not found")),
            }
        }
        _ => error_page(404),
    }
}

fn with_task(
    world: &mut World,
    id: &str,
    change: impl FnOnce(&mut Task) -> Result<(), String>,
) -> ResponseTemplate {
    match world.tasks.get_mut(id).filter(|t| !t.is_gone) {
        None => text(404, format!("Task {id} not found")),
        Some(task) => match change(task) {
            Ok(()) => ResponseTemplate::new(204),
            Err(message) => text(400, message),
        },
    }
}

fn prepare(world: &mut World, request: &Request, kind: &str) -> ResponseTemplate {
    let (package, deployed_id) = match kind {
        "initial" => (query(request, "version"), None),
        "update" => (
            query(request, "version"),
            Some(query(request, "deployedApplication")),
        ),
        _ => (String::new(), Some(query(request, "deployedApplication"))),
    };
    let environment = match (&deployed_id, kind) {
        (None, _) => query(request, "environment"),
        (Some(id), _) => id
            .rsplit_once('/')
            .map(|(e, _)| e.to_string())
            .unwrap_or_default(),
    };
    let deployed = deployed_id.as_ref().and_then(|id| {
        let (env, app) = id.rsplit_once('/')?;
        world.environments.get(env)?.get(app).cloned()
    });
    if deployed_id.is_some() && deployed.is_none() {
        return text(404, "Repository entity not found");
    }
    let package = if kind == "undeploy" {
        deployed.unwrap_or_default()
    } else {
        package
    };
    if !world.packages.contains(&package) {
        return text(404, format!("Repository entity [{package}] not found"));
    }
    let spec = Spec {
        kind: String::new(),
        package,
        environment,
        ..Spec::default()
    };
    let kind = match kind {
        "initial" => "INITIAL",
        "update" => "UPDATE",
        _ => "UNDEPLOYMENT",
    };
    let id = format!("deployment-{}", world.new_id(0xd));
    xml(shapes::deployment(&id, kind, &spec, kind == "UPDATE", &[]))
}

fn create_task(world: &mut World, body: &str) -> ResponseTemplate {
    let Some(spec) = shapes::read_spec(body) else {
        return text(400, "Cannot parse the deployment");
    };
    let app = spec
        .package
        .rsplit('/')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let previous = world
        .environments
        .get(&spec.environment)
        .and_then(|apps| apps.get(&app))
        .cloned();
    let package = (spec.kind != "UNDEPLOYMENT").then(|| spec.package.clone());
    let id = world.new_id(0x95223aae);
    world.tasks.insert(
        id.clone(),
        Task {
            kind: TaskKind::Deploy {
                environment: spec.environment.clone(),
                app,
                package,
                previous,
            },
            state: "PENDING".into(),
            runs_failed: 0,
            polls_left: 0,
            started: None,
            is_gone: false,
            is_rolled_back: false,
        },
    );
    text(200, id)
}

fn rollback(world: &mut World, id: &str) -> ResponseTemplate {
    let Some(task) = world.tasks.get_mut(id).filter(|t| !t.is_gone) else {
        return text(404, format!("Task {id} not found"));
    };
    let rollbackable = matches!(
        task.state.as_str(),
        "FAILED" | "STOPPED" | "ABORTED" | "EXECUTED"
    );
    if !rollbackable || task.is_rolled_back {
        return text(
            400,
            format!("Task {id} is {} and cannot be rolled back", task.state),
        );
    }
    let TaskKind::Deploy {
        environment,
        app,
        previous,
        ..
    } = task.kind.clone()
    else {
        return text(400, "A rollback cannot be rolled back");
    };
    task.is_rolled_back = true;
    task.is_gone = true;
    let rollback_id = world.new_id(0x0f2818c2);
    world.tasks.insert(
        rollback_id.clone(),
        Task {
            kind: TaskKind::Rollback {
                environment,
                app,
                restore: previous,
            },
            state: "PENDING".into(),
            runs_failed: 0,
            polls_left: 0,
            started: None,
            is_gone: false,
            is_rolled_back: false,
        },
    );
    text(200, rollback_id)
}
