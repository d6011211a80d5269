//! The CLI's error: one readable message, printed as `error: ...` with exit code 1.

use std::fmt;
use std::path::Path;

/// Result type of the CLI.
pub type Result<T> = std::result::Result<T, CliError>;

/// A failure to report to the user. The message is complete (it names the file, option or
/// value at fault); `main` prints it and exits with [`CliError::exit_code`] (1, or 128 + the
/// signal number after an interrupt, as shells report it).
#[derive(Debug, Clone, PartialEq)]
pub struct CliError {
    msg: String,
    code: i32,
}

impl CliError {
    /// An error with this message (exit status 1).
    pub fn new(msg: impl Into<String>) -> Self {
        CliError {
            msg: msg.into(),
            code: 1,
        }
    }

    /// An error with this message and exit status.
    pub fn with_exit_code(msg: impl Into<String>, code: i32) -> Self {
        CliError {
            msg: msg.into(),
            code,
        }
    }

    /// Prefixes the message with what was being done (`"loading model.safetensors: ..."`).
    pub fn context(self, what: impl fmt::Display) -> Self {
        CliError {
            msg: format!("{what}: {}", self.msg),
            code: self.code,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.msg
    }

    /// The process exit status this error ends with.
    pub fn exit_code(&self) -> i32 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for CliError {}

impl From<ferrovision_nn::Error> for CliError {
    fn from(e: ferrovision_nn::Error) -> Self {
        CliError::new(e.to_string())
    }
}

impl From<ferrovision_io::Error> for CliError {
    fn from(e: ferrovision_io::Error) -> Self {
        CliError::new(e.to_string())
    }
}

impl From<ferrovision_data::Error> for CliError {
    fn from(e: ferrovision_data::Error) -> Self {
        CliError::new(e.to_string())
    }
}

impl From<ferrovision_nn::tensor::Error> for CliError {
    fn from(e: ferrovision_nn::tensor::Error) -> Self {
        CliError::new(e.to_string())
    }
}

/// An I/O error on `path`, as a CLI error naming the path.
pub fn io_err(path: &Path, e: std::io::Error) -> CliError {
    CliError::new(format!("{}: {e}", path.display()))
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
