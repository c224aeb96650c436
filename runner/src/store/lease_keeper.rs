//! The holder's side of a lease: a keeper thread that refreshes the heartbeat several times
//! per TTL, watches for a takeover and for requests a person makes from another shell
//! (`relflow abort`/`pause`: woken by `NOTIFY` on a shared store, else every
//! [`WATCH_EVERY`]), and frees the row when the lease is dropped.
//!
//! [`LeaseGate::may_act`] fences backend calls: a runner acts only while the keeper has seen
//! its epoch recently (within half the TTL); after a stall (SIGSTOP, a frozen VM) it first
//! asks the keeper to look again, so a runner that was taken over while stopped makes no
//! further call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::db::{Db, Listener, OptionalExtension, params};
use super::lease::{LeaseNews, heartbeat_every, now_sql};
use super::{CONTROL_CHANNEL, Location};

/// How often the holder looks for requests and for a takeover without a notification.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// What wakes the keeper.
enum Wake {
    /// The lease is dropped: free the row and end.
    Stop,
    /// A notification on a shared store: look for requests now.
    Notice,
    /// The gate asks whether the epoch still holds (answered after looking).
    Confirm(mpsc::SyncSender<bool>),
}

/// What the holder and its keeper share.
struct Shared {
    lost: AtomicBool,
    /// When the keeper last saw this runner's epoch in the row.
    confirmed: Mutex<Instant>,
    ttl: Duration,
}

/// A held lease; dropping it stops the keeper, which frees the row (the epoch stays).
pub struct Lease {
    release: String,
    wake: mpsc::Sender<Wake>,
    shared: Arc<Shared>,
    keeper: Option<JoinHandle<()>>,
}

/// Asks whether the runner may still act (call a backend) on its lease.
#[derive(Clone)]
pub struct LeaseGate {
    wake: mpsc::Sender<Wake>,
    shared: Arc<Shared>,
}

impl Lease {
    pub(super) fn start(
        release: &str,
        epoch: i64,
        ttl_ms: i64,
        db: Location,
        on_news: Box<dyn Fn(LeaseNews) + Send>,
    ) -> Lease {
        let (wake, woken) = mpsc::channel();
        let shared = Arc::new(Shared {
            lost: AtomicBool::new(false),
            confirmed: Mutex::new(Instant::now()),
            ttl: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(30_000)),
        });
        let keeper = {
            let keeper = Keeper {
                release: release.to_string(),
                epoch,
                ttl_ms,
                shared: shared.clone(),
                on_news,
            };
            let notices = wake.clone();
            std::thread::Builder::new()
                .name("relflow-lease".into())
                .spawn(move || keeper.run(&db, &woken, notices))
                .ok()
        };
        Lease {
            release: release.to_string(),
            wake,
            shared,
            keeper,
        }
    }

    pub fn release_id(&self) -> &str {
        &self.release
    }

    /// Whether another runner took the release over.
    pub fn is_lost(&self) -> bool {
        self.shared.lost.load(Ordering::SeqCst)
    }

    /// The gate backend calls pass.
    pub fn gate(&self) -> LeaseGate {
        LeaseGate {
            wake: self.wake.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl LeaseGate {
    /// Whether the runner still holds its lease: at once when the keeper saw the epoch
    /// within half the TTL, else after the keeper looked again (no answer within the TTL:
    /// not safe to act).
    pub fn may_act(&self) -> bool {
        if self.shared.lost.load(Ordering::SeqCst) {
            return false;
        }
        let seen = *self
            .shared
            .confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen.elapsed() < self.shared.ttl / 2 {
            return true;
        }
        let (answer, answered) = mpsc::sync_channel(1);
        if self.wake.send(Wake::Confirm(answer)).is_err() {
            return !self.shared.lost.load(Ordering::SeqCst);
        }
        answered.recv_timeout(self.shared.ttl).unwrap_or(false)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.wake.send(Wake::Stop);
        if let Some(handle) = self.keeper.take() {
            let _ = handle.join();
        }
    }
}

struct Keeper {
    release: String,
    epoch: i64,
    ttl_ms: i64,
    shared: Arc<Shared>,
    on_news: Box<dyn Fn(LeaseNews) + Send>,
}

impl Keeper {
    fn run(self, db: &Location, woken: &mpsc::Receiver<Wake>, notices: mpsc::Sender<Wake>) {
        let Ok(conn) = db.connect_side() else {
            return;
        };
        // A shared store tells of requests as they are made.
        let _listener = match db {
            Location::Postgres(url) => Listener::start(url, &[CONTROL_CHANNEL], move |_, _| {
                notices.send(Wake::Notice).is_ok()
            })
            .ok(),
            _ => None,
        };
        let beat_every = heartbeat_every(self.ttl_ms);
        let beat = format!(
            "UPDATE leases SET heartbeat_at = {} WHERE release_id = ?1 AND epoch = ?2",
            now_sql(conn.dialect())
        );
        let mut seen = std::collections::HashSet::new();
        let mut last_beat = Instant::now();
        loop {
            let mut confirm = None;
            match woken.recv_timeout(WATCH_EVERY.min(beat_every)) {
                Ok(Wake::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(Wake::Confirm(answer)) => confirm = Some(answer),
                Ok(Wake::Notice) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if last_beat.elapsed() >= beat_every {
                last_beat = Instant::now();
                if let Err(e) = conn.execute(&beat, params![self.release, self.epoch]) {
                    // Not fatal by itself: the holder keeps its lease until its heartbeat is
                    // older than the TTL.
                    tracing::warn!(target: "relflow::lease", release = %self.release, epoch = self.epoch, error = %e, "lease heartbeat failed");
                }
            }
            let held = self.look(&conn);
            if let Some(answer) = confirm {
                let _ = answer.send(held);
            }
            for request in super::control::open_requests(&conn, &self.release).unwrap_or_default() {
                if seen.insert(request.id) {
                    (self.on_news)(LeaseNews::Request(request));
                }
            }
        }
        // Free the row but keep its epoch: the next claim must get a higher one.
        let _ = conn.execute(
            "UPDATE leases SET pid = 0 WHERE release_id = ?1 AND epoch = ?2",
            params![self.release, self.epoch],
        );
        if conn.dialect() == super::db::Dialect::Postgres {
            // Workers waiting for this release look again.
            let _ = conn.execute_batch(&format!("NOTIFY {}", super::WORK_CHANNEL));
        }
    }

    /// Reads the row: whether this runner's epoch is still in it (and says so to the
    /// runner once it is not).
    fn look(&self, conn: &Db) -> bool {
        let current: Result<Option<i64>, _> = conn
            .query_row(
                "SELECT epoch FROM leases WHERE release_id = ?1",
                [&self.release],
                |row| row.get(0),
            )
            .optional();
        match current {
            Ok(current) if current == Some(self.epoch) => {
                *self
                    .shared
                    .confirmed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Instant::now();
                true
            }
            Ok(current) => {
                if !self.shared.lost.swap(true, Ordering::SeqCst) {
                    tracing::warn!(target: "relflow::lease", release = %self.release, epoch = self.epoch, now = ?current, "lease lost: another runner took the release over");
                    (self.on_news)(LeaseNews::Lost);
                }
                false
            }
            // The store cannot be read: not confirmed, not lost either.
            Err(_) => false,
        }
    }
}
