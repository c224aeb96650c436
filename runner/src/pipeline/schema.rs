//! The JSON Schema of the pipeline file, for editors (`relflow schema`).

/// A hand-written draft 2020-12 JSON Schema of the pipeline file format.
pub const JSON_SCHEMA: &str = include_str!("schema.json");

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::JSON_SCHEMA;
    use crate::pipeline::raw::TOP_LEVEL_KEYS;

    #[test]
    fn schema_parses_and_lists_the_top_level_keys() {
        let schema: serde_json::Value = serde_json::from_str(JSON_SCHEMA).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        let keys: BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = TOP_LEVEL_KEYS.iter().copied().collect();
        assert_eq!(keys, expected);
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn schema_top_level_keys_match_the_raw_struct() {
        // Every listed key is accepted by the raw struct, and any other key is refused.
        for key in TOP_LEVEL_KEYS {
            let source = format!("{key}: ~\n");
            let result: Result<crate::pipeline::raw::RawPipeline, _> =
                serde_saphyr::from_str(&source);
            assert!(result.is_ok(), "`{key}` should be a field of RawPipeline");
        }
        let result: Result<crate::pipeline::raw::RawPipeline, _> =
            serde_saphyr::from_str("not_a_key: ~\n");
        assert!(result.is_err());
    }
}
