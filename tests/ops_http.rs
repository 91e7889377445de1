//! The operations routes over real sockets: health, readiness (503 while a configured peer is
//! missing), metrics, the admin API (publish and broadcast reaching WebSocket clients on other
//! nodes frame by frame, cluster-wide channel counts, Presence members, peers, connections,
//! disconnect on any node), the status JSON, and every refusal (401, 403, 404, 405, 400, 411,
//! 413, 431). The binary's own wiring is checked with real processes in `tests/ops_binary.rs`.

mod ops_support;
mod presence_support;
mod support;

use std::time::Duration;

use ops_support::*;
use presence_support::PClient;
use serde_json::{Value, json};
use support::WsClient;
use support::eventually;
use support::sgc::{delphi, s5, s6};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Every admin route with a request that succeeds (or is a well-formed 404) once authorised.
const ADMIN_ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/status.json", None),
    (
        "POST",
        "/admin/publish",
        Some(r#"{"channel":"c","message":"m"}"#),
    ),
    ("POST", "/admin/broadcast", Some(r#"{"message":"m"}"#)),
    ("GET", "/admin/channels", None),
    ("GET", "/admin/presence/channels", None),
    ("GET", "/admin/presence/channels/x/members", None),
    ("GET", "/admin/peers", None),
    ("GET", "/admin/connections", None),
    ("POST", "/admin/connections/NOPE/disconnect", Some("{}")),
];

#[tokio::test]
async fn open_routes_answer_and_admin_routes_need_the_token() {
    let a = OpsNode::start(NodeSpec::new("a")).await;
    let addr = a.ws();
    let r = request(addr, "GET", "/health", None, None).await;
    assert_eq!(r.status, 200);
    let h: serde_json::Value =
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body));
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["ready"], true, "{h}");
    assert_eq!(h["unreachable_peers"], serde_json::json!([]), "{h}");
    let r = request(addr, "GET", "/ready", None, None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    let r = request(addr, "GET", "/", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("POST /admin/publish"), "{}", r.body);
    let r = request(addr, "GET", "/status", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body.contains("fetch(\"status.json\""), "{}", r.body);
    let r = request(addr, "GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\nwscluster_ready 1\n"), "{}", r.body);

    for (method, path, body) in ADMIN_ROUTES {
        for token in [None, Some("wrong"), Some("")] {
            let r = request(addr, method, path, token, *body).await;
            assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.body);
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer realm=\"wscluster\"")
            );
            assert!(r.json()["error"].as_str().is_some());
        }
        let r = request(addr, method, path, Some(TOKEN), *body).await;
        let want = if path.contains("/x/") || path.contains("NOPE") {
            404
        } else {
            200
        };
        assert_eq!(r.status, want, "{method} {path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        r.json();
    }

    let r = get(addr, "/nope").await;
    assert_eq!(r.status, 404);
    let r = request(addr, "POST", "/health", None, Some("{}")).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let r = get(addr, "/admin/presence/channels/%zz/members").await;
    assert_eq!(r.status, 400);
    // The port still upgrades WebSocket clients, and the server still owns the session-token path.
    let (mut ws, guid) = WsClient::sgc(addr).await;
    assert_eq!(guid.len(), 32);
    ws.barrier().await;
    let r = request(addr, "GET", "/sgc/req/auth/session/u/p", None, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body, "404 Not Found\n");
}

