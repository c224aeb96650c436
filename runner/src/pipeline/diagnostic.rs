//! One error in a pipeline file, and its rendering with the source line, the offending token
//! underlined and a `help:` line, through `annotate-snippets` (the renderer rustc uses).
//!
//! The shape follows rustc and just, and tests pin it:
//!
//! ```text
//! error: unknown field `tsks`, expected one of `name`, `on_failure`, `tasks`
//!  --> bad/unknown-key.yaml:4:5
//!   |
//! 4 |     tsks:
//!   |     ^^^^
//!   |
//!   = help: did you mean `tasks`?
//! ```
//!
//! The header keeps `file:line:column` of the whole file even when the line shown is cut.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use annotate_snippets::renderer::DecorStyle;
use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};

use super::excerpt::{
    MAX_EXCERPT_CHARS, MAX_MESSAGE_CHARS, excerpt, mask_line, mask_literals, secret_literals,
    token_len,
};

/// An error at a place in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 = the whole file (no source line is shown).
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// What is wrong, without the field it is about.
    pub message: String,
    /// The field the error is about, as a path: `phases[0].tasks[1].script`.
    pub field: Option<String>,
    /// What to do about it: `did you mean `tasks`?`, `chmod +x scripts/deploy.sh`.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at a line and column, about no particular field.
    pub fn at(
        file: impl Into<PathBuf>,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            line,
            column,
            message: message.into(),
            field: None,
            help: None,
        }
    }

    /// A diagnostic about the whole file (size, encoding of an unreadable file, ...).
    pub fn whole_file(file: impl Into<PathBuf>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(file, 0, 0, message)
    }

    /// The same diagnostic with a `help:` line.
    pub fn with_help(mut self, help: Option<String>) -> Diagnostic {
        self.help = help;
        self
    }

    /// The headline: `field: message`, or the message alone.
    pub fn title(&self) -> String {
        match &self.field {
            Some(field) => format!("{field}: {}", self.message),
            None => self.message.clone(),
        }
    }

    /// The diagnostic as it may be shown: the pipeline's literal secrets masked in every
    /// text (a message may quote the offending value), each text bounded in length.
    pub fn shown(&self, source: Option<&str>) -> Diagnostic {
        let literals = source.map(secret_literals).unwrap_or_default();
        let clean = |text: &str| excerpt(&mask_literals(text, &literals), 1, MAX_MESSAGE_CHARS).0;
        Diagnostic {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            message: clean(&self.message),
            field: self.field.as_deref().map(clean),
            help: self.help.as_deref().map(clean),
        }
    }

    /// Renders the diagnostic without colour; `source` is the file's text, used to show the
    /// line. Ends with a newline.
    pub fn render(&self, source: Option<&str>) -> String {
        self.render_with(source, false)
    }

    /// Renders the diagnostic, in colour when `color` is true.
    pub fn render_with(&self, source: Option<&str>, color: bool) -> String {
        let shown = self.shown(source);
        let line_text = source
            .filter(|_| self.line > 0)
            .and_then(|s| s.lines().nth(self.line - 1));
        match (line_text, source) {
            (Some(text), Some(source)) => shown.render_snippet(text, source, color),
            _ => shown.render_location(),
        }
    }

    /// Without a source line: the headline, where, and the help.
    fn render_location(&self) -> String {
        let mut out = format!("error: {}\n", self.title());
        if self.line == 0 {
            out.push_str(&format!(" --> {}\n", self.file.display()));
        } else {
            let pad = " ".repeat(self.line.to_string().len());
            out.push_str(&format!(
                "{pad}--> {}:{}:{}\n",
                self.file.display(),
                self.line,
                self.column
            ));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!(" = help: {help}\n"));
        }
        out
    }

    /// The headline, the line with the offending token underlined, and the help.
    fn render_snippet(&self, text: &str, source: &str, color: bool) -> String {
        // Masked first (before any cut): the line may be the one with the password.
        let (text, column) = mask_line(text, self.column, source);
        let shown: String = text
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect();
        let (shown, column) = excerpt(shown.trim_end_matches('\r'), column, MAX_EXCERPT_CHARS);
        let chars: Vec<char> = shown.chars().collect();
        let start = column.saturating_sub(1).min(chars.len());
        let len = if start < chars.len() {
            token_len(&chars, start)
        } else {
            0
        };
        let byte =
            |chars_before: usize| chars.iter().take(chars_before).map(|c| c.len_utf8()).sum();
        let span = byte(start)..byte((start + len).min(chars.len()));
        let path = self.file.display().to_string();
        let title = self.title();
        let snippet = Snippet::source(shown.as_str())
            .line_start(self.line)
            .path(path.as_str())
            .annotation(AnnotationKind::Primary.span(span));
        let mut group = Level::ERROR.primary_title(title.as_str()).element(snippet);
        if let Some(help) = &self.help {
            group = group.element(Level::HELP.message(help.as_str()));
        }
        let renderer = if color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        // Lines are cut by `excerpt` above, with our own limit: no second cut.
        let renderer = renderer
            .decor_style(DecorStyle::Ascii)
            .term_width(usize::MAX / 4);
        let rendered = renderer.render(&[group]);
        // The header names the column in the file, not in the (possibly cut) line shown.
        let located = with_location(&rendered, &path, self.line, self.column);
        format!("{located}\n")
    }
}

