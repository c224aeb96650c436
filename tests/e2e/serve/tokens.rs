//! Tokens: created once, listed without the secret, revoked (its sessions end); the first
//! serve's operator token; login sessions with CSRF; non-loopback needs TLS.

use serde_json::json;

use super::{Server, body_json, expect_error};
use crate::harness::Sandbox;

#[test]
fn tokens_are_created_listed_and_revoked_and_the_first_serve_prints_one() {
    let sb = Sandbox::new();
    let server = Server::start(&sb);
    assert!(server.token.starts_with("relflow_"), "{}", server.token);
    let created = sb.run(&["token", "create", "ci-bot", "--role", "operator"]);
    created.expect_code(0);
    let bot = created.stdout.trim().to_string();
    assert_eq!(
        created.stdout.lines().count(),
        1,
        "the token alone: {}",
        created.stdout
    );
    sb.run(&["token", "create", "ci-bot", "--role", "viewer"])
        .expect_code(2);

    let listed = sb.run(&["token", "list", "--json"]);
    listed.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&listed.stdout).expect("json");
    assert_eq!(doc["format"], 1);
    let names: Vec<&str> = doc["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["admin", "ci-bot"]);
    assert_eq!(doc["tokens"][1]["role"], "operator");
    let store = std::fs::read(sb.path().join(".relflow/relflow.db")).expect("db");
    let plain = bot.as_bytes();
    assert!(
        !store.windows(plain.len()).any(|w| w == plain),
        "the store keeps only a hash"
    );
    assert!(!listed.stdout.contains(&bot));

    assert_eq!(server.get("/releases", Some(&bot)).status().as_u16(), 200);
    sb.run(&["token", "revoke", "ci-bot"]).expect_code(0);
    expect_error(server.get("/releases", Some(&bot)), 401);
    sb.run(&["token", "revoke", "ci-bot"]).expect_code(2);
    drop(server);

    // A second start on a store with tokens prints none.
    let again = Server::start(&sb);
    assert_eq!(again.token, "", "no new token on a store that has some");
}

#[test]
fn a_login_session_reads_and_its_writes_need_the_csrf_token_until_the_token_is_revoked() {
    let sb = Sandbox::new();
    sb.write("pipelines/gated.yaml", super::GATED);
    let server = Server::start(&sb);
    let root = server.base.trim_end_matches("/api/v1").to_string();
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = client
        .get(format!("{root}/login"))
        .send()
        .expect("login page");
    assert!(form.text().expect("html").contains("name=\"token\""));
    let bad = client
        .post(format!("{root}/login"))
        .form(&[("token", "relflow_wrong")])
        .send()
        .expect("login");
    assert_eq!(bad.status().as_u16(), 401);
    let login = client
        .post(format!("{root}/login"))
        .form(&[("token", server.token.as_str())])
        .send()
        .expect("login");
    assert_eq!(login.status().as_u16(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let session = cookie.split(';').next().expect("pair").to_string();
    let with_cookie = |path: &str| {
        client
            .get(server.url(path))
            .header("cookie", &session)
            .send()
            .expect("get")
    };
    assert_eq!(with_cookie("/releases").status().as_u16(), 200);
    // A write with the cookie but without the session's CSRF token is refused.
    let start = client
        .post(server.url("/releases"))
        .header("cookie", &session)
        .header("content-type", "application/json")
        .body(json!({ "pipeline": "gated.yaml" }).to_string())
        .send()
        .expect("post");
    let message = expect_error(start, 403);
    assert!(message.contains("CSRF"), "{message}");
    sb.run(&["token", "revoke", "admin"]).expect_code(0);
    expect_error(with_cookie("/releases"), 401);
    assert_eq!(
        body_json(server.get("/releases", None))["error"]["code"],
        "unauthorized"
    );
}

#[test]
fn a_non_loopback_address_needs_tls_or_insecure_http() {
    let sb = Sandbox::new();
    let out = sb.run(&["serve", "--listen", "0.0.0.0:0"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("not a loopback address"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--tls-cert"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "no token printed: {}", out.stdout);
}

#[test]
fn every_page_without_a_session_leads_to_the_login_page_and_every_fragment_is_refused() {
    let sb = Sandbox::new();
    let server = Server::start(&sb);
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let root = server.base.trim_end_matches("/api/v1");
    for page in ["/", "/releases/nope-1", "/start", "/start?pipeline=p.yaml"] {
        let answer = client.get(format!("{root}{page}")).send().expect("GET");
        assert_eq!(answer.status().as_u16(), 303, "{page}");
        let to = answer.headers()["location"].to_str().unwrap_or_default();
        assert!(to.ends_with("/login"), "{page} → {to}");
    }
    // A post is judged by its session before its body: a stranger's unreadable form too.
    for post in ["/releases/nope-1/actions/retry", "/start"] {
        let answer = client
            .post(format!("{root}{post}"))
            .header("content-type", "application/json")
            .body("{not a form")
            .send()
            .expect("POST");
        assert_eq!(answer.status().as_u16(), 303, "{post}");
    }
    for fragment in [
        "/releases/nope-1/fragment",
        "/api/v1/releases",
        "/api/v1/targets",
    ] {
        let answer = client.get(format!("{root}{fragment}")).send().expect("GET");
        assert_eq!(answer.status().as_u16(), 401, "{fragment}");
    }
}

#[test]
fn the_release_list_poll_costs_a_304_while_its_rows_are_unchanged() {
    let sb = Sandbox::new();
    let server = Server::start(&sb);
    let root = server.base.trim_end_matches("/api/v1");
    let rows = |etag: Option<&str>| {
        let mut request = server
            .client
            .get(format!("{root}/fragments/releases"))
            .bearer_auth(&server.token);
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        request.send().expect("GET rows")
    };
    let first = rows(None);
    assert_eq!(first.status().as_u16(), 200);
    let etag = first.headers()["etag"].to_str().expect("etag").to_string();
    assert_eq!(rows(Some(&etag)).status().as_u16(), 304);
    sb.write("p.yaml", "name: p\nphases:\n  - name: a\n    tasks:\n      - { name: t, command: { run: [\"true\"] } }\n");
    sb.run(&["run", "p.yaml"]).expect_code(0);
    let changed = rows(Some(&etag));
    assert_eq!(
        changed.status().as_u16(),
        200,
        "a new release changes the rows"
    );
    assert!(changed.text().expect("body").contains("p-1"));
}
