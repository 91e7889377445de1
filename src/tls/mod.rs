//! TLS: `wss://` for clients ([`TlsConfig`], [`CertReloader`]) and TLS (optionally mutual) for
//! mesh links ([`MeshTlsConfig`], [`MeshTls`]), with rustls on the `ring` provider. Certificates,
//! keys and CAs are PEM files; see `docs/security.md`.

mod check;
mod config;
mod files;
mod mesh;
mod reloader;

pub use config::{MeshTlsConfig, TlsConfig};
pub(crate) use files::load_roots;
pub use files::{load_certs, load_key};
pub(crate) use mesh::MeshTls;
pub(crate) use reloader::CertReloader;

use std::sync::Arc;

/// Why TLS could not be set up from the configured files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file asked for.
        path: String,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// A file holds no usable PEM item of the expected kind.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the certificates or key (a key that does not match the certificate, an
    /// unsupported algorithm, an unusable CA).
    #[error("{0}")]
    Rustls(String),
}

/// The crypto provider every TLS configuration of the crate uses (`ring`: no C toolchain needed).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
