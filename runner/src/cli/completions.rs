//! `relflow completions SHELL`: the shell completion script, generated from the same clap
//! definition as the parser, so it never lists a verb or option the binary lacks.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::cli::error::CliError;
use crate::exit_code;

pub fn run(shell: clap_complete::Shell) -> Result<i32, CliError> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "relflow", &mut out);
    crate::cli::man::write_stdout(&out)?;
    Ok(exit_code::OK)
}
