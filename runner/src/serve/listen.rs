//! Accepting connections: plain HTTP, or TLS from PEM files; stopping on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::cli::CliError;
use crate::serve::state::AppState;

/// A rustls server configuration from a certificate chain and a key (PEM files).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, CliError> {
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        CliError::input(format!("error: {}: {e}", what.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(cert, &e))?;
    Ok(Arc::new(config))
}

/// A TLS listener for `axum::serve`: the handshake happens in `accept`; one that fails is
/// skipped (a client that does not speak TLS must not stop the server).
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = axum::serve::Listener::accept(&mut self.tcp).await;
            let handshake = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                self.acceptor.accept(stream),
            );
            if let Ok(Ok(tls)) = handshake.await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves `app` on `addr` until SIGINT or SIGTERM; returns the signal's name.
pub async fn serve(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: AppState,
) -> Result<Option<&'static str>, CliError> {
    let app = super::app(state.clone());
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::input(format!("error: cannot listen on {addr}: {e}")))?;
    let local = tcp
        .local_addr()
        .map_err(|e| CliError::state(format!("error: {e}")))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("relflow serve: listening on {scheme}://{local}");
    let (tell, heard) = tokio::sync::oneshot::channel();
    let shutdown = async move {
        let signal = wait_for_signal().await;
        // Graceful shutdown waits for open connections: end the event and log streams.
        state.stop_streams();
        let _ = tell.send(signal);
    };
    let served = match tls {
        Some(config) => {
            let listener = TlsListener {
                tcp,
                acceptor: TlsAcceptor::from(config),
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => axum::serve(tcp, app).with_graceful_shutdown(shutdown).await,
    };
    served.map_err(|e| CliError::state(format!("error: the server stopped: {e}")))?;
    Ok(heard.await.ok())
}

/// The first SIGINT or SIGTERM from now on (its name).
pub async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}