/// `rendered` with the first `PATH:LINE:...` location replaced by `PATH:LINE:COLUMN`.
fn with_location(rendered: &str, path: &str, line: usize, column: usize) -> String {
    let prefix = format!("{path}:{line}:");
    let Some(at) = rendered.find(&prefix) else {
        return rendered.to_string();
    };
    let from = at + prefix.len();
    let end = rendered[from..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(rendered.len(), |i| from + i);
    format!("{}{column}{}", &rendered[..from], &rendered[end..])
}

/// Whether diagnostics on stderr get colour: a terminal that is attended, and no `NO_COLOR`.
pub fn stderr_has_color() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    !no_color && !dumb && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Diagnostic {
        Diagnostic::at(
            "bad/unknown-key.yaml",
            line,
            column,
            "unknown field `tsks`, expected one of `name`, `on_failure`, `tasks`",
        )
    }

    #[test]
    fn secrets_on_the_shown_line_are_masked() {
        let source = "backends:\n  xld: { kind: xl-deploy, username: admin, password: \"Sup3r-S3cret\", bogus: 1 }\nvariables:\n  token:\n    value: T0ken-Value-9\n    secret: true\n    wrong: 1\n";
        let out = at(2, 70).render(Some(source));
        assert!(!out.contains("Sup3r-S3cret"), "{out}");
        assert!(out.contains("password: ***, bogus: 1 }"), "{out}");
        // A quoted value holding `}` (a reference) is masked whole, quotes and all.
        let reference = "backends:\n  xld: { kind: xl-deploy, password: \"${env.XLD_PASSWORD}\", polling_interval: 1ms }\n";
        let masked = at(2, 70).render(Some(reference));
        assert!(
            masked.contains("password: ***, polling_interval"),
            "{masked}"
        );
        // The underline still stands under `bogus`.
        let lines: Vec<&str> = out.lines().collect();
        let caret = lines[4].find('^').unwrap_or_default();
        assert!(lines[3][caret..].starts_with("bogus"), "{out}");
        assert_eq!(lines[4].matches('^').count(), "bogus".len(), "{out}");
        let out = at(5, 5).render(Some(source));
        assert!(!out.contains("T0ken-Value-9"), "{out}");
        let flow = "variables: { token: { value: abc-123-xyz, secret: true } }\n";
        assert!(!at(1, 1).render(Some(flow)).contains("abc-123-xyz"));
        // A message or a help quoting the secret is masked too.
        let quoting = Diagnostic::at("p.yaml", 7, 5, "`Sup3r-S3cret` is wrong")
            .with_help(Some("not Sup3r-S3cret".into()));
        let out = quoting.render(Some(source));
        assert!(!out.contains("Sup3r-S3cret"), "{out}");
    }

    #[test]
    fn diagnostic_renders_line_underline_and_help() {
        let source = "name: x\nphases:\n  - name: a\n    tsks:\n";
        assert_eq!(
            at(4, 5).render(Some(source)),
            "error: unknown field `tsks`, expected one of `name`, `on_failure`, `tasks`\n \
             --> bad/unknown-key.yaml:4:5\n  |\n4 |     tsks:\n  |     ^^^^\n"
        );
        let helped = at(4, 5).with_help(Some("did you mean `tasks`?".into()));
        assert!(
            helped
                .render(Some(source))
                .ends_with("  |     ^^^^\n  |\n  = help: did you mean `tasks`?\n"),
            "{}",
            helped.render(Some(source))
        );
        let mut fielded = at(4, 5);
        fielded.field = Some("phases[0]".into());
        assert!(
            fielded
                .render(Some(source))
                .starts_with("error: phases[0]: unknown field")
        );
    }

    #[test]
    fn diagnostic_in_colour_has_the_same_text() {
        let source = "name: x\nphases:\n  - name: a\n    tsks:\n";
        let colored = at(4, 5).render_with(Some(source), true);
        assert!(colored.contains('\u{1b}'), "{colored:?}");
        assert!(colored.contains("bad/unknown-key.yaml:4:5"), "{colored:?}");
        assert!(!at(4, 5).render(Some(source)).contains('\u{1b}'));
    }

    #[test]
    fn diagnostic_gutter_grows_with_line_number() {
        let source = format!("{}  bad: 1\n", "x: 1\n".repeat(11));
        let out = at(12, 3).render(Some(&source));
        assert!(
            out.contains("\n  --> bad/unknown-key.yaml:12:3\n   |\n12 |   bad: 1\n   |   ^^^\n"),
            "{out}"
        );
    }

    #[test]
    fn diagnostic_counts_columns_in_chars_and_shows_tabs_as_spaces() {
        let source = "é\tx: 1\n";
        let out = at(1, 3).render(Some(source));
        assert!(out.contains("bad/unknown-key.yaml:1:3\n"), "{out:?}");
        let lines: Vec<&str> = out.lines().collect();
        let caret = lines[4].chars().position(|c| c == '^').unwrap();
        assert_eq!(lines[3].chars().nth(caret), Some('x'), "{out:?}");
    }

    #[test]
    fn diagnostic_cuts_a_long_line_around_the_caret() {
        let source = format!("key: {}BAD {}\n", "x".repeat(100_000), "y".repeat(100_000));
        let out = at(1, 100_006).render(Some(&source));
        let lines: Vec<&str> = out.lines().collect();
        assert!(out.len() < 600, "{} bytes", out.len());
        assert!(out.contains("bad/unknown-key.yaml:1:100006\n"), "{out}");
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
            out.contains("1 | key: xxx") && out.contains("x...\n  | ^^^\n"),
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
        assert!(out.ends_with(" --> bad/unknown-key.yaml:9:1\n"), "{out}");
    }
}
