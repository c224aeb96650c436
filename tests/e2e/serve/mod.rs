//! `relflow serve`: the JSON API over real HTTP on 127.0.0.1 against a `relflow-e2e serve`
//! child, with tokens, roles, refusals, the event stream and actions.

mod api;
mod live;
mod rollback;
mod tls;
mod tokens;

use std::io::{BufRead, BufReader};
use std::process::Child;

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;

use crate::harness::{Sandbox, wait_until};

/// A manual gate between two commands.
pub const GATED: &str = r#"
name: gated
variables: { version: "2.3" }
phases:
  - name: deploy
    tasks:
      - { name: before, command: { run: [echo, "before ${version}"] } }
      - { name: promote, manual: { prompt: "Promote ${version}?" } }
      - { name: after, command: { run: [touch, after-ran] } }
"#;

/// Fails while `version` is `bad`: the release halts for a person.
pub const FLAKY: &str = r#"
name: flaky
variables: { version: "bad" }
phases:
  - name: deploy
    tasks:
      - { name: check, command: { run: [test, "${version}", "!=", "bad"] } }
"#;

/// A running `relflow serve` and the operator token its first start printed.
pub struct Server {
    child: Child,
    pub base: String,
    pub token: String,
    pub client: Client,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl Server {
    /// Starts `serve --pipelines pipelines` in the sandbox and waits until it answers.
    pub fn start(sb: &Sandbox) -> Server {
        let client = Client::builder().build().expect("client");
        Server::start_with(sb, "127.0.0.1", &[], "http", client)
    }

    /// Starts `serve` on `host` with `extra` options, reached over `scheme` with `client`.
    pub fn start_with(
        sb: &Sandbox,
        host: &str,
        extra: &[&str],
        scheme: &str,
        client: Client,
    ) -> Server {
        std::fs::create_dir_all(sb.path().join("pipelines")).expect("mkdir");
        let port = free_port();
        let listen = format!("{host}:{port}");
        let mut args = vec!["serve", "--listen", &listen, "--pipelines", "pipelines"];
        args.extend(extra);
        let mut child = sb.spawn(&args);
        // stderr says whether a token follows on stdout, then where it listens.
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut first_token = false;
        loop {
            let mut line = String::new();
            let read = stderr.read_line(&mut line).expect("stderr");
            assert!(read > 0, "relflow serve ended before it listened");
            first_token |= line.starts_with("No tokens yet");
            if line.contains("listening on") {
                break;
            }
        }
        // Drained from now on, so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let mut token = String::new();
        if first_token {
            let stdout = child.stdout.take().expect("stdout");
            BufReader::new(stdout)
                .read_line(&mut token)
                .expect("token line");
        }
        let base = format!("{scheme}://127.0.0.1:{port}/api/v1");
        let up = wait_until(30, || client.get(format!("{base}/releases")).send().is_ok());
        assert!(up, "relflow serve did not answer on {listen}");
        Server {
            child,
            base,
            token: token.trim().to_string(),
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        send(self.client.get(self.url(path)), token)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        send(request, token)
    }

    /// The release document once `done(status)` holds.
    pub fn wait_for(&self, release: &str, done: impl Fn(&str) -> bool) -> Value {
        let mut doc = Value::Null;
        let reached = wait_until(60, || {
            doc = body_json(self.get(&format!("/releases/{release}"), Some(&self.token)));
            doc["status"].as_str().is_some_and(&done)
        });
        assert!(reached, "release {release} did not get there: {doc:#}");
        doc
    }
}

impl Server {
    pub fn child(&self) -> &Child {
        &self.child
    }

    /// Waits for the server to exit (after a signal); its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let exited = wait_until(60, || self.child.try_wait().ok().flatten().is_some());
        assert!(exited, "relflow serve did not exit");
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        crate::harness::signal(&self.child, libc::SIGTERM);
        let _ = self.child.wait();
    }
}

pub fn send(request: RequestBuilder, token: Option<&str>) -> Response {
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().expect("request")
}

pub fn body_json(response: Response) -> Value {
    let text = response.text().expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts the status and the error document `{format, error: {code, message}}`; returns
/// the message.
#[track_caller]
pub fn expect_error(response: Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status, "status");
    let doc = body_json(response);
    assert_eq!(doc["format"], 1, "{doc}");
    assert!(doc["error"]["code"].is_string(), "{doc}");
    doc["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {doc}"))
        .to_string()
}
