//! Bringing a fresh connection to the state a scenario needs, as a real client would: wait for the
//! session frame, then (sgc) subscribe to channels and wait for every S3, or (Presence) join as a
//! member and join channels, waiting for the server's own echo of each step (docs/wire.md §2.5, §3.4).
//! Frames about other clients that arrive meanwhile are read and ignored.

use std::collections::HashSet;

use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_websockets::Message;

use crate::conn::{Ws, next_text};
use crate::wire::{self, Incoming, Proto};

/// Sends one text frame.
pub(crate) async fn send(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// Waits for the session frame (sgc S1 / Presence `session`) and returns the connection GUID.
pub(crate) async fn wait_session(ws: &mut Ws, deadline: Instant) -> Result<String, String> {
    loop {
        let text = next_text(ws, deadline).await?;
        if let Incoming::Session(guid) = wire::classify(&text) {
            return Ok(guid.into_owned());
        }
    }
}

/// sgc: subscribes to `channels` and waits for one S3 per channel.
pub(crate) async fn sgc_subscribe(
    ws: &mut Ws,
    channels: &[String],
    deadline: Instant,
) -> Result<(), String> {
    for ch in channels {
        ws.feed(Message::text(wire::sgc_subscribe(ch)))
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    ws.flush().await.map_err(|e| format!("send: {e}"))?;
    let mut waiting: HashSet<&str> = channels.iter().map(String::as_str).collect();
    while !waiting.is_empty() {
        let text = next_text(ws, deadline)
            .await
            .map_err(|e| format!("subscribe: {e}"))?;
        if let Incoming::Subscribed(ch) = wire::classify(&text) {
            waiting.remove(ch.as_ref());
        }
    }
    Ok(())
}

/// Presence: joins as member `guid` named `name` and waits for the server's `member@new` echo.
pub(crate) async fn presence_join(
    ws: &mut Ws,
    guid: &str,
    name: &str,
    deadline: Instant,
) -> Result<(), String> {
    send(ws, wire::presence_member_new(guid, name)).await?;
    loop {
        let text = next_text(ws, deadline)
            .await
            .map_err(|e| format!("member@new: {e}"))?;
        match wire::classify(&text) {
            Incoming::MemberNew(id) if id == guid => return Ok(()),
            Incoming::Error { code, text } => {
                return Err(format!("member@new refused: error {code} {text}"));
            }
            _ => {}
        }
    }
}

/// Presence: joins `channels` as member `guid` and waits for its own `channel@member@new` in each.
pub(crate) async fn presence_enter(
    ws: &mut Ws,
    guid: &str,
    channels: &[String],
    deadline: Instant,
) -> Result<(), String> {
    for ch in channels {
        ws.feed(Message::text(wire::presence_channel_member(guid, ch, true)))
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    ws.flush().await.map_err(|e| format!("send: {e}"))?;
    let mut waiting: HashSet<&str> = channels.iter().map(String::as_str).collect();
    while !waiting.is_empty() {
        let text = next_text(ws, deadline)
            .await
            .map_err(|e| format!("channel@member@new: {e}"))?;
        match wire::classify(&text) {
            Incoming::ChannelMember {
                join: true,
                id,
                channel,
            } if id == guid => {
                waiting.remove(channel.as_ref());
            }
            Incoming::Error { code, text } => {
                return Err(format!("channel join refused: error {code} {text}"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Connects and brings the connection to its subscribed state: returns the stream and the GUID.
/// sgc subscribes to `channels`; Presence joins as a member named `name`, then the channels.
pub(crate) async fn open(
    target: &crate::conn::Target,
    proto: Proto,
    name: &str,
    channels: &[String],
    deadline: Instant,
) -> Result<(Ws, String), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut ws = target.connect(proto, left).await?;
    let guid = wait_session(&mut ws, deadline)
        .await
        .map_err(|e| format!("session: {e}"))?;
    match proto {
        Proto::Sgc => {
            if !channels.is_empty() {
                sgc_subscribe(&mut ws, channels, deadline).await?;
            }
        }
        Proto::Presence => {
            presence_join(&mut ws, &guid, name, deadline).await?;
            if !channels.is_empty() {
                presence_enter(&mut ws, &guid, channels, deadline).await?;
            }
        }
    }
    Ok((ws, guid))
}
