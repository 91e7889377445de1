//! RPC, notifications and RPC authorisation (docs/wire.md §2.9, §5.2 item 12) over real sockets.

mod support;

use std::sync::Arc;

use support::sgc::*;
use support::*;
use tokio::sync::mpsc::unbounded_channel;
use wscluster::Server;
use wscluster::config::AuthConfig;
use wscluster::internals::protocol::sgc::{
    Notification, Payload, RpcRequest, SgcConfig, SgcProtocol,
};

#[tokio::test]
async fn rpc_is_answered_later_from_a_spawned_task() {
    let (tx, mut rx) = unbounded_channel::<RpcRequest>();
    let (server, sgc) = sgc_server_with(SgcConfig::default(), |s| {
        s.on_rpc(move |req| {
            let _ = tx.send(req);
        });
    })
    .await;
    let (mut a, ga) = client(server.local_addr()).await;
    a.send(&delphi::rpc("call-1", "getQuote", r#""AAPL""#))
        .await;
    a.expect(&s2("call-1")).await;
    let req = next_event(&mut rx).await;
    assert_eq!(req.method(), "getQuote");
    assert_eq!(req.id(), "call-1");
    assert_eq!(req.params(), &Payload::Text("AAPL".into()));
    assert_eq!(req.connection().id(), ga);
    assert_eq!(sgc.pending_rpc_count(&ga), 1);
    // Not answered yet: nothing but the ack.
    a.barrier().await;
    let answered = tokio::spawn(async move {
        tokio::task::yield_now().await;
        let first = req.respond(r#"{"price":1.5}"#);
        let second = req.respond("again");
        (first, second)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answered, (true, false), "a request is answered once");
    a.expect(&s9(r#"{"price":1.5}"#, "qosLevel0", "call-1"))
        .await;
    a.barrier().await;
    assert_eq!(sgc.pending_rpc_count(&ga), 0);
}

#[tokio::test]
async fn rpc_params_in_every_dialect_and_errors_with_data() {
    let (tx, mut rx) = unbounded_channel::<(String, Payload)>();
    let (server, _sgc) = sgc_server_with(SgcConfig::default(), |s| {
        s.on_rpc(move |req| {
            let _ = tx.send((req.method().to_owned(), req.params().clone()));
            match req.method() {
                "err" => req.respond_error(-32602, "Invalid params", r#"{"field":"x"}"#),
                "err2" => req.respond_error(7, "text data", "why"),
                _ => req.respond("plain"),
            };
        });
    })
    .await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send(&delphi::rpc_no_params("1", "ping")).await;
    a.expect(&s2("1")).await;
    a.expect(&s9(r#""plain""#, "qosLevel0", "1")).await;
    assert_eq!(
        next_event(&mut rx).await,
        (
            "ping".into(),
            Payload::Raw(r#"{"qos":"qosLevel0","queue":"queueLevel0"}"#.into())
        )
    );
    a.send(&js::rpc("j1", "err", "p")).await;
    a.expect(&s2("j1")).await;
    a.expect(&s10(
        -32602,
        "Invalid params",
        Some(r#"{"field":"x"}"#),
        "qosLevel0",
        "j1",
    ))
    .await;
    assert_eq!(
        next_event(&mut rx).await,
        ("err".into(), Payload::Text("p".into()))
    );
    a.send(&delphi::rpc("2", "err2", "[1,2]")).await;
    a.expect(&s2("2")).await;
    a.expect(&s10(7, "text data", Some(r#""why""#), "qosLevel0", "2"))
        .await;
    assert_eq!(
        next_event(&mut rx).await,
        ("err2".into(), Payload::Raw("[1,2]".into()))
    );
}

#[tokio::test]
async fn pending_rpcs_are_keyed_by_connection_and_id() {
    let (tx, mut rx) = unbounded_channel::<RpcRequest>();
    let (server, sgc) = sgc_server_with(SgcConfig::default(), |s| {
        s.on_rpc(move |req| {
            let _ = tx.send(req);
        });
    })
    .await;
    let (mut a, ga) = client(server.local_addr()).await;
    let (mut b, gb) = client(server.local_addr()).await;
    a.send(&delphi::rpc("1", "m", "0")).await;
    a.expect(&s2("1")).await;
    b.send(&delphi::rpc("1", "m", "0")).await;
    b.expect(&s2("1")).await;
    let _ = next_event(&mut rx).await;
    let _ = next_event(&mut rx).await;
    assert!(sgc.rpc_result(&gb, "1", "for b"));
    assert!(sgc.rpc_result(&ga, "1", "for a"));
    assert!(!sgc.rpc_result(&ga, "1", "twice"));
    assert!(!sgc.rpc_result("NOSUCHCONN", "1", "x"));
    assert!(!sgc.rpc_error(&ga, "unknown", 1, "x", ""));
    a.expect(&s9(r#""for a""#, "qosLevel0", "1")).await;
    b.expect(&s9(r#""for b""#, "qosLevel0", "1")).await;
    a.barrier().await;
    b.barrier().await;
    // A closed connection's pending requests are dropped.
    a.send(&delphi::rpc("late", "m", "0")).await;
    a.expect(&s2("late")).await;
    let req = next_event(&mut rx).await;
    a.close().await;
    assert!(eventually(DEFAULT_WAIT, || sgc.connection(&ga).is_none()).await);
    assert!(!req.respond("too late"));
}

#[tokio::test]
async fn too_many_pending_rpcs_are_refused() {
    let (server, _sgc) = sgc_server_with(
        SgcConfig {
            rpc_max_pending: 1,
            ..SgcConfig::default()
        },
        |s| {
            s.on_rpc(|_| {});
        },
    )
    .await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send(&delphi::rpc("1", "m", "0")).await;
    a.expect(&s2("1")).await;
    a.send(&delphi::rpc("2", "m", "0")).await;
    a.expect(&s2("2")).await;
    a.expect(&s10(
        -32000,
        "Too many pending requests.",
        None,
        "qosLevel0",
        "2",
    ))
    .await;
}

#[tokio::test]
async fn rpc_without_a_hook_gets_only_the_ack_and_unknown_sgc_methods_are_not_rpc() {
    let (tx, mut rx) = unbounded_channel::<RpcRequest>();
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send(&delphi::rpc("1", "m", "0")).await;
    a.expect(&s2("1")).await;
    a.barrier().await;
    drop(tx);
    assert!(rx.try_recv().is_err());
    let (tx, mut rx) = unbounded_channel::<RpcRequest>();
    let (server, _sgc) = sgc_server_with(SgcConfig::default(), |s| {
        s.on_rpc(move |req| {
            let _ = tx.send(req);
        });
    })
    .await;
    let (mut a, _) = client(server.local_addr()).await;
    for m in ["sgc@channels", "sgc@webrtc", "sgc@event", "sgc@nonsense"] {
        a.send(&delphi::rpc("x", m, "0")).await;
        a.expect(&s2("x")).await;
    }
    a.barrier().await;
    no_event(&mut rx);
}

#[tokio::test]
async fn notifications_go_to_their_hook_without_reply() {
    let (tx, mut rx) = unbounded_channel::<Notification>();
    let (server, _sgc) = sgc_server_with(SgcConfig::default(), |s| {
        s.on_notification(move |_, n| {
            let _ = tx.send(n.clone());
        });
        s.on_rpc(|_| panic!("a notification is not an RPC"));
    })
    .await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send(&delphi::notify("doThing", r#"{"a":1}"#)).await;
    a.send(&js::notify("jsThing")).await;
    a.send(r#"{"jsonrpc":"2.0","method":"bare"}"#).await;
    a.barrier().await;
    assert_eq!(
        next_event(&mut rx).await,
        Notification {
            method: "doThing".into(),
            params: Payload::Raw(r#"{"a":1}"#.into())
        }
    );
    assert_eq!(
        next_event(&mut rx).await,
        Notification {
            method: "jsThing".into(),
            params: Payload::Text(String::new())
        }
    );
    assert_eq!(next_event(&mut rx).await.method, "bare");
}

async fn auth_rpc_node(methods: &[&str]) -> (wscluster::ServerHandle, SgcProtocol) {
    init_logs();
    let sgc = SgcProtocol::new(SgcConfig {
        rpc_auth_enabled: true,
        rpc_auth_methods: methods.iter().map(|m| m.to_string()).collect(),
        ..SgcConfig::default()
    });
    sgc.on_rpc(|req| {
        let user = req.connection().user().unwrap_or("-").to_owned();
        req.respond(&format!("{} as {user}", req.method()));
    });
    sgc.on_rpc_auth(|conn, method| method == "hooked" && conn.user() != Some("mallory"));
    let mut auth = AuthConfig {
        enabled: true,
        allow_non_auth: true,
        ..AuthConfig::default()
    };
    auth.users.insert("alice".into(), "secret".into());
    auth.users.insert("mallory".into(), "pw".into());
    let server = Server::new(test_server_config())
        .auth(auth)
        .protocol(Arc::new(sgc.clone()))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (server, sgc)
}

async fn sgc_at(addr: std::net::SocketAddr, path: &str) -> WsClient {
    let mut c = WsClient::connect(addr, path, &["esegece.com"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = c.recv_json().await;
    assert_eq!(s["result"]["method"], "sgc@session");
    c
}

#[tokio::test]
async fn rpc_authorisation_by_list_user_and_hook() {
    let (server, _sgc) = auth_rpc_node(&["open", "Admin=alice"]).await;
    let addr = server.local_addr();
    let denied = |id: &str| s10(-32601, METHOD_NOT_FOUND, None, "qosLevel0", id);
    let mut anon = sgc_at(addr, "/").await;
    let mut alice = sgc_at(addr, "/sgc/auth/url/alice/secret").await;
    let mut mallory = sgc_at(addr, "/sgc/auth/url/mallory/pw").await;

    anon.send(&delphi::rpc("1", "open", "0")).await;
    anon.expect(&s2("1")).await;
    anon.expect(&s9(r#""open as -""#, "qosLevel0", "1")).await;
    anon.send(&delphi::rpc("2", "admin", "0")).await;
    anon.expect(&s2("2")).await;
    anon.expect(&denied("2")).await;
    anon.send(&delphi::rpc("3", "hooked", "0")).await;
    anon.expect(&s2("3")).await;
    anon.expect(&s9(r#""hooked as -""#, "qosLevel0", "3")).await;
    anon.send(&js::rpc("4", "other", "x")).await;
    anon.expect(&s2("4")).await;
    anon.expect(&denied("4")).await;

    alice.send(&delphi::rpc("5", "ADMIN", "0")).await;
    alice.expect(&s2("5")).await;
    alice
        .expect(&s9(r#""ADMIN as alice""#, "qosLevel0", "5"))
        .await;

    mallory.send(&delphi::rpc("6", "admin", "0")).await;
    mallory.expect(&s2("6")).await;
    mallory.expect(&denied("6")).await;
    mallory.send(&delphi::rpc("7", "hooked", "0")).await;
    mallory.expect(&s2("7")).await;
    mallory.expect(&denied("7")).await;
    // Notifications are not subject to RPC authorisation (they have no reply to refuse with).
    mallory.send(&delphi::notify("admin", "0")).await;
    mallory.barrier().await;
}
