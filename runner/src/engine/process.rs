//! The engine's async side of the one process-spawning path, `relflow_plugin::process` (own
//! process group, parent-death signal and watchdog, deadline and stop flag, TERM then KILL,
//! merged output lines). Its blocking `run` goes to tokio's blocking pool — that pool thread
//! forks the child and waits for it, which the parent-death signal needs — and the lines come
//! back over a channel.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use relflow_plugin::Interrupt;
use relflow_plugin::process;
pub use relflow_plugin::process::ProcessEnd;
use tokio::sync::mpsc;

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Bounds the run: at the deadline the process group gets SIGTERM, SIGKILL 5 s later.
    pub timeout: Option<Duration>,
}

/// SIGKILLs the group of a process whose run is dropped before its end (the blocking side
/// would otherwise let it run on, unattended).
struct KillOnDrop(Arc<AtomicU32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let pid = self.0.load(Ordering::SeqCst);
        if let Ok(pgid) = libc::pid_t::try_from(pid)
            && pgid > 1
        {
            // SAFETY: kill has no memory effects; the group is still ours (its leader is not
            // reaped until the blocking side clears the pid).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Runs the process to its end, handing each output line to `on_line` as it arrives.
/// `interrupt` carries the stop flag (the spec's `timeout` sets the deadline).
pub async fn run_process(
    spec: &ProcessSpec,
    interrupt: &Interrupt,
    on_line: &mut dyn FnMut(String),
) -> ProcessEnd {
    let argv = std::iter::once(spec.program.clone())
        .chain(spec.args.iter().cloned())
        .collect();
    let plugin_spec = process::ProcessSpec {
        argv,
        cwd: Some(spec.cwd.clone()),
        env: spec.env.clone(),
        search_path: None,
        interrupt: interrupt.with_timeout(spec.timeout),
    };
    let (lines, mut received) = mpsc::unbounded_channel();
    let running = Arc::new(AtomicU32::new(0));
    let guard = KillOnDrop(running.clone());
    let join = tokio::task::spawn_blocking(move || {
        let end = process::run(
            &plugin_spec,
            &mut |id| running.store(id.pid, Ordering::SeqCst),
            &mut |line| {
                let _ = lines.send(line);
            },
        );
        running.store(0, Ordering::SeqCst);
        end
    });
    tokio::pin!(join);
    let joined = loop {
        tokio::select! {
            Some(line) = received.recv() => on_line(line),
            joined = &mut join => break joined,
        }
    };
    while let Ok(line) = received.try_recv() {
        on_line(line);
    }
    drop(guard);
    joined.unwrap_or_else(|e| ProcessEnd::SpawnFailed(std::io::Error::other(e)))
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
        let end = run_process(spec, &Interrupt::none(), &mut |l| lines.push(l)).await;
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
        assert_eq!(
            end.failure("sh").as_deref(),
            Some("sh timed out after 300ms")
        );
        assert_eq!(lines, vec!["start"]);
    }

    #[tokio::test]
    async fn the_release_stop_flag_ends_the_process() {
        let interrupt = Interrupt::none();
        interrupt.raise(relflow_plugin::StopCause::Signal);
        let s = spec("sh", &["-c", "echo never"], None);
        let end = run_process(&s, &interrupt, &mut |_| {}).await;
        assert!(matches!(end, ProcessEnd::Interrupted(_)), "{end:?}");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_failure() {
        let (end, _) = run(&spec("./no-such-program", &[], None)).await;
        assert!(matches!(end, ProcessEnd::SpawnFailed(_)), "{end:?}");
    }
}
