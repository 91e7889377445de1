//! Checks that the certificate, key and CA files a TLS configuration names can be read and used,
//! without binding anything: what a start would load, reported problem by problem.

use super::{MeshTls, MeshTlsConfig, TlsConfig, files, reloader::CertReloader};

impl TlsConfig {
    /// Every problem with the files of the `wss://` listener: each file missing or unparseable,
    /// then (when both load) a key that does not go with the certificate. Empty when the
    /// listener is off or its file names are missing (that is a [`TlsConfig::validate`] problem).
    pub fn file_problems(&self) -> Vec<String> {
        if !matches!(self.listen_addr(), Ok(Some(_)))
            || self.cert_file.is_empty()
            || self.key_file.is_empty()
        {
            return Vec::new();
        }
        let mut out = pair_problems(&self.cert_file, &self.key_file);
        if out.is_empty()
            && let Err(e) = CertReloader::new(self)
        {
            out.push(e.to_string());
        }
        out
    }
}

impl MeshTlsConfig {
    /// Every problem with the files of enabled mesh TLS: the certificate, the key and the cluster
    /// CA each missing or unparseable, then (when all load) a certificate, key or CA rustls
    /// refuses. Empty when mesh TLS is off or a file name is missing.
    pub fn file_problems(&self) -> Vec<String> {
        if !self.enabled
            || self.cert_file.is_empty()
            || self.key_file.is_empty()
            || self.ca_file.is_empty()
        {
            return Vec::new();
        }
        let mut out = pair_problems(&self.cert_file, &self.key_file);
        if let Err(e) = files::load_roots(&self.ca_file) {
            out.push(format!("ca_file: {e}"));
        }
        if out.is_empty()
            && let Err(e) = MeshTls::from_config(self)
        {
            out.push(e.to_string());
        }
        out
    }
}

/// The problems of a certificate file and its key file, each read on its own.
fn pair_problems(cert_file: &str, key_file: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(e) = files::load_certs(cert_file) {
        out.push(format!("cert_file: {e}"));
    }
    if let Err(e) = files::load_key(key_file) {
        out.push(format!("key_file: {e}"));
    }
    out
}
