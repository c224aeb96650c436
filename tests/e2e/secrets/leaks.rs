//! The leaks of issue 10, one test each: a health check's argv in `plan.json`, a
//! `$RELFLOW_OUTPUT` file left by a killed runner, what a Rhai policy sees, a secret split by
//! the 64 KiB line cut, a multi-line secret, a validation excerpt. (The XL Deploy ones are in
//! `xld.rs`.)

use std::path::Path;

use super::{SECRET, assert_clean, assert_clean_of, assert_files_clean, forbidden, mode};
use crate::harness::Sandbox;

fn sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.env("SECRET", SECRET);
    sb
}

/// A local deployment whose health check gets the secret as an argument and checks it is
/// the real value (exit 1 on `***`).
fn local_pipeline(sb: &Sandbox) {
    sb.write("packages/App/1.0/web/index.html", "v1\n");
    sb.write("packages/App/1.0/docs/readme.txt", "docs\n");
    sb.write(
        "p.yaml",
        r#"
name: checked
backends:
  here: { kind: local, target: target }
phases:
  - name: deploy
    tasks:
      - name: deploy-app
        deploy:
          backend: here
          package: App/1.0
          verify: [sh, -c, 'test "$1" = "$SECRET" && echo "health check got the real token"', sh, "${env.SECRET}"]
"#,
    );
}

const WORK: &str = ".relflow/releases/checked-1/deploy/deploy-app/deploy";

