//! Actions the server orders: each release it drives gets its own OS thread with a
//! current-thread runtime (the engine is not `Send`), like a CLI runner. The caller waits
//! only for the order to be accepted or refused.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::actions::{Action, carry_out, check_before_attach, order};
use crate::cli::CliError;
use crate::engine::control::LiveControl;
use crate::engine::person::Person;
use crate::engine::{self, Engine};
use crate::output::terminal::{Terminal, TerminalMode};
use crate::store::{Lease, Store};

/// An order the release took: the id of its record in the `actions` table, and the release.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Accepted {
    pub action: i64,
    pub release: String,
}

/// A release this process drives in the background.
struct Driver {
    control: Arc<LiveControl>,
    thread: JoinHandle<()>,
}

/// The releases this process drives, so a shutdown can pause them cleanly.
#[derive(Clone, Default)]
pub struct Drivers {
    running: Arc<Mutex<Vec<Driver>>>,
    /// Releases a thread of this process has taken or is taking. The lease is re-entrant
    /// for one pid, so it cannot keep two of this process's threads off one release.
    claimed: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Told each time a driving thread ends (a worker then looks for more work).
    ended: Arc<Mutex<Option<mpsc::Sender<()>>>>,
    /// Set when a drive found its lease taken over by another runner.
    lost_a_lease: Arc<std::sync::atomic::AtomicBool>,
}

/// A release claimed by one driving thread; let go when the thread ends.
struct Claim {
    claimed: Arc<Mutex<std::collections::HashSet<String>>>,
    release: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claimed = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
        claimed.remove(&self.release);
    }
}

impl Drivers {
    /// Sends `()` on `tell` each time a driving thread ends.
    pub fn tell_on_end(&self, tell: mpsc::Sender<()>) {
        *self.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(tell);
    }

    /// Whether a drive of this process found its lease taken over (this process was
    /// stopped or cut off past its TTL).
    pub fn lost_a_lease(&self) -> bool {
        self.lost_a_lease.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many releases this process is taking or driving now.
    pub fn active(&self) -> usize {
        self.claimed.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether this process is taking or driving `release`.
    pub fn is_driving(&self, release: &str) -> bool {
        self.claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(release)
    }

    fn claim(&self, release: &str) -> Option<Claim> {
        let mut claimed = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
        claimed.insert(release.to_string()).then(|| Claim {
            claimed: self.claimed.clone(),
            release: release.to_string(),
        })
    }

    fn add(&self, driver: Driver) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|d| !d.thread.is_finished());
        running.push(driver);
    }

    /// Stops every drive the way a signal stops a CLI runner (running attempts end
    /// `interrupted`, releases are left paused) and waits for the threads to end.
    pub fn shut_down(&self, signal: &str) {
        let drivers: Vec<Driver> = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.drain(..).collect()
        };
        for driver in &drivers {
            driver.control.on_signal(signal);
        }
        for driver in drivers {
            let _ = driver.thread.join();
        }
    }
}

/// What the driving thread tells the caller once the order is taken or refused.
type Answer = Result<(Accepted, Option<Arc<LiveControl>>), CliError>;

/// Orders `action` on `release` as `person`. A release another live runner holds gets an
/// abort or a pause through the store (that runner acts on it); any other action is refused.
/// Otherwise a new thread takes the release, orders the action and, once it is accepted,
/// drives the release to its end while this returns. Blocks until the order is decided.
pub fn order_in_background(
    state_dir: &Path,
    release: &str,
    action: Action,
    person: Person,
    drivers: &Drivers,
) -> Result<Accepted, CliError> {
    let store = Store::open(state_dir)?;
    check_before_attach(&store, release, &action)?;
    wait_for_own_drive_to_end(&store, release)?;
    if let Some(holder) = store.lease_holder(release)? {
        let Some(control) = action.as_control() else {
            return Err(held(release, holder.pid, &holder.host));
        };
        store.record_action(release, None, control.verb(), &person)?;
        store.request_control(release, control, &person.actor, person.comment.as_deref())?;
        return Ok(Accepted {
            action: store.last_action_id(release)?.unwrap_or(0),
            release: release.to_string(),
        });
    }
    drop(store);
    let Some(claim) = drivers.claim(release) else {
        return Err(held(release, i64::from(std::process::id()), &host_name()));
    };
    let (tell, answer) = mpsc::channel::<Answer>();
    let (dir, id) = (state_dir.to_path_buf(), release.to_string());
    let ended = drivers.ended.clone();
    let lost_a_lease = drivers.lost_a_lease.clone();
    let thread = std::thread::Builder::new()
        .name(format!("drive {release}"))
        .spawn(move || {
            if drive_on_thread(&dir, &id, &action, person, &tell) {
                lost_a_lease.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            drop(claim);
            if let Some(tell) = ended.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                let _ = tell.send(());
            }
        })
        .map_err(|e| CliError::state(format!("error: cannot start a thread: {e}")))?;
    let (accepted, control) = answer.recv().map_err(|_| {
        CliError::state(format!(
            "error: the runner of release {release} ended before it answered"
        ))
    })??;
    if let Some(control) = control {
        drivers.add(Driver { control, thread });
    }
    Ok(accepted)
}

