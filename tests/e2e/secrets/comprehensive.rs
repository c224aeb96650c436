//! The secrets test issue 10 asks for: one release with `SECRET=Sup3r-S3cret-Val_42` goes
//! through a failure and `relflow retry`, a retry by policy, a Rhai policy, a manual gate and
//! `approve`, a crash and a `resume` traced with `RUST_LOG=trace`, a local deployment whose
//! health check gets the secret, an XL Deploy deployment whose error page echoes the
//! basic-auth header, and a release rollback; then every file in the sandbox (state, store,
//! target, work files, locks), every table of the store and everything every command printed
//! is searched for the secret, its base64, its halves, and the basic-auth header.

use super::xld::{basic_auth_forms, echoing_page, fake};
use super::{SECRET, assert_clean_of, assert_files_clean, forbidden, store_rows};
use crate::fake_xld::FaultKind;
use crate::harness::{Outcome, Sandbox};

fn pipeline(url: &str) -> String {
    format!(
        r#"
name: everything
variables:
  token: {{ value: "", secret: true }}
backends:
  here: {{ kind: local, target: target }}
  xld: {{ kind: xl-deploy, url: "{url}", username: admin, password: "${{env.XLD_PASSWORD}}", polling_interval: 100ms }}
rollback: {{ undo_completed: true, run: [sh, -c, 'echo "flow rollback with $SECRET"'] }}
phases:
  - name: build
    tasks:
      - name: makes-token
        command:
          run: [sh, -c, 'echo "token=$SECRET" >> "$RELFLOW_OUTPUT"; echo "made $SECRET"; echo "to stderr $SECRET" >&2; printf "%65527s" "" | tr " " x; echo "$SECRET"']
      - name: flaky
        command:
          run: [sh, -c, 'if [ -e flaked ]; then echo "second try $1"; else touch flaked; echo "first try $1"; exit 3; fi', sh, "${{token}}"]
        on_failure: {{ then: pause }}
      - name: judged
        command: {{ run: ["./no-such-${{env.SECRET}}"] }}
        on_failure: {{ script: policies/judge.rhai }}
  - name: deploy
    on_failure: {{ retry: {{ retries: 1, when: [bad_request], delay: 10ms, jitter: false }}, then: rollback_release }}
    tasks:
      - name: gate
        manual: {{ prompt: "deploy?" }}
      - name: deploy-local
        deploy:
          backend: here
          package: App/1.0
          verify: [sh, -c, 'test "$1" = "$SECRET" && echo "verified with $1"', sh, "${{token}}"]
      - name: deploy-xld
        deploy: {{ backend: xld, package: "Applications/PetPortal/2.2", environment: Environments/Prod }}
      - name: smoke
        command: {{ run: [sh, -c, 'echo "smoke fails with $1"; exit 1', sh, "${{token}}"] }}
        on_failure:
          then: rollback_release
          actions:
            - run: [sh, -c, 'echo "action sees $SECRET"']
"#
    )
}

const POLICY: &str = r#"
fn reversed(s) { let r = ""; for c in s { r = c.to_string() + r; } r }
print(reversed(failure.message));
print(vars.token);
for line in failure.log_tail { print(reversed(line)); }
ignore()
"#;

#[tokio::test(flavor = "multi_thread")]
async fn no_form_of_the_secret_is_left_anywhere() {
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
    sb.env("SECRET", SECRET).env("XLD_PASSWORD", SECRET);
    sb.write("p.yaml", &pipeline(&fake.url()));
    sb.write("policies/judge.rhai", POLICY);
    sb.write("packages/App/1.0/web/index.html", "v1\n");
    let mut printed: Vec<(String, Outcome)> = Vec::new();
    let mut step = async |args: &[&str], env: &[(&str, &str)], code: i32| {
        let mut command = sb.command(args);
        command.envs(env.iter().copied());
        let out = tokio::task::spawn_blocking(move || command.output().expect("spawn"))
            .await
            .expect("join");
        let out = Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        out.expect_code(code);
        printed.push((format!("{args:?} {env:?}"), out));
    };
    step(&["run", "p.yaml"], &[], 1).await;
    step(&["retry", "everything-1", "--task", "flaky"], &[], 5).await;
    step(
        &["approve", "everything-1", "--task", "gate"],
        &[("RELFLOW_FAILPOINT", "local.component@1")],
        -1,
    )
    .await;
    step(&["resume", "everything-1"], &[("RUST_LOG", "trace")], 4).await;
    for args in [
        &["status", "everything-1"][..],
        &["status", "everything-1", "--json"],
        &["list"],
        &["list", "--json"],
        &["logs", "everything-1"],
        &["logs", "everything-1", "--task", "deploy-xld"],
        &["logs", "everything-1", "--task", "smoke"],
    ] {
        step(args, &[("RUST_LOG", "trace")], 0).await;
    }
    step(&["resume", "everything-1"], &[("RUST_LOG", "trace")], 2).await;

    // What happened is what the scenario says, so the search below covers real content.
    let state = ".relflow/releases/everything-1";
    let read = |path: &str| sb.read(&format!("{state}/{path}"));
    assert!(read("build/flaky/script_output.log").contains("second try ***"));
    assert!(read("build/judged/script_output.log").contains("Policy: "));
    assert!(read("deploy/deploy-local/script_output.log").contains("verified with ***"));
    let xld_log = read("deploy/deploy-xld/script_output.log");
    assert!(xld_log.contains("Authorization: Basic ***"), "{xld_log}");
    assert!(xld_log.contains("=== attempt 2 ==="), "{xld_log}");
    let smoke = read("deploy/smoke/script_output.log") + read("deploy/smoke/rollback.log").as_str();
    assert!(smoke.contains("action sees ***"), "{smoke}");
    assert!(smoke.contains("flow rollback with ***"), "{smoke}");
    assert!(
        smoke.contains("undo completed deployment deploy-xld: ok"),
        "{smoke}"
    );
    let trace = &printed[3].1.stderr;
    assert!(
        trace.contains("TRACE") || trace.contains("DEBUG"),
        "traced: {trace}"
    );
    assert_eq!(
        fake.deployed("Environments/Prod", "PetPortal"),
        None,
        "the XL Deploy deployment was rolled back"
    );

    let mut forms = forbidden();
    forms.extend(basic_auth_forms());
    forms.push(("the secret reversed", SECRET.chars().rev().collect()));
    for (what, out) in &printed {
        assert_clean_of(&format!("stdout of {what}"), &out.stdout, &forms);
        assert_clean_of(&format!("stderr of {what}"), &out.stderr, &forms);
    }
    let files = assert_files_clean(sb.path(), &forms);
    assert!(files > 20, "{files} files searched");
    assert!(sb.exists("target/.relflow-version") || sb.exists("target"));
    let rows = store_rows(&sb.path().join(".relflow/relflow.db"));
    for table in [
        "decisions",
        "attempts",
        "task_runs",
        "phase_runs",
        "secret_values",
    ] {
        assert!(rows.contains(table), "table {table} has rows");
    }
    assert_clean_of("the store's rows", &rows, &forms);
}
