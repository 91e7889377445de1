//! Attacks that make one anonymous client hold memory in the node: publishes inside an open
//! transaction, retained queues, huge channel names, and a channel poisoned by more retained data
//! than a subscriber's outbox holds. Each runs on a fresh node (a node's freed memory would hide
//! the next attack's growth) and measures the node's resident memory (VmRSS) before and after.

use std::time::Duration;

use tokio::time::Instant;

use crate::Ctx;
use crate::node::{Expect, Node};
use crate::report::{Outcome, Row};
use crate::sgc;
use crate::ws::{self, Msg, Ws};

const MIB: f64 = 1024.0 * 1024.0;

/// Grants the node time to return what a closed connection held.
const SETTLE: Duration = Duration::from_millis(500);

fn fresh(ctx: &Ctx) -> Result<Node, String> {
    Node::start(
        &ctx.bin,
        &["--cluster-engine".into(), "none".into()],
        Expect::default(),
    )
}

/// How a memory attack ended on the client's side.
enum Sent {
    /// Every frame went out and the node answered the sync subscribe.
    All,
    /// The node closed the connection (code, reason) after `n` frames.
    Closed(usize, String),
}

/// Sends `frame(i)` for `i in 0..n`, then a sync subscribe, while a task reads what the node
/// sends (the node's answers must not pile up in its outbox); reports a close by the node.
async fn send_all(ws: Ws, n: usize, frame: impl Fn(usize) -> String) -> Result<(Ws, Sent), String> {
    let (mut rd, mut wr) = ws.split();
    let reader = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(120);
        let end = loop {
            match rd.recv(deadline).await {
                Msg::Text(t) if t.len() < 4096 && sgc::is_subscribed(&t, "attack-sync") => {
                    break None;
                }
                Msg::Text(_) => {}
                other => break Some(other),
            }
        };
        (rd, end)
    });
    let mut written = n;
    for i in 0..n {
        if ws::write_frame(&mut wr, ws::TEXT, true, frame(i).as_bytes())
            .await
            .is_err()
        {
            written = i;
            break;
        }
    }
    if written == n {
        let _ = ws::write_frame(
            &mut wr,
            ws::TEXT,
            true,
            sgc::subscribe("attack-sync").as_bytes(),
        )
        .await;
    }
    let (rd, end) = reader.await.map_err(|e| format!("reader task: {e}"))?;
    let sent = match end {
        None => Sent::All,
        Some(Msg::Close(code, reason)) => {
            Sent::Closed(written, format!("close {code:?} {reason:?}"))
        }
        Some(other) => Sent::Closed(written, format!("{other:?}")),
    };
    Ok((Ws::join(rd, wr), sent))
}

fn growth_row(
    name: &'static str,
    before: u64,
    after: u64,
    cap_mib: u64,
    sent: &Sent,
    what: &str,
) -> Row {
    let grew = (after.saturating_sub(before)) as f64 / MIB;
    let bound = format!("RSS +{grew:.1} MiB (cap {cap_mib} MiB)");
    let how = match sent {
        Sent::All => "all accepted".to_owned(),
        Sent::Closed(n, why) => format!("closed after {n} frames: {why}"),
    };
    let detail = format!(
        "{what}: {how}; VmRSS {:.1} -> {:.1} MiB",
        before as f64 / MIB,
        after as f64 / MIB
    );
    if grew < cap_mib as f64 {
        let outcome = if matches!(sent, Sent::All) {
            Outcome::Bounded
        } else {
            Outcome::Refused
        };
        Row::new(name, outcome, bound, detail)
    } else {
        Row::new(name, Outcome::Vulnerable, bound, detail)
    }
}

/// Attack 4: 80 publishes of the largest accepted size inside one open transaction.
pub(crate) async fn transaction(ctx: &Ctx) -> Row {
    const NAME: &str = "transaction-memory";
    let run = async {
        let node = fresh(ctx)?;
        let mut ws = sgc::client(node.ws).await?;
        let before = node.rss()?;
        let body = "t".repeat(sgc::body_for(ctx.max_message));
        ws.send(&sgc::transaction("tx")).await?;
        let frame = sgc::publish("tx", &body, "queueLevel0");
        let (_ws, sent) = send_all(ws, 80, |_| frame.clone()).await?;
        let after = node.rss()?;
        let what = format!("80 x {} B publishes in one open transaction", body.len());
        Ok::<_, String>(growth_row(NAME, before, after, 48, &sent, &what))
    };
    run.await.unwrap_or_else(|e| Row::error(NAME, e))
}

