//! The JSON Schema of the pipeline file, for editors (`relflow schema`).

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
}
