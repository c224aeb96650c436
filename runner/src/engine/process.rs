//! Runs one child process: argv exec'd without a shell, stdout and stderr merged into one
//! pipe (so lines keep the order the child wrote them), a timeout that kills the whole
//! process group, and death of the child when the runner dies.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;

/// Longest line kept whole; longer ones are split (a child printing binary junk cannot
/// make the runner buffer without bound).
const MAX_LINE: usize = 64 * 1024;
/// After SIGTERM on timeout, how long the group has before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
}

/// How the child ended.
#[derive(Debug)]
pub enum ProcessEnd {
    Exited(i32),
    Signalled(i32),
    TimedOut(Duration),
    SpawnFailed(std::io::Error),
}

impl ProcessEnd {
    /// Why the process did not succeed, e.g. `./bin/smoke exited with code 3`; `None` for
    /// exit code 0.
    pub fn failure(&self, program: &str) -> Option<String> {
        match self {
            ProcessEnd::Exited(0) => None,
            ProcessEnd::Exited(code) => Some(format!("{program} exited with code {code}")),
            ProcessEnd::Signalled(signal) => {
                Some(format!("{program} was killed by signal {signal}"))
            }
            ProcessEnd::TimedOut(after) => Some(format!(
                "{program} timed out after {}",
                crate::pipeline::duration::format_duration(*after)
            )),
            ProcessEnd::SpawnFailed(e) => Some(format!("cannot start {program}: {e}")),
        }
    }
}

fn build(spec: &ProcessSpec) -> Command {
    // A relative program with a slash is relative to the task's folder, not ours.
    let program = if spec.program.contains('/') && !spec.program.starts_with('/') {
        spec.cwd.join(&spec.program).into_os_string()
    } else {
        spec.program.clone().into()
    };
    let mut cmd = Command::new(program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL the child when
    // the runner's thread dies, so a killed runner leaves no orphan half-way through a task.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

fn read_lines(reader: std::io::PipeReader, lines: mpsc::UnboundedSender<String>) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = Read::take(&mut reader, MAX_LINE as u64).read_until(b'\n', &mut buf);
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while buf.last() == Some(&b'\n') || buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                if lines
                    .send(String::from_utf8_lossy(&buf).into_owned())
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

fn kill_group(pid: u32, signal: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: sends a signal to the child's own process group (created with
        // process_group(0)); no memory is touched.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// Runs the process to its end, handing each output line to `on_line` as it arrives.
pub async fn run_process(spec: &ProcessSpec, on_line: &mut dyn FnMut(String)) -> ProcessEnd {
    let (reader, writer) = match std::io::pipe() {
        Ok(pair) => pair,
        Err(e) => return ProcessEnd::SpawnFailed(e),
    };
    let mut cmd = build(spec);
    let stderr = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return ProcessEnd::SpawnFailed(e),
    };
    cmd.stdout(writer).stderr(stderr);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let spawned = cmd.spawn();
    drop(cmd); // closes our copies of the pipe's write end, so EOF comes when the child exits
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return ProcessEnd::SpawnFailed(e),
    };
    let pid = child.id().unwrap_or(0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || read_lines(reader, tx));

    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let sleep_until = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep_until);
    let mut timed_out = false;
    let status: std::io::Result<ExitStatus> = loop {
        tokio::select! {
            Some(line) = rx.recv() => on_line(line),
            status = child.wait() => break status,
            () = &mut sleep_until, if !timed_out => {
                timed_out = true;
                kill_group(pid, libc::SIGTERM);
                let grace = tokio::time::sleep(KILL_GRACE);
                tokio::select! {
                    status = child.wait() => break status,
                    () = grace => {
                        kill_group(pid, libc::SIGKILL);
                    }
                }
            }
        }
    };
    // Drain what the child wrote before exiting; a grandchild holding the pipe open
    // cannot keep the task running.
    let drain_until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(line)) = tokio::time::timeout_at(drain_until, rx.recv()).await {
        on_line(line);
    }
    if timed_out {
        kill_group(pid, libc::SIGKILL);
        return ProcessEnd::TimedOut(spec.timeout.unwrap_or_default());
    }
    match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => ProcessEnd::Exited(code),
                (None, Some(signal)) => ProcessEnd::Signalled(signal),
                (None, None) => ProcessEnd::Exited(-1),
            }
        }
        Err(e) => ProcessEnd::SpawnFailed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(program: &str, args: &[&str], timeout: Option<Duration>) -> ProcessSpec {
        ProcessSpec {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            cwd: std::env::temp_dir(),
            env: vec![("GREETING".into(), "hi there".into())],
            timeout,
        }
    }

    async fn run(spec: &ProcessSpec) -> (ProcessEnd, Vec<String>) {
        let mut lines = Vec::new();
        let end = run_process(spec, &mut |l| lines.push(l)).await;
        (end, lines)
    }

    #[tokio::test]
    async fn merges_stdout_and_stderr_in_order_and_reports_exit_code() {
        let s = spec(
            "sh",
            &["-c", "echo one; echo two >&2; echo \"$GREETING\"; exit 3"],
            None,
        );
        let (end, lines) = run(&s).await;
        assert!(matches!(end, ProcessEnd::Exited(3)), "{end:?}");
        assert_eq!(lines, vec!["one", "two", "hi there"]);
    }

    #[tokio::test]
    async fn argv_is_not_split_or_interpreted() {
        let s = spec("printf", &["%s\n", "a b; echo pwned"], None);
        let (_, lines) = run(&s).await;
        assert_eq!(lines, vec!["a b; echo pwned"]);
    }

    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        let s = spec(
            "sh",
            &["-c", "echo start; sleep 30"],
            Some(Duration::from_millis(300)),
        );
        let (end, lines) = run(&s).await;
        assert!(matches!(end, ProcessEnd::TimedOut(_)), "{end:?}");
        assert_eq!(lines, vec!["start"]);
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_failure() {
        let (end, _) = run(&spec("./no-such-program", &[], None)).await;
        assert!(matches!(end, ProcessEnd::SpawnFailed(_)), "{end:?}");
    }
}
