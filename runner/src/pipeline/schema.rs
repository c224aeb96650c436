//! The JSON Schema of the pipeline file, for editors (`relflow schema`).
//!
//! Hand-written, and held to the loader by tests: here, every mapping's keys against the raw
//! serde types and a description on every property; in `tests/e2e/schema_fixtures.rs`,
//! every valid pipeline passes it and every invalid fixture fails it, except those whose
//! error a JSON Schema cannot express (listed there with the reason).

/// A hand-written draft 2020-12 JSON Schema of the pipeline file format.
pub const JSON_SCHEMA: &str = include_str!("schema.json");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::JSON_SCHEMA;
    use crate::pipeline::raw::RawPipeline;

    /// The fields the raw types accept at the place where `yaml` writes `zz_unknown`, read
    /// from serde's own "unknown field" error, so the list cannot drift from the structs.
    fn raw_fields(yaml: &str) -> BTreeSet<String> {
        let err = serde_saphyr::from_str::<RawPipeline>(yaml).expect_err("unknown key refused");
        match err.without_snippet() {
            serde_saphyr::Error::SerdeUnknownField { expected, .. } => {
                expected.iter().map(|s| s.to_string()).collect()
            }
            other => panic!("expected an unknown-field error, got {other}"),
        }
    }

    fn schema_fields(schema: &Value, pointer: &str) -> BTreeSet<String> {
        schema
            .pointer(pointer)
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("no properties at {pointer}"))
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn schema_parses_and_its_top_level_keys_are_the_raw_fields() {
        let schema: Value = serde_json::from_str(JSON_SCHEMA).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema_fields(&schema, "/properties"),
            raw_fields("zz_unknown: 1\n")
        );
    }

    #[test]
    fn schema_nested_objects_list_the_raw_fields() {
        let schema: Value = serde_json::from_str(JSON_SCHEMA).unwrap();
        let task = "phases:\n- name: p\n  tasks:\n  - name: t\n";
        let cases = [
            (
                "phases: [{zz_unknown: 1}]\n",
                "/$defs/phase/properties".to_string(),
            ),
            (
                &format!("{task}    command: {{zz_unknown: 1}}\n"),
                "/$defs/command/properties".to_string(),
            ),
            (
                &format!("{task}    deploy: {{zz_unknown: 1}}\n"),
                "/$defs/deploy/properties".to_string(),
            ),
            (
                "on_failure: {zz_unknown: 1}\n",
                "/$defs/onFailure/properties".to_string(),
            ),
            (
                "on_failure: {retry: {zz_unknown: 1}}\n",
                "/$defs/onFailure/properties/retry/properties".to_string(),
            ),
            (
                "rollback: {zz_unknown: 1}\n",
                "/properties/rollback/properties".to_string(),
            ),
            (
                "variables: {v: {zz_unknown: 1}}\n",
                "/properties/variables/additionalProperties/oneOf/1/properties".to_string(),
            ),
            (
                &format!("{task}    script: {{zz_unknown: 1}}\n"),
                "/$defs/scriptSpec/properties".to_string(),
            ),
            (
                &format!("{task}    manual: {{zz_unknown: 1}}\n"),
                "/$defs/task/properties/manual/properties".to_string(),
            ),
            (
                &format!("{task}  - parallel: {{zz_unknown: 1}}\n"),
                "/$defs/parallel/properties/parallel/properties".to_string(),
            ),
            (
                "on_failure: {fix_forward: {zz_unknown: 1}}\n",
                "/$defs/onFailure/properties/fix_forward/properties".to_string(),
            ),
            (
                "on_failure: {actions: [{zz_unknown: 1}]}\n",
                "/$defs/onFailure/properties/actions/items/properties".to_string(),
            ),
            (
                "on_failure: {actions: [{revert_compose: {zz_unknown: 1}}]}\n",
                "/$defs/onFailure/properties/actions/items/properties/revert_compose/properties"
                    .to_string(),
            ),
            (
                "on_failure: {actions: [{restart_previous_container: {zz_unknown: 1}}]}\n",
                "/$defs/onFailure/properties/actions/items/properties/restart_previous_container/properties"
                    .to_string(),
            ),
        ];
        for (yaml, pointer) in cases {
            assert_eq!(
                schema_fields(&schema, &pointer),
                raw_fields(yaml),
                "{pointer}"
            );
        }
        // A `tasks:` entry is a task or a parallel group: the raw struct has both.
        let mut step = schema_fields(&schema, "/$defs/task/properties");
        step.extend(schema_fields(&schema, "/$defs/parallel/properties"));
        assert_eq!(step, raw_fields(&format!("{task}    zz_unknown: 1\n")));
        let backend: BTreeSet<String> = ["local", "xl-deploy", "exec"]
            .iter()
            .enumerate()
            .flat_map(|(i, _)| {
                schema_fields(&schema, &format!("/$defs/backend/oneOf/{i}/properties"))
            })
            .collect();
        assert_eq!(backend, raw_fields("backends: {b: {zz_unknown: 1}}\n"));
    }

    /// The properties a schema declares (not those `if`/`then`/`not`/... only constrain),
    /// with their JSON pointers.
    fn declared_properties<'a>(node: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
        const CONSTRAINTS: [&str; 6] = ["if", "then", "else", "not", "dependentSchemas", "allOf"];
        match node {
            Value::Object(map) => {
                for (key, value) in map {
                    if CONSTRAINTS.contains(&key.as_str()) {
                        continue;
                    }
                    let here = format!("{at}/{key}");
                    if key == "properties"
                        && let Some(props) = value.as_object()
                    {
                        for (name, prop) in props {
                            out.push((format!("{here}/{name}"), prop));
                            declared_properties(prop, format!("{here}/{name}"), out);
                        }
                    } else {
                        declared_properties(value, here, out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    declared_properties(item, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn schema_every_property_has_a_description() {
        let schema: Value = serde_json::from_str(JSON_SCHEMA).unwrap();
        let mut props = Vec::new();
        declared_properties(&schema, String::new(), &mut props);
        assert!(props.len() > 85, "only {} properties", props.len());
        let bare: Vec<&str> = props
            .iter()
            .filter(|(_, prop)| {
                prop.get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            })
            .map(|(at, _)| at.as_str())
            .collect();
        assert!(
            bare.is_empty(),
            "properties without a description: {bare:#?}"
        );
    }
}
