//! The cluster seam over real sockets: relay events emitted after local delivery for client and
//! server publishes and broadcasts, `apply_remote` delivering and retaining without re-emitting,
//! two nodes bridged through their relays, and retained-queue snapshots for late nodes.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use support::sgc::*;
use wscluster::internals::protocol::sgc::{
    QueueLevel, SgcBroadcast, SgcConfig, SgcEvent, SgcProtocol, SgcPublish, Targets,
};
use wscluster::internals::relay::Relay;

/// Records every event.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<SgcEvent>>,
}

impl Relay<SgcEvent> for Recorder {
    fn relay(&self, event: &SgcEvent) {
        self.events.lock().push(event.clone());
    }
}

impl Recorder {
    fn take(&self) -> Vec<SgcEvent> {
        std::mem::take(&mut *self.events.lock())
    }
}

/// Forwards every event to another node's protocol, like a cluster engine would.
struct Bridge(SgcProtocol);

impl Relay<SgcEvent> for Bridge {
    fn relay(&self, event: &SgcEvent) {
        self.0.apply_remote(event);
    }
}

fn publish(ch: &str, message: &'static str, queue: QueueLevel, targets: Targets) -> SgcEvent {
    SgcEvent::Publish(SgcPublish {
        channel: Arc::from(ch),
        message: Bytes::from_static(message.as_bytes()),
        queue,
        targets,
    })
}

