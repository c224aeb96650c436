//! Process groups: signals, exit without reaping, and finding a group an earlier runner left.

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::ProcessId;

/// Sends `signal` to process group `pgid`. Async-signal-safe (the watchdog calls it).
pub(super) fn signal(pgid: libc::pid_t, signal: libc::c_int) {
    if pgid > 1 {
        // SAFETY: kill has no memory effects; a group that is gone fails with ESRCH.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// Whether our child `pid` has exited, leaving it unreaped (`WNOWAIT`).
pub(super) fn has_exited(pid: libc::pid_t) -> bool {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` is valid and writable; `pid` is our child.
    let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, options) };
    if rc != 0 {
        // ECHILD: nothing left to wait for, so it is not running either.
        return true;
    }
    // SAFETY: waitid succeeded, so si_pid is initialised (0 when the child still runs).
    unsafe { info.si_pid() != 0 }
}

/// A descriptor that becomes readable when `pid` exits (Linux 5.3+), to wait without polling.
pub(super) fn pidfd(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = libc::c_int::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the descriptor was just returned to us and is owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Fields of `/proc/<pid>/stat` after the command name: state is [0], pgrp [2], start
/// time [19].
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Start time of `pid` in clock ticks after boot: with the pid, it names one process (a
/// reused pid has another start time).
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether `pid` is a live (not zombie) process on this host, and the same one when its
/// start time is known. Leases and lock records judge their holders with it.
pub fn is_running(pid: u32, start: Option<u64>) -> bool {
    let Some(fields) = stat_fields(pid) else {
        return false;
    };
    let is_zombie = fields.first().is_some_and(|state| state == "Z");
    let same = start.is_none_or(|start| fields.get(19).and_then(|s| s.parse().ok()) == Some(start));
    pid > 0 && !is_zombie && same
}

/// This host's name, as leases and lock records store it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// The state letter of `pid` (`R`, `S`, `Z`, ...), `None` when it does not exist.
#[cfg(test)]
pub(super) fn state(pid: u32) -> Option<String> {
    stat_fields(pid)?.into_iter().next()
}

/// Live (not zombie) processes whose process group is `pgid`.
fn members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat_fields(*pid).is_some_and(|f| {
                f.first().is_some_and(|s| s != "Z" && s != "X")
                    && f.get(2).is_some_and(|g| g.parse() == Ok(pgid))
            })
        })
        .collect()
}

/// Whether the process group of `id` still has live members. A leader alive with another
/// start time is a later process that reused the number (which the kernel only allows once
/// the old group is empty), so the group is gone.
pub fn is_group_alive(id: &ProcessId) -> bool {
    if let (Some(recorded), Some(now)) = (id.started, start_time(id.pid))
        && recorded != now
    {
        return false;
    }
    !members(id.pid).is_empty()
}

/// Ends the process group an earlier runner left (SIGKILL) and waits, up to 10 s, until it is
/// gone. Returns whether there was one.
pub fn end_leftover_group(id: &ProcessId) -> bool {
    if !is_group_alive(id) {
        return false;
    }
    let Ok(pgid) = libc::pid_t::try_from(id.pid) else {
        return false;
    };
    signal(pgid, libc::SIGKILL);
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until && !members(id.pid).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
