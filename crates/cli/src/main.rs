//! The `warren` binary: parse the command line, run it. Exit codes are documented on
//! [`warren_cli::EXIT_OK`] and its siblings, and in `--help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    warren_cli::run(warren_cli::args::Cli::parse())
}
