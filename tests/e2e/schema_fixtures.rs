//! `relflow schema` against the loader: every pipeline the loader accepts passes the JSON
//! Schema (what an editor checks as you type), and every fixture it refuses fails it, except
//! the few whose error a JSON Schema cannot express, listed below with the reason.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::Sandbox;

/// Refused by the loader for a reason beyond JSON Schema: these must *pass* the schema, so
/// the list stays true when the schema learns more.
const BEYOND_SCHEMA: &[(&str, &str)] = &[
    (
        "deploy-unknown-backend",
        "`deploy.backend` must name a key of `backends:`: a reference between two places",
    ),
    (
        "duplicate-phase-name",
        "names unique by one field across list items",
    ),
    (
        "duplicate-task-name-across-phases",
        "names unique across the whole file",
    ),
    (
        "duplicate-task-name-in-parallel",
        "names unique across the whole file",
    ),
    (
        "duration-out-of-range",
        "an upper bound on a sum of units (`8d` > 7d) is not a pattern",
    ),
    ("policy-script-missing", "a file on disk"),
    ("policy-script-syntax-error", "the Rhai script's content"),
    (
        "policy-script-unknown-variable",
        "the Rhai script's content",
    ),
    (
        "rollback-release-without-rollback",
        "a value deep in the file that needs a top-level key",
    ),
    (
        "unknown-variable",
        "`${name}` must be declared under `variables:`: a reference between two places",
    ),
];

/// Not YAML a schema ever sees: the YAML parser (relflow's, and an editor's) refuses them.
const NOT_A_YAML_DOCUMENT: &[(&str, &str)] = &[
    ("alias-bomb", "aliases expand past relflow's budget"),
    ("duplicate-yaml-key", "a mapping with one key twice"),
    ("two-documents", "two YAML documents in one file"),
    ("yaml-bad-indentation", "indentation YAML does not parse"),
    ("yaml-tab-indentation", "tabs in indentation"),
    ("yaml-unclosed-quote", "a quote never closed"),
];

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn stem(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .expect("utf-8 name")
}

/// The schema `relflow schema` prints, compiled.
fn compiled_schema() -> (boon::Schemas, boon::SchemaIndex) {
    let out = Sandbox::new().run(&["schema"]);
    out.expect_code(0);
    let schema: Value = serde_json::from_str(&out.stdout).expect("`relflow schema` prints JSON");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let url = "https://relflow.dev/schema/pipeline.json";
    compiler.add_resource(url, schema).expect("schema added");
    let index = compiler
        .compile(url, &mut schemas)
        .unwrap_or_else(|e| panic!("the schema compiles: {e:#}"));
    (schemas, index)
}

/// The YAML file as the JSON an editor validates, read the way relflow reads YAML (YAML 1.2
/// booleans, duplicate keys refused, aliases bounded); `None` when it is not such YAML.
fn as_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).expect("read fixture");
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.strict_booleans = true;
    options.alias_limits.max_total_replayed_events = 100_000;
    if text.trim_start().is_empty() || text.lines().all(|l| l.trim_start().starts_with('#')) {
        return Some(Value::Null);
    }
    serde_saphyr::from_str_with_options::<Value>(&text, options).ok()
}

fn is_valid(schemas: &boon::Schemas, index: boon::SchemaIndex, doc: &Value) -> Result<(), String> {
    schemas.validate(doc, index).map_err(|e| format!("{e:#}"))
}

#[test]
fn every_pipeline_the_loader_accepts_passes_the_schema() {
    let (schemas, index) = compiled_schema();
    let mut files = yaml_files(&workspace_dir().join("pipelines"));
    files.extend(yaml_files(&workspace_dir().join("tests/fixtures/valid")));
    assert!(files.len() >= 6, "only {} valid pipelines", files.len());
    for file in files {
        let doc = as_json(&file).unwrap_or_else(|| panic!("{} is YAML", file.display()));
        if let Err(why) = is_valid(&schemas, index, &doc) {
            panic!("{} fails the schema:\n{why}", file.display());
        }
    }
}

