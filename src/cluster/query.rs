//! Questions to every other node, with a deadline: the asker sends a [`Kind::Query`] to each live
//! peer and gathers the [`Kind::QueryReply`]s that arrive in time; the answer lists who replied
//! and who did not. What a question and its answer contain is the application's business (opaque
//! bytes): a node answers with the responder installed by [`crate::Cluster::answer_queries`], or
//! with empty bytes when none is installed.
//!
//! Engine-agnostic: questions and answers travel through the [`Outlet`] (`send_to`) and arrive
//! through the engine handler like any other envelope. Used by the operations API for cluster-wide
//! counts (`GET /admin/channels`) and to find a connection on any node.

use crate::log_text::Printable;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use super::Outlet;
use super::envelope::{Envelope, Kind};

/// Answers a question from another node: `(asking node, question bytes) -> answer bytes`. Called
/// on an engine task: it must not block (read some state, encode, return).
pub(crate) type QueryResponder = Arc<dyn Fn(&str, &[u8]) -> Bytes + Send + Sync>;

/// What came back from a question to every live peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOutcome {
    /// The answers that arrived before the deadline, by node id (sorted by node id).
    pub replies: Vec<(Arc<str>, Bytes)>,
    /// The peers asked that did not answer in time, or went down meanwhile (sorted).
    pub missing: Vec<Arc<str>>,
}

/// One question in flight.
struct Pending {
    /// Peers that have not answered yet.
    waiting: HashSet<Arc<str>>,
    /// Answers so far.
    replies: Vec<(Arc<str>, Bytes)>,
    /// Peers that went down before answering.
    gone: Vec<Arc<str>>,
    /// Fired when `waiting` empties.
    done: Option<oneshot::Sender<()>>,
}

/// The questions this node asked and waits for, and its responder.
#[derive(Default)]
pub(crate) struct Queries {
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
    responder: RwLock<Option<QueryResponder>>,
}

impl std::fmt::Debug for Queries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queries")
            .field("pending", &self.pending.lock().len())
            .finish()
    }
}

/// Bytes before the caller's bytes in both kinds: the request id.
const ID_LEN: usize = 8;

fn with_id(id: u64, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(ID_LEN + body.len());
    b.put_u64(id);
    b.put_slice(body);
    b.freeze()
}

fn split_id(payload: &Bytes) -> Option<(u64, Bytes)> {
    let id = payload.get(..ID_LEN)?;
    let mut a = [0u8; ID_LEN];
    a.copy_from_slice(id);
    Some((u64::from_be_bytes(a), payload.slice(ID_LEN..)))
}

impl Queries {
    /// Installs (or replaces) what this node answers with.
    pub(crate) fn set_responder(&self, responder: Option<QueryResponder>) {
        *self.responder.write() = responder;
    }

    /// Asks every node of `peers` through `outlet` and waits until all answered or `deadline`
    /// passed.
    pub(crate) async fn ask(
        &self,
        outlet: &Outlet,
        peers: Vec<Arc<str>>,
        question: &[u8],
        deadline: Duration,
    ) -> QueryOutcome {
        if peers.is_empty() {
            return QueryOutcome::default();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done_tx, done_rx) = oneshot::channel();
        self.pending.lock().insert(
            id,
            Pending {
                waiting: peers.iter().cloned().collect(),
                replies: Vec::new(),
                gone: Vec::new(),
                done: Some(done_tx),
            },
        );
        let payload = with_id(id, question);
        for peer in &peers {
            outlet.send_to(peer, Kind::Query, payload.clone());
        }
        let _ = tokio::time::timeout(deadline, done_rx).await;
        let Some(p) = self.pending.lock().remove(&id) else {
            return QueryOutcome::default();
        };
        let mut replies = p.replies;
        replies.sort_by(|a, b| a.0.cmp(&b.0));
        let mut missing: Vec<Arc<str>> = p.waiting.into_iter().chain(p.gone).collect();
        missing.sort();
        QueryOutcome { replies, missing }
    }

    /// A question from another node: answer it through `outlet`.
    pub(crate) fn on_query(&self, outlet: &Outlet, envelope: &Envelope) {
        let Some((id, question)) = split_id(&envelope.payload) else {
            tracing::debug!(peer = %Printable(&envelope.origin.node_id), "query without an id");
            return;
        };
        let responder = self.responder.read().clone();
        let answer = responder
            .map(|r| r(&envelope.origin.node_id, &question))
            .unwrap_or_default();
        outlet.send_to(
            &envelope.origin.node_id,
            Kind::QueryReply,
            with_id(id, &answer),
        );
    }

