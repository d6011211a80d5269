//! The `ferrovision` command-line tool as a library (the binary is `src/main.rs`).
//!
//! Layers, top to bottom: [`cli`] (arguments) -> [`commands`] (one file per subcommand) ->
//! [`training`] (one run into a run directory, shared by `train` and `demo`) and [`tasks`]
//! (what a model learns: data to batches, loss and metrics, predictions) -> [`data`] (the
//! `--data` sources), [`pipeline`] (batching, augmentation, statistics), [`run_dir`] (the run
//! directory's files) and [`nnglue`] (zoo models, callbacks, saving).

pub mod builtin;
pub mod cli;
pub mod commands;
pub mod data;
pub mod error;
pub mod image_input;
pub mod interrupt;
pub mod nnglue;
pub mod pipeline;
pub mod plot;
pub mod recipe;
pub mod run_dir;
pub mod run_journal;
pub mod run_lock;
pub mod tasks;
pub mod training;

pub use error::{CliError, Result};

use clap::Parser;

/// Parses `args` (program name first) and runs the command. Returns the process exit status:
/// 0 on success (and for `--help`/`--version`), 1 on an error (130 or 143 when training was
/// interrupted by SIGINT or SIGTERM), which is printed to stderr as `error: ...`.
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
            e.exit_code()
        }
    }
}
