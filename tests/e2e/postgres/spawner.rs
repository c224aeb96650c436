//! The one thread that starts every postmaster, so the parent-death signal the postmaster gets
//! (PR_SET_PDEATHSIG, sent when the *thread* that forked it ends) fires only when the test
//! process itself dies: a killed test leaves no server, a finished test thread kills none.

use std::io;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};

type Job = Box<dyn FnOnce() + Send>;

static JOBS: OnceLock<Sender<Job>> = OnceLock::new();

/// Spawns `command` from the spawner thread; the child may be waited on from any thread.
pub fn spawn(mut command: Command) -> io::Result<Child> {
    let jobs = JOBS.get_or_init(|| {
        let (send, receive) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pg-spawner".to_string())
            .spawn(move || receive.into_iter().for_each(|job| job()))
            .expect("start the postmaster spawner thread");
        send
    });
    let (reply, answer) = mpsc::channel();
    let job: Job = Box::new(move || {
        // The test may have given up waiting; then the child is simply dropped.
        let _ = reply.send(command.spawn());
    });
    let gone = || io::Error::other("the postmaster spawner thread has ended");
    jobs.send(job).map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}