    /// An answer to one of this node's questions (late or unknown ones are dropped).
    pub(crate) fn on_reply(&self, envelope: &Envelope) {
        let Some((id, answer)) = split_id(&envelope.payload) else {
            return;
        };
        let node = &envelope.origin.node_id;
        let mut pending = self.pending.lock();
        let Some(p) = pending.get_mut(&id) else {
            return;
        };
        if p.waiting.remove(node) {
            p.replies.push((node.clone(), answer));
        }
        if p.waiting.is_empty()
            && let Some(done) = p.done.take()
        {
            let _ = done.send(());
        }
    }

    /// A peer went down: no question waits for it any longer (it stays listed as missing).
    pub(crate) fn peer_gone(&self, node: &str) {
        let mut pending = self.pending.lock();
        for p in pending.values_mut() {
            if let Some(gone) = p.waiting.take(node) {
                p.gone.push(gone);
                if p.waiting.is_empty()
                    && let Some(done) = p.done.take()
                {
                    let _ = done.send(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::envelope::Origin;

    fn env(from: &str, kind: Kind, payload: Bytes) -> Envelope {
        Envelope {
            kind,
            origin: Origin {
                node_id: Arc::from(from),
                incarnation: 1,
            },
            seq: 1,
            payload,
        }
    }

    #[test]
    fn ids_round_trip_and_short_payloads_are_ignored() {
        let b = with_id(7, b"abc");
        assert_eq!(split_id(&b), Some((7, Bytes::from_static(b"abc"))));
        assert_eq!(split_id(&Bytes::from_static(b"1234567")), None);
        let q = Queries::default();
        // Neither panics nor answers anything.
        q.on_reply(&env("b", Kind::QueryReply, Bytes::from_static(b"x")));
        q.on_query(
            &Outlet::default(),
            &env("b", Kind::Query, Bytes::from_static(b"x")),
        );
    }

    #[tokio::test]
    async fn replies_are_gathered_and_the_silent_are_missing() {
        let q = Queries::default();
        let outlet = Outlet::default();
        let asker = q.ask(
            &outlet,
            vec![Arc::from("c"), Arc::from("b")],
            b"?",
            Duration::from_millis(300),
        );
        let answers = async {
            // The question's id is 0 (the first one).
            while q.pending.lock().is_empty() {
                tokio::task::yield_now().await;
            }
            q.on_reply(&env("b", Kind::QueryReply, with_id(0, b"from b")));
            // A duplicate and a stranger change nothing.
            q.on_reply(&env("b", Kind::QueryReply, with_id(0, b"again")));
            q.on_reply(&env("z", Kind::QueryReply, with_id(0, b"who?")));
        };
        let (out, ()) = tokio::join!(asker, answers);
        assert_eq!(
            out.replies,
            vec![(Arc::from("b"), Bytes::from_static(b"from b"))]
        );
        assert_eq!(out.missing, vec![Arc::<str>::from("c")]);
        assert!(q.pending.lock().is_empty());
    }

    #[tokio::test]
    async fn the_last_answer_ends_the_wait_before_the_deadline() {
        let q = Queries::default();
        let outlet = Outlet::default();
        let asker = async {
            let start = std::time::Instant::now();
            let out = q
                .ask(
                    &outlet,
                    vec![Arc::from("b"), Arc::from("c")],
                    b"?",
                    Duration::from_secs(30),
                )
                .await;
            (out, start.elapsed())
        };
        let answers = async {
            while q.pending.lock().is_empty() {
                tokio::task::yield_now().await;
            }
            q.on_reply(&env("b", Kind::QueryReply, with_id(0, b"1")));
            q.peer_gone("c");
        };
        let ((out, took), ()) = tokio::join!(asker, answers);
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(out.missing, vec![Arc::<str>::from("c")]);
        assert_eq!(out.replies.len(), 1);
    }

    #[tokio::test]
    async fn nobody_to_ask_answers_at_once() {
        let q = Queries::default();
        let out = q
            .ask(&Outlet::default(), vec![], b"?", Duration::from_secs(30))
            .await;
        assert_eq!(out, QueryOutcome::default());
    }
}