/// Attack 5: 100 retained (`queueLevel2`) messages of the largest accepted size on 100 channels,
/// then the client leaves.
pub(crate) async fn retained(ctx: &Ctx) -> Row {
    const NAME: &str = "retained-memory";
    let run = async {
        let node = fresh(ctx)?;
        let ws = sgc::client(node.ws).await?;
        let before = node.rss()?;
        let body = "r".repeat(sgc::body_for(ctx.max_message));
        let (ws, sent) = send_all(ws, 100, |i| {
            sgc::publish(&format!("keep-{i}"), &body, "queueLevel2")
        })
        .await?;
        ws.close().await;
        tokio::time::sleep(SETTLE).await;
        let after = node.rss()?;
        let what = format!(
            "100 x {} B retained on 100 channels, client gone",
            body.len()
        );
        Ok::<_, String>(growth_row(NAME, before, after, 64, &sent, &what))
    };
    run.await.unwrap_or_else(|e| Row::error(NAME, e))
}

/// Attack 12: 40 subscriptions to channel names of 1 MB each.
pub(crate) async fn channel_names(ctx: &Ctx) -> Row {
    const NAME: &str = "channel-name-memory";
    let run = async {
        let node = fresh(ctx)?;
        let ws = sgc::client(node.ws).await?;
        let before = node.rss()?;
        let len = 1_000_000.min(sgc::body_for(ctx.max_message));
        let (_ws, sent) = send_all(ws, 40, |i| {
            sgc::subscribe(&format!("{i:02}{}", "n".repeat(len - 2)))
        })
        .await?;
        let after = node.rss()?;
        let what = format!("40 subscribes to {len}-byte channel names, client connected");
        Ok::<_, String>(growth_row(NAME, before, after, 16, &sent, &what))
    };
    run.await.unwrap_or_else(|e| Row::error(NAME, e))
}

/// Attack 6: 6 MiB retained on one channel (more than a subscriber's 4 MiB outbox), then a new
/// subscriber: poisoned when it is closed; bounded when it stays connected and receives the next
/// publish.
pub(crate) async fn poison(ctx: &Ctx) -> Row {
    const NAME: &str = "channel-poisoning";
    let run = async {
        let node = fresh(ctx)?;
        let publisher = sgc::client(node.ws).await?;
        let body = "p".repeat(sgc::body_for(ctx.max_message));
        let n = (6 * 1024 * 1024usize).div_ceil(body.len().max(1));
        let frame = sgc::publish("poisoned", &body, "queueLevel2");
        let (mut publisher, sent) = send_all(publisher, n, |_| frame.clone()).await?;
        if let Sent::Closed(k, why) = &sent {
            return Err(format!("the publisher was closed after {k} frames: {why}"));
        }
        let retained = n * body.len();
        let mut sub = sgc::client(node.ws).await?;
        sub.send(&sgc::subscribe("poisoned")).await?;
        // The subscriber reads what the node sends while the publisher publishes once more.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut next_sent = false;
        let mut replayed = 0usize;
        loop {
            let step = (Instant::now() + Duration::from_millis(300)).min(deadline);
            match sub.recv(step).await {
                Msg::Text(t) if sgc::is_event(&t, "poisoned", "after-the-poison") => {
                    return Ok(Row::new(
                        NAME,
                        Outcome::Bounded,
                        format!(
                            "replay paced through the {} B outbox",
                            ctx.config_u64("server.max_outbox_bytes").unwrap_or(0)
                        ),
                        format!(
                            "{retained} B retained; the new subscriber stayed, got {replayed} replayed and the next publish"
                        ),
                    ));
                }
                Msg::Text(t) => {
                    if t.contains("sgc@event") {
                        replayed += 1;
                    } else if sgc::is_subscribed(&t, "poisoned") && !next_sent {
                        publisher
                            .send(&sgc::publish("poisoned", "after-the-poison", "queueLevel0"))
                            .await?;
                        next_sent = true;
                    }
                }
                Msg::Timeout if Instant::now() >= deadline => {
                    return Ok(Row::new(
                        NAME,
                        Outcome::Vulnerable,
                        "no next publish within 20 s",
                        format!(
                            "{retained} B retained; the subscriber got {replayed} replayed, not the next publish"
                        ),
                    ));
                }
                Msg::Timeout => {
                    if !next_sent {
                        publisher
                            .send(&sgc::publish("poisoned", "after-the-poison", "queueLevel0"))
                            .await?;
                        next_sent = true;
                    }
                }
                Msg::Close(code, reason) => {
                    return Ok(Row::new(
                        NAME,
                        Outcome::Vulnerable,
                        format!(
                            "{} B outbox < {retained} B retained",
                            ctx.config_u64("server.max_outbox_bytes").unwrap_or(0)
                        ),
                        format!(
                            "every new subscriber is closed: close {code:?} {reason:?} after {replayed} replayed"
                        ),
                    ));
                }
                Msg::Eof(why) => {
                    return Ok(Row::new(
                        NAME,
                        Outcome::Vulnerable,
                        "subscriber dropped",
                        format!("the new subscriber's connection ended: {why}"),
                    ));
                }
            }
        }
    };
    run.await.unwrap_or_else(|e| Row::error(NAME, e))
}
