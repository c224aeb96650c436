//! One error in a pipeline file, and its rendering with the source line and a caret.
//!
//! The shape follows rustc and just, and tests pin it:
//!
//! ```text
//! error: unknown field `tsks`, expected one of `name`, `on_failure`, `tasks`
//!  --> bad/unknown-key.yaml:4:5
//!   |
//! 4 |     tsks:
//!   |     ^
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;

/// An error at a place in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 = the whole file (no source line is shown).
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic about the whole file (size, encoding of an unreadable file, ...).
    pub fn whole_file(file: impl Into<PathBuf>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// Renders the diagnostic; `source` is the file's text, used to show the line.
    /// Ends with a newline.
    pub fn render(&self, source: Option<&str>) -> String {
        let message = match source {
            Some(s) => mask_literals(&self.message, &secret_literals(s)),
            None => self.message.clone(),
        };
        let mut out = format!("error: {message}\n");
        if self.line == 0 {
            let _ = writeln!(out, " --> {}", self.file.display());
            return out;
        }
        let width = self.line.to_string().len();
        let pad = " ".repeat(width);
        let _ = writeln!(
            out,
            "{pad}--> {}:{}:{}",
            self.file.display(),
            self.line,
            self.column
        );
        let Some(text) = source.and_then(|s| s.lines().nth(self.line - 1)) else {
            return out;
        };
        // Masked first (before any cut): the line may be the one with the password. The
        // caret's column still fits, since the mask only shortens what follows a key.
        let text = source.map_or_else(|| text.to_string(), |s| mask_line(text, s));
        let shown: String = text
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect();
        // Under a tab, the caret line has a tab too, so the caret lines up in any terminal.
        let indent: String = shown
            .chars()
            .chain(std::iter::repeat(' '))
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{} | {}", self.line, shown.trim_end_matches('\r'));
        let _ = writeln!(out, "{pad} | {indent}^");
        out
    }
}

/// The keys whose value is a secret wherever they stand.
const SECRET_KEYS: &[&str] = &["password"];

fn unquote(s: &str) -> &str {
    s.trim().trim_matches(|c| c == '"' || c == '\'')
}

/// `key: value` pairs of one line, block or flow style (`{ a: 1, b: 2 }`), quotes removed.
fn pairs(line: &str) -> impl Iterator<Item = (&str, &str)> {
    let line = line.split(" #").next().unwrap_or_default();
    line.split(['{', '}', ',', '[', ']']).filter_map(|chunk| {
        let (key, value) = chunk.split_once(':')?;
        let key = unquote(key.trim_start_matches("- "));
        Some((key, unquote(value)))
    })
}

/// The literal secrets of a pipeline's text, found without parsing it (it may not parse):
/// values of `password:`, and `value:` of a variable mapping that has `secret: true`.
fn secret_literals(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line_pairs: Vec<(&str, &str)> = pairs(line).collect();
        for (key, value) in &line_pairs {
            if SECRET_KEYS.contains(key) {
                found.push(value.to_string());
            }
        }
        if !line_pairs
            .iter()
            .any(|(k, v)| *k == "secret" && *v == "true")
        {
            continue;
        }
        // `value:` on the same line (flow) or on a sibling line of the same mapping (block).
        let own = indent(line);
        let in_mapping = |l: &str| l.trim().is_empty() || indent(l) >= own;
        let first = (0..i)
            .rev()
            .take_while(|&j| in_mapping(lines[j]))
            .last()
            .unwrap_or(i);
        let last = (i..lines.len())
            .take_while(|&j| in_mapping(lines[j]))
            .last()
            .unwrap_or(i);
        for sibling in lines[first..=last].iter().filter(|l| indent(l) == own) {
            found.extend(
                pairs(sibling)
                    .filter(|(k, _)| *k == "value")
                    .map(|(_, v)| v.to_string()),
            );
        }
    }
    // Shorter values would mask ordinary words; the key rule of `mask_line` still hides them
    // where they are set.
    found.retain(|v| v.len() >= 4 && !v.starts_with("${"));
    found
}

fn mask_literals(text: &str, literals: &[String]) -> String {
    let mut out = text.to_string();
    for literal in literals {
        out = out.replace(literal.as_str(), crate::output::redact::MASK);
    }
    out
}

/// `line` of `source` with every literal secret of `source` masked, and whatever follows a
/// `password:` key on it (a value the scan above could not read whole, e.g. unclosed quotes).
fn mask_line(line: &str, source: &str) -> String {
    let mut out = mask_literals(line, &secret_literals(source));
    for key in SECRET_KEYS {
        let Some(at) = out.find(&format!("{key}:")) else {
            continue;
        };
        let value_start = at + key.len() + 1;
        let rest = &out[value_start..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        if !rest[..end].trim().is_empty() && rest[..end].trim() != crate::output::redact::MASK {
            out = format!(
                "{} {}{}",
                &out[..value_start],
                crate::output::redact::MASK,
                &rest[end..]
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Diagnostic {
        Diagnostic {
            file: PathBuf::from("bad/unknown-key.yaml"),
            line,
            column,
            message: "unknown field `tsks`, expected one of `name`, `on_failure`, `tasks`"
                .to_string(),
        }
    }

    #[test]
    fn secrets_on_the_shown_line_are_masked() {
        let source = "backends:\n  xld: { kind: xl-deploy, username: admin, password: \"Sup3r-S3cret\", bogus: 1 }\nvariables:\n  token:\n    value: T0ken-Value-9\n    secret: true\n    wrong: 1\n";
        let out = at(2, 70).render(Some(source));
        assert!(!out.contains("Sup3r-S3cret"), "{out}");
        assert!(out.contains("password: ***, bogus: 1 }"), "{out}");
        let out = at(5, 5).render(Some(source));
        assert!(!out.contains("T0ken-Value-9"), "{out}");
        let flow = "variables: { token: { value: abc-123-xyz, secret: true } }\n";
        assert!(!at(1, 1).render(Some(flow)).contains("abc-123-xyz"));
    }

    #[test]
    fn diagnostic_renders_line_and_caret() {
        let source = "name: x\nphases:\n  - name: a\n    tsks:\n";
        assert_eq!(
            at(4, 5).render(Some(source)),
            "error: unknown field `tsks`, expected one of `name`, `on_failure`, `tasks`\n \
             --> bad/unknown-key.yaml:4:5\n  |\n4 |     tsks:\n  |     ^\n"
        );
    }

    #[test]
    fn diagnostic_gutter_grows_with_line_number() {
        let source = format!("{}  bad: 1\n", "x: 1\n".repeat(11));
        let out = at(12, 3).render(Some(&source));
        assert!(
            out.contains("\n  --> bad/unknown-key.yaml:12:3\n   |\n12 |   bad: 1\n   |   ^\n"),
            "{out}"
        );
    }

    #[test]
    fn diagnostic_keeps_tabs_and_counts_columns_in_chars() {
        let source = "é\tx: 1\n";
        let out = at(1, 3).render(Some(source));
        assert!(out.ends_with("1 | é\tx: 1\n  |  \t^\n"), "{out:?}");
    }

    #[test]
    fn diagnostic_for_the_whole_file_has_no_snippet() {
        let out = at(0, 0).render(Some("x"));
        assert_eq!(out.lines().count(), 2);
        assert!(out.ends_with(" --> bad/unknown-key.yaml\n"));
    }

    #[test]
    fn diagnostic_past_the_end_shows_only_the_location() {
        let out = at(9, 1).render(Some("a: 1\n"));
        assert_eq!(out.lines().count(), 2);
    }
}
