//! Cutting the output stream into lines, at most [`MAX_LINE`] bytes each.

use super::MAX_LINE;

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
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(end) if end <= MAX_LINE => {
                    emit(text(&rest[..end]));
                    start += end + 1;
                }
                _ if rest.len() >= MAX_LINE => {
                    emit(text(&rest[..MAX_LINE]));
                    start += MAX_LINE;
                }
                _ => break,
            }
        }
        self.pending.drain(..start);
    }

    /// Emits a last line that had no newline.
    pub fn finish(&mut self, emit: &mut dyn FnMut(String)) {
        if !self.pending.is_empty() {
            emit(text(&self.pending));
            self.pending.clear();
        }
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
}
