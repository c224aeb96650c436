//! `shell: true` command lines: values never become shell text. Each `${...}` is replaced by
//! a quoted expansion of an environment variable (`"${RELFLOW_V_1}"`) that holds the value,
//! so a value is always data, one word, whatever characters it holds.

use crate::pipeline::template::{Piece, Template};

/// A shell command line ready for `sh -c`, and the variables its references expand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ShellLine {
    pub text: String,
    /// `RELFLOW_V_n` → value, in order of first use.
    pub values: Vec<(String, String)>,
}

/// Where the shell stands at a point of the text, as far as quoting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    Plain,
    Single,
    Double,
    /// `# ...` up to the end of the line.
    Comment,
}

/// Follows the quoting of the text written so far.
#[derive(Debug)]
struct Scanner {
    quoting: Quoting,
    /// The previous character was an unescaped `\` (outside single quotes).
    escaped: bool,
    /// The previous character ends a word (a `#` here starts a comment).
    at_word_start: bool,
}

impl Scanner {
    fn new() -> Scanner {
        Scanner {
            quoting: Quoting::Plain,
            escaped: false,
            at_word_start: true,
        }
    }

    fn push(&mut self, c: char) {
        let escaped = std::mem::take(&mut self.escaped);
        match self.quoting {
            Quoting::Plain if escaped => {}
            Quoting::Plain => match c {
                '\\' => self.escaped = true,
                '\'' => self.quoting = Quoting::Single,
                '"' => self.quoting = Quoting::Double,
                '#' if self.at_word_start => self.quoting = Quoting::Comment,
                _ => {}
            },
            Quoting::Single if c == '\'' => self.quoting = Quoting::Plain,
            Quoting::Double if escaped => {}
            Quoting::Double => match c {
                '\\' => self.escaped = true,
                '"' => self.quoting = Quoting::Plain,
                _ => {}
            },
            Quoting::Comment if c == '\n' => self.quoting = Quoting::Plain,
            Quoting::Single | Quoting::Comment => {}
        }
        self.at_word_start = c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')');
    }

    /// The text that expands variable `name` to exactly its value here.
    fn expansion(&self, name: &str) -> String {
        match self.quoting {
            Quoting::Plain | Quoting::Comment => format!("\"${{{name}}}\""),
            Quoting::Double => format!("${{{name}}}"),
            // Close the single quotes, expand in double quotes, reopen.
            Quoting::Single => format!("'\"${{{name}}}\"'"),
        }
    }
}

/// Builds the shell line of `template`; `render` gives the value of one reference.
pub(super) fn shell_line(
    template: &Template,
    mut render: impl FnMut(&Template) -> Result<String, String>,
) -> Result<ShellLine, String> {
    let mut line = ShellLine {
        text: String::new(),
        values: Vec::new(),
    };
    // The same reference twice expands the same variable.
    let mut names: Vec<(String, String)> = Vec::new();
    let mut scanner = Scanner::new();
    for piece in template.pieces() {
        match piece {
            Piece::Text(text) => {
                for c in text.chars() {
                    scanner.push(c);
                    line.text.push(c);
                }
            }
            Piece::Reference(reference) => {
                if scanner.escaped {
                    // `\${v}`: the backslash would quote our own quote; the value is data
                    // anyway, so it is dropped.
                    line.text.pop();
                    scanner.escaped = false;
                }
                let source = reference.source().to_string();
                let name = match names.iter().find(|(s, _)| *s == source) {
                    Some((_, name)) => name.clone(),
                    None => {
                        let name = format!("RELFLOW_V_{}", names.len() + 1);
                        line.values.push((name.clone(), render(&reference)?));
                        names.push((source, name.clone()));
                        name
                    }
                };
                line.text.push_str(&scanner.expansion(&name));
                scanner.at_word_start = false;
            }
        }
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(source: &str) -> ShellLine {
        let template = Template::parse(source).unwrap();
        shell_line(&template, |t| Ok(format!("<{}>", t.source()))).unwrap()
    }

    #[test]
    fn a_reference_becomes_a_quoted_expansion_in_each_quoting() {
        assert_eq!(line("echo hi ${v}").text, r#"echo hi "${RELFLOW_V_1}""#);
        assert_eq!(
            line(r#"echo "v=${v}!""#).text,
            r#"echo "v=${RELFLOW_V_1}!""#
        );
        assert_eq!(line("echo 'v=${v}'").text, r#"echo 'v='"${RELFLOW_V_1}"''"#);
        assert_eq!(
            line(r#"echo "it's" ${v} 'a"b' ${v}"#).text,
            r#"echo "it's" "${RELFLOW_V_1}" 'a"b' "${RELFLOW_V_1}""#
        );
        assert_eq!(line(r"echo \${v}").text, r#"echo "${RELFLOW_V_1}""#);
        assert_eq!(
            line("# don't\necho ${v}").text,
            "# don't\necho \"${RELFLOW_V_1}\""
        );
    }

    #[test]
    fn each_reference_gets_one_variable_with_its_value() {
        let l = line("cp ${a} ${env.B} ${a} $${x}");
        assert_eq!(
            l.text,
            r#"cp "${RELFLOW_V_1}" "${RELFLOW_V_2}" "${RELFLOW_V_1}" ${x}"#
        );
        assert_eq!(
            l.values,
            [
                ("RELFLOW_V_1".to_string(), "<${a}>".to_string()),
                ("RELFLOW_V_2".to_string(), "<${env.B}>".to_string()),
            ]
        );
    }

    /// The hostile value reaches `sh` as one word of data.
    #[test]
    fn a_hostile_value_stays_data_in_a_real_shell() {
        let template = Template::parse("printf '%s|' ${v} \"${v}\" 'q${v}'").unwrap();
        let evil = "x; touch pwned; echo $(id) '\" `id`";
        let l = shell_line(&template, |_| Ok(evil.to_string())).unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", &l.text])
            .envs(l.values.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let expected = format!("{evil}|{evil}|q{evil}|");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }
}
