fn main() {
    std::process::exit(relflow::cli::main());
}
