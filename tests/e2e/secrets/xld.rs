//! XL Deploy's password: a literal one is not kept in the stored pipeline text (and `approve`
//! still authenticates), and an error page that echoes the `Authorization: Basic` header is
//! masked before it is cut into an excerpt.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{SECRET, assert_clean_of, assert_files_clean, forbidden, store_rows};
use crate::fake_xld::{FakeXld, FaultKind};
use crate::harness::{Outcome, Sandbox};

const PROD: &str = "Environments/Prod";

/// Runs the CLI off the async runtime (the fake answers on the runtime's other threads).
pub async fn relflow(sb: &Sandbox, args: &[&str]) -> Outcome {
    sb.run_async(args).await
}

/// A fake that accepts `admin` with [`SECRET`] only.
pub async fn fake() -> FakeXld {
    let fake = FakeXld::start().await;
    fake.world().password = SECRET.to_string();
    fake.with_package("Applications/PetPortal/2.2");
    fake
}

/// The basic-auth header value for `admin`:[`SECRET`], and its halves.
pub fn basic_auth_forms() -> Vec<(&'static str, String)> {
    let header = STANDARD.encode(format!("admin:{SECRET}"));
    let half = header.len() / 2;
    vec![
        ("the basic-auth base64", header.clone()),
        ("its first half", header[..half].to_string()),
        ("its second half", header[half..].to_string()),
    ]
}

/// An HTML error page that echoes the request's headers, as some proxies do. The padding puts
/// the header across the 200th character, where the error message's excerpt is cut.
pub fn echoing_page() -> String {
    format!(
        "<html><body><h1>400 Bad Request</h1><pre>{} GET /deployit/deployment/exists HTTP/1.1\n\
         Host: xld\nAuthorization: Basic {}\nAccept: */*</pre></body></html>",
        "request dump follows: ".repeat(3),
        STANDARD.encode(format!("admin:{SECRET}"))
    )
}

/// Finding 6: a literal password was kept in the store's copy of the pipeline. It is masked
/// there and kept encrypted, so `approve` (a new runner, reading the stored text) still
/// authenticates.
#[tokio::test(flavor = "multi_thread")]
async fn a_literal_password_is_masked_in_the_stored_pipeline_and_still_works() {
    let fake = fake().await;
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: literal
backends:
  xld: {{ kind: xl-deploy, url: "{}", username: admin, password: "{SECRET}", polling_interval: 100ms }}
phases:
  - name: deploy
    tasks:
      - {{ name: gate, manual: {{}} }}
      - name: deploy-petportal
        deploy: {{ backend: xld, package: "Applications/PetPortal/2.2", environment: {PROD} }}
"#,
            fake.url()
        ),
    );
    relflow(&sb, &["run", "p.yaml"]).await.expect_code(5);
    let rows = store_rows(&sb.path().join(".relflow/relflow.db"));
    assert!(rows.contains("password: \"***\""), "{rows}");
    assert_clean_of("the store's rows", &rows, &forbidden());
    assert_files_clean(&sb.path().join(".relflow"), &forbidden());
    let approve = relflow(&sb, &["approve", "literal-1", "--task", "gate"]).await;
    approve.expect_code(0);
    assert_eq!(
        fake.deployed(PROD, "PetPortal").as_deref(),
        Some("Applications/PetPortal/2.2")
    );
    assert_files_clean(&sb.path().join(".relflow"), &forbidden());
}

/// Finding 8: an error page echoing `Authorization: Basic <base64>` was copied into the logs,
/// events, the store and `status` (and cut at 200 characters, half a header at a time).
#[tokio::test(flavor = "multi_thread")]
async fn an_error_page_echoing_basic_auth_is_masked() {
    let fake = fake().await;
    fake.fault(
        "GET",
        "/deployit/deployment/exists",
        FaultKind::Html {
            status: 400,
            body: echoing_page(),
        },
        1,
    );
    let mut sb = Sandbox::new();
    sb.env("XLD_PASSWORD", SECRET);
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: echoed
backends:
  xld: {{ kind: xl-deploy, url: "{}", username: admin, password: "${{env.XLD_PASSWORD}}", polling_interval: 100ms }}
phases:
  - name: deploy
    on_failure: {{ then: pause }}
    tasks:
      - name: deploy-petportal
        deploy: {{ backend: xld, package: "Applications/PetPortal/2.2", environment: {PROD} }}
"#,
            fake.url()
        ),
    );
    let run = relflow(&sb, &["run", "p.yaml"]).await;
    run.expect_code(1);
    let log = sb.read(".relflow/releases/echoed-1/deploy/deploy-petportal/script_output.log");
    assert!(log.contains("Authorization: Basic ***"), "{log}");
    let mut forms = forbidden();
    forms.extend(basic_auth_forms());
    assert_files_clean(&sb.path().join(".relflow"), &forms);
    let rows = store_rows(&sb.path().join(".relflow/relflow.db"));
    assert_clean_of("the store's rows", &rows, &forms);
    for args in [
        &["status", "echoed-1"][..],
        &["status", "echoed-1", "--json"],
        &["logs", "echoed-1"],
    ] {
        let out = relflow(&sb, args).await;
        assert_clean_of(
            &format!("{args:?}"),
            &format!("{}{}", out.stdout, out.stderr),
            &forms,
        );
    }
    assert_clean_of("run", &format!("{}{}", run.stdout, run.stderr), &forms);
}
