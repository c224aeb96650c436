//! `relflow serve`: the JSON API and the web UI over the same store and engine. The server is
//! also a runner: it drives the releases its actions start or continue.

pub mod api;
pub mod auth;
mod listen;
pub mod login;
pub mod secret;
pub mod state;
pub mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};

use crate::cli::CliError;
use crate::exit_code;
use crate::store::Store;
use crate::store::tokens::Role;
pub use state::AppState;

/// How `relflow serve` was asked to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub pipelines: Option<PathBuf>,
    /// `--tls-cert` and `--tls-key` (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    pub insecure_http: bool,
}

/// The name of the token a first `serve` creates.
pub const FIRST_TOKEN: &str = "admin";

/// The whole application: `/api/v1`, `/login`, `/logout` and the UI.
pub fn app(state: AppState) -> Router {
    Router::new()
        .nest("/api/v1", api::router())
        .route("/api", any(api::unknown_route))
        .route("/api/{*rest}", any(api::unknown_route))
        .route("/login", get(login::form).post(login::login))
        .route("/logout", post(login::logout))
        .merge(ui::router())
        .layer(DefaultBodyLimit::max(api::BODY_LIMIT))
        .with_state(state)
}

/// Runs the server until SIGINT or SIGTERM; returns the exit code.
pub fn run(opts: ServeOptions) -> Result<i32, CliError> {
    if !opts.listen.ip().is_loopback() && opts.tls.is_none() && !opts.insecure_http {
        return Err(CliError::input(format!(
            "error: {} is not a loopback address: serving it needs --tls-cert FILE --tls-key FILE, \
             or --insecure-http to send tokens in clear text",
            opts.listen
        )));
    }
    if let Some(dir) = &opts.pipelines
        && !dir.is_dir()
    {
        return Err(CliError::input(format!(
            "error: --pipelines {} is not a folder",
            dir.display()
        )));
    }
    let tls = match &opts.tls {
        Some((cert, key)) => Some(listen::tls_config(cert, key)?),
        None => None,
    };
    first_token(&opts)?;
    let state = AppState::new(
        opts.state_dir.clone(),
        opts.pipelines.clone(),
        tls.is_some(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::state(format!("error: cannot start the runtime: {e}")))?;
    let drivers = state.drivers().clone();
    let signal = runtime.block_on(listen::serve(opts.listen, tls, state))?;
    // Off the runtime: the drives end on their own threads and are waited for.
    if let Some(signal) = signal {
        eprintln!(
            "{signal} received: pausing the releases this server drives, then exiting (send it again to exit at once)"
        );
        // As for a CLI runner: a second signal exits at once (every store write is atomic).
        runtime.spawn(async {
            let code = listen::wait_for_signal().await;
            std::process::exit(
                128 + if code == "SIGINT" {
                    libc::SIGINT
                } else {
                    libc::SIGTERM
                },
            );
        });
        drivers.shut_down(signal);
    }
    runtime.shutdown_background();
    Ok(exit_code::OK)
}

/// A store without tokens gets an operator token, printed once.
fn first_token(opts: &ServeOptions) -> Result<(), CliError> {
    let store = Store::open(&opts.state_dir)?;
    if !store.tokens()?.is_empty() {
        return Ok(());
    }
    let token = secret::new_token().map_err(|e| CliError::state(format!("error: {e}")))?;
    store.create_token(FIRST_TOKEN, Role::Operator, &secret::hash(&token))?;
    eprintln!(
        "No tokens yet: created operator token `{FIRST_TOKEN}`; it is printed below once and not kept \
         (log in with it, or send it as `Authorization: Bearer ...`)"
    );
    println!("{token}");
    Ok(())
}
