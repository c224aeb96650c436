//! The relflow CLI, built inside this package so tests can find it by `CARGO_BIN_EXE_relflow-e2e`.

fn main() {
    std::process::exit(relflow::cli::main());
}
