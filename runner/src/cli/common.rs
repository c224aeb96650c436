//! Pieces several verbs share: `--var` parsing, the runtime, driving a release to its end.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::error::CliError;
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
    drive: impl AsyncFnOnce(&Engine) -> Result<Outcome, CliError>,
) -> Result<i32, CliError> {
    let store = Store::open(state_dir)?;
    let terminal = Terminal::new(TerminalMode::detect(json));
    let (engine, lease) = engine::attach(store, release, terminal)?;
    let rt = runtime()?;
    let outcome = rt.block_on(drive(&engine));
    engine.finish_terminal();
    drop(engine);
    drop::<Lease>(lease);
    let outcome = outcome?;
    print_summary(state_dir, release, json)?;
    Ok(outcome.exit_code())
}

/// After a drive: the release document (`--json`) or where to look and what to do next.
pub fn print_summary(state_dir: &Path, release: &str, json: bool) -> Result<(), CliError> {
    let store = Store::open(state_dir)?;
    let view = ReleaseView::load(&store, release)?;
    if json {
        println!("{}", view.to_json());
    } else {
        print!("{}", view.render_summary());
    }
    Ok(())
}
