//! [`MeshTls`]: the acceptor and connector of TLS mesh links, both tied to the cluster CA.
//!
//! Name checks: nodes dial addresses (IPs, gossiped `host:port`, DNS-discovered pod IPs), so a
//! dialer cannot know which name the peer's certificate should carry. The dialer therefore checks
//! the peer's chain and validity period against the cluster CA and ignores the name: in a cluster
//! whose CA signs only its nodes' certificates, "signed by our CA" is the identity that matters.
//! The server name sent in the handshake is a fixed placeholder ([`SERVER_NAME`]).

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{MeshTlsConfig, TlsError, files};

/// The server name a dialer sends (SNI); the acceptor ignores it and the dialer does not check it.
pub(crate) const SERVER_NAME: &str = "wscluster-node";

/// TLS for mesh links: how to accept and how to dial.
#[derive(Clone)]
pub(crate) struct MeshTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for MeshTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshTls").finish_non_exhaustive()
    }
}

fn rustls_error(what: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Rustls(format!("{what}: {e}"))
}

impl MeshTls {
    /// Loads the node's certificate, key and the cluster CA; `None` when mesh TLS is off.
    pub(crate) fn from_config(cfg: &MeshTlsConfig) -> Result<Option<Self>, TlsError> {
        if !cfg.enabled {
            return Ok(None);
        }
        let certs = files::load_certs(&cfg.cert_file)?;
        let key = files::load_key(&cfg.key_file)?;
        let roots = Arc::new(files::load_roots(&cfg.ca_file)?);
        let provider = super::provider();

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
        let client_verifier = if cfg.require_client_cert {
            client_verifier
        } else {
            client_verifier.allow_unauthenticated()
        }
        .build()
        .map_err(|e| rustls_error("cluster CA", e))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| rustls_error("TLS versions", e))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| rustls_error("mesh certificate", e))?;

        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| rustls_error("cluster CA", e))?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| rustls_error("TLS versions", e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ClusterCaVerifier { inner }))
            .with_client_auth_cert(certs, key)
            .map_err(|e| rustls_error("mesh certificate", e))?;
        Ok(Some(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        }))
    }

    /// The acceptor for links other nodes dial.
    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The connector for links this node dials.
    pub(crate) fn connector(&self) -> &TlsConnector {
        &self.connector
    }

    /// The server name sent when dialling.
    pub(crate) fn server_name() -> ServerName<'static> {
        ServerName::DnsName(
            rustls::pki_types::DnsName::try_from(SERVER_NAME)
                .unwrap_or_else(|_| unreachable!("a valid DNS name"))
                .to_owned(),
        )
    }
}

/// Verifies a peer's certificate chain against the cluster CA and ignores the name (see the
/// module documentation): WebPKI checks the chain before the name, so a name error means the
/// chain was good.
#[derive(Debug)]
struct ClusterCaVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ClusterCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
