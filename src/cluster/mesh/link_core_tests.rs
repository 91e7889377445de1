//! The mesh link core driven without sockets or sleeps: frames built by hand, a made-up clock,
//! the links' send queues read back, and a handler that records what it hears.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use proptest::prelude::*;

use super::handshake::Established;
use super::link_core::{self, ACK_EVERY, FrameOutcome, LinkRules};
use super::queue::LinkQueue;
use super::wire::Resume;
use super::{LinkSlot, MeshConfig, Shared};
use crate::cluster::engine::EngineHandler;
use crate::cluster::envelope::{Envelope, Kind, Origin};
use crate::cluster::membership::DownReason;
use crate::metrics::PeerCounters;

/// What the handler heard, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Heard {
    Envelope(Kind, u64),
    Up(String),
    Down(String, DownReason),
    Resync(String, u64),
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Heard>>);

impl EngineHandler for Recorder {
    fn on_envelope(&self, e: Envelope) {
        self.0.lock().push(Heard::Envelope(e.kind, e.seq));
    }
    fn on_peer_up(&self, peer: &Origin, _: Option<&str>) {
        self.0.lock().push(Heard::Up(peer.node_id.to_string()));
    }
    fn on_peer_down(&self, peer: &Origin, reason: DownReason) {
        self.0
            .lock()
            .push(Heard::Down(peer.node_id.to_string(), reason));
    }
    fn on_resync_needed(&self, peer: &Origin, lost: u64) {
        self.0
            .lock()
            .push(Heard::Resync(peer.node_id.to_string(), lost));
    }
}

impl Recorder {
    fn take(&self) -> Vec<Heard> {
        std::mem::take(&mut *self.0.lock())
    }
}

fn origin(id: &str, incarnation: u64) -> Origin {
    Origin {
        node_id: Arc::from(id),
        incarnation,
    }
}

/// Node `a` (incarnation 1) with `adjust`ed settings, and what its handler hears.
fn node(adjust: impl FnOnce(&mut MeshConfig)) -> (Arc<Shared>, Arc<Recorder>) {
    let mut cfg = MeshConfig::loopback();
    cfg.peer_timeout_ms = 3_000;
    adjust(&mut cfg);
    let rec = Arc::new(Recorder::default());
    let local = "127.0.0.1:5410".parse().unwrap_or_else(|e| panic!("{e}"));
    let (shared, _dial_rx, _) = Shared::new(cfg, origin("a", 1), rec.clone(), local, None);
    (shared, rec)
}

fn link(shared: &Shared, id: u64, dialer: &str) -> LinkSlot {
    LinkSlot {
        id,
        dialer: Arc::from(dialer),
        queue: Arc::new(LinkQueue::new(shared.cfg.link_queue_bytes)),
    }
}

fn established(peer: &Origin, resume: Option<Resume>) -> Established {
    Established {
        peer: peer.clone(),
        listen: None,
        peer_resume: resume,
        dialer: peer.node_id.clone(),
    }
}

/// A frame as it arrives on a link (length prefix taken off).
fn frame(kind: Kind, from: &Origin, seq: u64, payload: &[u8]) -> Bytes {
    let head = Envelope::encode_header(kind, from, seq).unwrap_or_else(|e| panic!("{e}"));
    let mut b = BytesMut::from(&head[..]);
    b.extend_from_slice(payload);
    b.freeze()
}

/// The envelopes queued on `link` so far (kind, seq, payload).
fn sent(link: &LinkSlot) -> Vec<(Kind, u64, Bytes)> {
    link.queue
        .take_now()
        .into_iter()
        .map(|f| {
            let mut b = BytesMut::from(&f.head[..]);
            b.extend_from_slice(&f.body);
            let e = Envelope::decode(b.freeze()).unwrap_or_else(|e| panic!("{e}"));
            (e.kind, e.seq, e.payload)
        })
        .collect()
}

/// The link core's answer to one frame, with the delivered envelope's seq.
fn feed(
    shared: &Arc<Shared>,
    peer: &Origin,
    link: &LinkSlot,
    rules: &mut LinkRules,
    f: Bytes,
    now: Instant,
) -> Result<Option<u64>, bool> {
    let counters = PeerCounters::new(&peer.node_id);
    match link_core::on_frame(shared, peer, link, rules, &counters, f, now) {
        FrameOutcome::Continue { deliver } => Ok(deliver.map(|e| e.seq)),
        FrameOutcome::Close { superseded } => Err(superseded),
    }
}

