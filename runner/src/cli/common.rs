//! Pieces several verbs share: `--var` parsing, the runtime, driving a release to its end.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::error::CliError;
use crate::engine::person::Person;
use crate::engine::{self, Engine, Outcome};
use crate::output::terminal::{Terminal, TerminalMode};
use crate::output::view::ReleaseView;
use crate::store::{Lease, Store};

/// Parses `k=v` pairs from `--var`.
pub fn parse_vars(pairs: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(CliError::input(format!(
                "error: --var `{pair}` is not of the form name=value"
            ))),
        })
        .collect()
}

/// A single-threaded runtime: child processes and timers are all the engine waits on.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::state(format!("error: cannot start the runtime: {e}")))
}

/// Takes the lease and drives `release` with `drive`, then prints the summary.
pub fn drive_release(
    state_dir: &Path,
    release: &str,
    json: bool,
    person: &Person,
    drive: impl AsyncFnOnce(&Engine) -> Result<Outcome, CliError>,
) -> Result<i32, CliError> {
    let store = Store::open(state_dir)?;
    let terminal = Terminal::new(TerminalMode::detect(json));
    let (mut engine, lease) = engine::attach(store, release, terminal)?;
    engine.set_person(person.clone());
    let rt = runtime()?;
    let control = engine.control();
    let outcome = rt.block_on(async {
        // Handlers are installed here, before anything runs, so no signal can find the
        // default action (an unclean exit) while the drive starts.
        let signals = tokio::spawn(watch_signals(listen_for_signals(), control.clone()));
        let outcome = drive(&engine).await;
        signals.abort();
        outcome
    });
    engine.finish_terminal();
    drop(engine);
    if !lease.is_lost() {
        // Requests the drive did not get to (the release ended first) are answered by how
        // it stands now. A drive that failed (the store went away) reports its own error.
        let handled = Store::open(state_dir).and_then(|store| store.mark_control_handled(release));
        if let (Err(e), Ok(_)) = (handled, &outcome) {
            return Err(e.into());
        }
    }
    drop::<Lease>(lease);
    let outcome = outcome.map_err(|mut e| {
        if e.message.ends_with(super::error::STORE_LOST_NOTE) {
            e.message.push_str(&format!(" {release}"));
        }
        with_next_steps(state_dir, release, e)
    })?;
    print_summary(state_dir, release, json)?;
    if let Some(crate::engine::control::Stop::Signal(signal)) = control.pending() {
        eprintln!(
            "Interrupted by {signal}: release {release} is paused; continue with: relflow resume {release}"
        );
    }
    Ok(outcome.exit_code())
}

/// Orders `action` and drives the release to its end here, or (`--detach`) orders it and
/// leaves the driving to a worker.
pub fn order_or_drive(
    state_dir: &Path,
    release: &str,
    json: bool,
    person: &Person,
    action: crate::actions::Action,
) -> Result<i32, CliError> {
    if crate::cli::detach::is_set() {
        return crate::cli::detach::order(state_dir, release, json, person, &action);
    }
    drive_release(state_dir, release, json, person, async |engine| {
        crate::actions::perform(engine, &action).await
    })
}

/// A refused command says what does apply to the release as it stands.
pub fn with_next_steps(state_dir: &Path, release: &str, mut error: CliError) -> CliError {
    if !error.refused {
        return error;
    }
    let view = Store::open_read_only(state_dir)
        .ok()
        .and_then(|store| ReleaseView::load(&store, release).ok());
    if let Some(view) = view.filter(|v| !v.next.is_empty()) {
        error.message.push_str(&format!(
            "\nrelease {} is {}; what applies now:\n{}",
            view.release.id,
            view.status_text(),
            crate::output::next_steps::render(&view.next).trim_end()
        ));
    }
    error
}

/// Installs the SIGINT and SIGTERM handlers (inside the runtime).
fn listen_for_signals() -> Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{SignalKind, signal};
    Some((
        signal(SignalKind::interrupt()).ok()?,
        signal(SignalKind::terminate()).ok()?,
    ))
}

/// SIGINT/SIGTERM: the first stops the drive cleanly (running attempts end, the release is
/// left paused); a second exits at once (the store stays consistent: every write is atomic).
async fn watch_signals(
    listening: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
    control: std::sync::Arc<crate::engine::control::LiveControl>,
) {
    let Some((mut interrupt, mut terminate)) = listening else {
        return;
    };
    let first = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    eprintln!(
        "{first} received: ending running tasks and pausing the release (send it again to exit at once)"
    );
    control.on_signal(first);
    let code = tokio::select! {
        _ = interrupt.recv() => 128 + libc::SIGINT,
        _ = terminate.recv() => 128 + libc::SIGTERM,
    };
    std::process::exit(code);
}

/// After a drive: the release document (`--json`) or where to look and what to do next.
pub fn print_summary(state_dir: &Path, release: &str, json: bool) -> Result<(), CliError> {
    let store = Store::open(state_dir)?;
    let view = ReleaseView::load(&store, release)?;
    if json {
        println!("{}", view.to_json());
    } else {
        print!("{}", crate::output::summary::render(&view));
    }
    Ok(())
}
