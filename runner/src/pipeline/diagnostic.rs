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
        // A message may quote the offending text: masked, then bounded like the excerpt.
        let masked = match source {
            Some(s) => mask_literals(&self.message, &secret_literals(s)),
            None => self.message.clone(),
        };
        let (message, _) = excerpt(&masked, 1, MAX_MESSAGE_CHARS);
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
        // Masked first (before any cut): the line may be the one with the password.
        let (text, column) = source.map_or_else(
            || (text.to_string(), self.column),
            |s| mask_line(text, self.column, s),
        );
        let shown: String = text
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect();
        let (shown, column) = excerpt(shown.trim_end_matches('\r'), column, MAX_EXCERPT_CHARS);
        // Under a tab, the caret line has a tab too, so the caret lines up in any terminal.
        let indent: String = shown
            .chars()
            .chain(std::iter::repeat(' '))
            .take(column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{} | {shown}", self.line);
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

/// Where `needle` stands in `chars`, as char ranges.
fn occurrences(chars: &[char], needle: &str) -> Vec<(usize, usize)> {
    let needle: Vec<char> = needle.chars().collect();
    if needle.is_empty() || needle.len() > chars.len() {
        return Vec::new();
    }
    chars
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle.as_slice())
        .map(|(i, _)| (i, i + needle.len()))
        .collect()
}

/// The value after a `password:` key on `chars` (up to `,`, `}` or the end), as a char range.
fn secret_key_values(chars: &[char]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    for key in SECRET_KEYS {
        for (_, key_end) in occurrences(chars, &format!("{key}:")) {
            let start = (key_end..chars.len())
                .find(|&i| !chars[i].is_whitespace())
                .unwrap_or(chars.len());
            let mut end = (start..chars.len())
                .find(|&i| matches!(chars[i], ',' | '}'))
                .unwrap_or(chars.len());
            while end > start && chars[end - 1].is_whitespace() {
                end -= 1;
            }
            if end > start {
                ranges.push((start, end));
            }
        }
    }
    ranges
}

/// `line` of `source` with every literal secret of `source` masked, and whatever follows a
/// `password:` key on it (a value the scan above could not read whole, e.g. unclosed quotes);
/// and the 1-based `column` moved to where the same character stands after masking.
fn mask_line(line: &str, column: usize, source: &str) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    let mut ranges = secret_key_values(&chars);
    for literal in secret_literals(source) {
        ranges.extend(occurrences(&chars, &literal));
    }
    ranges.sort_unstable();
    let mask = crate::output::redact::MASK;
    let (mut out, mut new_column, mut from) = (String::new(), column, 0);
    for (start, end) in ranges {
        if end <= from {
            continue;
        }
        let start = start.max(from);
        out.extend(&chars[from..start]);
        out.push_str(mask);
        let caret = column.saturating_sub(1);
        if caret >= end {
            new_column = new_column + mask.len() - (end - start);
        } else if caret >= start {
            new_column -= caret - start;
        }
        from = end;
    }
    out.extend(&chars[from..]);
    (out, new_column)
}

/// The widest source line shown, in characters: a longer line (a 200 KB line of generated
/// YAML) is cut around the caret, each cut marked with `...`.
const MAX_EXCERPT_CHARS: usize = 200;
/// The longest message shown, in characters (a message may quote what it is about).
const MAX_MESSAGE_CHARS: usize = 1000;
const CUT: &str = "...";

/// `line` cut to `width` characters around the 1-based `column`; the caret's new column.
fn excerpt(line: &str, column: usize, width: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= width {
        return (line.to_string(), column);
    }
    let caret = column.saturating_sub(1).min(chars.len());
    let end = (caret.saturating_sub(width / 2) + width).min(chars.len());
    let start = end - width;
    let mut out = String::new();
    if start > 0 {
        out.push_str(CUT);
    }
    out.extend(chars.get(start..end).unwrap_or_default());
    if end < chars.len() {
        out.push_str(CUT);
    }
    let shift = if start > 0 { CUT.len() } else { 0 };
    (out, column.saturating_sub(start) + shift)
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
        // The caret still points at `bogus`.
        let lines: Vec<&str> = out.lines().collect();
        let shown = lines[3]
            .split_once(" | ")
            .map(|(_, l)| l)
            .unwrap_or_default();
        let caret =
            lines[4].find('^').unwrap_or_default() - lines[4].find('|').unwrap_or_default() - 2;
        assert!(shown[caret..].starts_with("bogus"), "{out}");
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
    fn diagnostic_cuts_a_long_line_around_the_caret() {
        let source = format!("key: {}BAD{}\n", "x".repeat(100_000), "y".repeat(100_000));
        let out = at(1, 100_006).render(Some(&source));
        let lines: Vec<&str> = out.lines().collect();
        assert!(out.len() < 600, "{} bytes", out.len());
        let shown = lines[3].strip_prefix("1 | ").unwrap();
        assert!(
            shown.starts_with("...x") && shown.ends_with("y..."),
            "{shown}"
        );
        let caret = lines[4].find('^').unwrap();
        assert_eq!(&lines[3][caret..caret + 3], "BAD", "{out}");
        // The start of a long line keeps its start.
        let out = at(1, 1).render(Some(&source));
        assert!(
            out.contains("1 | key: xxx") && out.contains("x...\n  | ^\n"),
            "{out}"
        );
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
