//! Runs an argv without a shell and streams its output, line by line, to a log sink.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use crate::ErrorClass;
use crate::backend::{BackendError, LogSink};

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finished {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Stdout lines, kept only when asked for.
    pub stdout: Vec<String>,
}

impl Finished {
    pub fn is_success(&self) -> bool {
        self.code == Some(0)
    }

    /// "exited 3" or "was killed by a signal".
    pub fn describe(&self) -> String {
        match self.code {
            Some(code) => format!("exited {code}"),
            None => "was killed by a signal".to_string(),
        }
    }
}

/// A command to run.
pub(crate) struct Run<'a> {
    pub argv: &'a [String],
    pub cwd: Option<&'a Path>,
    pub env: Vec<(&'a str, String)>,
    /// `PATH` for the child, which std also uses to find the program.
    pub search_path: Option<&'a std::ffi::OsStr>,
    pub keep_stdout: bool,
}

impl<'a> Run<'a> {
    pub fn new(argv: &'a [String]) -> Self {
        Run {
            argv,
            cwd: None,
            env: Vec::new(),
            search_path: None,
            keep_stdout: false,
        }
    }
}

enum Line {
    Out(String),
    Err(String),
}

/// Runs the command to its end; stdout and stderr lines go to `log` as they come.
/// `on_spawn` gets the child's pid (for cancel).
pub(crate) fn run(
    run: &Run<'_>,
    log: LogSink<'_>,
    on_spawn: &mut dyn FnMut(u32),
) -> Result<Finished, BackendError> {
    let Some((program, args)) = run.argv.split_first() else {
        return Err(BackendError::new(
            ErrorClass::Validation,
            "run a command: its argv is empty",
        ));
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = run.cwd {
        command.current_dir(cwd);
    }
    if let Some(path) = run.search_path {
        command.env("PATH", path);
    }
    for (key, value) in &run.env {
        command.env(key, value);
    }
    let mut child = command.spawn().map_err(|e| {
        let class = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorClass::NotFound
        } else {
            ErrorClass::TaskFailed
        };
        BackendError::new(class, format!("start `{program}`: {e}"))
    })?;
    on_spawn(child.id());
    let (sender, receiver) = mpsc::channel();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| spawn_reader(s, sender.clone(), Line::Out)),
        child
            .stderr
            .take()
            .map(|s| spawn_reader(s, sender.clone(), Line::Err)),
    ]
    .into_iter()
    .flatten()
    .collect();
    drop(sender);
    let mut stdout = Vec::new();
    for line in receiver {
        match line {
            Line::Out(text) => {
                log(&text);
                if run.keep_stdout {
                    stdout.push(text);
                }
            }
            Line::Err(text) => log(&text),
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child.wait().map_err(|e| {
        BackendError::new(
            ErrorClass::Interrupted,
            format!("wait for `{program}`: {e}"),
        )
    })?;
    Ok(Finished {
        code: status.code(),
        stdout,
    })
}

fn spawn_reader<R: Read + Send + 'static>(
    stream: R,
    sender: mpsc::Sender<Line>,
    wrap: fn(String) -> Line,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let text = text.trim_end_matches(['\n', '\r']).to_string();
                    if sender.send(wrap(text)).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Renders an argv for the log: `$ helm upgrade --install web chart`.
pub(crate) fn show(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|word| {
            if !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
            {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect();
    format!("$ {}", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_both_streams_and_keeps_stdout() {
        let argv: Vec<String> = ["sh", "-c", "echo out; echo err >&2; exit 3"]
            .map(String::from)
            .to_vec();
        let mut lines = Vec::new();
        let mut run_spec = Run::new(&argv);
        run_spec.keep_stdout = true;
        let finished = run(&run_spec, &mut |l| lines.push(l.to_string()), &mut |_| {}).unwrap();
        assert_eq!(finished.code, Some(3));
        assert_eq!(finished.stdout, vec!["out"]);
        lines.sort();
        assert_eq!(lines, vec!["err", "out"]);
    }

    #[test]
    fn missing_program_is_not_found() {
        let argv = vec!["/nonexistent/relflow-program".to_string()];
        let err = run(&Run::new(&argv), &mut |_| {}, &mut |_| {}).unwrap_err();
        assert_eq!(err.class, ErrorClass::NotFound);
    }
}
