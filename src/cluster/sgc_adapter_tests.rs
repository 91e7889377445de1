//! Unit tests of the sgc adapter's payload codec: events, their send times and snapshots round-trip.

use super::*;

#[test]
fn events_round_trip_and_the_message_is_not_copied_apart_from_the_payload() {
    let events = vec![
        SgcEvent::Publish(SgcPublish {
            channel: Arc::from("orders"),
            message: Bytes::from_static(br#"{"id":42}"#),
            queue: QueueLevel::Level2,
            targets: Targets::only(["A"]),
        }),
        SgcEvent::Broadcast(SgcBroadcast {
            channel: Arc::from(""),
            message: Bytes::from_static(br#""hi""#),
            qos: Some(Arc::from("qosLevel0")),
            id: None,
            targets: Targets::except(["B", "C"]),
        }),
        SgcEvent::ClearQueue {
            channel: Arc::from("x"),
        },
        SgcEvent::PublishOnce {
            key: Arc::from("order-42"),
            id: 7,
            publish: SgcPublish {
                channel: Arc::from("orders"),
                message: Bytes::from_static(br#""paid""#),
                queue: QueueLevel::Level0,
                targets: Targets::all(),
            },
        },
    ];
    for e in events {
        let (kind, bytes) = encode(&e);
        assert_eq!(decode(kind, &bytes), Some(e));
    }
    assert_eq!(
        decode(Kind::SgcPublish, &Bytes::from_static(b"\xff\xff")),
        None
    );
}

#[test]
fn publishes_and_broadcasts_carry_their_send_time() {
    let before = crate::metrics::now_micros();
    for e in [
        SgcEvent::Publish(SgcPublish {
            channel: Arc::from("c"),
            message: Bytes::from_static(b"1"),
            queue: QueueLevel::Level0,
            targets: Targets::default(),
        }),
        SgcEvent::Broadcast(SgcBroadcast {
            channel: Arc::from("c"),
            message: Bytes::from_static(b"1"),
            qos: None,
            id: None,
            targets: Targets::default(),
        }),
    ] {
        let (kind, bytes) = encode(&e);
        let (back, sent) = decode_stamped(kind, &bytes).expect("decodes");
        assert_eq!(back, e);
        assert!(sent >= before && sent <= crate::metrics::now_micros());
    }
}

#[test]
fn snapshot_round_trips() {
    let s = RetainedSnapshot {
        channels: vec![RetainedChannel {
            channel: "a".into(),
            messages: vec![
                Bytes::from_static(b"\"1\""),
                Bytes::from_static(b"{\"x\":2}"),
            ],
        }],
    };
    let back = decode_snapshot(&encode_snapshot(&s)).expect("decodes");
    assert_eq!(back.channels.len(), 1);
    assert_eq!(back.channels[0].messages, s.channels[0].messages);
}