fn up(shared: &Arc<Shared>, est: &Established, l: &LinkSlot, now: Instant) {
    assert!(
        link_core::link_up(shared, est, l, now).is_some(),
        "link refused"
    );
}

#[test]
fn a_new_link_reports_the_peer_up_and_says_hello_with_the_known_addresses() {
    let (shared, rec) = node(|_| {});
    let b = origin("b", 7);
    let l = link(&shared, 1, "b");
    up(&shared, &established(&b, None), &l, Instant::now());
    assert_eq!(rec.take(), vec![Heard::Up("b".into())]);
    let out = sent(&l);
    assert_eq!(out.len(), 1, "only the hello: {out:?}");
    assert_eq!(out[0].0, Kind::Hello);
    let addrs: Vec<String> = postcard::from_bytes(&out[0].2).unwrap_or_default();
    assert_eq!(addrs, vec!["127.0.0.1:5410".to_string()]);
}

#[test]
fn frames_are_delivered_once_in_order_and_a_gap_is_counted() {
    let (shared, _) = node(|_| {});
    let b = origin("b", 7);
    let l = link(&shared, 1, "b");
    let t = Instant::now();
    up(&shared, &established(&b, None), &l, t);
    let mut rules = LinkRules::new(&shared, t);
    let mut got = Vec::new();
    for seq in [1, 2, 2, 1, 5, 6, 4] {
        got.push(feed(
            &shared,
            &b,
            &l,
            &mut rules,
            frame(Kind::SgcPublish, &b, seq, b"x"),
            t,
        ));
    }
    assert_eq!(
        got,
        vec![
            Ok(Some(1)),
            Ok(Some(2)),
            Ok(None),
            Ok(None),
            Ok(Some(5)),
            Ok(Some(6)),
            Ok(None)
        ]
    );
    assert_eq!(
        shared.stats.lost.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[test]
fn an_acknowledgment_goes_back_every_64_frames() {
    let (shared, _) = node(|_| {});
    let b = origin("b", 7);
    let l = link(&shared, 1, "b");
    let t = Instant::now();
    up(&shared, &established(&b, None), &l, t);
    sent(&l);
    let mut rules = LinkRules::new(&shared, t);
    for seq in 1..u64::from(ACK_EVERY) {
        feed(
            &shared,
            &b,
            &l,
            &mut rules,
            frame(Kind::SgcPublish, &b, seq, b""),
            t,
        )
        .unwrap_or_else(|_| panic!("closed"));
    }
    assert!(sent(&l).is_empty(), "no ack before 64 frames");
    feed(
        &shared,
        &b,
        &l,
        &mut rules,
        frame(Kind::SgcPublish, &b, 64, b""),
        t,
    )
    .unwrap_or_else(|_| panic!("closed"));
    let out = sent(&l);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, Kind::Ack);
    assert_eq!(&out[0].2[..], &64u64.to_be_bytes());
}

#[test]
fn what_the_peer_acknowledged_is_not_replayed_and_the_rest_is_after_a_relink() {
    let (shared, rec) = node(|_| {});
    let b = origin("b", 7);
    let t = Instant::now();
    let first = link(&shared, 1, "b");
    up(&shared, &established(&b, None), &first, t);
    for i in 0..5u8 {
        let mut st = shared.state.lock();
        shared.send_locked(&mut st, "b", Kind::SgcPublish, Bytes::from(vec![i]));
    }
    let mut rules = LinkRules::new(&shared, t);
    // b's heartbeat acknowledges our first 3 frames.
    feed(
        &shared,
        &b,
        &first,
        &mut rules,
        frame(Kind::Heartbeat, &b, 0, &3u64.to_be_bytes()),
        t,
    )
    .unwrap_or_else(|_| panic!("closed"));
    rec.take();
    // A second link replaces the first while b stays live; b says it received up to 4.
    let second = link(&shared, 2, "b");
    let resume = Resume {
        incarnation: 1,
        last_seq: 4,
    };
    up(&shared, &established(&b, Some(resume)), &second, t);
    assert!(first.queue.is_closed(), "the old link is closed");
    let replayed: Vec<u64> = sent(&second)
        .into_iter()
        .filter(|(k, _, _)| *k == Kind::SgcPublish)
        .map(|(_, s, _)| s)
        .collect();
    assert_eq!(replayed, vec![5], "only what b did not receive");
    assert_eq!(
        rec.take(),
        vec![Heard::Resync("b".into(), 0)],
        "a relink resynchronises"
    );
}

#[test]
fn a_resume_older_than_the_window_counts_the_loss_and_resynchronises() {
    // A window of 1 ms: what was sent is gone by the time b relinks.
    let (shared, rec) = node(|c| c.replay_window_ms = 1);
    let b = origin("b", 7);
    let t = Instant::now();
    let first = link(&shared, 1, "b");
    up(&shared, &established(&b, None), &first, t);
    for _ in 0..3 {
        let mut st = shared.state.lock();
        shared.send_locked(&mut st, "b", Kind::SgcPublish, Bytes::from_static(b"p"));
    }
    link_core::on_tick(&shared, t + Duration::from_millis(50));
    rec.take();
    let second = link(&shared, 2, "b");
    let resume = Resume {
        incarnation: 1,
        last_seq: 0,
    };
    up(
        &shared,
        &established(&b, Some(resume)),
        &second,
        t + Duration::from_millis(60),
    );
    assert_eq!(
        shared.stats.lost.load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    let heard = rec.take();
    assert!(heard.contains(&Heard::Resync("b".into(), 3)), "{heard:?}");
}

#[test]
fn silence_past_the_peer_timeout_is_a_death_and_closes_the_link() {
    let (shared, rec) = node(|_| {});
    let b = origin("b", 7);
    let t = Instant::now();
    let l = link(&shared, 1, "b");
    up(&shared, &established(&b, None), &l, t);
    rec.take();
    link_core::on_tick(&shared, t + Duration::from_millis(2_900));
    assert!(rec.take().is_empty(), "still within the timeout");
    assert!(!l.queue.is_closed());
    link_core::on_tick(&shared, t + Duration::from_millis(3_100));
    assert_eq!(
        rec.take(),
        vec![Heard::Down("b".into(), DownReason::Timeout)]
    );
    assert!(l.queue.is_closed());
}

#[test]
fn a_heartbeat_keeps_the_peer_alive() {
    let (shared, rec) = node(|_| {});
    let b = origin("b", 7);
    let t = Instant::now();
    let l = link(&shared, 1, "b");
    up(&shared, &established(&b, None), &l, t);
    rec.take();
    let mut rules = LinkRules::new(&shared, t);
    let later = t + Duration::from_millis(2_500);
    feed(
        &shared,
        &b,
        &l,
        &mut rules,
        frame(Kind::Heartbeat, &b, 0, &0u64.to_be_bytes()),
        later,
    )
    .unwrap_or_else(|_| panic!("closed"));
    link_core::on_tick(&shared, t + Duration::from_millis(4_000));
    assert!(rec.take().is_empty());
}

#[test]
fn a_bye_is_a_departure_at_once() {
    let (shared, rec) = node(|_| {});
    let b = origin("b", 7);
    let t = Instant::now();
    let l = link(&shared, 1, "b");
    up(&shared, &established(&b, None), &l, t);
    rec.take();
    let mut rules = LinkRules::new(&shared, t);
    assert_eq!(
        feed(&shared, &b, &l, &mut rules, frame(Kind::Bye, &b, 1, b""), t),
        Err(false)
    );
    assert_eq!(rec.take(), vec![Heard::Down("b".into(), DownReason::Bye)]);
}

#[test]
fn a_foreign_origin_or_a_malformed_frame_closes_the_link() {
    let (shared, _) = node(|_| {});
    let b = origin("b", 7);
    let t = Instant::now();
    let l = link(&shared, 1, "b");
    up(&shared, &established(&b, None), &l, t);
    let mut rules = LinkRules::new(&shared, t);
    let c = origin("c", 9);
    assert_eq!(
        feed(
            &shared,
            &b,
            &l,
            &mut rules,
            frame(Kind::SgcPublish, &c, 1, b""),
            t
        ),
        Err(false)
    );
    assert_eq!(
        feed(
            &shared,
            &b,
            &l,
            &mut rules,
            Bytes::from_static(b"\xffgarbage"),
            t
        ),
        Err(false)
    );
}

#[test]
fn a_control_flood_resets_the_link() {
    let (shared, _) = node(|c| c.max_control_frames_per_sec = 5);
    let b = origin("b", 7);
    let t = Instant::now();
    let l = link(&shared, 1, "b");
    up(&shared, &established(&b, None), &l, t);
    let mut rules = LinkRules::new(&shared, t);
    let hb = || frame(Kind::Heartbeat, &b, 0, &0u64.to_be_bytes());
    for _ in 0..5 {
        assert!(feed(&shared, &b, &l, &mut rules, hb(), t).is_ok());
    }
    assert_eq!(feed(&shared, &b, &l, &mut rules, hb(), t), Err(false));
    // Data frames are not control frames: they never count against the budget.
    let (shared, _) = node(|c| c.max_control_frames_per_sec = 5);
    let l = link(&shared, 1, "b");
    up(&shared, &established(&b, None), &l, t);
    let mut rules = LinkRules::new(&shared, t);
    for seq in 1..=20 {
        assert!(
            feed(
                &shared,
                &b,
                &l,
                &mut rules,
                frame(Kind::SgcPublish, &b, seq, b""),
                t
            )
            .is_ok()
        );
    }
}

#[test]
fn a_new_incarnation_replaces_the_old_process() {
    let (shared, rec) = node(|_| {});
    let t = Instant::now();
    let old = link(&shared, 1, "b");
    up(&shared, &established(&origin("b", 7), None), &old, t);
    rec.take();
    let new = link(&shared, 2, "b");
    up(&shared, &established(&origin("b", 8), None), &new, t);
    assert!(old.queue.is_closed());
    assert_eq!(
        rec.take(),
        vec![
            Heard::Down("b".into(), DownReason::Restarted),
            Heard::Up("b".into())
        ]
    );
}

#[test]
fn of_two_simultaneous_links_the_preferred_dialers_is_kept() {
    // "a" < "b": the link "a" dialled is preferred; b's own dial is refused while it lives.
    let (shared, _) = node(|_| {});
    let b = origin("b", 7);
    let t = Instant::now();
    let ours = link(&shared, 1, "a");
    up(&shared, &established(&b, None), &ours, t);
    let theirs = link(&shared, 2, "b");
    assert!(link_core::link_up(&shared, &established(&b, None), &theirs, t).is_none());
    assert!(!ours.queue.is_closed());
}

#[test]
fn a_superseded_link_waits_for_its_replacement_then_gives_up() {
    let (shared, rec) = node(|_| {});
    let b = origin("b", 7);
    let t = Instant::now();
    let l = link(&shared, 1, "b");
    up(&shared, &established(&b, None), &l, t);
    rec.take();
    assert!(
        link_core::link_down(&shared, &b, l.id, true, t),
        "the replacement is awaited"
    );
    assert!(rec.take().is_empty(), "still live meanwhile");
    link_core::replacement_overdue(&shared, &b);
    assert_eq!(
        rec.take(),
        vec![Heard::Down("b".into(), DownReason::LinkClosed)]
    );
    // A plain close is a death at once.
    let l2 = link(&shared, 2, "b");
    up(&shared, &established(&b, None), &l2, t);
    rec.take();
    assert!(!link_core::link_down(&shared, &b, l2.id, false, t));
    assert_eq!(
        rec.take(),
        vec![Heard::Down("b".into(), DownReason::LinkClosed)]
    );
}

#[test]
fn links_closing_while_the_node_stops_report_no_death() {
    // The stopping node reports every peer down itself, once, as a local stop.
    let (shared, rec) = node(|_| {});
    let b = origin("b", 7);
    let t = Instant::now();
    let l = link(&shared, 1, "b");
    up(&shared, &established(&b, None), &l, t);
    rec.take();
    shared.state.lock().stopped = true;
    assert!(!link_core::link_down(&shared, &b, l.id, false, t));
    link_core::replacement_overdue(&shared, &b);
    assert!(rec.take().is_empty());
}

proptest! {
    /// Whatever a link does to a peer's frames (drops, duplicates, reorders), what is delivered
    /// is increasing, never twice, and every skipped number is counted as lost.
    #[test]
    fn deliveries_are_increasing_once_and_losses_counted(seqs in proptest::collection::vec(1u64..60, 0..200)) {
        let (shared, _) = node(|_| {});
        let b = origin("b", 7);
        let t = Instant::now();
        let l = link(&shared, 1, "b");
        up(&shared, &established(&b, None), &l, t);
        let mut rules = LinkRules::new(&shared, t);
        let mut delivered = Vec::new();
        for s in seqs {
            if let Ok(Some(d)) = feed(&shared, &b, &l, &mut rules, frame(Kind::SgcPublish, &b, s, b""), t) {
                delivered.push(d);
            }
        }
        prop_assert!(delivered.windows(2).all(|w| w[0] < w[1]));
        let lost = shared.stats.lost.load(std::sync::atomic::Ordering::Relaxed);
        let last = delivered.last().copied().unwrap_or(0);
        prop_assert_eq!(lost + delivered.len() as u64, last);
    }
}
