//! Rolling back chosen components of a completed deployment through the API (Flosum's picker).

use serde_json::json;

use super::{Server, body_json, expect_error};
use crate::harness::{Sandbox, wait_until};

const APP: &str = r#"
name: app
variables: { version: "1.0" }
backends:
  prod: { kind: local, target: ../target, packages: packages }
phases:
  - name: deploy
    tasks:
      - { name: ship, deploy: { backend: prod, package: "App/${version}" } }
"#;

fn packages(sb: &Sandbox) {
    for version in ["1.0", "2.0"] {
        sb.write(
            &format!("pipelines/packages/App/{version}/web/index.html"),
            version,
        );
        sb.write(
            &format!("pipelines/packages/App/{version}/api/main.txt"),
            version,
        );
    }
}

#[test]
fn rollback_of_one_component_through_the_api_reverts_only_it() {
    let sb = Sandbox::new();
    sb.write("pipelines/app.yaml", APP);
    packages(&sb);
    let server = Server::start(&sb);
    let op = server.token.clone();
    for (release, vars) in [("app-1", json!({})), ("app-2", json!({ "version": "2.0" }))] {
        let started = server.post(
            "/releases",
            Some(&op),
            &json!({ "pipeline": "app.yaml", "vars": vars }),
        );
        assert_eq!(started.status().as_u16(), 202);
        server.wait_for(release, |s| s == "completed");
    }
    assert_eq!(sb.read("target/web/index.html"), "2.0");

    let unknown = expect_error(
        server.post(
            "/releases/app-2/rollback",
            Some(&op),
            &json!({ "components": ["db"] }),
        ),
        409,
    );
    assert!(unknown.contains("deployed no component `db`"), "{unknown}");

    let body = json!({ "task": "ship", "components": ["web"], "comment": "web broke" });
    let answer = server.post("/releases/app-2/rollback", Some(&op), &body);
    assert_eq!(answer.status().as_u16(), 202);
    let mut doc = serde_json::Value::Null;
    let done = wait_until(60, || {
        doc = body_json(server.get("/releases/app-2", Some(&op)));
        doc["phases"][0]["tasks"][0]["rollback_jobs"][0]["status"] == "completed"
    });
    assert!(done, "{doc:#}");
    assert_eq!(sb.read("target/web/index.html"), "1.0");
    assert_eq!(
        sb.read("target/api/main.txt"),
        "2.0",
        "only web was rolled back"
    );
    let text = sb.run(&["status", "app-2"]).stdout;
    assert!(
        text.contains("admin") && text.contains("web broke"),
        "{text}"
    );
}
