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
    /// The TLS listener address, `None` when TLS is off; an error names a bad address.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        let l = self.listen.trim();
        if l.is_empty() {
            return Ok(None);
        }
        l.parse()
            .map(Some)
            .map_err(|_| format!("server.tls.listen: {l:?} is not IP:PORT"))
    }

    /// The polling interval of the certificate files, `None` when off.
    pub fn reload_interval(&self) -> Option<Duration> {
        (self.reload_interval_ms > 0).then(|| Duration::from_millis(self.reload_interval_ms))
    }

    /// Checks that a TLS listener has its certificate and key.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen_addr()?.is_some() && (self.cert_file.is_empty() || self.key_file.is_empty())
        {
            return Err("server.tls: a TLS listener needs cert_file and key_file".into());
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
