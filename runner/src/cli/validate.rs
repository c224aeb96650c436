//! `relflow validate FILE`

use std::path::Path;

use crate::cli::error::CliError;
use crate::exit_code;
use crate::pipeline;

pub fn run(file: &Path) -> Result<i32, CliError> {
    let p = pipeline::load_file(file)?;
    println!(
        "{}: ok (pipeline {}, {} phases, {} tasks)",
        file.display(),
        p.name,
        p.phases.len(),
        p.tasks().count()
    );
    Ok(exit_code::OK)
}