#[tokio::test]
async fn without_a_token_admin_routes_live_on_the_admin_port_only() {
    let spec = NodeSpec {
        token: String::new(),
        admin_port: true,
        ..NodeSpec::new("a")
    };
    let a = OpsNode::start(spec).await;
    for (method, path, body) in ADMIN_ROUTES {
        let r = request(a.ws(), method, path, Some("anything"), *body).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("admin.token")),
            "{}",
            r.body
        );
        let r = request(a.admin_addr(), method, path, None, *body).await;
        assert!(r.status == 200 || r.status == 404, "{method} {path}: {r:?}");
    }
    let r = request(a.ws(), "GET", "/health", None, None).await;
    assert_eq!(r.status, 200);
    let r = request(a.admin_addr(), "GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    // The admin port does not upgrade WebSocket connections: the request is just a GET /.
    let r = raw(
        a.admin_addr(),
        support::upgrade_request("/", "esegece.com", "").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        WsClient::connect(a.admin_addr(), "/", &["esegece.com"])
            .await
            .is_err()
    );
}

/// A request head that is not HTTP gets 400 and one past `server.max_request_head` (16 KiB by
/// default) 431, on the WebSocket port and on the admin port alike.
#[tokio::test]
async fn unreadable_request_heads_get_400_or_431_on_either_port() {
    let spec = NodeSpec {
        admin_port: true,
        ..NodeSpec::new("a")
    };
    let a = OpsNode::start(spec).await;
    let mut huge = b"GET /health HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.resize(20 * 1024, b'a');
    for addr in [a.ws(), a.admin_addr()] {
        let r = raw(addr, b"\x01\x02 not http at all\r\n\r\n").await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (400, "400 Bad Request\n"),
            "{addr}"
        );
        let r = raw(addr, &huge).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (431, "431 Request Header Fields Too Large\n"),
            "{addr}"
        );
    }
}

