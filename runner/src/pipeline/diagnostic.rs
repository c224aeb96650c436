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
        let mut out = format!("error: {}\n", self.message);
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
