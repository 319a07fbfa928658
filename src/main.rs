//! The `pushwire` binary: a thin shell over the library; see `pushwire --help`.
//! Its command line lives here, not in the library, so that a program using
//! pushwire as a library compiles neither clap nor the load generator.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
