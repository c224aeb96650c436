//! The watchdog of one process group: a forked copy of the runner that does nothing but wait
//! for the runner to die, then SIGKILLs the group.
//!
//! `PR_SET_PDEATHSIG` on the child alone is not enough: it kills the child, while what the
//! child started (a shell script's current command, `sleep 300 &`) is re-parented to init and
//! runs on — a deploy finishing after `resume` rolled it back, a health check running twice at
//! once. The watchdog gets `SIGUSR1` as its own parent-death signal and kills the whole group.
//! It is dismissed (SIGKILL and reaped) when the child has been dealt with.

use std::io;

use super::group;

/// A running watchdog; dropping it ends it.
pub(super) struct Guard {
    pid: libc::pid_t,
}

impl Guard {
    /// Forks the watchdog of process group `pgid`. Must be called on the thread that waits for
    /// the group (the parent-death signal follows the forking thread).
    pub fn start(pgid: libc::pid_t) -> io::Result<Guard> {
        // Everything the watchdog needs is prepared before the fork: after it, the child of a
        // multi-threaded process may only make async-signal-safe calls (no allocation).
        // SAFETY: getpid has no preconditions; a zeroed sigset_t is valid input for
        // sigfillset/sigemptyset, which initialise it.
        let (runner, all, wake) = unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut wake: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigemptyset(&mut wake);
            libc::sigaddset(&mut wake, libc::SIGUSR1);
            (libc::getpid(), all, wake)
        };
        // SAFETY: the child branch only calls async-signal-safe functions and never returns.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            // SAFETY: we are the freshly forked watchdog.
            0 => unsafe { watch(runner, pgid, &all, &wake) },
            pid => Ok(Guard { pid }),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: the watchdog is our child and not yet reaped, so its pid is still ours.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// The watchdog's whole life. Only async-signal-safe system calls.
///
/// # Safety
/// Call only in the child right after `fork`.
unsafe fn watch(
    runner: libc::pid_t,
    pgid: libc::pid_t,
    all: &libc::sigset_t,
    wake: &libc::sigset_t,
) -> ! {
    // SAFETY: plain system calls on valid arguments; see the function's contract.
    unsafe {
        // No signal but SIGKILL ends it early (a Ctrl-C meant for the runner included).
        libc::sigprocmask(libc::SIG_SETMASK, all, std::ptr::null_mut());
        // Hold no copy of the runner's files (another child's pipe, the store, sockets).
        if libc::syscall(libc::SYS_close_range, 0, libc::c_uint::MAX, 0) != 0 {
            for fd in 0..4096 {
                libc::close(fd);
            }
        }
        libc::prctl(
            libc::PR_SET_NAME,
            c"relflow-guard".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1, 0, 0, 0);
        // Someone else's SIGUSR1 is ignored: only the runner's death counts.
        while libc::getppid() == runner {
            libc::sigwaitinfo(wake, std::ptr::null_mut());
        }
        group::signal(pgid, libc::SIGKILL);
        libc::_exit(0)
    }
}
