//! Live control of a release being driven: requests a person made from another shell
//! (`relflow abort`, `relflow pause`), SIGINT/SIGTERM, and the loss of the lease to another
//! runner. The lease keeper and the signal handler raise them; the engine looks at
//! [`LiveControl::pending`] before starting anything and wakes from its waits on them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relflow_plugin::{Interrupt, StopCause};

use crate::store::{ControlAction, ControlRequest, LeaseNews};

/// Why the engine must stop driving, most pressing first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Another runner holds the release now: write nothing more.
    LeaseLost,
    /// `relflow abort` from another shell.
    Abort {
        rollback: bool,
        actor: String,
        comment: Option<String>,
    },
    /// SIGINT or SIGTERM (its name).
    Signal(String),
    /// `relflow pause` from another shell.
    Pause {
        actor: String,
        comment: Option<String>,
    },
}

/// Shared by the engine, the lease keeper thread and the signal handler.
#[derive(Debug, Default)]
pub struct LiveControl {
    /// Raised on abort, signal and lost lease: running processes and backend calls end.
    pub interrupt: Interrupt,
    requests: Mutex<Vec<ControlRequest>>,
    signal: Mutex<Option<String>>,
    lost: Arc<AtomicBool>,
    wake: tokio::sync::Notify,
}

impl LiveControl {
    /// What the lease keeper saw.
    pub fn on_news(&self, news: LeaseNews) {
        match news {
            LeaseNews::Lost => {
                self.lost.store(true, Ordering::SeqCst);
                self.interrupt.raise(StopCause::Signal);
            }
            LeaseNews::Request(request) => {
                let mut requests = lock(&self.requests);
                if requests.iter().any(|r| r.id == request.id) {
                    return;
                }
                if let ControlAction::Abort { .. } = request.action {
                    self.interrupt.raise(StopCause::Abort);
                }
                requests.push(request);
            }
        }
        self.wake.notify_waiters();
    }

    /// The runner got `signal` (SIGINT, SIGTERM).
    pub fn on_signal(&self, signal: &str) {
        lock(&self.signal).get_or_insert_with(|| signal.to_string());
        self.interrupt.raise(StopCause::Signal);
        self.wake.notify_waiters();
    }

    /// The flag set when the lease goes to another runner (the reporter checks it too).
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    /// Whether the lease went to another runner.
    pub fn is_lease_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// The stop to act on now, if any.
    pub fn pending(&self) -> Option<Stop> {
        if self.is_lease_lost() {
            return Some(Stop::LeaseLost);
        }
        let requests = lock(&self.requests);
        if let Some(abort) = requests
            .iter()
            .find(|r| matches!(r.action, ControlAction::Abort { .. }))
        {
            return Some(Stop::Abort {
                rollback: abort.action == ControlAction::Abort { rollback: true },
                actor: abort.actor.clone(),
                comment: abort.comment.clone(),
            });
        }
        if let Some(signal) = lock(&self.signal).clone() {
            return Some(Stop::Signal(signal));
        }
        requests.first().map(|pause| Stop::Pause {
            actor: pause.actor.clone(),
            comment: pause.comment.clone(),
        })
    }

    /// Sleeps `duration`; returns early with `true` when a stop becomes pending.
    pub async fn sleep(&self, duration: Duration) -> bool {
        let woken = self.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if self.pending().is_some() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(duration) => self.pending().is_some(),
            () = woken => true,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: i64, action: ControlAction) -> LeaseNews {
        LeaseNews::Request(ControlRequest {
            id,
            action,
            actor: "ann".into(),
            comment: None,
            requested_at: 0,
            handled_at: None,
        })
    }

    #[test]
    fn an_abort_outranks_a_pause_and_raises_the_interrupt() {
        let control = LiveControl::default();
        control.on_news(request(1, ControlAction::Pause));
        assert!(matches!(control.pending(), Some(Stop::Pause { .. })));
        assert_eq!(control.interrupt.cause(), None);
        control.on_news(request(2, ControlAction::Abort { rollback: true }));
        assert!(matches!(
            control.pending(),
            Some(Stop::Abort { rollback: true, .. })
        ));
        assert_eq!(control.interrupt.cause(), Some(StopCause::Abort));
    }

    #[tokio::test]
    async fn a_signal_wakes_a_sleep() {
        let control = std::sync::Arc::new(LiveControl::default());
        let raiser = control.clone();
        let waker = tokio::spawn(async move {
            tokio::task::yield_now().await;
            raiser.on_signal("SIGTERM");
        });
        assert!(control.sleep(Duration::from_secs(60)).await);
        waker.await.unwrap();
        assert_eq!(control.pending(), Some(Stop::Signal("SIGTERM".into())));
    }
}
