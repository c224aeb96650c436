//! `relflow worker`: drives releases that need a runner — orders left with `--detach` (by the
//! CLI or the server) and releases whose runner is gone (its lease free, or its heartbeat
//! older than the TTL it declared) — up to `--concurrency` at once, each on its own thread
//! through the re-attach path of `resume` (an XL Deploy task is re-attached by its stored
//! id, never deployed again). Workers on many machines share one store: the lease decides
//! who drives (a claim skips a release another worker is claiming at that moment), and
//! `NOTIFY relflow_work` wakes idle workers at once; a slow poll is the safety net.
//!
//! Signals: the first SIGINT/SIGTERM stops taking work and waits for the drives to end; the
//! second pauses them (as `serve` does) and exits; the third exits at once.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use crate::actions::{Action, Drivers, order_in_background};
use crate::cli::CliError;
use crate::engine::person::Person;
use crate::store::db::Listener;
use crate::store::{CLAIMS_SKIP_LOCKED, Store, WORK_CHANNEL};

/// What wakes the worker's loop.
enum Wake {
    /// Work may be waiting: a notification, a drive that ended, or the poll.
    Look,
    /// SIGINT or SIGTERM (its name).
    Signal(&'static str),
}

/// How the worker runs.
pub struct WorkerOptions {
    pub concurrency: usize,
    /// How often to look without a notification.
    pub poll: Duration,
    /// Stop once no release needs a runner (tests, batch jobs).
    pub until_idle: bool,
}

/// Runs the worker until signalled (or idle with `until_idle`); returns the exit code.
pub fn run(state_dir: &Path, options: &WorkerOptions) -> Result<i32, CliError> {
    CLAIMS_SKIP_LOCKED.store(true, std::sync::atomic::Ordering::Relaxed);
    let store = Store::open(state_dir)?;
    let (wake, woken) = mpsc::channel::<Wake>();
    let _listener = match store.shared_url() {
        Some(url) => {
            let tell = wake.clone();
            Some(
                Listener::start(url, &[WORK_CHANNEL], move |_, _| {
                    tell.send(Wake::Look).is_ok()
                })
                .map_err(|e| CliError::state(format!("error: cannot listen on the store: {e}")))?,
            )
        }
        None => None,
    };
    watch_signals(wake.clone());
    let drivers = Drivers::default();
    let (ended, drive_ended) = mpsc::channel::<()>();
    drivers.tell_on_end(ended);
    {
        let tell = wake.clone();
        std::thread::Builder::new()
            .name("relflow-worker-ends".into())
            .spawn(move || {
                for () in drive_ended {
                    if tell.send(Wake::Look).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| CliError::state(format!("error: cannot start a thread: {e}")))?;
    }
    let me = Person {
        actor: format!("worker@{}", relflow_plugin::process::host_name()),
        comment: Some(format!("relflow worker pid {}", std::process::id())),
    };
    eprintln!(
        "relflow worker: pid {} driving up to {} release(s) at once from {}",
        std::process::id(),
        options.concurrency,
        describe_store(&store, state_dir)
    );
    let mut signals = 0;
    loop {
        if drivers.lost_a_lease() {
            // Stopped or cut off past the TTL: another runner took over; this one's view of
            // the world is stale. Take no more work, end what runs, say so.
            if drivers.active() == 0 {
                eprintln!(
                    "relflow worker: another runner took over a release this worker drove (it was stopped or cut off longer than its lease TTL); exiting"
                );
                return Ok(crate::exit_code::STATE);
            }
        } else if signals == 0 {
            let taken = take_work(&store, state_dir, &drivers, &me, options.concurrency)?;
            if options.until_idle && taken == 0 && drivers.active() == 0 {
                return Ok(0);
            }
        } else if drivers.active() == 0 {
            return Ok(0);
        }
        match woken.recv_timeout(options.poll) {
            Ok(Wake::Look) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(0),
            Ok(Wake::Signal(signal)) => {
                signals += 1;
                match signals {
                    1 => eprintln!(
                        "{signal} received: taking no more work; waiting for {} drive(s) to end (send it again to pause them and exit)",
                        drivers.active()
                    ),
                    2 => {
                        eprintln!(
                            "{signal} received again: pausing the releases this worker drives, then exiting"
                        );
                        drivers.shut_down(signal);
                        return Ok(0);
                    }
                    _ => return Ok(if signal == "SIGINT" { 130 } else { 143 }),
                }
            }
        }
    }
}

/// Claims and starts releases that need a runner while there is room; returns how many it
/// started. A release another worker took first is skipped quietly.
fn take_work(
    store: &Store,
    state_dir: &Path,
    drivers: &Drivers,
    me: &Person,
    concurrency: usize,
) -> Result<usize, CliError> {
    let room = concurrency.saturating_sub(drivers.active());
    if room == 0 {
        return Ok(0);
    }
    let wanted = i64::try_from(room * 4).unwrap_or(i64::MAX);
    let mut started = 0;
    for release in store.releases_needing_runner(wanted)? {
        if drivers.active() >= concurrency {
            break;
        }
        if drivers.is_driving(&release) {
            continue;
        }
        match order_in_background(state_dir, &release, Action::Continue, me.clone(), drivers) {
            Ok(_) => {
                tracing::info!(target: "relflow::worker", release, "driving");
                started += 1;
            }
            Err(e) => {
                tracing::debug!(target: "relflow::worker", release, reason = %e.message, "not taken")
            }
        }
    }
    Ok(started)
}

fn describe_store(store: &Store, state_dir: &Path) -> String {
    match store.shared_url() {
        Some(url) => url.shown(),
        None => format!("{}", state_dir.display()),
    }
}

/// SIGINT/SIGTERM become [`Wake::Signal`]s, on a thread of their own.
fn watch_signals(wake: mpsc::Sender<Wake>) {
    let _ = std::thread::Builder::new()
        .name("relflow-worker-signals".into())
        .spawn(move || {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let (Ok(mut interrupt), Ok(mut terminate)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                loop {
                    let name = tokio::select! {
                        _ = interrupt.recv() => "SIGINT",
                        _ = terminate.recv() => "SIGTERM",
                    };
                    if wake.send(Wake::Signal(name)).is_err() {
                        return;
                    }
                }
            });
        });
}