#[tokio::test]
async fn client_and_server_publishes_and_broadcasts_are_relayed_after_local_delivery() {
    let (server, sgc) = sgc_server(SgcConfig {
        use_matches_mask: true,
        ..SgcConfig::default()
    })
    .await;
    let rec = Arc::new(Recorder::default());
    // Check "after local application" inside the relay: the retained store already has it.
    struct Checking(Arc<Recorder>, SgcProtocol);
    impl Relay<SgcEvent> for Checking {
        fn relay(&self, e: &SgcEvent) {
            if let SgcEvent::Publish(p) = e
                && p.queue != QueueLevel::Level0
            {
                assert!(
                    self.1.retained_count(&p.channel) > 0,
                    "relayed before it was stored"
                );
            }
            self.0.relay(e);
        }
    }
    sgc.attach_relay(Arc::new(Checking(rec.clone(), sgc.clone())));
    assert!(sgc.relay_attached());
    let (mut a, ga) = client(server.local_addr()).await;
    a.subscribe("n/1").await;
    a.subscribe("n/2").await;
    a.send(&delphi::publish(r#"{"k":1}"#, "n/*", "queueLevel2"))
        .await;
    a.expect(&s5("n/1", r#"{"k":1}"#)).await;
    a.expect(&s5("n/2", r#"{"k":1}"#)).await;
    a.send(&js::broadcast("hey", "n/1")).await;
    a.expect(&s6("n/1", r#""hey""#, None, None)).await;
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@broadcast","params":{"message":"q","channel":""},"qos":"qosLevel1","id":"B"}"#).await;
    a.expect(&s2("B")).await;
    a.expect(&s6("", r#""q""#, Some("qosLevel1"), Some("B")))
        .await;
    sgc.publish(
        "srv",
        "x",
        QueueLevel::Level1,
        &Targets::except([ga.clone()]),
    );
    sgc.broadcast("b", "", &Targets::only([ga.clone()]));
    a.expect(&s6("", r#""b""#, None, None)).await;
    sgc.clear_queue("x");
    // A publish denied by nobody but delivered to nobody is still relayed (others may listen).
    a.send(&delphi::publish(r#""lonely""#, "empty", "queueLevel0"))
        .await;
    a.barrier().await;
    assert_eq!(
        rec.take(),
        vec![
            publish("n/1", r#"{"k":1}"#, QueueLevel::Level2, Targets::all()),
            publish("n/2", r#"{"k":1}"#, QueueLevel::Level2, Targets::all()),
            SgcEvent::Broadcast(SgcBroadcast {
                channel: Arc::from("n/1"),
                message: Bytes::from_static(br#""hey""#),
                qos: None,
                id: None,
                targets: Targets::all(),
            }),
            SgcEvent::Broadcast(SgcBroadcast {
                channel: Arc::from(""),
                message: Bytes::from_static(br#""q""#),
                qos: Some(Arc::from("qosLevel1")),
                id: Some(Arc::from("B")),
                targets: Targets::all(),
            }),
            publish(
                "x",
                r#""srv""#,
                QueueLevel::Level1,
                Targets::except([ga.clone()])
            ),
            SgcEvent::Broadcast(SgcBroadcast {
                channel: Arc::from(""),
                message: Bytes::from_static(br#""b""#),
                qos: None,
                id: None,
                targets: Targets::only([ga.clone()]),
            }),
            SgcEvent::ClearQueue {
                channel: Arc::from("x")
            },
            publish("empty", r#""lonely""#, QueueLevel::Level0, Targets::all()),
        ]
    );
    sgc.detach_relay();
    assert!(!sgc.relay_attached());
    sgc.publish("after", "x", QueueLevel::Level0, &Targets::all());
    assert!(rec.take().is_empty());
}

#[tokio::test]
async fn remote_events_are_delivered_and_retained_but_never_re_emitted() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let rec = Arc::new(Recorder::default());
    sgc.attach_relay(rec.clone());
    let (mut a, ga) = client(server.local_addr()).await;
    let (mut b, _) = client(server.local_addr()).await;
    a.subscribe("c").await;
    sgc.apply_remote(&publish(
        "c",
        r#"{"r":true}"#,
        QueueLevel::Level1,
        Targets::all(),
    ));
    a.expect(&s5("c", r#"{"r":true}"#)).await;
    sgc.apply_remote(&publish(
        "",
        r#""all""#,
        QueueLevel::Level0,
        Targets::except([ga.clone()]),
    ));
    b.expect(&s5("", r#""all""#)).await;
    sgc.apply_remote(&SgcEvent::Broadcast(SgcBroadcast {
        channel: Arc::from("c"),
        message: Bytes::from_static(br#""bc""#),
        qos: Some(Arc::from("qosLevel0")),
        id: None,
        targets: Targets::all(),
    }));
    a.expect(&s6("c", r#""bc""#, Some("qosLevel0"), None)).await;
    a.barrier().await;
    b.barrier().await;
    assert_eq!(sgc.retained_count("c"), 1);
    let (mut late, _) = client(server.local_addr()).await;
    late.subscribe("c").await;
    late.expect(&s5("c", r#"{"r":true}"#)).await;
    sgc.apply_remote(&SgcEvent::ClearQueue {
        channel: Arc::from("c"),
    });
    assert_eq!(sgc.retained_count("c"), 0);
    assert!(
        rec.take().is_empty(),
        "remote events must not go back to the relay"
    );
}

#[tokio::test]
async fn two_nodes_bridged_through_their_relays() {
    let (server1, sgc1) = sgc_server(SgcConfig::default()).await;
    let (server2, sgc2) = sgc_server(SgcConfig::default()).await;
    sgc1.attach_relay(Arc::new(Bridge(sgc2.clone())));
    sgc2.attach_relay(Arc::new(Bridge(sgc1.clone())));
    let (mut a, _) = client(server1.local_addr()).await;
    let (mut b, _) = client(server2.local_addr()).await;
    a.subscribe("chat").await;
    b.subscribe("chat").await;
    a.send(&delphi::publish(r#""from 1""#, "chat", "queueLevel1"))
        .await;
    a.expect(&s5("chat", r#""from 1""#)).await;
    b.expect(&s5("chat", r#""from 1""#)).await;
    b.send(&js::broadcast("from 2", "")).await;
    b.expect(&s6("", r#""from 2""#, None, None)).await;
    a.expect(&s6("", r#""from 2""#, None, None)).await;
    // Retained on both nodes; no echo loop (each got exactly one copy).
    a.barrier().await;
    b.barrier().await;
    assert_eq!(sgc1.retained_count("chat"), 1);
    assert_eq!(sgc2.retained_count("chat"), 1);
    // A late node takes the snapshot.
    let (server3, sgc3) = sgc_server(SgcConfig::default()).await;
    sgc3.import_retained(&sgc1.retained_snapshot());
    let (mut c, _) = client(server3.local_addr()).await;
    c.subscribe("chat").await;
    c.expect(&s5("chat", r#""from 1""#)).await;
    c.barrier().await;
    sgc1.detach_relay();
    sgc2.detach_relay();
}
