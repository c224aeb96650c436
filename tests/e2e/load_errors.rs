//! Bad pipeline files: `relflow validate` refuses each one with exit code 2 and the exact
//! message pinned beside its fixture; and every example pipeline validates.
//!
//! `RELFLOW_BLESS=1 cargo nextest run -p relflow-tests load_errors` rewrites the `.stderr`
//! expectations from what the CLI prints now (review the diff before committing).

use std::path::{Path, PathBuf};

use crate::harness::Sandbox;

const INVALID_INPUT: i32 = 2;

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn fixtures_dir() -> PathBuf {
    workspace_dir().join("tests/fixtures/invalid")
}

fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// Copies the executable stand-ins under `dir` into `to` in the sandbox, keeping their modes.
fn copy_programs(dir: &Path, sandbox: &Sandbox, to: &str) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        let rel = format!("{to}/{name}");
        if path.is_dir() {
            copy_programs(&path, sandbox, &rel);
        } else {
            sandbox.write_script(&rel, &std::fs::read_to_string(&path).expect("read program"));
        }
    }
}

fn blessing() -> bool {
    std::env::var_os("RELFLOW_BLESS").is_some_and(|v| v == "1")
}

/// Runs `relflow validate bad/NAME.yaml` and returns what went wrong, if anything.
fn check_fixture(fixture: &Path) -> Option<String> {
    let name = fixture.file_stem()?.to_str()?.to_string();
    let content = std::fs::read_to_string(fixture).expect("read fixture");
    let sandbox = Sandbox::new();
    let rel = format!("bad/{name}.yaml");
    sandbox.write(&rel, &content);
    // A policy script the fixture names sits beside it: `NAME.rhai`.
    if let Ok(script) = std::fs::read_to_string(fixture.with_extension("rhai")) {
        sandbox.write(&format!("bad/{name}.rhai"), &script);
    }
    // The programs fixtures run (`./bin/smoke`) exist, so each fixture shows its own error.
    copy_programs(&fixtures_dir().join("programs"), &sandbox, "bad");
    let out = sandbox.run(&["validate", &rel]);
    let expected_path = fixture.with_extension("stderr");
    if blessing() {
        std::fs::write(&expected_path, &out.stderr).expect("bless");
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if out.code != INVALID_INPUT {
        return Some(format!(
            "{name}: exit code {} instead of 2\n{}",
            out.code, out.stderr
        ));
    }
    if out.stderr != expected {
        return Some(format!(
            "{name}: stderr differs from {}\n--- expected\n{expected}--- actual\n{}",
            expected_path.display(),
            out.stderr
        ));
    }
    None
}

#[test]
fn every_invalid_fixture_is_refused_with_its_pinned_message() {
    let fixtures = files_with_extension(&fixtures_dir(), "yaml");
    assert!(fixtures.len() >= 30, "only {} fixtures", fixtures.len());
    let failures: Vec<String> = fixtures.iter().filter_map(|f| check_fixture(f)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed (RELFLOW_BLESS=1 rewrites the expectations):\n\n{}",
        failures.len(),
        fixtures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_expectation_has_its_fixture() {
    for stderr in files_with_extension(&fixtures_dir(), "stderr") {
        assert!(
            stderr.with_extension("yaml").exists(),
            "{} has no fixture",
            stderr.display()
        );
    }
}

#[test]
fn binary_junk_is_refused_naming_the_first_bad_byte() {
    let sandbox = Sandbox::new();
    let mut bytes = b"name: junk\nphases:\n  - name: \x89PNG".to_vec();
    bytes.extend([0xff, 0x00, 0xfe, 0x1a]);
    std::fs::create_dir_all(sandbox.path().join("bad")).expect("mkdir");
    std::fs::write(sandbox.path().join("bad/junk.yaml"), &bytes).expect("write");
    let out = sandbox.run(&["validate", "bad/junk.yaml"]);
    out.expect_code(INVALID_INPUT);
    assert_eq!(
        out.stderr,
        "error: the file is not UTF-8 text: invalid byte 0x89\n --> bad/junk.yaml:3:11\n\n\
         error: could not load bad/junk.yaml: 1 error\n"
    );
}

#[test]
fn a_ten_megabyte_file_is_refused_by_size_before_parsing() {
    let sandbox = Sandbox::new();
    let line = "# padding padding padding padding padding padding padding padding padding\n";
    let content = format!(
        "name: big\n{}",
        line.repeat(10 * 1024 * 1024 / line.len() + 1)
    );
    let size = content.len();
    sandbox.write("bad/big.yaml", &content);
    let out = sandbox.run(&["validate", "bad/big.yaml"]);
    out.expect_code(INVALID_INPUT);
    assert_eq!(
        out.stderr,
        format!(
            "error: the file is too large: {size} bytes, and the limit for a pipeline is \
             4194304 bytes (4 MiB)\n --> bad/big.yaml\n\nerror: could not load bad/big.yaml: 1 error\n"
        )
    );
}

#[test]
fn a_missing_file_is_reported_without_a_location() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["validate", "nowhere.yaml"]);
    out.expect_code(INVALID_INPUT);
    assert_eq!(
        out.stderr,
        "error: cannot read the file: no such file\n --> nowhere.yaml\n\n\
         error: could not load nowhere.yaml: 1 error\n"
    );
}

#[test]
fn every_example_pipeline_validates() {
    let pipelines = files_with_extension(&workspace_dir().join("pipelines"), "yaml");
    assert!(!pipelines.is_empty(), "pipelines/ has no example");
    let sandbox = Sandbox::new();
    for pipeline in pipelines {
        let path = pipeline.to_str().expect("utf-8 path");
        let out = sandbox.run(&["validate", path]);
        out.expect_code(0);
        assert!(out.stdout.contains(": ok ("), "{}", out.stdout);
    }
}

/// The example in DESIGN.md → Pipeline file, verbatim: the contract's own example must load.
#[test]
fn the_design_document_example_validates() {
    let example = fixtures_dir().join("../valid/design-example.yaml");
    let out = Sandbox::new().run(&["validate", example.to_str().expect("utf-8 path")]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("ok (pipeline petportal, 1 phases, 5 tasks)"),
        "{}",
        out.stdout
    );
}

/// A diagnostic with did-you-mean help lines, rendered as pinned in
/// `tests/fixtures/snapshots/did-you-mean.stderr` (`RELFLOW_BLESS=1` rewrites it).
#[test]
fn a_did_you_mean_diagnostic_renders_as_pinned() {
    let dir = workspace_dir().join("tests/fixtures/snapshots");
    let sandbox = Sandbox::new();
    let content = std::fs::read_to_string(dir.join("did-you-mean.yaml")).expect("fixture");
    sandbox.write("ci/release.yaml", &content);
    let out = sandbox.run(&["validate", "ci/release.yaml"]);
    out.expect_code(INVALID_INPUT);
    let expected_path = dir.join("did-you-mean.stderr");
    if blessing() {
        std::fs::write(&expected_path, &out.stderr).expect("bless");
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert_eq!(
        out.stderr, expected,
        "RELFLOW_BLESS=1 rewrites the expectation"
    );
    assert!(
        out.stderr.contains("= help: did you mean `tasks`?"),
        "{}",
        out.stderr
    );
}

const RUNS_A_SCRIPT: &str = "name: scripted\nphases:\n  - name: deploy\n    tasks:\n      - name: migrate\n        script: scripts/migrate.sh\n      - name: smoke\n        command: { run: [./bin/smoke, fast] }\n";

/// A script that does not exist, or cannot be run, is found before a release starts: the
/// release used to fail at that task, after the tasks before it had run.
#[test]
fn a_missing_or_unrunnable_script_is_refused_before_a_release_starts() {
    let sb = Sandbox::new();
    sb.write("ci/p.yaml", RUNS_A_SCRIPT);
    sb.write("ci/bin/smoke", "#!/bin/sh\nexit 0\n");
    let out = sb.run(&["validate", "ci/p.yaml"]);
    out.expect_code(INVALID_INPUT);
    assert!(
        out.stderr.contains(
            "error: phases[0].tasks[0].script: `scripts/migrate.sh` does not exist\n --> ci/p.yaml:6:17\n"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "error: phases[0].tasks[1].command.run[0]: `./bin/smoke` is not executable\n --> ci/p.yaml:8:26\n"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("= help: make it executable: chmod +x ci/bin/smoke"),
        "{}",
        out.stderr
    );
    let out = sb.run(&["run", "ci/p.yaml"]);
    out.expect_code(INVALID_INPUT);
    assert!(
        out.stderr.contains("`scripts/migrate.sh` does not exist"),
        "{}",
        out.stderr
    );
    assert!(!sb.exists(".relflow/releases"), "no release was started");

    // A near miss is named; a script without `#!` is refused too.
    sb.write_script("ci/scripts/migrade.sh", "#!/bin/sh\nexit 0\n");
    sb.write_script("ci/bin/smoke", "exit 0\n");
    let out = sb.run(&["validate", "ci/p.yaml"]);
    assert!(
        out.stderr
            .contains("= help: did you mean `scripts/migrade.sh`?"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("`./bin/smoke` has no `#!` line"),
        "{}",
        out.stderr
    );

    sb.write_script("ci/scripts/migrate.sh", "#!/bin/sh\nexit 0\n");
    sb.write_script("ci/bin/smoke", "#!/bin/sh\nexit 0\n");
    sb.run(&["validate", "ci/p.yaml"]).expect_code(0);
    sb.run(&["run", "ci/p.yaml"]).expect_code(0);
}

#[test]
fn validate_json_lists_errors_with_their_field_and_help() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: p\nvariables: { version: '1' }\nphases:\n  - name: a\n    on_failure: { then: rolback }\n    tasks:\n      - { name: t, command: { run: [echo, \"${versoin}\"] } }\n",
    );
    let out = sb.run(&["validate", "p.yaml", "--json"]);
    out.expect_code(INVALID_INPUT);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["format"], 1);
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["file"], "p.yaml");
    let errors = doc["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{doc:#}");
    assert_eq!(errors[0]["line"], 5);
    assert_eq!(errors[0]["column"], 25);
    assert_eq!(errors[0]["field"], "phases[0].on_failure.then");
    assert_eq!(errors[0]["message"], "unknown action `rolback`");
    assert_eq!(errors[0]["help"], "did you mean `rollback`?");
    assert_eq!(errors[1]["field"], serde_json::Value::Null);
    assert_eq!(errors[1]["help"], "did you mean `version`?");
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

/// `required: true` variables: `validate` names them and what to pass; the document too.
#[test]
fn validate_says_which_variables_are_required() {
    let sb = Sandbox::new();
    sb.write(
        "p.yaml",
        "name: p\nvariables:\n  version: { required: true, description: \"The version to deploy\" }\n  region: { value: eu, required: true }\n  mode: fast\nphases:\n  - name: a\n    tasks:\n      - { name: t, command: { run: [echo, \"${version}\", \"${env.RELFLOW_TEST_UNSET}\"] } }\n",
    );
    let out = sb.run(&["validate", "p.yaml"]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("  version: The version to deploy (no default: pass --var version=...)\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  region (default `eu` unless --var region=...)\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("mode"), "{}", out.stdout);
    assert!(
        out.stdout.contains("not set here: RELFLOW_TEST_UNSET"),
        "{}",
        out.stdout
    );
    let out = sb.run(&["validate", "p.yaml", "--json"]);
    out.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["format"], 1);
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["pipeline"]["tasks"], 1);
    let required = doc["required_variables"].as_array().expect("required");
    assert_eq!(required.len(), 2);
    assert_eq!(required[1]["name"], "version");
    assert_eq!(required[1]["description"], "The version to deploy");
    assert_eq!(required[1]["default"], serde_json::Value::Null);
    assert_eq!(required[0]["default"], "eu");
    assert_eq!(doc["environment"][0]["name"], "RELFLOW_TEST_UNSET");
    assert_eq!(doc["environment"][0]["is_set"], false);
    // `run` without the value: exit 2, naming the --var to pass, nothing recorded.
    let out = sb.run(&["run", "p.yaml"]);
    out.expect_code(INVALID_INPUT);
    assert!(
        out.stderr.contains(
            "variable `version` is declared `required: true` and has no value: pass --var version=..."
        ),
        "{}",
        out.stderr
    );
    assert!(!sb.exists(".relflow"), "nothing was recorded");
}
