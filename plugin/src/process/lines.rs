//! Cutting the output stream into lines, at most [`MAX_LINE`] bytes each (plus, with a
//! [`CutGuard`], the length of the longest secret).

use std::sync::OnceLock;

use super::MAX_LINE;

/// Decides where a line too long to keep whole is cut. The runner installs one that keeps its
/// secrets whole: a secret split across two lines would escape its redaction.
pub trait CutGuard: Sync {
    /// How many bytes past [`MAX_LINE`] to read before cutting (the longest secret), so a
    /// secret that starts before the cut is seen whole.
    fn hold(&self) -> usize;
    /// Where to cut `line` at `at` bytes or before (never 0).
    fn cut(&self, line: &[u8], at: usize) -> usize;
}

static GUARD: OnceLock<&'static dyn CutGuard> = OnceLock::new();

/// Installs the guard of every later cut in this process (the first one installed stays).
pub fn set_cut_guard(guard: &'static dyn CutGuard) {
    let _ = GUARD.set(guard);
}

/// Where to cut a line of `line.len() > MAX_LINE` bytes.
fn cut_point(line: &[u8]) -> usize {
    let cut = GUARD.get().map_or(MAX_LINE, |g| g.cut(line, MAX_LINE));
    if cut == 0 || cut > MAX_LINE {
        MAX_LINE
    } else {
        cut
    }
}

/// Bytes read past [`MAX_LINE`] before a line without a newline is cut.
fn hold() -> usize {
    GUARD.get().map_or(0, |g| g.hold().min(MAX_LINE))
}

/// Bytes read so far that do not end a line yet.
#[derive(Default)]
pub(super) struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// Appends `bytes`; every complete line (or [`MAX_LINE`] bytes without a newline) goes to
    /// `emit`, without its line ending.
    pub fn push(&mut self, bytes: &[u8], emit: &mut dyn FnMut(String)) {
        self.pending.extend_from_slice(bytes);
        let hold = hold();
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(end) if end <= MAX_LINE => {
                    emit(text(&rest[..end]));
                    start += end + 1;
                }
                Some(end) => {
                    let cut = cut_point(&rest[..end]);
                    emit(text(&rest[..cut]));
                    start += cut;
                }
                None if rest.len() >= MAX_LINE + hold.max(1) => {
                    let cut = cut_point(rest);
                    emit(text(&rest[..cut]));
                    start += cut;
                }
                None => break,
            }
        }
        self.pending.drain(..start);
    }

    /// Emits a last line that had no newline.
    pub fn finish(&mut self, emit: &mut dyn FnMut(String)) {
        let mut rest: &[u8] = &self.pending;
        while rest.len() > MAX_LINE {
            let cut = cut_point(rest);
            emit(text(&rest[..cut]));
            rest = &rest[cut..];
        }
        if !rest.is_empty() {
            emit(text(rest));
        }
        self.pending.clear();
    }
}

fn text(mut bytes: &[u8]) -> String {
    while let [rest @ .., b'\r'] = bytes {
        bytes = rest;
    }
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut buffer = LineBuffer::default();
        for chunk in chunks {
            buffer.push(chunk, &mut |l| lines.push(l));
        }
        buffer.finish(&mut |l| lines.push(l));
        lines
    }

    #[test]
    fn lines_may_span_reads_and_lose_their_endings() {
        assert_eq!(
            cut(&[b"one\r\ntw", b"o\n\nthree"]),
            vec!["one", "two", "", "three"]
        );
    }

    #[test]
    fn a_long_line_is_split_at_the_cap() {
        let long = vec![b'x'; MAX_LINE + 10];
        let lines = cut(&[&long, b"\nend\n"]);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], "x".repeat(10));
        assert_eq!(lines[2], "end");
    }

    /// Keeps `TOKEN` whole, as the runner's redactor keeps its secrets.
    struct KeepToken;
    const TOKEN: &[u8] = b"Sup3r-S3cret-Val_42";

    impl CutGuard for KeepToken {
        fn hold(&self) -> usize {
            TOKEN.len()
        }
        fn cut(&self, line: &[u8], at: usize) -> usize {
            let from = at.saturating_sub(TOKEN.len());
            line[from..]
                .windows(TOKEN.len())
                .position(|w| w == TOKEN)
                .map(|i| from + i)
                .filter(|&start| start < at && start + TOKEN.len() > at)
                .unwrap_or(at)
        }
    }

    #[test]
    fn a_guarded_cut_keeps_a_secret_whole_across_reads() {
        set_cut_guard(&KeepToken);
        let mut long = vec![b'x'; MAX_LINE - 9];
        long.extend_from_slice(TOKEN);
        // The secret arrives in two reads, its start before the cut and its end after.
        let (first, second) = long.split_at(MAX_LINE - 4);
        let lines = cut(&[first, second, b" tail\n"]);
        assert_eq!(
            lines.len(),
            2,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(lines[0].len(), MAX_LINE - 9);
        assert_eq!(lines[1], "Sup3r-S3cret-Val_42 tail");
    }

    #[test]
    fn a_long_last_line_without_newline_is_split_too() {
        let long = vec![b'x'; MAX_LINE + 10];
        let lines = cut(&[&long]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE);
    }
}
