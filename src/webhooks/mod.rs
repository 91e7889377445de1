//! Lifecycle webhooks: connections opened and closed, Presence members and channel memberships
//! coming and going, Presence channels occupied and vacated, POSTed as signed JSON batches to one
//! URL (`[webhooks]`), at least once.
//!
//! - [`event`]: the event types, their JSON and their ids; [`config`]: the options.
//! - [`queue`], [`takeover`] and [`connections`]: the decisions, sans I/O (what is sent, dropped,
//!   retried; which survivor reports a crashed node's events; which connections each node holds).
//! - [`client`] and `sender`: the I/O (one POST; the task that drains the queue).
//! - `adapter`: the cluster side (a crashed node's events, "delivered" notices, connection lists).
//!
//! Each node reports what happens on it, from the protocols' application events (the protocols
//! know nothing of webhooks). A node that stops cleanly reports its own clients' departures before
//! it exits. A node that crashes cannot: every survivor computes its events from the Presence
//! replica and the connection lists before purging them, and one survivor sends them
//! ([`takeover`]), through the cluster [`Adapter`] this module provides ([`Webhooks::adapter`]).

mod adapter;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod connections;
pub(crate) mod event;
pub(crate) mod queue;
mod sender;
pub(crate) mod takeover;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::cluster::envelope::Kind;
use crate::cluster::{Adapter, Outlet};
use crate::hub::roster::Member;
use crate::protocol::presence::{AppEvent, PresenceProtocol};
use crate::protocol::sgc::SgcProtocol;
use crate::transport::Connection;

pub(crate) use config::WebhooksConfig;
use connections::{Notice, Replica};
pub(crate) use event::EventType;
pub(crate) use event::{Event, Subject};

use takeover::Takeover;

struct Inner {
    config: WebhooksConfig,
    node: Arc<str>,
    /// Drawn at start: local event ids differ from one run of the node to the next.
    incarnation: u64,
    seq: AtomicU64,
    sender: sender::Sender,
    takeover: Mutex<Takeover>,
    outlet: Mutex<Option<Arc<Outlet>>>,
    presence: Mutex<Option<PresenceProtocol>>,
    /// This node's open connections. Locked while a notice about them is sent, so the list a new
    /// peer gets and the opens and closes sent around it stay in order.
    local_conns: Mutex<HashSet<Arc<str>>>,
    /// The other nodes' open connections.
    replica: Mutex<Replica>,
}

/// The webhooks of one node. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

/// The cluster side of [`Webhooks`] (see the `adapter` module).
struct WebhooksAdapter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("node", &self.inner.node)
            .field("url", &self.inner.config.url)
            .finish()
    }
}

impl Webhooks {
    /// Starts the sender of node `node` on the current runtime; `Ok(None)` when `config` has no
    /// URL. The error says why the URL or CA file cannot be used.
    pub fn start(config: &WebhooksConfig, node: &str) -> Result<Option<Self>, String> {
        if !config.enabled() {
            return Ok(None);
        }
        let target = client::Target::parse(&config.url)?;
        let client = client::Client::new(
            target,
            &config.ca_file,
            Duration::from_millis(config.timeout_ms.max(1)),
        )?;
        let node: Arc<str> = Arc::from(node);
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            let sets_done: sender::SetsDone = Box::new(move |sets| {
                if let Some(inner) = weak.upgrade() {
                    inner.sets_delivered(sets);
                }
            });
            Inner {
                config: config.clone(),
                node: node.clone(),
                incarnation: fastrand::u64(..),
                seq: AtomicU64::new(0),
                sender: sender::Sender::start(
                    sender::Settings {
                        client,
                        secret: config.effective_secret().as_bytes().to_vec(),
                        max_batch: config.max_batch.max(1),
                        queue_bytes: config.queue_bytes,
                    },
                    sets_done,
                ),
                takeover: Mutex::new(Takeover::new(node.clone(), config.queue_bytes)),
                outlet: Mutex::new(None),
                presence: Mutex::new(None),
                local_conns: Mutex::new(HashSet::new()),
                replica: Mutex::new(Replica::new(config.replica_bytes)),
            }
        });
        Ok(Some(Self { inner }))
    }

    /// Reports the sgc connections opened and closed on this node (installs the protocol's
    /// `on_connected` and `on_disconnected` hooks).
    pub fn observe_sgc(&self, sgc: &SgcProtocol) {
        let w = Arc::downgrade(&self.inner);
        sgc.on_connected(move |c| {
            if let Some(i) = w.upgrade() {
                i.connection(c, true);
            }
        });
        let w = Arc::downgrade(&self.inner);
        sgc.on_disconnected(move |c| {
            if let Some(i) = w.upgrade() {
                i.connection(c, false);
            }
        });
    }

    /// Reports the Presence connections, members, channel memberships and channels of this node
    /// (installs the protocol's event handler), and reads its replica when a node crashes.
    pub fn observe_presence(&self, presence: &PresenceProtocol) {
        *self.inner.presence.lock() = Some(presence.clone());
        let w = Arc::downgrade(&self.inner);
        presence.on_event(move |e| {
            if let Some(i) = w.upgrade() {
                i.presence_event(e);
            }
        });
    }

    /// The cluster side: attach it to the node's [`crate::Cluster`] so crashed nodes' events are
    /// reported by one survivor.
    pub fn adapter(&self) -> Arc<dyn Adapter> {
        Arc::new(WebhooksAdapter {
            inner: self.inner.clone(),
        })
    }

    /// Delivers what is queued until `deadline`, then stops the sender (the node is stopping).
    pub async fn shutdown(&self, deadline: tokio::time::Instant) {
        self.inner.sender.stop(deadline).await;
    }

    /// Whether the sender's task runs (0 or 1; none once [`Webhooks::shutdown`] returned).
    pub fn task_count(&self) -> usize {
        self.inner.sender.task_count()
    }

    /// Events waiting to be delivered.
    pub fn queued(&self) -> usize {
        self.inner.sender.shared().queued()
    }
}

