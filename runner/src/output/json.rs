//! Every `--json` document: an object whose first key is `"format": 1` (bumped only when a
//! field changes meaning or goes away), times as RFC 3339 strings, nested objects (never JSON
//! inside a string).

use serde::Serialize;
use serde_json::{Map, Value};

/// The version of every `--json` document relflow prints.
pub const FORMAT: u64 = 1;

/// `value` (an object, or anything serialized as one) with `"format": 1` in front.
pub fn document(value: &impl Serialize) -> Value {
    let mut doc = Map::new();
    doc.insert("format".to_string(), Value::from(FORMAT));
    match serde_json::to_value(value) {
        Ok(Value::Object(fields)) => {
            for (key, field) in fields {
                if key != "format" {
                    doc.insert(key, field);
                }
            }
        }
        Ok(other) => {
            doc.insert("value".to_string(), other);
        }
        Err(e) => {
            doc.insert("error".to_string(), Value::from(e.to_string()));
        }
    }
    Value::Object(doc)
}

/// `value` as a pretty `--json` document.
pub fn to_pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(&document(value))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Prints `value` as a pretty `--json` document on stdout.
pub fn print(value: &impl Serialize) {
    println!("{}", to_pretty(value));
}

/// Serializes a time in ms since the epoch as RFC 3339 (`#[serde(serialize_with = ...)]`).
pub fn rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::output::time::rfc3339_ms(*ms))
}

/// Like [`rfc3339`] for an optional time (`null` when absent).
pub fn rfc3339_opt<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&crate::output::time::rfc3339_ms(*ms)),
        None => s.serialize_none(),
    }
}

/// A stored JSON text (a backend handle) as the object it holds; a text that is not JSON
/// stays a string.
pub fn embedded_json<S: serde::Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match text {
        None => s.serialize_none(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => value.serialize(s),
            Err(_) => s.serialize_str(text),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample {
        name: &'static str,
        #[serde(serialize_with = "rfc3339")]
        at: i64,
        #[serde(serialize_with = "rfc3339_opt")]
        ended: Option<i64>,
    }

    #[test]
    fn a_document_starts_with_its_format_and_shows_times_as_rfc3339() {
        let doc = document(&Sample {
            name: "x",
            at: 0,
            ended: None,
        });
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(
            text,
            r#"{"format":1,"name":"x","at":"1970-01-01T00:00:00.000Z","ended":null}"#
        );
    }
}
