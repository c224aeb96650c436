//! What a diagnostic may show of a pipeline's text: literal secrets masked (found without
//! parsing the file, which may not parse), long lines cut around the caret, and how wide the
//! offending token is, for the underline.

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
pub(super) fn secret_literals(source: &str) -> Vec<String> {
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

pub(super) fn mask_literals(text: &str, literals: &[String]) -> String {
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
            // A quoted value ends at its closing quote (it may hold `,` or `}`: `"${env.X}"`).
            let quoted = chars
                .get(start)
                .filter(|c| matches!(c, '"' | '\''))
                .and_then(|&q| (start + 1..chars.len()).find(|&i| chars[i] == q))
                .map(|close| close + 1);
            let mut end = quoted.unwrap_or_else(|| {
                (start..chars.len())
                    .find(|&i| matches!(chars[i], ',' | '}'))
                    .unwrap_or(chars.len())
            });
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
pub(super) fn mask_line(line: &str, column: usize, source: &str) -> (String, usize) {
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
pub(super) const MAX_EXCERPT_CHARS: usize = 200;
/// The longest message shown, in characters (a message may quote what it is about).
pub(super) const MAX_MESSAGE_CHARS: usize = 1000;
const CUT: &str = "...";

/// `line` cut to `width` characters around the 1-based `column`; the caret's new column.
pub(super) fn excerpt(line: &str, column: usize, width: usize) -> (String, usize) {
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

/// How many characters, from the 0-based `start` of `chars`, the token there spans: a quoted
/// string with its quotes, a `${...}` reference, a flow collection on one line, or a plain
/// scalar or key up to the YAML punctuation that ends it. At least 1.
pub(super) fn token_len(chars: &[char], start: usize) -> usize {
    let Some(&first) = chars.get(start) else {
        return 1;
    };
    let rest = chars.get(start + 1..).unwrap_or_default();
    let closing = |close: char| rest.iter().position(|&c| c == close).map(|i| i + 2);
    let len = match first {
        // A tab or space is the offense itself (YAML indentation).
        c if c.is_whitespace() => Some(1),
        // A block sequence's `- ` indicator.
        '-' if rest.first().is_none_or(|c| c.is_whitespace()) => Some(1),
        '"' | '\'' => closing(first),
        '$' if rest.first() == Some(&'{') => closing('}'),
        '{' | '[' => matching(chars, start),
        _ => {
            let end = (start..chars.len())
                .find(|&i| ends_plain(chars, i))
                .unwrap_or(chars.len());
            let mut len = end - start;
            while len > 1 && chars[start + len - 1].is_whitespace() {
                len -= 1;
            }
            Some(len)
        }
    };
    len.unwrap_or(1).max(1)
}

/// Whether a plain scalar or key that runs to `i` ends before `chars[i]`.
fn ends_plain(chars: &[char], i: usize) -> bool {
    let next_is_blank = chars.get(i + 1).is_none_or(|c| c.is_whitespace());
    match chars[i] {
        ',' | '}' | ']' | '"' => true,
        ':' => next_is_blank,
        '#' => i > 0 && chars[i - 1].is_whitespace(),
        _ => false,
    }
}

/// The length of the flow collection opening at `start`, when it closes on the same line.
fn matching(chars: &[char], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in chars.iter().enumerate().skip(start) {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i + 1 - start);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_at(line: &str, column: usize) -> String {
        let chars: Vec<char> = line.chars().collect();
        let n = token_len(&chars, column - 1);
        chars[column - 1..column - 1 + n].iter().collect()
    }

    #[test]
    fn the_underline_covers_the_token_at_the_caret() {
        assert_eq!(len_at("    tsks:", 5), "tsks");
        assert_eq!(len_at("  xld: { kind: xldeploy, url: u }", 16), "xldeploy");
        assert_eq!(len_at("        timeout: 10", 18), "10");
        assert_eq!(
            len_at("  run: [echo, \"v=${versoin}\"] }", 18),
            "${versoin}"
        );
        assert_eq!(len_at("  x: \"quoted text\", y", 6), "\"quoted text\"");
        assert_eq!(len_at("  - tasks: []", 12), "[]");
        assert_eq!(len_at("  a: b c # note", 6), "b c");
        assert_eq!(len_at("  url: http://x:1/y", 8), "http://x:1/y");
        assert_eq!(len_at("\t- name: x", 1), "\t");
        assert_eq!(len_at("\t- name: x", 2), "-");
        assert_eq!(token_len(&[], 0), 1);
    }
}
