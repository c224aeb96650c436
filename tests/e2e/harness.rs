//! Test harness: runs the real `relflow` CLI in a private temp dir and reads what it left.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A scratch working directory with its own `.relflow/` state.
pub struct Sandbox {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// What one CLI run printed and returned.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics with both streams when the exit code differs: failures show what the user saw.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<std::process::Output> for Outcome {
    fn from(out: std::process::Output) -> Self {
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs a prepared command to its end off the async runtime (a fake server answers on it).
pub async fn finish(mut command: Command) -> Outcome {
    tokio::task::spawn_blocking(move || command.output().expect("spawn relflow").into())
        .await
        .expect("join")
}

/// Path of the CLI under test, built by this package as `relflow-e2e`.
pub fn relflow_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_relflow-e2e"))
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("create temp dir"),
            env: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets an environment variable for every later CLI run.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Writes `content` to `rel` (creating folders); returns the absolute path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        path
    }

    /// Writes an executable script (mode 0755).
    pub fn write_script(&self, rel: &str, content: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.write(rel, content);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    pub fn read(&self, rel: &str) -> String {
        let path = self.dir.path().join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.dir.path().join(rel).exists()
    }

    /// The command, ready to run in the sandbox with a clean relflow environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(relflow_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("RELFLOW_STATE_DIR")
            .env_remove("RUST_LOG")
            // Target locks of names (exec, xl-deploy) stay within the sandbox.
            .env("RELFLOW_LOCK_DIR", self.dir.path().join(".relflow-locks"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `relflow ARGS...` to completion.
    pub fn run(&self, args: &[&str]) -> Outcome {
        self.command(args).output().expect("spawn relflow").into()
    }

    /// Runs `relflow ARGS...` off the async runtime (a fake server answers on it).
    pub async fn run_async(&self, args: &[&str]) -> Outcome {
        finish(self.command(args)).await
    }

    /// Runs `relflow ARGS...` to completion with extra environment (e.g. a failpoint).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        self.command(args)
            .envs(env.iter().copied())
            .output()
            .expect("spawn relflow")
            .into()
    }

    /// Runs `relflow ARGS...` armed to SIGKILL itself at the `n`-th hit of failpoint `point`
    /// (`*` = any); returns what it printed (exit code -1 when the failpoint fired).
    pub fn run_crashing_at(&self, args: &[&str], point: &str, n: usize) -> Outcome {
        self.run_env(args, &[("RELFLOW_FAILPOINT", &format!("{point}@{n}"))])
    }

    /// Starts `relflow ARGS...` in the background (stdout/stderr piped).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn relflow")
    }

    /// Every file under the sandbox's `.relflow/`, concatenated (binary files lossily).
    pub fn state_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        collect_files(&self.dir.path().join(".relflow"), &mut out);
        out
    }
}

fn collect_files(dir: &Path, out: &mut Vec<u8>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend_from_slice(&bytes);
        }
    }
}

/// Waits until `cond` holds, polling every 20 ms, for at most `secs` seconds.
/// Live (not zombie) processes whose argv contains `token`, as `pid: argv`.
pub fn processes_with(token: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let (Ok(cmdline), Ok(stat)) = (
            std::fs::read(format!("/proc/{pid}/cmdline")),
            std::fs::read_to_string(format!("/proc/{pid}/stat")),
        ) else {
            continue;
        };
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        let argv = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if argv.contains(token) && !matches!(state, Some('Z' | 'X')) {
            found.push(format!("{pid}: {argv}"));
        }
    }
    found
}

/// Asserts that no process carrying `token` is left (a SIGKILL may take a moment to land).
#[track_caller]
pub fn assert_none_left(token: &str) {
    let gone = wait_until(10, || processes_with(token).is_empty());
    assert!(gone, "processes left behind: {:?}", processes_with(token));
}

/// Sends `signal` to a child process.
pub fn signal(child: &Child, signal: i32) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: sends a signal to our own child; no memory is involved.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// As [`wait_until`], without blocking the async runtime (a fake server answers on it).
pub async fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cond()
}

/// Waits for a spawned relflow to exit, killing it after `limit` (so a release that would
/// wait for ever fails its test instead of hanging it); `None` when it had to be killed.
pub fn wait_or_kill(mut child: Child, limit: std::time::Duration) -> (Outcome, bool) {
    let exited = wait_until(limit.as_secs().max(1), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    (
        child.wait_with_output().expect("reap relflow").into(),
        exited,
    )
}

pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}
