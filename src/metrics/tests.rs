//! The metrics helpers, and the counters of a real two-node cluster.

use std::time::Duration;

use super::testing::{counter, histogram, record};
use super::*;

#[test]
fn publishes_and_deliveries_are_counted_once_per_fan_out() {
    let ((), snap) = record(|| {
        let c = PublishCounters::new(Protocol::Sgc);
        c.published(Origin::Local, 1, 3);
        c.published(Origin::Remote, 1, 0);
    });
    assert_eq!(counter(&snap, PUBLISHES, &[("origin", "local")]), 1);
    assert_eq!(counter(&snap, PUBLISHES, &[("origin", "remote")]), 1);
    assert_eq!(counter(&snap, DELIVERIES, &[("protocol", "sgc")]), 3);
}

#[test]
fn lag_of_a_future_stamp_is_zero_and_counted_as_skew() {
    let ((), snap) = record(|| {
        let lag = LagHistogram::default();
        lag.record(now_micros() + 60_000_000);
        lag.record(now_micros().saturating_sub(250_000));
        lag.record(0);
    });
    let samples = histogram(&snap, BACKPLANE_DELIVERY_LAG, &[("protocol", "sgc")]);
    assert_eq!(samples.len(), 2, "{samples:?}");
    assert_eq!(samples[0], 0.0);
    assert!(samples[1] >= 0.25 && samples[1] < 5.0, "{samples:?}");
    assert_eq!(counter(&snap, BACKPLANE_CLOCK_SKEW, &[]), 1);
}

/// Two real clusters linked over loopback on one thread (the recorder is the thread's): a bye
/// counts one peer down with reason `bye` on the survivor, one purge, and per-peer traffic.
#[test]
fn a_peer_that_says_bye_is_counted_down_once_with_its_reason() {
    let ((), snap) = record(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(async {
            let a = crate::Cluster::new("a", crate::ClusterConfig::loopback_mesh(vec![], "s"));
            a.start().await.unwrap_or_else(|e| panic!("{e}"));
            let seed = a.mesh().map(|m| m.local_addr().to_string());
            let b = crate::Cluster::new(
                "b",
                crate::ClusterConfig::loopback_mesh(seed.into_iter().collect(), "s"),
            );
            b.start().await.unwrap_or_else(|e| panic!("{e}"));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while a.connected_peer_count() < 1 || b.connected_peer_count() < 1 {
                assert!(tokio::time::Instant::now() < deadline, "no link");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut events = b.events();
            a.stop().await;
            loop {
                let e = tokio::time::timeout_at(deadline, events.recv()).await;
                match e {
                    Ok(Ok(crate::cluster::ClusterEvent::PeerDisconnected { .. })) => break,
                    Ok(Ok(_)) => {}
                    other => panic!("no peer down on b: {other:?}"),
                }
            }
            b.stop().await;
        });
    });
    // b saw a say bye; each stopped node reports its remaining peers down as a local stop.
    assert_eq!(counter(&snap, PEER_DOWN, &[("reason", "bye")]), 1);
    assert_eq!(counter(&snap, PEER_DOWN, &[("reason", "link_closed")]), 0);
    assert_eq!(counter(&snap, PEER_UP, &[]), 2);
    assert_eq!(
        histogram(&snap, PRESENCE_PURGE, &[("reason", "bye")]).len(),
        1
    );
    assert!(counter(&snap, BACKPLANE_ENVELOPES_IN, &[("peer", "a")]) > 0);
    assert!(counter(&snap, BACKPLANE_ENVELOPES_OUT, &[("peer", "b")]) > 0);
    assert!(counter(&snap, BACKPLANE_BYTES_IN, &[("peer", "b")]) > 0);
    assert!(counter(&snap, BACKPLANE_BYTES_OUT, &[("peer", "a")]) > 0);
}

#[test]
fn every_metric_is_described() {
    // describe() must not panic and must name only metrics the docs list.
    let ((), _) = record(describe);
    let doc = include_str!("../../docs/metrics.md");
    for name in [
        WS_CONNECTIONS_OPENED,
        WS_HANDSHAKES_REFUSED,
        AUTH_REFUSALS,
        WS_FRAMES_IN,
        WS_FRAMES_OUT,
        WS_BYTES_IN,
        WS_BYTES_OUT,
        WS_SLOW_CONSUMER_CLOSES,
        WS_HEARTBEAT_TIMEOUTS,
        WS_SHUTDOWN_FORCED,
        LIMIT_REFUSALS,
        PUBLISHES,
        DELIVERIES,
        BACKPLANE_ENVELOPES_IN,
        BACKPLANE_ENVELOPES_OUT,
        BACKPLANE_BYTES_IN,
        BACKPLANE_BYTES_OUT,
        BACKPLANE_RECONNECTS,
        BACKPLANE_REPLAYED,
        BACKPLANE_LOST,
        BACKPLANE_OVERFLOWS,
        BACKPLANE_LINKS_REFUSED,
        BACKPLANE_PUBLISH_ERRORS,
        BACKPLANE_DROPPED,
        BACKPLANE_DELIVERY_LAG,
        BACKPLANE_CLOCK_SKEW,
        PEER_UP,
        PEER_DOWN,
        PRESENCE_PURGE,
        CONNECTIONS,
        SGC_CONNECTIONS,
        SGC_CHANNELS,
        SGC_SUBSCRIPTIONS,
        PRESENCE_CHANNELS,
        PRESENCE_MEMBERS,
        PEERS,
        READY,
        WEBHOOK_EVENTS_DELIVERED,
        WEBHOOK_EVENTS_DROPPED,
        WEBHOOK_POSTS,
        WEBHOOK_QUEUE_BYTES,
    ] {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/metrics.md does not list {name}"
        );
    }
}

#[test]
fn limit_refusals_are_counted_by_limit() {
    let ((), snap) = record(|| {
        limit_refused(Limit::PublishRate);
        limit_refused(Limit::PublishRate);
        limit_refused(Limit::Connections);
        let c = crate::transport::Connection::detached("A", None);
        assert!(c.publish_allowed(), "no limit on a detached connection");
        assert!(c.channel_allowed(&"x".repeat(10_000)));
    });
    assert_eq!(
        counter(&snap, LIMIT_REFUSALS, &[("limit", "publish_rate")]),
        2
    );
    assert_eq!(
        counter(&snap, LIMIT_REFUSALS, &[("limit", "connections")]),
        1
    );
    assert_eq!(
        counter(&snap, LIMIT_REFUSALS, &[("limit", "channel_name")]),
        0
    );
}
