//! Starting the child (own group, parent-death signal, one pipe for both streams) and the
//! running child's handle: exit without reaping, output, signals to its group.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use super::guard::Guard;
use super::{ProcessId, ProcessSpec, group};

/// A started child; dropping it SIGKILLs its group and reaps it (so a panic in a caller's
/// callback leaves nothing running).
pub(super) struct Running {
    pub id: ProcessId,
    child: Child,
    /// The child's pid as a group id.
    pgid: libc::pid_t,
    /// Read end of the output pipe; `None` once it reached end of file.
    output: Option<io::PipeReader>,
    /// Readable once the child has exited; `None` on kernels without `pidfd_open`.
    pidfd: Option<OwnedFd>,
    status: Option<ExitStatus>,
    /// Kills the group if the runner dies; dismissed when this is dropped.
    _guard: Guard,
}

/// `./bin/smoke` with cwd `/p` → `/p/bin/smoke`: a relative program with a slash is relative to
/// the child's folder, not the runner's.
fn program_path(program: &str, cwd: Option<&Path>) -> PathBuf {
    match cwd {
        Some(cwd) if program.contains('/') && !program.starts_with('/') => cwd.join(program),
        _ => PathBuf::from(program),
    }
}

/// Starts the child and its watchdog.
pub(super) fn start(spec: &ProcessSpec) -> io::Result<Running> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the command is empty",
        ));
    };
    let (reader, writer) = io::pipe()?;
    let mut command = Command::new(program_path(program, spec.cwd.as_deref()));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0);
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    if let Some(path) = &spec.search_path {
        command.env("PATH", path);
    }
    command.envs(spec.env.iter().map(|(k, v)| (k, v)));
    // SAFETY: getpid has no preconditions.
    let runner = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and only makes the
    // async-signal-safe calls prctl and getppid.
    unsafe {
        command.pre_exec(move || die_with_runner(runner));
    }
    let spawned = command.spawn();
    // Closes our copies of the pipe's write end: end of file comes when the group is gone.
    drop(command);
    let mut child = spawned?;
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other("the child's pid is out of range"));
    };
    let guard = match Guard::start(pgid) {
        Ok(guard) => guard,
        Err(e) => {
            group::signal(pgid, libc::SIGKILL);
            let _ = child.wait();
            return Err(io::Error::new(e.kind(), format!("start its watchdog: {e}")));
        }
    };
    Ok(Running {
        id: ProcessId::of(child.id()),
        child,
        pgid,
        output: Some(reader),
        pidfd: group::pidfd(pgid),
        status: None,
        _guard: guard,
    })
}

/// In the child: SIGKILL when the runner's forking thread ends; and if the runner is already
/// gone (it died between fork and here), do not start at all.
fn die_with_runner(runner: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl and getppid are async-signal-safe system calls without memory effects.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != runner {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

impl Running {
    /// Whether the child has exited; it stays a zombie (not reaped), so its pid — the group's
    /// id — cannot be reused while the group is signalled.
    pub fn has_exited(&self) -> bool {
        self.status.is_some() || group::has_exited(self.pgid)
    }

    pub fn signal_group(&self, signal: libc::c_int) {
        if self.status.is_none() {
            group::signal(self.pgid, signal);
        }
    }

    /// SIGKILLs what is left of the group, then reaps the child.
    pub fn reap(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        group::signal(self.pgid, libc::SIGKILL);
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    /// Waits until output comes, the child exits or `until`, whichever is first; hands what
    /// was read to `on_bytes`.
    pub fn wait_for_output(&mut self, until: Instant, on_bytes: &mut dyn FnMut(&[u8])) {
        let timeout = until.saturating_duration_since(Instant::now());
        let mut fds = Vec::with_capacity(2);
        if let Some(output) = &self.output {
            fds.push(poll_fd(output.as_fd().as_raw_fd()));
        }
        if let Some(pidfd) = &self.pidfd {
            fds.push(poll_fd(pidfd.as_raw_fd()));
        }
        if fds.is_empty() {
            // Neither a pipe nor a pidfd to wait on: look again soon.
            std::thread::sleep(timeout.min(std::time::Duration::from_millis(10)));
            return;
        }
        let millis = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(0);
        // SAFETY: `fds` is a valid array of `nfds` pollfd entries for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), nfds, millis) };
        if ready > 0 && self.output.is_some() && fds[0].revents != 0 {
            self.read_once(on_bytes);
        }
    }

    /// Reads what is left in the pipe until end of file or `until`.
    pub fn drain(&mut self, until: Instant, on_bytes: &mut dyn FnMut(&[u8])) {
        self.pidfd = None;
        while self.output.is_some() && Instant::now() < until {
            self.wait_for_output(until, on_bytes);
        }
    }

    fn read_once(&mut self, on_bytes: &mut dyn FnMut(&[u8])) {
        let Some(output) = self.output.as_mut() else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        match output.read(&mut buf) {
            Ok(0) => self.output = None,
            Ok(n) => on_bytes(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => self.output = None,
        }
    }
}

fn poll_fd(fd: libc::c_int) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.reap();
    }
}
