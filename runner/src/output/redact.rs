//! Secret redaction: the one layer every text a person or a file sees passes through first
//! (events and so the store, events.jsonl, script_output.log and the terminal; stderr
//! messages; tracing; the cut of long process output lines).
//!
//! A secret is masked whole, wherever it stands in a text. Adding a secret also adds the
//! forms it commonly takes in output: each line of a multi-line value (a PEM key printed line
//! by line), its base64, and for basic auth the base64 of `user:password`.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

pub const MASK: &str = "***";

/// Lines of a multi-line secret shorter than this (trimmed) are not masked on their own: they
/// would match ordinary text (a PEM key's lines are 64 characters).
pub const MIN_LINE_SECRET: usize = 8;
/// Secrets shorter than this have no base64 form masked: a 4-character code would match
/// ordinary words.
const MIN_BASE64_SOURCE: usize = 6;

/// Replaces known secret values with `***`. Clones share one set of secrets, so a secret
/// learnt while a release runs is masked by every consumer from then on.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    needles: Arc<RwLock<Needles>>,
}

#[derive(Debug, Default)]
struct Needles {
    /// Longest first, so a secret that contains another is replaced whole.
    list: Vec<String>,
}

impl Needles {
    fn insert(&mut self, needle: String) {
        if needle.is_empty() || self.list.contains(&needle) {
            return;
        }
        self.list.push(needle);
        self.list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// The base64 forms of `bytes` as they appear in headers and dumps (padded or not).
fn base64_forms(bytes: &[u8]) -> [String; 2] {
    [STANDARD.encode(bytes), STANDARD_NO_PAD.encode(bytes)]
}

/// The lines of a multi-line secret worth masking on their own: long enough to be
/// distinctive, and not a PEM armour line (`-----BEGIN PRIVATE KEY-----` is public).
fn secret_lines(secret: &str) -> impl Iterator<Item = &str> {
    secret
        .lines()
        .map(str::trim)
        .filter(|line| line.len() >= MIN_LINE_SECRET)
        .filter(|line| !(line.starts_with("-----") && line.ends_with("-----")))
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Needles> {
        self.needles.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Needles> {
        self.needles.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a secret value and the forms it takes in output; empty values are ignored (they
    /// would match everywhere).
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut needles = self.write();
        needles.insert(secret.to_string());
        if secret.contains('\n') {
            for line in secret_lines(secret) {
                needles.insert(line.to_string());
            }
        }
        if secret.len() >= MIN_BASE64_SOURCE {
            for form in base64_forms(secret.as_bytes()) {
                needles.insert(form);
            }
        }
    }

    /// Adds the basic-auth credentials of a server: the password, and the base64 of
    /// `user:password` that an error page may echo from the `Authorization` header.
    pub fn add_basic_auth(&self, username: &str, password: &str) {
        if password.is_empty() {
            return;
        }
        self.add(password);
        let mut needles = self.write();
        for form in base64_forms(format!("{username}:{password}").as_bytes()) {
            needles.insert(form);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.read().list.is_empty()
    }

    /// The length in bytes of the longest text masked (0 when none).
    pub fn longest(&self) -> usize {
        self.read().list.first().map_or(0, String::len)
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let needles = self.read();
        let mut out = Cow::Borrowed(text);
        for needle in &needles.list {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), MASK));
            }
        }
        out
    }

    /// `Some(redacted)` only when something was replaced.
    pub fn redact_changed(&self, text: &str) -> Option<String> {
        match self.redact(text) {
            Cow::Borrowed(_) => None,
            Cow::Owned(s) => Some(s),
        }
    }

    /// Whether `text` holds a secret (or one of its forms).
    pub fn is_secret_in(&self, text: &str) -> bool {
        self.read().list.iter().any(|n| text.contains(n.as_str()))
    }

    /// Where to cut `line` at `at` bytes or before so that no secret is split across the two
    /// pieces: before the first secret that would straddle the cut. Never 0 (a secret longer
    /// than the whole cut is cut anyway).
    pub fn safe_cut(&self, line: &[u8], at: usize) -> usize {
        let needles = self.read();
        let mut cut = at.min(line.len());
        // Moving the cut back may make it fall inside another secret: look again.
        for _ in 0..needles.list.len().max(1) {
            let earlier = needles
                .list
                .iter()
                .filter_map(|n| straddling_start(line, n.as_bytes(), cut))
                .min();
            match earlier {
                Some(start) if start > 0 && start < cut => cut = start,
                _ => break,
            }
        }
        cut.max(1)
    }

    /// Adds this redactor to the ones stderr messages, tracing and process output lines use.
    /// A process that drives several releases at once (`relflow serve`) keeps every one of
    /// them: a traced line of one release must not show another release's secret.
    pub fn install_global(&self) {
        let mut all = GLOBAL.write().unwrap_or_else(PoisonError::into_inner);
        if !all.iter().any(|r| Arc::ptr_eq(&r.needles, &self.needles)) {
            all.push(self.clone());
        }
        relflow_plugin::process::set_cut_guard(&GlobalCut);
    }

    /// The redactors of every release this process has worked on.
    fn globals() -> Vec<Redactor> {
        GLOBAL
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `text` with every global redactor applied (unchanged when there is none).
    pub fn redact_global(text: &str) -> String {
        let mut out = text.to_string();
        for r in Redactor::globals() {
            out = r.redact(&out).into_owned();
        }
        out
    }
}

/// The start of an occurrence of `needle` in `line` that begins before `cut` and ends after it.
fn straddling_start(line: &[u8], needle: &[u8], cut: usize) -> Option<usize> {
    let n = needle.len();
    if n < 2 || cut == 0 || cut >= line.len() {
        return None;
    }
    let from = cut.saturating_sub(n - 1);
    let to = (cut + n - 1).min(line.len());
    line[from..to]
        .windows(n)
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| from + i)
        .find(|&start| start < cut && start + n > cut)
}

static GLOBAL: RwLock<Vec<Redactor>> = RwLock::new(Vec::new());

/// The plugin's long-line cut, kept clear of the global redactor's secrets.
struct GlobalCut;

impl relflow_plugin::process::CutGuard for GlobalCut {
    fn hold(&self) -> usize {
        Redactor::globals()
            .iter()
            .map(Redactor::longest)
            .max()
            .unwrap_or(0)
    }

