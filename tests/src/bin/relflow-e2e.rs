//! The relflow CLI, built inside this package so tests can find it by `CARGO_BIN_EXE_relflow-e2e`.

fn main() {
    // The test build arms the named crash points (`RELFLOW_FAILPOINT`); the shipped binary never does.
    relflow::failpoint::enable_from_env();
    std::process::exit(relflow::cli::main());
}
