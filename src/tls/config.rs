//! The TLS options: `[server.tls]` (clients) and `[cluster.mesh.tls]` (mesh links).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// TLS for clients (the `[server.tls]` section): a second listener serving `wss://` (and
/// `https://` for the HTTP routes) next to the plain one, with the same protocols, authentication
/// and routes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Address and port of the TLS listener; empty means no TLS listener.
    pub listen: String,
    /// The server certificate chain (PEM, leaf first).
    pub cert_file: String,
    /// The certificate's private key (PEM).
    pub key_file: String,
    /// How often the two files' modification times are checked, in milliseconds; a change reloads
    /// them (so does SIGHUP). 0 turns the polling off.
    pub reload_interval_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            reload_interval_ms: 5_000,
        }
    }
}

impl TlsConfig {
    /// The TLS listener address, `None` when TLS is off; an error names a bad address (the
    /// message names the field within `[server.tls]`).
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        let l = self.listen.trim();
        if l.is_empty() {
            return Ok(None);
        }
        l.parse()
            .map(Some)
            .map_err(|_| format!("listen: {l:?} is not IP:PORT"))
    }

    /// The polling interval of the certificate files, `None` when off.
    pub fn reload_interval(&self) -> Option<Duration> {
        (self.reload_interval_ms > 0).then(|| Duration::from_millis(self.reload_interval_ms))
    }

    /// Checks that a TLS listener has its certificate and key.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen_addr()?.is_some() && (self.cert_file.is_empty() || self.key_file.is_empty())
        {
            return Err("a TLS listener (listen) needs cert_file and key_file".into());
        }
        Ok(())
    }
}

/// TLS for mesh links (the `[cluster.mesh.tls]` section). When enabled, every link is TLS in both
/// directions: the acceptor presents `cert_file`, the dialer checks it against `ca_file` (the
/// cluster CA: the chain and validity are checked, the name is not, since nodes dial addresses),
/// and with `require_client_cert` the acceptor also requires the dialer's certificate signed by
/// that CA. The shared-secret challenge still runs inside the TLS session when a secret is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MeshTlsConfig {
    /// Whether links are TLS; every node of the cluster must agree.
    pub enabled: bool,
    /// This node's certificate chain (PEM), presented when accepting and, to a peer requiring
    /// client certificates, when dialling.
    pub cert_file: String,
    /// Its private key (PEM).
    pub key_file: String,
    /// The cluster CA (PEM): peers' certificates must chain to it.
    pub ca_file: String,
    /// Mutual TLS: refuse a dialling node without a certificate signed by the cluster CA.
    pub require_client_cert: bool,
}

impl MeshTlsConfig {
    /// Checks that enabled mesh TLS has its certificate, key and CA.
    pub fn validate(&self) -> Result<(), String> {
        if self.enabled
            && (self.cert_file.is_empty() || self.key_file.is_empty() || self.ca_file.is_empty())
        {
            return Err(
                "cluster.mesh.tls: enabled mesh TLS needs cert_file, key_file and ca_file".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tls_is_off_by_default_and_needs_its_files() {
        let off = TlsConfig::default();
        assert_eq!(off.listen_addr(), Ok(None));
        assert!(off.validate().is_ok());
        assert_eq!(off.reload_interval(), Some(Duration::from_secs(5)));
        let mut on = TlsConfig {
            listen: "127.0.0.1:8443".into(),
            ..TlsConfig::default()
        };
        assert!(on.validate().is_err());
        on.cert_file = "c.pem".into();
        on.key_file = "k.pem".into();
        assert!(on.validate().is_ok());
        on.listen = "nowhere".into();
        assert!(on.validate().is_err_and(|e| e.contains("listen")));
        on.reload_interval_ms = 0;
        assert_eq!(on.reload_interval(), None);
    }

    #[test]
    fn enabled_mesh_tls_needs_certificate_key_and_ca() {
        assert!(MeshTlsConfig::default().validate().is_ok());
        let mut m = MeshTlsConfig {
            enabled: true,
            cert_file: "c.pem".into(),
            key_file: "k.pem".into(),
            ..MeshTlsConfig::default()
        };
        assert!(m.validate().is_err());
        m.ca_file = "ca.pem".into();
        assert!(m.validate().is_ok());
    }
}
