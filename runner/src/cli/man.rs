//! `relflow man [VERB] [--dir DIR]`: manual pages in roff, generated from the same clap
//! definition as the parser (descriptions, options, examples and exit codes).

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::cli::error::CliError;
use crate::exit_code;

pub fn run(verb: Option<&str>, dir: Option<&Path>) -> Result<i32, CliError> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    if let Some(dir) = dir {
        clap_mangen::generate_to(command, dir).map_err(|e| {
            CliError::input(format!(
                "error: cannot write manual pages into {}: {e}",
                dir.display()
            ))
        })?;
        return Ok(exit_code::OK);
    }
    let page = match verb {
        None => command,
        Some(name) => match command.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let verbs: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
                return Err(CliError::input(format!(
                    "error: no verb `{name}` (verbs: {})",
                    verbs.join(", ")
                )));
            }
        },
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| CliError::state(format!("error: cannot render the manual page: {e}")))?;
    write_stdout(&out)?;
    Ok(exit_code::OK)
}

/// Writes generated text to stdout; a reader that went away (`| head`) is not an error.
pub(super) fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::state(format!(
            "error: cannot write to stdout: {e}"
        ))),
    }
}