#[tokio::test]
async fn routes_can_be_moved_off_the_websocket_port() {
    let spec = NodeSpec {
        on_websocket_port: false,
        admin_port: true,
        ..NodeSpec::new("a")
    };
    let a = OpsNode::start(spec).await;
    let r = request(a.ws(), "GET", "/health", None, None).await;
    assert_eq!((r.status, r.body.as_str()), (404, "404 Not Found\n"));
    let r = request(a.admin_addr(), "GET", "/health", None, None).await;
    assert_eq!(r.status, 200);
    // A configured token is required on the admin port too.
    let r = request(a.admin_addr(), "GET", "/admin/peers", None, None).await;
    assert_eq!(r.status, 401);
    let r = get(a.admin_addr(), "/admin/peers").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn request_bodies_are_checked() {
    let spec = NodeSpec {
        max_body_bytes: 1024,
        ..NodeSpec::new("a")
    };
    let a = OpsNode::start(spec).await;
    let big = format!(r#"{{"channel":"c","message":"{}"}}"#, "x".repeat(2000));
    let cases: &[(&str, u16)] = &[
        (&big, 413),
        ("not json", 400),
        (r#"{"channel":"c"}"#, 400),
        (r#"{"channel":"c","message":"m","extra":1}"#, 400),
        (r#"{"channel":"","message":"m"}"#, 400),
        (
            r#"{"channel":"c","message":"m","queue":"queueLevel9"}"#,
            400,
        ),
        (
            r#"{"channel":"c","message":"m","queue":"queueLevel2"}"#,
            200,
        ),
    ];
    for (body, status) in cases {
        let r = post(a.ws(), "/admin/publish", body).await;
        assert_eq!(r.status, *status, "{body}: {}", r.body);
    }
    let chunked = format!(
        "POST /admin/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    assert_eq!(raw(a.ws(), chunked.as_bytes()).await.status, 411);
    for body in [r#"{"code":999}"#, r#"{"code":2000}"#, "[1]"] {
        let r = post(a.ws(), "/admin/connections/X/disconnect", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
}

/// Accepts connections and holds them, unanswered, until released; then pipes each to `target`.
async fn gate(target: String) -> (std::net::SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("gate bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let (open_tx, open_rx) = oneshot::channel::<()>();
    let open = futures_util::FutureExt::shared(async move {
        let _ = open_rx.await;
    });
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (open, target) = (open.clone(), target.clone());
            tokio::spawn(async move {
                open.await;
                if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (addr, open_tx)
}

#[tokio::test]
async fn ready_is_503_while_a_configured_peer_is_missing_and_200_once_it_is_linked() {
    let b = OpsNode::start(NodeSpec::new("b")).await;
    let (gate_addr, open) = gate(b.mesh()).await;
    let spec = NodeSpec {
        handshake_timeout_ms: 60_000,
        ..NodeSpec::new("a").peer(gate_addr)
    };
    let a = OpsNode::start(spec).await;
    let r = request(a.ws(), "GET", "/ready", None, None).await;
    assert_eq!((r.status, r.body.as_str()), (503, "not ready\n"));
    let m = request(a.ws(), "GET", "/metrics", None, None).await;
    assert!(m.body.contains("\nwscluster_ready 0\n"), "{}", m.body);
    let s = get(a.ws(), "/status.json").await.json();
    assert_eq!(s["ready"], false);
    assert_eq!(
        s["peers"],
        json!([{"node_id": null, "address": gate_addr.to_string(), "incarnation": null,
                "state": "unreached", "unacked_frames": 0, "unacked_bytes": 0}])
    );
    assert_eq!(s["nodes"][0]["stats"]["ready"], false);

    let _ = open.send(());
    linked(&[&a, &b]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = request(a.ws(), "GET", "/ready", None, None).await;
        if r.status == 200 {
            assert_eq!(r.body, "ready\n");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never ready: {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let peers = get(a.ws(), "/admin/peers").await.json();
    let states: Vec<(Value, Value)> = peers["peers"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|p| (p["node_id"].clone(), p["state"].clone()))
                .collect()
        })
        .unwrap_or_default();
    assert!(states.contains(&(json!("b"), json!("linked"))), "{peers}");
    // A node about to stop is taken out of rotation first.
    a.ops.drain();
    let r = request(a.ws(), "GET", "/ready", None, None).await;
    assert_eq!(r.status, 503);
}

#[tokio::test]
async fn admin_publish_and_broadcast_reach_clients_on_other_nodes_frame_by_frame() {
    let (a, b, c) = three_nodes().await;
    let subscriber = |n: &OpsNode, ch: &'static str| {
        let addr = n.ws();
        async move {
            let (mut ws, _) = WsClient::sgc(addr).await;
            ws.subscribe(ch).await;
            ws
        }
    };
    let mut on_b = subscriber(&b, "news").await;
    let mut on_c = subscriber(&c, "news").await;
    let mut other = subscriber(&c, "other").await;

    let r = post(
        a.ws(),
        "/admin/publish",
        r#"{"channel":"news","message":{"n":1}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"channel": "news", "local_deliveries": 0}));
    let r = post(
        a.ws(),
        "/admin/publish",
        r#"{"channel":"news","message":"hello \"you\""}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = post(
        a.ws(),
        "/admin/broadcast",
        r#"{"channel":"news","message":[1,2]}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    for s in [&mut on_b, &mut on_c] {
        s.expect(&s5("news", r#"{"n":1}"#)).await;
        s.expect(&s5("news", r#""hello \"you\"""#)).await;
        s.expect(&s6("news", "[1,2]", None, None)).await;
    }
    // The other channel's subscriber got none of it: the next frame it sees is this publish.
    let r = post(
        a.ws(),
        "/admin/publish",
        r#"{"channel":"other","message":"o"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    other.expect(&s5("other", r#""o""#)).await;
    // A broadcast without a channel reaches every sgc connection of every node.
    let (mut on_a, _) = WsClient::sgc(a.ws()).await;
    let r = post(a.ws(), "/admin/broadcast", r#"{"message":"all"}"#).await;
    assert_eq!(r.json(), json!({"channel": "", "local_deliveries": 1}));
    for s in [&mut on_a, &mut on_b, &mut on_c, &mut other] {
        s.expect(&s6("", r#""all""#, None, None)).await;
        s.barrier().await;
    }
    // Retained (queueLevel1) publishes are kept on every node for later subscribers.
    let r = post(
        a.ws(),
        "/admin/publish",
        r#"{"channel":"kept","message":"last","queue":"queueLevel1"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(eventually(Duration::from_secs(5), || c.sgc.retained_count("kept") == 1).await);
    let (mut late, _) = WsClient::sgc(c.ws()).await;
    late.send(&delphi::subscribe("kept")).await;
    late.recv().await; // S3
    late.expect(&s5("kept", r#""last""#)).await;
}

#[tokio::test]
async fn disconnect_closes_a_connection_on_whichever_node_has_it() {
    let (a, _b, c) = three_nodes().await;
    let (mut far, far_id) = WsClient::sgc(c.ws()).await;
    let r = post(
        a.ws(),
        &format!("/admin/connections/{far_id}/disconnect"),
        r#"{"code":4001,"reason":"maintenance"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"id": far_id, "node": "c", "disconnected": true})
    );
    assert_eq!(far.expect_close().await, (Some(4001), "maintenance".into()));

    let (mut near, near_id) = WsClient::sgc(a.ws()).await;
    let r = request(
        a.ws(),
        "POST",
        &format!("/admin/connections/{near_id}/disconnect"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(r.json()["node"], "a");
    assert_eq!(
        near.expect_close().await,
        (Some(1000), "disconnected by an operator".into())
    );

    let r = post(a.ws(), "/admin/connections/NOT-A-CONNECTION/disconnect", "").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["missing"], json!([]));
}

#[tokio::test]
async fn channel_counts_and_connections_are_listed_cluster_wide() {
    let (a, b, c) = three_nodes().await;
    // d is linked but has no operations surface: it answers nothing readable.
    let d = OpsNode::start(NodeSpec {
        answer_queries: false,
        ..NodeSpec::new("d").peer(a.mesh())
    })
    .await;
    linked(&[&a, &b, &c, &d]).await;
    let mut clients = Vec::new();
    for (node, channels) in [
        (&a, &["x"][..]),
        (&b, &["x", "y"][..]),
        (&b, &["x"][..]),
        (&c, &["y"][..]),
        (&d, &["x"][..]),
    ] {
        let (mut ws, _) = WsClient::sgc(node.ws()).await;
        for ch in channels {
            ws.subscribe(ch).await;
        }
        clients.push(ws);
    }
    let r = get(b.ws(), "/admin/channels").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        v["channels"],
        json!([
            {"name": "x", "subscribers": 3, "nodes": {"a": 1, "b": 2}},
            {"name": "y", "subscribers": 2, "nodes": {"b": 1, "c": 1}},
        ]),
        "{v}"
    );
    let nodes: Vec<(Value, Value, Value)> = v["nodes"]
        .as_array()
        .map(|n| {
            n.iter()
                .map(|n| (n["node"].clone(), n["self"].clone(), n["answer"].clone()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        nodes,
        vec![
            (json!("b"), json!(true), json!("answered")),
            (json!("a"), json!(false), json!("answered")),
            (json!("c"), json!(false), json!("answered")),
            (json!("d"), json!(false), json!("unreadable")),
        ]
    );
    assert_eq!(v["nodes"][0]["stats"]["sgc_subscriptions"], 3);
    assert_eq!(v["nodes"][0]["stats"]["connections"], 2);

    let conns = get(b.ws(), "/admin/connections").await.json();
    assert_eq!(conns["total"], 2);
    let subs: Vec<Value> = conns["connections"]
        .as_array()
        .map(|c| c.iter().map(|c| c["sgc_subscriptions"].clone()).collect())
        .unwrap_or_default();
    let mut subs: Vec<u64> = subs.iter().filter_map(Value::as_u64).collect();
    subs.sort_unstable();
    assert_eq!(subs, [1, 2]);
    assert_eq!(conns["connections"][0]["protocol"], "esegece.com");
    let one = get(b.ws(), "/admin/connections?limit=1").await.json();
    assert_eq!(one["connections"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["total"], 2);
}

#[tokio::test]
async fn presence_members_are_listed_cluster_wide_with_their_node() {
    let (a, b, c) = three_nodes().await;
    let mut alice = PClient::member(a.ws(), "alice", "Alice").await;
    alice.join("room 1").await;
    let mut bob = PClient::member(b.ws(), "bob", "Bob").await;
    bob.join("room 1").await;
    let mut carol = PClient::member(c.ws(), "carol", "Carol").await;
    carol.join("other").await;
    let path = "/admin/presence/channels/room%201/members";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let v = loop {
        let r = get(c.ws(), path).await;
        if r.status == 200 && r.json()["members"].as_array().map(Vec::len) == Some(2) {
            break r.json();
        }
        assert!(tokio::time::Instant::now() < deadline, "{r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        v,
        json!({"node": "c", "channel": "room 1", "members": [
            {"id": "alice", "name": "Alice", "info": "", "node": "a"},
            {"id": "bob", "name": "Bob", "info": "", "node": "b"},
        ]})
    );
    let v = get(c.ws(), "/admin/presence/channels").await.json();
    assert_eq!(
        v,
        json!({"node": "c", "members": 3, "channels": [
            {"name": "other", "members": 1},
            {"name": "room 1", "members": 2},
        ]})
    );
    let r = get(c.ws(), "/admin/presence/channels/nowhere/members").await;
    assert_eq!(r.status, 404);
    let m = request(c.ws(), "GET", "/metrics", None, None).await.body;
    assert!(
        m.contains("wscluster_presence_members{scope=\"local\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("wscluster_presence_members{scope=\"cluster\"} 3\n"),
        "{m}"
    );
    assert!(m.contains("\nwscluster_presence_channels 2\n"), "{m}");
    assert!(m.contains("\nwscluster_connections 1\n"), "{m}");
    assert!(m.contains("\nwscluster_peers 2\n"), "{m}");
}

#[tokio::test]
async fn peers_and_status_json_describe_the_cluster() {
    let (a, b, c) = three_nodes().await;
    let (mut ws, _) = WsClient::sgc(b.ws()).await;
    ws.subscribe("room").await;
    let v = get(a.ws(), "/admin/peers").await.json();
    assert_eq!(v["node"], "a");
    assert_eq!(v["engine"], "mesh");
    assert_eq!(v["ready"], true);
    assert_eq!(v["mesh_address"], a.mesh());
    let peers: Vec<(Value, Value, Value)> = v["peers"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|p| {
                    (
                        p["node_id"].clone(),
                        p["address"].clone(),
                        p["state"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        peers,
        vec![
            (json!("b"), json!(b.mesh()), json!("linked")),
            (json!("c"), json!(c.mesh()), json!("linked")),
        ]
    );
    assert!(v["backplane"]["frames_in"].as_u64().is_some_and(|n| n > 0));
    assert!(v["peers"][0]["incarnation"].as_str().is_some());

    let s = get(a.ws(), "/status.json").await.json();
    assert_eq!(s["node"], "a");
    assert_eq!(s["ready"], true);
    let names: Vec<&str> = s["nodes"]
        .as_array()
        .map(|n| n.iter().filter_map(|n| n["node"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(s["peers"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        s["channels"],
        json!([{"name": "room", "subscribers": 1, "nodes": {"b": 1}}])
    );
    assert_eq!(s["totals"]["connections"], 1);

    // A peer that stops is shown down, and is no longer asked.
    c.cluster.stop().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = get(a.ws(), "/status.json").await.json();
        let c_state = s["peers"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["node_id"] == "c"))
            .map(|p| p["state"].clone());
        if c_state == Some(json!("down")) && s["nodes"].as_array().map(Vec::len) == Some(2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