    fn cut(&self, line: &[u8], at: usize) -> usize {
        // Moving the cut earlier for one release's secret may land it inside another's:
        // repeat until no redactor moves it (it only moves earlier, so this ends).
        let all = Redactor::globals();
        let mut cut = at;
        loop {
            let next = all.iter().fold(cut, |c, r| r.safe_cut(line, c));
            if next == cut {
                return cut;
            }
            cut = next;
        }
    }
}

/// stderr through the global redactor: the writer of `RUST_LOG` tracing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactedStderr;

impl Write for RedactedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing formats each event into one buffer and writes it whole: redacting per write
        // sees whole records.
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(Redactor::redact_global(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactedStderr {
    type Writer = RedactedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedStderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_installed_redactor_masks_the_global_text() {
        let first = Redactor::new();
        first.add("first-release-secret");
        first.install_global();
        let second = Redactor::new();
        second.add("second-release-secret");
        second.install_global();
        second.install_global();
        let text = Redactor::redact_global("a first-release-secret and a second-release-secret");
        assert_eq!(text, "a *** and a ***");
    }

    #[test]
    fn replaces_every_occurrence_longest_first() {
        let r = Redactor::new();
        r.add("abc");
        r.add("abcdef");
        r.add("");
        assert_eq!(r.redact("x abcdef abc y"), "x *** *** y");
        assert_eq!(r.redact_changed("nothing here"), None);
    }

    #[test]
    fn clones_share_what_they_learn() {
        let r = Redactor::new();
        let other = r.clone();
        other.add("Sup3r-S3cret-Val_42");
        assert_eq!(r.redact("token Sup3r-S3cret-Val_42."), "token ***.");
    }

    #[test]
    fn multi_line_secrets_are_masked_line_by_line() {
        let r = Redactor::new();
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nabc\n-----END PRIVATE KEY-----\n";
        r.add(pem);
        assert_eq!(r.redact("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"), "***");
        assert_eq!(r.redact("abc"), "abc", "short lines stay");
        assert_eq!(
            r.redact("-----BEGIN PRIVATE KEY-----"),
            "-----BEGIN PRIVATE KEY-----"
        );
    }

    #[test]
    fn base64_and_basic_auth_forms_are_masked() {
        let r = Redactor::new();
        r.add_basic_auth("admin", "Sup3r-S3cret-Val_42");
        let header = format!("Basic {}", STANDARD.encode("admin:Sup3r-S3cret-Val_42"));
        assert_eq!(r.redact(&header), "Basic ***");
        let alone = STANDARD.encode("Sup3r-S3cret-Val_42");
        assert_eq!(r.redact(&alone), "***");
    }

    #[test]
    fn a_cut_never_splits_a_secret() {
        let r = Redactor::new();
        r.add("Sup3r-S3cret-Val_42");
        let line = format!("{}Sup3r-S3cret-Val_42 tail", "x".repeat(95));
        let cut = r.safe_cut(line.as_bytes(), 100);
        assert_eq!(cut, 95);
        assert_eq!(r.safe_cut(line.as_bytes(), 95), 95);
        assert_eq!(r.safe_cut(line.as_bytes(), 118), 118);
        assert_eq!(Redactor::new().safe_cut(line.as_bytes(), 100), 100);
    }
}
