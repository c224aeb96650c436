//! The web UI in a real headless Chromium: `relflow-e2e serve` on a free loopback port over a
//! temp state dir, driven by `node tests/browser/<scenario>.mjs` (playwright-core pointed at
//! Debian's `/usr/bin/chromium`). Screenshots land in `target/browser-screenshots/<scenario>/`.
//! Without chromium or the node packages these tests fail and say how to install them.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::harness::{Sandbox, wait_or_kill, wait_until};

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Fails (never skips) when what the browser tests need is missing.
fn require_browser_tools() {
    let install = "run the install step of .ci/run: `apt-get install -y chromium nodejs npm` \
                   and `(cd tests/browser && npm ci)`";
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: {install}"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules/playwright-core is missing: {install}"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: {install}"
    );
}

/// A `relflow serve` on 127.0.0.1 with an operator token `ops` and a viewer token `eve`.
struct Server {
    child: Option<Child>,
    url: String,
    operator: String,
    viewer: String,
    log: PathBuf,
}

impl Server {
    /// What the server printed so far.
    fn output(&self) -> String {
        format!(
            "--- relflow serve\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn create_token(sb: &Sandbox, name: &str, role: &str) -> String {
    let out = sb.run(&["token", "create", name, "--role", role]);
    out.expect_code(0);
    out.stdout.trim().to_string()
}

fn serve(sb: &Sandbox) -> Server {
    let operator = create_token(sb, "ops", "operator");
    let viewer = create_token(sb, "eve", "viewer");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // Its output goes to a file: a pipe nobody reads would stall it once full.
    let log = sb.path().join("serve.log");
    let file = std::fs::File::create(&log).expect("create serve.log");
    let child = sb
        .command(&["serve", "--listen", &listen, "--pipelines", "pipelines"])
        .stdout(file.try_clone().expect("clone log file"))
        .stderr(file)
        .spawn()
        .expect("spawn relflow serve");
    let mut server = Server {
        child: Some(child),
        url: format!("http://{listen}"),
        operator,
        viewer,
        log,
    };
    // Ready once it accepts connections (or it died: then say what it printed).
    let up = wait_until(30, || TcpStream::connect(&listen).is_ok());
    if !up {
        if let Some(child) = server.child.take() {
            let _ = wait_or_kill(child, std::time::Duration::from_secs(1));
        }
        panic!(
            "relflow serve did not listen on {listen}\n{}",
            server.output()
        );
    }
    server
}

/// The example pipelines (petportal deploys into the sandbox) plus `gate`, a manual task.
fn sandbox_with_pipelines() -> Sandbox {
    let sb = Sandbox::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines"),
        &sb.path().join("pipelines"),
    );
    sb.write(
        "pipelines/gate.yaml",
        "name: gate\nvariables: { version: \"1.0\" }\nphases:\n  - name: ship\n    tasks:\n      \
         - name: promote\n        manual: { prompt: \"Promote ${version}?\" }\n      \
         - name: announce\n        command: { run: [echo, \"shipped ${version}\"] }\n",
    );
    sb
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read pipelines").flatten() {
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            // std::fs::copy keeps the mode: the scripts stay executable.
            std::fs::copy(&path, &dest).expect("copy");
        }
    }
}

/// Runs `node tests/browser/<scenario>.mjs` against `server`; panics with its output unless
/// it exits 0 and reports `ok: <scenario>`.
fn run_scenario(server: &Server, scenario: &str) -> String {
    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/browser-screenshots")
        .join(scenario);
    let out = Command::new("node")
        .arg(browser_dir().join(format!("{scenario}.mjs")))
        .current_dir(browser_dir())
        .env("RELFLOW_URL", &server.url)
        .env("RELFLOW_TOKEN", &server.operator)
        .env("RELFLOW_VIEWER_TOKEN", &server.viewer)
        .env("RELFLOW_SCREENSHOTS", &shots)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("ok: {scenario}")),
        "browser scenario {scenario} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n{}",
        out.status,
        server.output()
    );
    assert!(
        shots.read_dir().is_ok_and(|mut d| d.next().is_some()),
        "scenario {scenario} saved no screenshot in {}",
        shots.display()
    );
    stdout
}

#[test]
fn browser_login_refuses_a_wrong_token_and_a_form_without_the_csrf_token() {
    require_browser_tools();
    let sb = sandbox_with_pipelines();
    let server = serve(&sb);
    run_scenario(&server, "login");
}

#[test]
fn browser_seed_fails_live_then_restart_phase_completes_and_one_component_rolls_back() {
    require_browser_tools();
    let sb = sandbox_with_pipelines();
    let server = serve(&sb);
    run_scenario(&server, "seed");
    // What the browser did is what the store holds.
    let status = sb.run(&["status", "petportal-1", "--json"]);
    status.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("status json");
    assert_eq!(doc["status"], "completed");
    assert_eq!(doc["variables"]["version"], "2.3");
    let targets = sb.run(&["targets"]);
    assert!(
        targets
            .stdout
            .contains("web removed by rollback of petportal-1 by ops"),
        "{}",
        targets.stdout
    );
    assert!(!sb.exists(".relflow-demo/petportal/web"));
    assert!(sb.exists(".relflow-demo/petportal/api"));
}

#[test]
fn browser_approve_records_the_comment_and_a_stale_form_shows_the_refusal() {
    require_browser_tools();
    let sb = sandbox_with_pipelines();
    let server = serve(&sb);
    let out = run_scenario(&server, "approve");
    assert!(out.contains("refusal shown:"), "{out}");
    let status = sb.run(&["status", "gate-1"]);
    assert!(
        status
            .stdout
            .contains("ops ran relflow approve: \"looks good\""),
        "{}",
        status.stdout
    );
}

#[test]
fn browser_viewer_sees_no_action_buttons_and_cannot_post_an_action() {
    require_browser_tools();
    let sb = sandbox_with_pipelines();
    sb.run(&["run", "pipelines/petportal.yaml", "--var", "version=2.2"])
        .expect_code(4);
    let server = serve(&sb);
    run_scenario(&server, "viewer");
}