/// The CLI's words for a release another runner holds (a refusal: 409 from the server).
fn held(release: &str, pid: i64, host: &str) -> CliError {
    let held = crate::store::LeaseError::Held {
        release: release.to_string(),
        pid,
        host: host.to_string(),
    };
    CliError::refused(format!("error: {held}"))
}

fn host_name() -> String {
    relflow_plugin::process::host_name()
}

/// A drive of this process that has halted or ended lets go of the lease a moment later;
/// an action ordered in that moment waits for it instead of finding the release held.
fn wait_for_own_drive_to_end(store: &Store, release: &str) -> Result<(), CliError> {
    use crate::store::ReleaseStatus;
    for _ in 0..100 {
        let holder = store.lease_holder(release)?;
        let is_ours = holder.is_some_and(|h| h.pid == std::process::id() as i64);
        let status = store.release(release)?.status;
        if !is_ours || matches!(status, ReleaseStatus::Running | ReleaseStatus::Planned) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// The body of a driving thread: take the release, order, answer, drive to the end.
/// Returns whether the lease went to another runner meanwhile.
fn drive_on_thread(
    state_dir: &Path,
    release: &str,
    action: &Action,
    person: Person,
    tell: &mpsc::Sender<Answer>,
) -> bool {
    let attached = Store::open(state_dir)
        .map_err(CliError::from)
        .and_then(|store| {
            Ok(engine::attach(
                store,
                release,
                Terminal::new(TerminalMode::Quiet),
            )?)
        });
    let (mut engine, lease) = match attached {
        Ok(attached) => attached,
        Err(e) => {
            let _ = tell.send(Err(e));
            return false;
        }
    };
    engine.set_person(person);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = tell.send(Err(CliError::state(format!(
                "error: cannot start the runtime: {e}"
            ))));
            return false;
        }
    };
    // Orders left to a worker that this drive carries out.
    let requested = match action {
        Action::Continue => engine.drive_request().ok().flatten(),
        _ => None,
    };
    let ordered = order(&engine, action).and_then(|ordered| {
        let id = Store::open_read_only(state_dir)?.last_action_id(release)?;
        Ok((ordered, id.unwrap_or(0)))
    });
    match ordered {
        Ok((ordered, id)) => {
            let accepted = Accepted {
                action: id,
                release: release.to_string(),
            };
            let _ = tell.send(Ok((accepted, Some(engine.control()))));
            if let Err(e) = runtime.block_on(carry_out(&engine, ordered)) {
                tracing::warn!(release, error = %e.message, "the drive ended in an error");
                eprintln!("relflow: release {release}: {}", e.message);
            }
            if let Some(id) = requested
                && !lease.is_lost()
            {
                let _ = engine.finish_drive_requests(id);
            }
        }
        Err(e) => {
            let _ = tell.send(Err(e));
        }
    }
    let lost = lease.is_lost();
    finish(state_dir, release, engine, lease);
    lost
}

/// As a CLI runner ends: requests the drive did not get to are answered by how the release
/// stands now, unless another runner took it over.
fn finish(state_dir: &Path, release: &str, engine: Engine, lease: Lease) {
    engine.finish_terminal();
    drop(engine);
    if !lease.is_lost()
        && let Ok(store) = Store::open(state_dir)
    {
        let _ = store.mark_control_handled(release);
    }
    drop(lease);
}