fn local_conn(c: &Option<Connection>) -> bool {
    c.is_some()
}

impl Inner {
    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.config.retry_max_ms)
    }

    /// A connection of this node opened or closed: reported, and told to the other nodes (a
    /// survivor reports it closed should this node crash).
    fn connection(&self, c: &Connection, opened: bool) {
        let id = c.id_arc();
        if self.config.wants(EventType::ConnectionClosed) {
            let mut local = self.local_conns.lock();
            let notice = if opened {
                local.insert(id.clone());
                Notice::Opened(id.to_string())
            } else {
                local.remove(&id);
                Notice::Closed(id.to_string())
            };
            if let Some(o) = &*self.outlet.lock() {
                o.send_all(Kind::WebhooksConnections, Bytes::from(notice.encode()));
            }
        }
        let kind = if opened {
            EventType::ConnectionOpened
        } else {
            EventType::ConnectionClosed
        };
        self.local(kind, Subject::Connection(id));
    }

    /// Queues an event that happened on this node.
    fn local(&self, kind: EventType, subject: Subject) {
        if !self.config.wants(kind) {
            return;
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let e = Event {
            id: event::event_id(
                &self.node,
                self.incarnation,
                kind,
                &subject,
                event::IdSource::Local(n),
            ),
            kind,
            time_ms: event::now_ms(),
            node: self.node.clone(),
            reported_by: None,
            subject,
        };
        self.sender
            .shared()
            .push(e.to_json(), self.deadline(), None);
    }

    /// Presence events caused on this node (those with a local connection); changes replicated
    /// from other nodes are theirs to report.
    fn presence_event(&self, e: &AppEvent) {
        let m = |m: &Member| m.clone();
        match e {
            AppEvent::Connected { connection } => self.connection(connection, true),
            AppEvent::Disconnected { connection } => self.connection(connection, false),
            AppEvent::NewMember { connection, member } if local_conn(connection) => {
                self.local(EventType::MemberJoined, Subject::Member(m(member)))
            }
            AppEvent::RemoveMember { connection, member } if local_conn(connection) => {
                self.local(EventType::MemberLeft, Subject::Member(m(member)))
            }
            AppEvent::NewChannelMember {
                connection,
                channel,
                member,
            } if local_conn(connection) => self.local(
                EventType::ChannelMemberJoined,
                Subject::ChannelMember(m(member), channel.clone()),
            ),
            AppEvent::RemoveChannelMember {
                connection,
                channel,
                member,
            } if local_conn(connection) => self.local(
                EventType::ChannelMemberLeft,
                Subject::ChannelMember(m(member), channel.clone()),
            ),
            AppEvent::NewChannel {
                connection,
                channel,
            } if local_conn(connection) => self.local(
                EventType::ChannelOccupied,
                Subject::Channel(channel.clone()),
            ),
            AppEvent::ChannelFreed {
                connection,
                channel,
            } if local_conn(connection) => {
                self.local(EventType::ChannelVacated, Subject::Channel(channel.clone()))
            }
            _ => {}
        }
    }
}
