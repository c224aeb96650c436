//! What every request handler shares: where the state and the pipelines are, and the
//! releases this server drives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::actions::Drivers;
use crate::serve::api::ApiError;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    state_dir: PathBuf,
    pipelines: Option<PathBuf>,
    is_tls: bool,
    drivers: Drivers,
    /// Set on SIGINT/SIGTERM: open streams end so the server can stop.
    is_stopping: std::sync::atomic::AtomicBool,
}

impl AppState {
    pub fn new(state_dir: PathBuf, pipelines: Option<PathBuf>, is_tls: bool) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                state_dir,
                pipelines,
                is_tls,
                drivers: Drivers::default(),
                is_stopping: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    pub fn state_dir(&self) -> &Path {
        &self.inner.state_dir
    }

    /// `--pipelines DIR`, if given.
    pub fn pipelines(&self) -> Option<&Path> {
        self.inner.pipelines.as_deref()
    }

    /// Cookies get `Secure` when the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.inner.is_tls
    }

    /// The releases this server drives, each on its own thread.
    pub fn drivers(&self) -> &Drivers {
        &self.inner.drivers
    }

    /// Tells open streams to end (the server is shutting down).
    pub fn stop_streams(&self) {
        self.inner
            .is_stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_stopping(&self) -> bool {
        self.inner
            .is_stopping
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `work` on the store (opened for writing) off the async threads: SQLite blocks.
    pub async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let dir = self.inner.state_dir.clone();
        tokio::task::spawn_blocking(move || work(&Store::open(&dir)?))
            .await
            .map_err(|e| ApiError::internal(format!("a store worker failed: {e}")))?
    }

    /// Like [`AppState::with_store`] on a read-only store.
    pub async fn reading<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let dir = self.inner.state_dir.clone();
        tokio::task::spawn_blocking(move || work(&Store::open_read_only(&dir)?))
            .await
            .map_err(|e| ApiError::internal(format!("a store worker failed: {e}")))?
    }
}
