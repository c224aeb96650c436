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
        // A message may quote the offending text: bounded like the excerpt.
        let (message, _) = excerpt(&self.message, 1, MAX_MESSAGE_CHARS);
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
        let shown: String = text
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect();
        let (shown, column) = excerpt(shown.trim_end_matches('\r'), self.column, MAX_EXCERPT_CHARS);
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