#[test]
fn every_invalid_fixture_fails_the_schema_unless_listed_with_its_reason() {
    let (schemas, index) = compiled_schema();
    let fixtures = yaml_files(&workspace_dir().join("tests/fixtures/invalid"));
    let listed = |list: &[(&str, &str)], name: &str| list.iter().any(|(n, _)| *n == name);
    let mut wrong = Vec::new();
    for fixture in &fixtures {
        let name = stem(fixture);
        let Some(doc) = as_json(fixture) else {
            if !listed(NOT_A_YAML_DOCUMENT, name) {
                wrong.push(format!("{name}: not YAML, and not in NOT_A_YAML_DOCUMENT"));
            }
            continue;
        };
        if listed(NOT_A_YAML_DOCUMENT, name) {
            wrong.push(format!(
                "{name}: parses as YAML; remove it from NOT_A_YAML_DOCUMENT"
            ));
        }
        match (is_valid(&schemas, index, &doc), listed(BEYOND_SCHEMA, name)) {
            (Ok(()), false) => wrong.push(format!("{name}: passes the schema")),
            (Err(_), true) => wrong.push(format!(
                "{name}: the schema now refuses it; remove it from BEYOND_SCHEMA"
            )),
            _ => {}
        }
    }
    for (name, _) in BEYOND_SCHEMA.iter().chain(NOT_A_YAML_DOCUMENT) {
        if !fixtures.iter().any(|f| stem(f) == *name) {
            wrong.push(format!("{name}: listed, but there is no such fixture"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The rules the schema holds beyond key names, each shown on a small pipeline: what an
/// editor flags as you type.
#[test]
fn the_schema_refuses_what_the_loader_refuses_inside_values() {
    let (schemas, index) = compiled_schema();
    let task = |body: &str| {
        let yaml =
            format!("name: p\nphases:\n  - name: a\n    tasks:\n      - {{ name: t, {body} }}\n");
        serde_saphyr::from_str::<Value>(&yaml).expect("YAML")
    };
    for ok in [
        "command: { run: [echo, \"${release.id} $${literal} $HOME\"] }",
        "command: { run: \"echo a | wc\", shell: true }",
        "command: { run: [echo], shell: true }",
        "wait: 1h30m",
        "wait: 0s",
        "script: { path: s.sh, timeout: 500ms }",
        "deploy: { backend: b, package: P/1 }, lock_timeout: 0s",
        "command: { run: [x] }, on_failure: { then: fix_forward, fix_forward: { resolve: [r] } }",
    ] {
        if let Err(why) = is_valid(&schemas, index, &task(ok)) {
            panic!("`{ok}` is refused:\n{why}");
        }
    }
    for bad in [
        "command: { run: [echo, \"${version\"] }",
        "command: { run: [echo, \"${env.}\"] }",
        "command: { run: \"echo a\" }",
        "command: { run: [echo, a], shell: true }",
        "wait: 10",
        "wait: \"\"",
        "timeout: 0ms, wait: 1s",
        "timeout: 1m, command: { run: [x], timeout: 1m }",
        "wait: 1s, lock_timeout: 1m",
        "command: { run: [x] }, on_failure: { then: fix_forward }",
        "command: { run: [x] }, on_failure: { then: pause, fix_forward: { resolve: [r] } }",
        "command: { run: [x] }, on_failure: { script: p.rhai, then: skip }",
    ] {
        assert!(
            is_valid(&schemas, index, &task(bad)).is_err(),
            "`{bad}` passes the schema"
        );
    }
    let phase_any_task = serde_saphyr::from_str::<Value>(
        "name: p\nphases:\n  - name: a\n    on_failure: { actions: [{ run: [x], trigger: any_task }] }\n    tasks: [{ name: t, wait: 1s }]\n",
    )
    .expect("YAML");
    assert!(is_valid(&schemas, index, &phase_any_task).is_err());
}

/// `pipelines/relflow.schema.json` (what the examples' `yaml-language-server` modeline names)
/// is what `relflow schema` prints; `RELFLOW_BLESS=1` rewrites it.
#[test]
fn the_schema_beside_the_examples_is_current() {
    let out = Sandbox::new().run(&["schema"]);
    out.expect_code(0);
    let copy = workspace_dir().join("pipelines/relflow.schema.json");
    if std::env::var_os("RELFLOW_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&copy, &out.stdout).expect("bless");
    }
    let kept = std::fs::read_to_string(&copy).unwrap_or_default();
    assert!(
        kept == out.stdout,
        "{} differs from `relflow schema` (RELFLOW_BLESS=1 rewrites it)",
        copy.display()
    );
}
