//! The library's error type.

use std::io;

/// Everything that can go wrong when starting or running a wscluster node from the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener could not be bound (address in use, permission denied, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// Another I/O failure.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// A configuration value is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
