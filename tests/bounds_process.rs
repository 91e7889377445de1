//! What one anonymous client can make the real `wscluster` process hold, measured as the
//! process's resident memory (`VmRSS` of `/proc/<pid>/status`) before and after: megabytes
//! inside one open transaction, retained messages on many channels, and a channel retaining more
//! than a subscriber's outbox (the subscriber must stay connected). Figures are printed with
//! `--nocapture`.

mod support;

use std::time::Duration;

use support::process::{NodeArgs, NodeProcess};
use support::sgc::{delphi, s5};
use support::{DEFAULT_WAIT, Frame, WsClient};
use tokio_websockets::Message;

const MIB: u64 = 1024 * 1024;

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
        .max(1)
}

/// A 1 MiB message value (raw JSON text), tagged so each one differs.
fn mib_message(tag: usize) -> String {
    format!("\"{tag:08}{}\"", "x".repeat(MIB as usize - 8))
}

/// A node that takes 1 MiB publishes (the default message cap is 1 MiB, frame included).
async fn node(extra: &[&str]) -> NodeProcess {
    let mut args = NodeArgs::new("bounds").set("server.max_message_size=2097152");
    for s in extra {
        args = args.set(s);
    }
    NodeProcess::start(args).await
}

/// Connects, and makes the node allocate what any connection and publish needs, so that the
/// measure that follows counts only what the attack makes it hold.
async fn warm(addr: std::net::SocketAddr) {
    let (mut c, _) = WsClient::sgc(addr).await;
    c.subscribe("warm").await;
    for n in 0..4 {
        c.send(&delphi::publish(&mib_message(n), "warm", "queueLevel0"))
            .await;
        c.expect(&s5("warm", &mib_message(n))).await;
    }
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eighty_mib_inside_one_open_transaction_grow_the_node_by_less_than_48_mib() {
    let node = node(&[]).await;
    warm(node.ws).await;
    let before = rss(node.pid());
    let (mut c, _) = WsClient::sgc(node.ws).await;
    c.send(&delphi::tx("sgc@transaction", "tx")).await;
    let mut sent = 0;
    for n in 0..80 {
        let publish = delphi::publish(&mib_message(n), "tx", "queueLevel0");
        if c.send_message(Message::text(publish)).await.is_err() {
            break;
        }
        sent += 1;
    }
    // Either the node closed the connection, or it answers the round trip once it has taken
    // every publish; then its memory is measured, the connection still open.
    let _ = c
        .send_message(Message::text(delphi::tx("sgc@protocol", "")))
        .await;
    let end = loop {
        match c.next_frame_within(DEFAULT_WAIT * 6).await {
            Some(Frame::Text(t)) if t == "esegece.com" => break None,
            Some(Frame::Close(code, reason)) => break Some((code, reason)),
            None => break Some((None, String::new())),
            Some(_) => continue,
        }
    };
    let grown = rss(node.pid()).saturating_sub(before);
    eprintln!(
        "transaction: {sent} x 1 MiB sent, node grew {} MiB, connection end {end:?}",
        grown / MIB
    );
    assert!(grown < 48 * MIB, "the node grew {} MiB", grown / MIB);
    assert_eq!(
        end,
        Some((Some(1008), "transaction too large".to_owned())),
        "the transaction past its byte cap closes the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_mib_retained_on_a_hundred_channels_keep_less_than_64_mib() {
    let node = node(&[]).await;
    warm(node.ws).await;
    let before = rss(node.pid());
    let (mut c, _) = WsClient::sgc(node.ws).await;
    for n in 0..100 {
        c.send(&delphi::publish(
            &mib_message(n),
            &format!("r{n}"),
            "queueLevel2",
        ))
        .await;
    }
    c.barrier().await;
    c.close().await;
    // The client has left; what is left is what the node keeps.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let grown = rss(node.pid()).saturating_sub(before);
    eprintln!(
        "retained: 100 x 1 MiB on 100 channels, node kept {} MiB",
        grown / MIB
    );
    assert!(grown < 64 * MIB, "the node kept {} MiB", grown / MIB);
    // And it still replays the newest: the last channel's message is retained.
    let (mut late, _) = WsClient::sgc(node.ws).await;
    late.subscribe("r99").await;
    late.expect(&s5("r99", &mib_message(99))).await;
    late.barrier().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_to_a_channel_with_6_mib_retained_stays_connected_and_gets_the_next_publish() {
    // The channel's own cap is raised so 6 MiB are really kept (more than the 4 MiB outbox).
    let node = node(&["sgc.retained_max_bytes_per_channel=8388608"]).await;
    let (mut publisher, _) = WsClient::sgc(node.ws).await;
    for n in 0..6 {
        publisher
            .send(&delphi::publish(&mib_message(n), "poison", "queueLevel2"))
            .await;
    }
    publisher.barrier().await;
    for round in 0..2 {
        let (mut sub, _) = WsClient::sgc(node.ws).await;
        sub.subscribe("poison").await;
        // The newest that fit in half the outbox (2 MiB): the last message.
        sub.expect(&s5("poison", &mib_message(5))).await;
        sub.barrier().await;
        let next = format!("\"next{round}\"");
        publisher
            .send(&delphi::publish(&next, "poison", "queueLevel0"))
            .await;
        sub.expect(&s5("poison", &next)).await;
    }
}