/// Finding 1: the health check's argv was written plain into `plan.json` (0644, 0666 under
/// umask 000). Now the work files hold no secret and are 0600 whatever the umask, and the
/// check still runs with the real value, also when a resumed runner finishes the deploy.
#[test]
fn plan_json_keeps_no_secret_and_work_files_are_private() {
    let sb = sandbox();
    local_pipeline(&sb);
    let crashed = sb.run_crashing_at(&["run", "p.yaml"], "local.component", 1);
    assert_eq!(crashed.code, -1, "the failpoint fired: {crashed:?}");
    let plan = sb.path().join(WORK).join("plan.json");
    assert!(plan.exists(), "the deploy had written its plan");
    let resumed = super::run_with_umask(&sb, "000", &["resume", "checked-1"]);
    resumed.expect_code(0);
    let log = sb.read(".relflow/releases/checked-1/deploy/deploy-app/script_output.log");
    assert!(log.contains("health check got the real token"), "{log}");
    assert!(log.contains("Re-attaching to the deployment"), "{log}");
    let work = sb.path().join(WORK);
    assert!(assert_files_clean(&work, &forbidden()) >= 3);
    for (path, _) in super::files_under(&work) {
        if path.parent() == Some(work.as_path()) {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

/// Finding 1 again, without a crash: a fresh deploy under umask 000.
#[test]
fn work_files_of_a_fresh_deploy_are_private_under_umask_000() {
    let sb = sandbox();
    local_pipeline(&sb);
    super::run_with_umask(&sb, "000", &["run", "p.yaml"]).expect_code(0);
    let plan = sb.path().join(WORK).join("plan.json");
    assert_eq!(mode(&plan), 0o600);
    assert_clean("plan.json", &sb.read(&format!("{WORK}/plan.json")));
    assert_eq!(mode(&sb.path().join(WORK).join("manifest.json")), 0o600);
}

/// The exec backend's record of its deploy command is a work file too: 0600 under umask 000.
#[test]
fn the_exec_backend_record_is_private_under_umask_000() {
    let sb = sandbox();
    sb.write(
        "p.yaml",
        r#"
name: execd
backends:
  cmd: { kind: exec, deploy: [sh, -c, 'echo "deploying ${application} ${version} with $1"', sh, "${env.SECRET}"] }
phases:
  - name: deploy
    tasks:
      - name: deploy-app
        deploy: { backend: cmd, package: App/1.0 }
"#,
    );
    super::run_with_umask(&sb, "000", &["run", "p.yaml"]).expect_code(0);
    let work = sb
        .path()
        .join(".relflow/releases/execd-1/deploy/deploy-app/deploy");
    assert_eq!(mode(&work.join("exec.json")), 0o600);
    let log = sb.read(".relflow/releases/execd-1/deploy/deploy-app/script_output.log");
    assert!(log.contains("deploying App 1.0 with ***"), "{log}");
    assert_files_clean(&sb.path().join(".relflow"), &forbidden());
}

/// Finding 2: `relflow_output.env` (where a task writes `token=...`) stayed on disk after the
/// runner was killed and the release aborted. Abort (like any command that takes the release
/// over) deletes it; and it is created 0600 whatever the umask.
#[test]
fn the_output_file_of_a_killed_runner_is_deleted_by_abort() {
    let sb = sandbox();
    sb.write(
        "p.yaml",
        r#"
name: killed
variables: { token: "" }
phases:
  - name: a
    tasks:
      - name: writes-then-kills
        command:
          run: [sh, -c, 'echo "token=$SECRET" >> "$RELFLOW_OUTPUT"; kill -9 $PPID; sleep 10']
"#,
    );
    let run = super::run_with_umask(&sb, "000", &["run", "p.yaml"]);
    assert_ne!(run.code, 0, "{run:?}");
    let task_dir = ".relflow/releases/killed-1/a/writes-then-kills";
    let output = format!("{task_dir}/relflow_output.env");
    assert!(
        sb.exists(&output),
        "the scenario leaves the file behind ({run:?})"
    );
    assert_eq!(
        mode(&sb.path().join(&output)),
        0o600,
        "private under umask 000"
    );
    sb.run(&["abort", "killed-1"]).expect_code(3);
    assert!(!sb.exists(&output), "abort deleted {output}");
    assert_files_clean(&sb.path().join(".relflow"), &forbidden());
}

/// Finding 3: a Rhai policy read the raw secret in `failure.message` and printed it reversed
/// and spaced out, past the redactor. Now it sees `***` in the message, the log tail and
/// `vars`.
#[test]
fn a_policy_script_never_sees_the_secret() {
    let sb = sandbox();
    sb.write(
        "policies/leak.rhai",
        r#"
fn reversed(s) { let r = ""; for c in s { r = c.to_string() + r; } r }
fn spaced(s) { let r = ""; for c in s { r += c.to_string() + " "; } r }
print(reversed(failure.message));
print(spaced(failure.message));
print(reversed(vars.token));
let tail = "";
for line in failure.log_tail { tail += line; }
print(reversed(tail));
pause()
"#,
    );
    sb.write(
        "p.yaml",
        r#"
name: scripted
variables: { token: "" }
phases:
  - name: a
    tasks:
      - name: sets-token
        command: { run: [sh, -c, 'echo "token=$SECRET" >> "$RELFLOW_OUTPUT"'] }
      - name: fails
        command: { run: ["./no-such-program-${env.SECRET}"] }
        on_failure: { script: policies/leak.rhai }
"#,
    );
    let run = sb.run(&["run", "p.yaml"]);
    run.expect_code(1);
    let reversed: String = SECRET.chars().rev().collect();
    let spaced: String = SECRET.chars().map(|c| format!("{c} ")).collect();
    let mut forms = forbidden();
    forms.push(("the secret reversed", reversed));
    forms.push(("the secret spaced out", spaced.trim_end().to_string()));
    let log = sb.read(".relflow/releases/scripted-1/a/fails/script_output.log");
    assert!(log.contains("Policy: "), "{log}");
    assert!(
        log.contains("***"),
        "the policy printed the masked message: {log}"
    );
    assert_files_clean(&sb.path().join(".relflow"), &forms);
    for args in [
        &["status", "scripted-1"][..],
        &["status", "scripted-1", "--json"],
        &["logs", "scripted-1"],
    ] {
        let out = sb.run(args);
        assert_clean_of(&format!("{args:?}"), &out.stdout, &forms);
    }
    assert_clean_of("run", &format!("{}{}", run.stdout, run.stderr), &forms);
}

/// Finding 4: a line longer than 64 KiB was cut inside the secret, leaving `Sup3r-S3c` at the
/// end of one log line and `ret-Val_42` at the start of the next. The cut now moves before it.
#[test]
fn a_64k_line_never_splits_a_secret() {
    let sb = sandbox();
    // 65,527 `x` + the secret: the 64 KiB (65,536 bytes) cut falls 9 bytes into the secret.
    sb.write(
        "p.yaml",
        r#"
name: longline
phases:
  - name: a
    tasks:
      - name: prints-long
        command:
          run: [sh, -c, 'printf "%65527s" "" | tr " " x; printf "%s tail\n" "$TOKEN"; echo done']
          env: { TOKEN: "${env.SECRET}" }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(0);
    let log = sb.read(".relflow/releases/longline-1/a/prints-long/script_output.log");
    assert_clean("script_output.log", &log);
    assert!(log.contains("*** tail"), "the secret was masked whole");
    assert!(log.lines().any(|l| l == "done"));
    assert_files_clean(&sb.path().join(".relflow"), &forbidden());
}

const PEM_BODY: [&str; 3] = [
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu",
    "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ",
];

/// Finding 5: a multi-line secret (a PEM key) printed by a task is logged line by line, and
/// no line matched the whole value. Each line of it is masked now.
#[test]
fn a_multi_line_secret_is_masked_line_by_line() {
    let mut sb = sandbox();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
        PEM_BODY.join("\n")
    );
    sb.env("TLS_KEY", &pem);
    sb.write(
        "p.yaml",
        r#"
name: pem
phases:
  - name: a
    tasks:
      - name: prints-key
        command:
          run: [sh, -c, 'printf "%s\n" "$KEY"; exit 1']
          env: { KEY: "${env.TLS_KEY}" }
"#,
    );
    let run = sb.run(&["run", "p.yaml"]);
    run.expect_code(1);
    let log = sb.read(".relflow/releases/pem-1/a/prints-key/script_output.log");
    assert!(
        log.contains("-----BEGIN PRIVATE KEY-----\n***\n***\n***\n"),
        "{log}"
    );
    let forms: Vec<(&str, String)> = PEM_BODY
        .iter()
        .map(|line| ("a line of the key", line.to_string()))
        .collect();
    assert_files_clean(&sb.path().join(".relflow"), &forms);
    assert_clean_of("logs", &sb.run(&["logs", "pem-1"]).stdout, &forms);
}

/// Finding 7: a validation error on the password's line printed the line, password and all.
#[test]
fn a_validation_excerpt_masks_the_password() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: badkey
backends:
  xld: {{ kind: xl-deploy, url: "http://127.0.0.1:1", username: admin, password: "{SECRET}", pasword_typo: x }}
phases:
  - name: a
    tasks:
      - {{ name: t, wait: 0s }}
"#
        ),
    );
    for verb in ["validate", "run"] {
        let out = sb.run(&[verb, "p.yaml"]);
        out.expect_code(2);
        assert!(out.stderr.contains("pasword_typo"), "{}", out.stderr);
        assert!(out.stderr.contains("password: ***"), "{}", out.stderr);
        assert_clean(&format!("{verb} stderr"), &out.stderr);
    }
    assert!(!Path::new(&sb.path().join(".relflow/releases")).exists());
}
