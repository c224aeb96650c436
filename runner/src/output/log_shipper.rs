//! Ships what `script_output.log` gets to a shared store's `log_lines`, in batches: the lines
//! wait in a buffer that the next state event writes in its own transaction, or that a thread
//! of its own writes when the oldest line is [`MAX_AGE`] old or [`MAX_LINES`] wait (a task
//! that prints and then sleeps is still seen from another machine within a fraction of a
//! second), never one round trip per line.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::event::Event;
use crate::store::journal::PendingLine;
use crate::store::{Store, StoreError};

/// The oldest buffered line is written once it is this old.
pub const MAX_AGE: Duration = Duration::from_millis(200);
/// This many buffered lines are written at once.
pub const MAX_LINES: usize = 200;

/// The lines waiting, shared by the runner and the shipping thread.
#[derive(Default)]
struct Buffer {
    lines: Vec<PendingLine>,
    /// When the oldest waiting line was buffered.
    oldest: Option<Instant>,
    /// The runner's lease guard as of its last line: the thread's writes check it too.
    guard: Option<(String, i64)>,
    is_stopping: bool,
    /// A write found the lease taken over: nothing more is written.
    is_lost: bool,
}

type Shared = Arc<(Mutex<Buffer>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, Buffer> {
    shared.0.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The log lines of one release on their way to the shared store.
pub struct LogShipper {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
    /// The attempt each task run's lines belong to (set by its `=== attempt N ===`).
    attempts: HashMap<i64, i64>,
}

/// The line script_output.log gets for `event`, with its task run: the attempt headers and
/// the task's output (rollback output goes to rollback.log, which stays local).
pub fn script_line(event: &Event) -> Option<(i64, String)> {
    match event {
        Event::AttemptStarted { task, attempt } => {
            Some((task.id, format!("=== attempt {attempt} ===")))
        }
        Event::Output { task, line } => Some((task.id, line.clone())),
        _ => None,
    }
}

impl LogShipper {
    /// Starts the shipping thread on a second connection to `store`.
    pub fn start(store: &Store, release: &str) -> Result<LogShipper, StoreError> {
        let connect = store.reconnector();
        let shared: Shared = Arc::default();
        let thread = {
            let (shared, release) = (shared.clone(), release.to_string());
            std::thread::Builder::new()
                .name("relflow-log-shipper".into())
                .spawn(move || ship(connect, &release, &shared))
                .map_err(|e| StoreError::Corrupt(format!("cannot start the log shipper: {e}")))?
        };
        Ok(LogShipper {
            shared,
            thread: Some(thread),
            attempts: HashMap::new(),
        })
    }

    /// Buffers the line `event` adds to a script log, if any; wakes the thread when a batch
    /// is full.
    pub fn push(&mut self, store: &Store, event: &Event) -> Result<(), StoreError> {
        let Some((task_run, line)) = script_line(event) else {
            return Ok(());
        };
        let attempt = match event {
            Event::AttemptStarted { attempt, .. } => {
                self.attempts.insert(task_run, i64::from(*attempt));
                i64::from(*attempt)
            }
            _ => match self.attempts.get(&task_run) {
                Some(n) => *n,
                // A resumed runner's first line of a task run: the attempt the store knows.
                None => *self
                    .attempts
                    .entry(task_run)
                    .or_insert(store.latest_attempt(task_run)?),
            },
        };
        let mut buffer = lock(&self.shared);
        if buffer.is_lost {
            return Ok(());
        }
        buffer.guard = store.write_guard();
        buffer.oldest.get_or_insert_with(Instant::now);
        buffer.lines.push(PendingLine {
            task_run,
            attempt,
            line,
        });
        if buffer.lines.len() >= MAX_LINES || buffer.lines.len() == 1 {
            // The first line starts the thread's clock; a full batch goes now.
            self.shared.1.notify_one();
        }
        Ok(())
    }

    /// Takes the waiting lines, for a state event to write in its own transaction.
    pub fn take(&self) -> Vec<PendingLine> {
        let mut buffer = lock(&self.shared);
        buffer.oldest = None;
        std::mem::take(&mut buffer.lines)
    }

    /// Puts back lines whose transaction failed, before any buffered since.
    pub fn put_back(&self, lines: Vec<PendingLine>) {
        if lines.is_empty() {
            return;
        }
        let mut buffer = lock(&self.shared);
        buffer.lines.splice(0..0, lines);
        buffer.oldest.get_or_insert_with(Instant::now);
    }

    /// Whether a write found the release taken over by another runner.
    pub fn is_lost(&self) -> bool {
        lock(&self.shared).is_lost
    }
}

impl Drop for LogShipper {
    /// Writes what still waits, then ends the thread.
    fn drop(&mut self) {
        lock(&self.shared).is_stopping = true;
        self.shared.1.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: waits for a full batch, an old line or the end, and writes what waits. The
/// buffer stays locked while it writes, so a state event's lines never overtake its batch.
fn ship(connect: impl FnOnce() -> Result<Store, StoreError>, release: &str, shared: &Shared) {
    let store = match connect() {
        Ok(store) => store,
        Err(e) => {
            // The lines still go with the next state event, on the runner's own connection.
            tracing::warn!(target: "relflow::store", release, error = %e, "no connection for the log shipper");
            return;
        }
    };
    let mut buffer = lock(shared);
    loop {
        let is_due = buffer.is_stopping
            || buffer.lines.len() >= MAX_LINES
            || buffer.oldest.is_some_and(|t| t.elapsed() >= MAX_AGE);
        if !is_due {
            let wait = match buffer.oldest {
                Some(t) => MAX_AGE.saturating_sub(t.elapsed()),
                None => Duration::from_secs(3600),
            };
            buffer = shared
                .1
                .wait_timeout(buffer, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        if !buffer.lines.is_empty() && !buffer.is_lost {
            write_batch(&store, release, &mut buffer);
        }
        if buffer.is_stopping {
            return;
        }
    }
}

fn write_batch(store: &Store, release: &str, buffer: &mut Buffer) {
    let written = store.append_log_lines_fenced(release, buffer.guard.as_ref(), &buffer.lines);
    match written {
        Ok(()) => {
            buffer.lines.clear();
            buffer.oldest = None;
        }
        Err(StoreError::LeaseLost { .. }) => {
            buffer.is_lost = true;
            buffer.lines.clear();
            buffer.oldest = None;
        }
        Err(e) => {
            // Tried again with the next batch or state event; the local log has the lines.
            tracing::warn!(target: "relflow::store", release, error = %e, "log lines not written to the store yet");
            buffer.oldest = Some(Instant::now());
        }
    }
}
