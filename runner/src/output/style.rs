//! Colour for people at a terminal: status words and a few accents, painted only when stdout
//! is a terminal that shows colour (`TERM` set and not `dumb`) and `NO_COLOR` is unset.
//!
//! The rules are anstream's (the crate clap colours its help with), so relflow and its
//! `--help` agree: `NO_COLOR` (any non-empty value) and `CLICOLOR=0` turn colour off,
//! `CLICOLOR_FORCE=1` turns it on even through a pipe. Every function returns the text
//! unchanged when colour is off, so callers never branch on it.
//!
//! ```
//! use relflow::output::style;
//! let line = format!("release petportal-2 {}", style::status("failed"));
//! ```

use std::sync::OnceLock;

use anstyle::{AnsiColor, Effects, Style};

/// Whether stdout gets colour (decided once per process).
pub fn is_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| is_enabled_on(&std::io::stdout()))
}

/// Whether stderr gets colour (tracing lines), by the same rules.
pub fn is_enabled_on_stderr() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| is_enabled_on(&std::io::stderr()))
}

fn is_enabled_on<S: anstream::stream::RawStream>(stream: &S) -> bool {
    let choice = anstream::AutoStream::choice(stream);
    // anstream also colours a terminal in CI whatever TERM says; a `dumb` terminal shows
    // escape codes as garbage, so it never gets them unless forced.
    matches!(
        choice,
        anstream::ColorChoice::Always | anstream::ColorChoice::AlwaysAnsi
    ) && (is_forced() || (anstream::stream::IsTerminal::is_terminal(stream) && is_colour_term()))
}

fn is_forced() -> bool {
    std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0")
}

fn is_colour_term() -> bool {
    !crate::output::terminal::is_dumb()
}

/// The style of a status word: red for what failed or was undone, green for what
/// succeeded, yellow for what waits on time or a person, cyan for what runs, dim for what
/// did not (or will not) run; `None` for a word it does not know.
fn style_of(word: &str) -> Option<Style> {
    let red = AnsiColor::Red.on_default().effects(Effects::BOLD);
    Some(match word {
        "failed" | "rolled_back" | "aborted" | "cancelled" | "exception" | "interrupted" => red,
        "completed" | "succeeded" | "ok" => AnsiColor::Green.on_default(),
        "waiting_retry" | "retrying" | "waiting_approval" | "waiting_lock" | "paused"
        | "ignored" => AnsiColor::Yellow.on_default(),
        "running" | "in_progress" | "queued" => AnsiColor::Cyan.on_default(),
        "planned" | "skipped" | "superseded" => Style::new().effects(Effects::DIMMED),
        _ => return None,
    })
}

fn paint_with(style: Style, text: &str, is_on: bool) -> String {
    if is_on {
        format!("{style}{text}{style:#}")
    } else {
        text.to_string()
    }
}

/// A release, phase, task, attempt or rollback-job status word (`failed`, `completed`,
/// `waiting_retry`...), coloured by what it means; unknown words are left as they are.
pub fn status(word: &str) -> String {
    status_with(word, is_enabled())
}

/// [`status`] with colour on or off as given (for tests and other streams).
pub fn status_with(word: &str, is_on: bool) -> String {
    match style_of(word) {
        Some(style) => paint_with(style, word, is_on),
        None => word.to_string(),
    }
}

/// An error's text (class and message), in red.
pub fn error(text: &str) -> String {
    paint_with(AnsiColor::Red.on_default(), text, is_enabled())
}

/// Secondary text (times, durations, paths), dimmed.
pub fn dim(text: &str) -> String {
    paint_with(Style::new().effects(Effects::DIMMED), text, is_enabled())
}

/// Names a person looks for first (a release id, a command to type next), in bold.
pub fn bold(text: &str) -> String {
    paint_with(Style::new().effects(Effects::BOLD), text, is_enabled())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_are_painted_by_meaning_and_left_alone_without_colour() {
        assert_eq!(
            status_with("failed", true),
            "\u{1b}[1m\u{1b}[31mfailed\u{1b}[0m"
        );
        assert_eq!(
            status_with("completed", true),
            "\u{1b}[32mcompleted\u{1b}[0m"
        );
        assert!(status_with("waiting_retry", true).contains("\u{1b}[33m"));
        assert_eq!(status_with("failed", false), "failed");
        assert_eq!(status_with("something-else", true), "something-else");
    }
}
