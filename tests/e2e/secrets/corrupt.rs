//! Redaction never changes a value relflow uses: a secret a task writes to `$RELFLOW_OUTPUT`
//! reaches the next task whole after a manual gate, a crash and `resume`, or a `--var`, while
//! the store keeps only `***` and ciphertext.

use super::{SECRET, assert_files_clean, forbidden, store_rows};
use crate::harness::Sandbox;

/// `token` is declared secret; `copy` is not, but gets a value that holds the secret. The
/// last task exits 0 only when both are the real value.
const PIPELINE: &str = r#"
name: gated
variables:
  token: { value: "", secret: true }
  copy: ""
  plain: visible-value
phases:
  - name: a
    tasks:
      - name: makes-token
        command:
          run: [sh, -c, 'echo "token=$MADE" >> "$RELFLOW_OUTPUT"; echo "copy=Bearer $MADE" >> "$RELFLOW_OUTPUT"']
          env: { MADE: "${env.SECRET}" }
      - name: gate
        manual: { prompt: "ship it?" }
      - name: uses-token
        command:
          run: [sh, -c, 'test "$TOKEN" = "$EXPECTED" && test "$COPY" = "Bearer $EXPECTED" && echo "got the real token"']
          env: { TOKEN: "${token}", COPY: "${copy}", EXPECTED: "${env.SECRET}" }
"#;

fn sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.env("SECRET", SECRET);
    sb.write("p.yaml", PIPELINE);
    sb
}

fn assert_store_masked(sb: &Sandbox) {
    let rows = store_rows(&sb.path().join(".relflow/relflow.db"));
    assert!(rows.contains(r#""token":"***""#), "{rows}");
    assert!(
        rows.contains("secret_values"),
        "the real values are kept: {rows}"
    );
    super::assert_clean_of("the store's rows", &rows, &forbidden());
    assert_files_clean(&sb.path().join(".relflow"), &forbidden());
}

/// The finding: after the manual gate and `approve`, the next task got the literal `***`.
#[test]
fn a_secret_output_survives_a_manual_gate() {
    let sb = sandbox();
    sb.run(&["run", "p.yaml"]).expect_code(5);
    assert_store_masked(&sb);
    let approve = sb.run(&["approve", "gated-1", "--task", "gate"]);
    approve.expect_code(0);
    let log = sb.read(".relflow/releases/gated-1/a/uses-token/script_output.log");
    assert!(log.contains("got the real token"), "{log}");
    assert_store_masked(&sb);
    let json = sb.run(&["status", "gated-1", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(doc["variables"]["token"], "***", "{}", json.stdout);
    assert_eq!(doc["variables"]["copy"], "Bearer ***", "{}", json.stdout);
    assert_eq!(doc["variables"]["plain"], "visible-value");
}

/// The finding as reported, with the variable in its plain form: its value holds a secret,
/// so it is masked in the store and kept encrypted.
#[test]
fn a_plain_variable_holding_a_secret_survives_a_manual_gate() {
    let mut sb = Sandbox::new();
    sb.env("SECRET", SECRET);
    sb.write(
        "p.yaml",
        r#"
name: plain
variables: { token: "" }
phases:
  - name: a
    tasks:
      - name: makes-token
        command: { run: [sh, -c, 'echo "token=$1" >> "$RELFLOW_OUTPUT"', sh, "${env.SECRET}"] }
      - { name: gate, manual: {} }
      - name: uses-token
        command: { run: [sh, -c, 'test "$1" = "$SECRET" && echo "got the real token"', sh, "${token}"] }
"#,
    );
    sb.run(&["run", "p.yaml"]).expect_code(5);
    sb.run(&["approve", "plain-1", "--task", "gate"])
        .expect_code(0);
    let log = sb.read(".relflow/releases/plain-1/a/uses-token/script_output.log");
    assert!(log.contains("got the real token"), "{log}");
    assert_files_clean(&sb.path().join(".relflow"), &forbidden());
}

/// The same across a crash right after the variables were stored, then `resume`.
#[test]
fn a_secret_output_survives_a_crash_and_resume() {
    let sb = sandbox();
    let crashed = sb.run_crashing_at(&["run", "p.yaml"], "store.variables", 1);
    assert_eq!(crashed.code, -1, "{crashed:?}");
    assert_store_masked(&sb);
    sb.run(&["resume", "gated-1"]).expect_code(5);
    sb.run(&["approve", "gated-1", "--task", "gate"])
        .expect_code(0);
    let log = sb.read(".relflow/releases/gated-1/a/uses-token/script_output.log");
    assert!(log.contains("got the real token"), "{log}");
}

/// A secret variable given with `--var` (and a literal secret default) is masked in the
/// store and the stored pipeline text, and used whole after the gate.
#[test]
fn a_secret_var_and_a_literal_secret_default_keep_their_value() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        &format!(
            r#"
name: given
variables:
  token: {{ secret: true, required: true }}
  literal: {{ value: "{SECRET}", secret: true }}
phases:
  - name: a
    tasks:
      - {{ name: gate, manual: {{}} }}
      - name: uses
        command: {{ run: [sh, -c, 'test "$1" = "$2" && echo same', sh, "${{token}}", "${{literal}}"] }}
"#
        ),
    );
    let token = format!("--var=token={SECRET}");
    sb.run(&["run", "p.yaml", &token]).expect_code(5);
    let rows = store_rows(&sb.path().join(".relflow/relflow.db"));
    super::assert_clean_of("the store's rows", &rows, &forbidden());
    assert_files_clean(&sb.path().join(".relflow"), &forbidden());
    sb.run(&["approve", "given-1", "--task", "gate"])
        .expect_code(0);
    let log = sb.read(".relflow/releases/given-1/a/uses/script_output.log");
    assert!(log.contains("same"), "{log}");
    assert!(log.contains("$ sh -c"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
}

/// `required: true` without a value refuses the run before anything is recorded.
#[test]
fn a_required_variable_without_value_is_refused() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: req\nvariables:\n  token: { required: true, secret: true }\n  other: x\nphases:\n  - name: a\n    tasks:\n      - { name: t, wait: 0s }\n",
    );
    sb.run(&["validate", "p.yaml"]).expect_code(0);
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(2);
    assert!(out.stderr.contains("token"), "{}", out.stderr);
    assert!(out.stderr.contains("required: true"), "{}", out.stderr);
    assert!(!sb.exists(".relflow/releases"));
    sb.run(&["run", "p.yaml", "--var", "token=abc"])
        .expect_code(0);
}

/// The release and its encrypted secret values are created in one transaction: a runner
/// killed right after creating it (its first durable write after) resumes with the real
/// values, never with `***`.
#[test]
fn a_release_killed_right_after_it_was_created_keeps_its_secret_values() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        r#"
name: born
variables:
  token: { secret: true, required: true }
phases:
  - name: a
    tasks:
      - name: uses
        command: { run: [sh, -c, 'test "$1" = "$2" && echo same', sh, "${token}", "${env.SECRET}"] }
"#,
    );
    let mut sb = sb;
    sb.env("SECRET", SECRET);
    let token = format!("--var=token={SECRET}");
    let crashed = sb.run_crashing_at(&["run", "p.yaml", &token], "store.release_created", 1);
    assert_eq!(crashed.code, -1, "{crashed:?}");
    sb.run(&["resume", "born-1"]).expect_code(0);
    let log = sb.read(".relflow/releases/born-1/a/uses/script_output.log");
    assert!(log.contains("same"), "{log}");
}
