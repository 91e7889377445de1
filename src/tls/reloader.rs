//! [`CertReloader`]: the client-facing TLS configuration, swapped whole when its certificate files
//! change. Each accepted connection takes the configuration current at its accept; a reload never
//! touches connections already open.

use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use tokio_rustls::TlsAcceptor;

use super::{TlsConfig, TlsError, files};

/// The modification times of the certificate and key files when they were last loaded.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

/// The server certificate of the TLS listener, reloadable from its files.
pub(crate) struct CertReloader {
    cert_file: String,
    key_file: String,
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// What the files looked like at the last load attempt (good or bad): polling reloads only on
    /// a change, so a bad file is reported once, not at every poll.
    seen: Mutex<Stamp>,
}

impl std::fmt::Debug for CertReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertReloader")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish()
    }
}

fn mtime(path: &str) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Builds a server configuration (HTTP/1.1 over TLS, no client certificates) from the files.
fn build(cert_file: &str, key_file: &str) -> Result<rustls::ServerConfig, TlsError> {
    let certs = files::load_certs(cert_file)?;
    let key = files::load_key(key_file)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(format!("{cert_file} / {key_file}: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

impl CertReloader {
    /// Loads the certificate and key named by `cfg`; fails when they are unusable.
    pub(crate) fn new(cfg: &TlsConfig) -> Result<Self, TlsError> {
        let seen = (mtime(&cfg.cert_file), mtime(&cfg.key_file));
        let current = build(&cfg.cert_file, &cfg.key_file)?;
        Ok(Self {
            cert_file: cfg.cert_file.clone(),
            key_file: cfg.key_file.clone(),
            current: RwLock::new(Arc::new(current)),
            seen: Mutex::new(seen),
        })
    }

    /// An acceptor with the current certificate, for one new connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// Loads the files again. On success new connections get the new certificate; on failure the
    /// old one stays and the error is returned. Either way the outcome is logged.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        *self.seen.lock() = (mtime(&self.cert_file), mtime(&self.key_file));
        match build(&self.cert_file, &self.key_file) {
            Ok(cfg) => {
                *self.current.write() = Arc::new(cfg);
                tracing::info!(cert_file = %self.cert_file, "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate not reloaded: keeping the previous one");
                Err(e)
            }
        }
    }

    /// Reloads when either file's modification time changed since the last load attempt; returns
    /// whether it tried.
    pub(crate) fn reload_if_changed(&self) -> bool {
        let now = (mtime(&self.cert_file), mtime(&self.key_file));
        if *self.seen.lock() == now {
            return false;
        }
        let _ = self.reload();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_cert(dir: &std::path::Path, name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .unwrap_or_else(|e| panic!("{e}"));
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, c.cert.pem()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap_or_else(|e| panic!("{e}"));
        (cert.display().to_string(), key.display().to_string())
    }

    fn config_ptr(r: &CertReloader) -> *const rustls::ServerConfig {
        Arc::as_ptr(&r.current.read())
    }

    #[test]
    fn reloads_on_change_only_and_keeps_the_old_certificate_on_failure() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (cert_file, key_file) = write_cert(dir.path(), "s");
        let r = CertReloader::new(&TlsConfig {
            listen: "127.0.0.1:0".into(),
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
            ..TlsConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let first = config_ptr(&r);
        assert!(!r.reload_if_changed(), "nothing changed");
        assert_eq!(config_ptr(&r), first);

        // An unusable key: the attempt is made once, fails, and the old configuration stays.
        std::fs::write(&key_file, "garbage").unwrap_or_else(|e| panic!("{e}"));
        let t = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&key_file)
            .and_then(|f| f.set_modified(t))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.reload_if_changed());
        assert_eq!(config_ptr(&r), first);
        assert!(
            !r.reload_if_changed(),
            "a bad file is not retried until it changes"
        );
        assert!(r.reload().is_err());

        // A good pair again: swapped in.
        let (c2, k2) = write_cert(dir.path(), "s");
        assert_eq!((c2, k2), (cert_file, key_file));
        assert!(r.reload().is_ok());
        assert_ne!(config_ptr(&r), first);
    }
}
