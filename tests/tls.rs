//! `wss://` for clients over real sockets: the TLS listener next to the plain one, certificate
//! reload (in-process and by SIGHUP to a real node), and what a bad certificate does.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use support::sgc::{delphi, s5};
use support::tls::{Issued, TestCa, connect};
use support::{WsClient, init_logs, test_server_config};
use wscluster::config::ServerConfig;
use wscluster::internals::protocol::sgc::{SgcConfig, SgcProtocol};
use wscluster::internals::tls::TlsConfig;
use wscluster::{Server, ServerHandle};

fn tls_config(cert: &Issued, reload_interval_ms: u64) -> ServerConfig {
    ServerConfig {
        tls: TlsConfig {
            listen: "127.0.0.1:0".into(),
            cert_file: cert.cert(),
            key_file: cert.key(),
            reload_interval_ms,
        },
        ..test_server_config()
    }
}

async fn sgc_tls_server(cfg: ServerConfig) -> ServerHandle {
    init_logs();
    let sgc = SgcProtocol::new(SgcConfig::default());
    Server::new(cfg)
        .protocol(Arc::new(sgc))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"))
}

/// A `wss://` sgc client that has read its S1.
async fn wss_sgc(addr: SocketAddr, ca: &Path) -> (WsClient, Vec<u8>) {
    let (mut c, leaf) = connect(addr, "/", &["esegece.com"], ca)
        .await
        .unwrap_or_else(|e| panic!("wss connect: {e}"));
    assert_eq!(c.protocol.as_deref(), Some("esegece.com"));
    let first = c.recv_json().await;
    assert_eq!(first["result"]["method"], "sgc@session", "{first}");
    (c, leaf)
}

fn tls_addr(server: &ServerHandle) -> SocketAddr {
    server
        .tls_local_addr()
        .unwrap_or_else(|| panic!("no TLS listener"))
}

#[tokio::test]
async fn wss_and_plain_clients_share_channels() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "clients");
    let cert = ca.issue(dir.path(), "server", 1);
    let server = sgc_tls_server(tls_config(&cert, 0)).await;
    assert_ne!(tls_addr(&server), server.local_addr());

    let (mut secure, leaf) = wss_sgc(tls_addr(&server), &ca.ca_file).await;
    assert_eq!(
        leaf, cert.der,
        "the TLS listener presents the configured certificate"
    );
    let (mut plain, _) = WsClient::sgc(server.local_addr()).await;
    secure.subscribe("news").await;
    plain.subscribe("news").await;

    secure
        .send(&delphi::publish(r#""over tls""#, "news", "queueLevel0"))
        .await;
    secure.expect(&s5("news", r#""over tls""#)).await;
    plain.expect(&s5("news", r#""over tls""#)).await;
    plain
        .send(&delphi::publish(r#""in clear""#, "news", "queueLevel0"))
        .await;
    plain.expect(&s5("news", r#""in clear""#)).await;
    secure.expect(&s5("news", r#""in clear""#)).await;
    secure.barrier().await;
    plain.barrier().await;
    assert_eq!(server.connection_count(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_refused_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "clients");
    let cert = ca.issue(dir.path(), "server", 1);
    let server = sgc_tls_server(tls_config(&cert, 0)).await;
    // A client speaking plain WebSocket to the TLS port gets no upgrade.
    assert!(
        WsClient::connect(tls_addr(&server), "/", &["esegece.com"])
            .await
            .is_err()
    );
    // A client trusting another CA refuses the server's certificate.
    let other = TestCa::new(dir.path(), "other");
    let refused = connect(tls_addr(&server), "/", &["esegece.com"], &other.ca_file).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("TLS handshake")),
        "{:?}",
        refused.as_ref().err()
    );
    // The listener still serves.
    let (mut c, _) = wss_sgc(tls_addr(&server), &ca.ca_file).await;
    c.barrier().await;
    server.shutdown().await;
}

#[tokio::test]
async fn reload_serves_the_new_certificate_to_new_connections_only() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "clients");
    let first = ca.issue(dir.path(), "server", 1);
    let server = sgc_tls_server(tls_config(&first, 0)).await;
    let (mut old, leaf) = wss_sgc(tls_addr(&server), &ca.ca_file).await;
    assert_eq!(leaf, first.der);
    old.subscribe("news").await;

    // A bad new key: the reload fails and the old certificate stays.
    std::fs::write(&first.key_file, "not a key").unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(server.reload_tls(), Some(Err(_))));
    let (mut still, leaf) = wss_sgc(tls_addr(&server), &ca.ca_file).await;
    assert_eq!(leaf, first.der, "a failed reload keeps the old certificate");
    still.barrier().await;

    // A good one (same file names): new connections see it.
    let second = ca.issue(dir.path(), "server", 2);
    assert_ne!(second.der, first.der);
    assert!(matches!(server.reload_tls(), Some(Ok(()))));
    let (mut new, leaf) = wss_sgc(tls_addr(&server), &ca.ca_file).await;
    assert_eq!(
        leaf, second.der,
        "a new connection gets the reloaded certificate"
    );

    // The connection made before the reload still works both ways.
    new.send(&delphi::publish(r#""after reload""#, "news", "queueLevel0"))
        .await;
    old.expect(&s5("news", r#""after reload""#)).await;
    old.send(&delphi::publish(r#""old speaks""#, "news", "queueLevel0"))
        .await;
    old.expect(&s5("news", r#""old speaks""#)).await;
    old.barrier().await;
    server.shutdown().await;
}

#[tokio::test]
async fn changed_files_are_picked_up_by_polling() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "clients");
    let first = ca.issue(dir.path(), "server", 1);
    let server = sgc_tls_server(tls_config(&first, 50)).await;
    let (mut old, leaf) = wss_sgc(tls_addr(&server), &ca.ca_file).await;
    assert_eq!(leaf, first.der);
    // File systems with a coarse modification time: make sure the new files' time differs.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = ca.issue(dir.path(), "server", 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (mut c, leaf) = wss_sgc(tls_addr(&server), &ca.ca_file).await;
        c.barrier().await;
        if leaf == second.der {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    old.barrier().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_tls_listener_without_a_usable_certificate_does_not_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "clients");
    let cert = ca.issue(dir.path(), "server", 1);
    std::fs::write(&cert.cert_file, "garbage").unwrap_or_else(|e| panic!("{e}"));
    let e = Server::new(tls_config(&cert, 0))
        .bind()
        .await
        .err()
        .unwrap_or_else(|| panic!("bound with a bad certificate"));
    assert!(e.to_string().contains("server.tls"), "{e}");
}
