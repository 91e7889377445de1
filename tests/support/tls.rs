//! TLS test support: a throwaway CA issuing server and client certificates into a directory (rcgen,
//! `ring`), and a `wss://` client trusting that CA.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{DEFAULT_WAIT, WsClient};

/// A certificate and key written to files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The PEM certificate.
    pub cert_file: PathBuf,
    /// The PEM private key.
    pub key_file: PathBuf,
    /// The certificate's DER bytes (to recognise it on the wire).
    pub der: Vec<u8>,
}

impl Issued {
    /// The certificate file as a `String` path (config fields are strings).
    pub fn cert(&self) -> String {
        self.cert_file.display().to_string()
    }
    /// The key file as a `String` path.
    pub fn key(&self) -> String {
        self.key_file.display().to_string()
    }
}

/// A certificate authority for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM) file.
    pub ca_file: PathBuf,
}

fn fail<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("test certificate: {e}"))
}

impl TestCa {
    /// A new CA named `name`, its certificate written to `dir/name-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = fail(CertificateParams::new(Vec::<String>::new()));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = fail(CertifiedIssuer::self_signed(
            params,
            fail(KeyPair::generate()),
        ));
        let ca_file = dir.join(format!("{name}-ca.pem"));
        fail(std::fs::write(&ca_file, issuer.pem()));
        Self { issuer, ca_file }
    }

    /// The CA file as a `String` path.
    pub fn ca(&self) -> String {
        self.ca_file.display().to_string()
    }

    /// Issues a certificate for `localhost` / `127.0.0.1` (usable as server and client
    /// certificate) with this serial, written to `dir/name.pem` and `dir/name.key`.
    pub fn issue(&self, dir: &Path, name: &str, serial: u64) -> Issued {
        let mut params = fail(CertificateParams::new(vec!["localhost".to_owned()]));
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = fail(KeyPair::generate());
        let cert = fail(params.signed_by(&key, &self.issuer));
        let issued = Issued {
            cert_file: dir.join(format!("{name}.pem")),
            key_file: dir.join(format!("{name}.key")),
            der: cert.der().to_vec(),
        };
        // Written to a temporary name and renamed: a poller never sees half a file.
        let tmp = dir.join(format!("{name}.pem.tmp"));
        fail(std::fs::write(&tmp, cert.pem()));
        fail(std::fs::rename(&tmp, &issued.cert_file));
        let tmp = dir.join(format!("{name}.key.tmp"));
        fail(std::fs::write(&tmp, key.serialize_pem()));
        fail(std::fs::rename(&tmp, &issued.key_file));
        issued
    }
}

/// A TLS connector trusting only the CA certificate in `ca_file`.
pub fn connector(ca_file: &Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in fail(CertificateDer::pem_file_iter(ca_file)) {
        fail(roots.add(fail(c)));
    }
    let cfg = fail(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions(),
    )
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(cfg))
}

/// Connects to `wss://localhost:PORT{path}` at `addr` trusting `ca_file`, offering `protocols`.
/// Returns the client and the DER of the certificate the server presented.
pub async fn connect(
    addr: SocketAddr,
    path: &str,
    protocols: &[&str],
    ca_file: &Path,
) -> Result<(WsClient, Vec<u8>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(DEFAULT_WAIT, connector(ca_file).connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let uri = format!("wss://localhost:{}{path}", addr.port());
    let c = WsClient::connect_on(Box::new(tls), &uri, protocols, &[]).await?;
    Ok((c, leaf))
}
