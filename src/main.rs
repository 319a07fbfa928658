//! The `pushwire` binary: a thin shell over the library; see `pushwire --help`.

fn main() -> std::process::ExitCode {
    pushwire::cli::main()
}
