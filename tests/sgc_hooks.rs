//! Application hooks over real sockets: before-publish rewrite/deny, before-subscribe deny (silent),
//! lifecycle and subscription events, binary frames, acknowledgments, and hooks calling the API.

mod support;

use bytes::Bytes;
use support::sgc::*;
use tokio::sync::mpsc::unbounded_channel;
use wscluster::internals::protocol::sgc::{Payload, SgcConfig};

#[tokio::test]
async fn before_publish_can_rewrite_channel_and_message_or_deny() {
    let (server, sgc) = sgc_server_with(SgcConfig::default(), |s| {
        s.on_before_publish(|conn, p| {
            assert!(!conn.id().is_empty());
            match p.channel.as_str() {
                "blocked" => false,
                "in" => {
                    p.channel = "out".into();
                    p.message =
                        Payload::from_text(format!(r#"{{"was":"{}"}}"#, p.message.as_text()));
                    true
                }
                _ => true,
            }
        });
    })
    .await;
    let (mut a, _) = client(server.local_addr()).await;
    let (mut b, _) = client(server.local_addr()).await;
    a.subscribe("out").await;
    a.subscribe("in").await;
    b.subscribe("blocked").await;
    a.send(&delphi::publish(r#""x""#, "in", "queueLevel0"))
        .await;
    a.expect(&s5("out", r#"{"was":"x"}"#)).await;
    a.send(&js::publish("no", "blocked", "p1")).await;
    a.expect(&s2("p1")).await;
    a.send(&delphi::publish(r#""kept""#, "blocked", "queueLevel1"))
        .await;
    a.barrier().await;
    b.barrier().await;
    assert_eq!(sgc.retained_count("blocked"), 0);
    // Server-side publishes do not go through the hook.
    sgc.publish("server", "blocked", Default::default(), &Default::default());
    b.expect(&s5("blocked", r#""server""#)).await;
}

#[tokio::test]
async fn before_subscribe_denial_is_silent() {
    let (server, sgc) = sgc_server_with(SgcConfig::default(), |s| {
        s.on_before_subscribe(|_, req| req.channel != "secret");
    })
    .await;
    sgc.publish(
        "retained",
        "secret",
        wscluster::internals::protocol::sgc::QueueLevel::Level1,
        &Default::default(),
    );
    let (mut a, guid) = client(server.local_addr()).await;
    a.send(&delphi::subscribe("secret")).await;
    a.barrier().await;
    a.send(&js::subscribe("a,secret,b", "s1")).await;
    a.expect(&s2("s1")).await;
    a.expect(&s3("a", None, Some("s1"))).await;
    a.expect(&s3("b", None, Some("s1"))).await;
    a.barrier().await;
    assert_eq!(sgc.subscriptions(&guid), ["a", "b"]);
    sgc.publish("s", "secret", Default::default(), &Default::default());
    a.barrier().await;
}

#[tokio::test]
async fn before_subscribe_may_rewrite_the_channel() {
    let (server, sgc) = sgc_server_with(SgcConfig::default(), |s| {
        s.on_before_subscribe(|conn, req| {
            if req.channel == "me" {
                req.channel = format!("user.{}", conn.id());
            }
            if req.channel == "alias" {
                req.channel = String::new();
            }
            true
        });
    })
    .await;
    let (mut a, guid) = client(server.local_addr()).await;
    let mine = format!("user.{guid}");
    sgc.publish(
        "kept",
        &mine,
        wscluster::internals::protocol::sgc::QueueLevel::Level1,
        &Default::default(),
    );
    a.send(&js::subscribe("me,news,alias", "s1")).await;
    a.expect(&s2("s1")).await;
    // The confirmation and the retained replay name the channel actually subscribed.
    a.expect(&s3(&mine, None, Some("s1"))).await;
    a.expect(&s5(&mine, r#""kept""#)).await;
    a.expect(&s3("news", None, Some("s1"))).await;
    // A rewrite to an empty channel is refused, silently.
    a.barrier().await;
    assert_eq!(sgc.subscriptions(&guid), ["news", mine.as_str()]);
    sgc.publish("direct", &mine, Default::default(), &Default::default());
    a.expect(&s5(&mine, r#""direct""#)).await;
    // Nothing arrives on the name the client asked for.
    sgc.publish("nobody", "me", Default::default(), &Default::default());
    a.barrier().await;
}

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Connect(String),
    Sub(String, String),
    Unsub(String, String),
    Disconnect(String),
    Ack(String, String),
    Binary(String, Vec<u8>),
}

#[tokio::test]
async fn lifecycle_subscription_binary_and_ack_events() {
    let (tx, mut rx) = unbounded_channel::<Ev>();
    let (server, _sgc) = sgc_server_with(SgcConfig::default(), |s| {
        let t = tx.clone();
        s.on_connected(move |c| {
            let _ = t.send(Ev::Connect(c.id().into()));
        });
        let t = tx.clone();
        s.on_subscribed(move |c, ch| {
            let _ = t.send(Ev::Sub(c.id().into(), ch.into()));
        });
        let t = tx.clone();
        s.on_unsubscribed(move |c, ch| {
            let _ = t.send(Ev::Unsub(c.id().into(), ch.into()));
        });
        let t = tx.clone();
        s.on_disconnected(move |c| {
            let _ = t.send(Ev::Disconnect(c.id().into()));
        });
        let t = tx.clone();
        s.on_acknowledgment(move |c, id| {
            let _ = t.send(Ev::Ack(c.id().into(), id.into()));
        });
        let t = tx.clone();
        s.on_binary_message(move |c, data: Bytes| {
            let _ = t.send(Ev::Binary(c.id().into(), data.to_vec()));
        });
    })
    .await;
    let (mut a, g) = client(server.local_addr()).await;
    assert_eq!(next_event(&mut rx).await, Ev::Connect(g.clone()));
    a.subscribe("x").await;
    a.subscribe("x").await;
    a.subscribe("y").await;
    a.send(&delphi::ack(&g)).await;
    a.send_binary(&[1, 2, 3]).await;
    a.send(&delphi::unsubscribe("x")).await;
    a.expect(&s4("x", Some("qosLevel0"), None)).await;
    a.subscribe("z").await;
    a.barrier().await;
    assert_eq!(next_event(&mut rx).await, Ev::Sub(g.clone(), "x".into()));
    assert_eq!(
        next_event(&mut rx).await,
        Ev::Sub(g.clone(), "y".into()),
        "no second event for x"
    );
    assert_eq!(next_event(&mut rx).await, Ev::Ack(g.clone(), g.clone()));
    assert_eq!(
        next_event(&mut rx).await,
        Ev::Binary(g.clone(), vec![1, 2, 3])
    );
    assert_eq!(next_event(&mut rx).await, Ev::Unsub(g.clone(), "x".into()));
    assert_eq!(next_event(&mut rx).await, Ev::Sub(g.clone(), "z".into()));
    no_event(&mut rx);
    a.close().await;
    let mut left = vec![next_event(&mut rx).await, next_event(&mut rx).await];
    left.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        left,
        [
            Ev::Unsub(g.clone(), "y".into()),
            Ev::Unsub(g.clone(), "z".into())
        ]
    );
    assert_eq!(next_event(&mut rx).await, Ev::Disconnect(g));
}

#[tokio::test]
async fn hooks_may_call_the_api() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let api = sgc.clone();
    sgc.on_subscribed(move |conn, ch| {
        api.send(conn.id(), &format!("welcome to {ch}"));
        api.broadcast("someone joined", ch, &Default::default());
    });
    let api = sgc.clone();
    sgc.on_connected(move |conn| {
        api.write_data(conn.id(), "hello");
    });
    let (mut a, _) = client(server.local_addr()).await;
    a.expect(&s7(r#""hello""#)).await;
    a.send(&delphi::subscribe("room")).await;
    // The subscribed hook runs before S3 is queued (reference order).
    a.expect(&s6("", r#""welcome to room""#, None, None)).await;
    a.expect(&s6("room", r#""someone joined""#, None, None))
        .await;
    a.expect(&s3("room", Some("qosLevel0"), None)).await;
}
