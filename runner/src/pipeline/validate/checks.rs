//! Small checks shared by the validator: names, templates with their references, argv lists,
//! and "did you mean" suggestions.

use serde_saphyr::Spanned;

use super::{Checker, Pos};
use crate::pipeline::raw::Scalar;
use crate::pipeline::template::{Template, VarRef};

/// `[A-Za-z0-9][A-Za-z0-9_.-]*`: phase, task and backend names (they become folder names).
pub(super) fn is_step_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The longest pipeline, phase, task or backend name, in bytes. Names become folder names
/// (`releases/<pipeline>-<n>/<phase>#<n>/<task>/`), and a folder name may have 255 bytes at
/// most; a longer name would validate and then stop the release half-way.
pub(super) const MAX_NAME_BYTES: usize = 100;

/// Why `text` is too long to be a name of `what` (`task`, ...), if it is.
pub(super) fn name_too_long(text: &str, what: &str) -> Option<String> {
    if text.len() <= MAX_NAME_BYTES {
        return None;
    }
    let start: String = text.chars().take(20).collect();
    Some(format!(
        "the {what} name `{start}...` is too long: {} bytes, and a name may have at most \
         {MAX_NAME_BYTES} (it becomes a folder name)",
        text.len()
    ))
}

/// `[A-Za-z_][A-Za-z0-9_]*`
pub(super) fn is_env_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Levenshtein distance, in chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let left = row.get(j).copied().unwrap_or(usize::MAX);
            let cost = diagonal + usize::from(ca != *cb);
            diagonal = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = cost
                    .min(above.saturating_add(1))
                    .min(left.saturating_add(1));
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

/// The closest candidate within edit distance 2, if any.
pub(in crate::pipeline) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Variables a backend's commands may use beside the pipeline's: the deployment's own
/// application, version and components (comma-separated).
pub(in crate::pipeline) const DEPLOY_VARIABLES: [&str; 3] =
    ["application", "version", "components"];

/// `did you mean `x`?` when a candidate is close to `word`.
pub(in crate::pipeline) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// `did you mean `x`?`, else `expected a, b or c`: the help of an unknown keyword.
pub(super) fn suggestion(word: &str, candidates: &[&str]) -> String {
    did_you_mean(word, candidates.iter().copied())
        .unwrap_or_else(|| format!("expected {}", one_of(candidates)))
}

/// `a, b or c`
pub(super) fn one_of(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

impl Checker<'_> {
    /// Parses a template and checks that every variable it names is declared.
    pub(in crate::pipeline) fn template(&mut self, value: &Spanned<Scalar>) -> Option<Template> {
        let text = &value.value.0;
        let template = match Template::parse(text) {
            Ok(t) => t,
            Err(err) => {
                let loc = self.offset_location(value, err.offset);
                self.error(loc, err.message);
                return None;
            }
        };
        let mut ok = true;
        for reference in template.references() {
            if let VarRef::Env(name) = reference {
                self.env_references.insert(name.clone());
            }
            let VarRef::Var(name) = reference else {
                continue;
            };
            if self.variables.contains_key(name)
                || (self.in_backend_commands && DEPLOY_VARIABLES.contains(&name.as_str()))
            {
                continue;
            }
            let offset = text.find(&format!("${{{name}")).unwrap_or(0);
            let loc = self.offset_location(value, offset);
            let help = did_you_mean(name, self.declared())
                .unwrap_or_else(|| "declare it under `variables:`".to_string());
            self.error_with_help(loc, format!("unknown variable `${{{name}}}`"), help);
            ok = false;
        }
        ok.then_some(template)
    }

    /// An argv list: at least one element, each a template.
    pub(super) fn argv(
        &mut self,
        list: &Spanned<Vec<Spanned<Scalar>>>,
        path: &str,
    ) -> Option<Vec<Template>> {
        if list.value.is_empty() {
            self.error(
                list.referenced,
                format!("{path}: the command is empty: write at least the program to run"),
            );
            return None;
        }
        self.templates(&list.value)
    }

    /// Every element as a template; `None` if any is invalid (all are checked).
    pub(super) fn templates(&mut self, items: &[Spanned<Scalar>]) -> Option<Vec<Template>> {
        let parsed: Vec<Option<Template>> = items.iter().map(|item| self.template(item)).collect();
        parsed.into_iter().collect()
    }

    /// The location of byte `offset` inside a scalar, when the source shows it plainly
    /// (a one-line scalar without escapes); otherwise the scalar's start.
    fn offset_location(&self, value: &Spanned<Scalar>, offset: usize) -> Pos {
        let start = Pos::from(value.referenced);
        let Some(prefix) = value.value.0.get(..offset) else {
            return start;
        };
        let line = self.source.lines().nth(start.line.saturating_sub(1));
        let Some(line) = line else {
            return start;
        };
        let first = start.column.saturating_sub(1);
        let quoted = matches!(line.chars().nth(first), Some('"' | '\''));
        let column = first + usize::from(quoted) + prefix.chars().count();
        let expected = value.value.0.get(offset..).unwrap_or_default();
        let shown: String = line.chars().skip(column).collect();
        if expected.is_empty() || !shown.starts_with(expected.chars().next().unwrap_or('$')) {
            return start;
        }
        Pos {
            line: start.line,
            column: column + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_names_and_suggestions() {
        assert!(is_step_name("deploy-petportal"));
        assert!(is_step_name("v1.2_x"));
        assert!(!is_step_name("-x"));
        assert!(!is_step_name("a#2"));
        assert!(!is_step_name(""));
        assert_eq!(edit_distance("versoin", "version"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            closest("versoin", ["version", "application"]),
            Some("version")
        );
        assert_eq!(closest("zzz", ["version"]), None);
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
        assert_eq!(name_too_long(&"a".repeat(MAX_NAME_BYTES), "task"), None);
        let long = name_too_long(&"a".repeat(5000), "task").unwrap();
        assert!(
            long.starts_with("the task name `aaaaaaaaaaaaaaaaaaaa...` is too long: 5000 bytes")
        );
    }
}
