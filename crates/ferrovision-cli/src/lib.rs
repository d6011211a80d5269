//! The `ferrovision` command-line tool as a library (the binary is `src/main.rs`): argument
//! definitions, the embedded digits, the input pipeline, image loading for `predict`,
//! training-curve plots and the subcommands.

pub mod builtin;
pub mod cli;
pub mod commands;
pub mod data;
pub mod error;
pub mod image_input;
pub mod nnglue;
pub mod pipeline;
pub mod plot;

pub use error::{CliError, Result};

use clap::Parser;

/// Parses `args` (program name first) and runs the command. Returns the process exit status:
/// 0 on success (and for `--help`/`--version`), 1 on any error, which is printed to stderr as
/// `error: ...`.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // clap formats usage errors as "error: ..." with a hint; help and version are not
            // errors.
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    match commands::run(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
