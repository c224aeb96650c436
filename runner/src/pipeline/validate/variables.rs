//! Validation of `variables:`: names, defaults kept as written, and the `secret`,
//! `required` and `description` of the long form.

use serde_saphyr::Spanned;

use super::Checker;
use crate::pipeline::raw::{RawVariable, Text};

const RESERVED_VARIABLES: [&str; 4] = ["env", "release", "phase", "task"];

impl Checker<'_> {
    pub(super) fn variables(&mut self, entries: &[(Spanned<Text>, Spanned<RawVariable>)]) {
        for (key, value) in entries {
            let name = &key.value.0;
            let mut chars = name.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                self.error(
                    key.referenced,
                    format!(
                        "variables: `{name}` is not a valid variable name: use letters, digits, \
                         `_` and `-`, starting with a letter or `_`"
                    ),
                );
            } else if RESERVED_VARIABLES.contains(&name.as_str()) {
                self.error(
                    key.referenced,
                    format!("variables: `{name}` is reserved for `${{{name}.…}}` references"),
                );
            }
            // Declared even when invalid, so references to it are not reported twice.
            let default = match &value.value {
                // Kept as written: `version: 2.10` is "2.10", not the number 2.1.
                RawVariable::Number(parsed) => {
                    let span = value.referenced.span();
                    span.byte_offset()
                        .zip(span.byte_len())
                        .and_then(|(at, len)| {
                            let at = usize::try_from(at).ok()?;
                            self.source.get(at..at + usize::try_from(len).ok()?)
                        })
                        .unwrap_or(&parsed.0)
                        .trim()
                        .to_string()
                }
                other => other.value().unwrap_or_default().to_string(),
            };
            self.variables.insert(name.clone(), default);
            if value.value.is_secret() {
                self.secret_variables.insert(name.clone());
            }
            if value.value.is_required() {
                self.required_variables.insert(name.clone());
            }
            if let Some(description) = value.value.description() {
                self.variable_descriptions
                    .insert(name.clone(), description.to_string());
            }
        }
    }
}
