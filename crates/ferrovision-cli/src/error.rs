//! The CLI's error: one readable message, printed as `error: ...` with exit code 1.

use std::fmt;
use std::path::Path;

/// Result type of the CLI.
pub type Result<T> = std::result::Result<T, CliError>;

/// A failure to report to the user. The message is complete (it names the file, option or
/// value at fault); `main` prints it and exits with status 1.
#[derive(Debug, Clone, PartialEq)]
pub struct CliError(pub String);

impl CliError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        CliError(msg.into())
    }

    /// Prefixes the message with what was being done (`"loading model.safetensors: ..."`).
    pub fn context(self, what: impl fmt::Display) -> Self {
        CliError(format!("{what}: {}", self.0))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<ferrovision_nn::Error> for CliError {
    fn from(e: ferrovision_nn::Error) -> Self {
        CliError(e.to_string())
    }
}

impl From<ferrovision_io::Error> for CliError {
    fn from(e: ferrovision_io::Error) -> Self {
        CliError(e.to_string())
    }
}

impl From<ferrovision_data::Error> for CliError {
    fn from(e: ferrovision_data::Error) -> Self {
        CliError(e.to_string())
    }
}

impl From<ferrovision_nn::tensor::Error> for CliError {
    fn from(e: ferrovision_nn::tensor::Error) -> Self {
        CliError(e.to_string())
    }
}

/// An I/O error on `path`, as a CLI error naming the path.
pub fn io_err(path: &Path, e: std::io::Error) -> CliError {
    CliError(format!("{}: {e}", path.display()))
}

/// Adds context to any error convertible to [`CliError`].
pub trait Context<T> {
    /// Prefixes the error with `what`.
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<CliError>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }
}
