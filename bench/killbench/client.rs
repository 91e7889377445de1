//! Presence clients (`docs/wire.md` §3.4, Delphi frames) and what each of them knows.
//!
//! Every client joins as a member (id = its connection GUID, as Delphi does) and may join a
//! channel. A reader task per client stamps the frames that matter (`member@new`,
//! `member@remove`, `send@members`) with the time they were read and hands them to [`Clients`],
//! which keeps, for every client, the set of members it knows: the last `send@members` reply it
//! got (a snapshot of its node's roster, ordered with the broadcasts on the same connection)
//! updated by the `member@new` / `member@remove` broadcasts read after it.

use std::collections::HashSet;
use std::net::SocketAddr;

use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use http::{HeaderValue, Uri};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_websockets::{ClientBuilder, Message, WebSocketStream};

/// The Presence subprotocol token.
const PRESENCE: &str = "presence.esegece.com";

type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;

/// What a reader saw.
#[derive(Debug)]
enum Seen {
    /// `member@new` of this member id.
    New(String),
    /// `member@remove` of this member id.
    Remove(String),
    /// A `send@members` reply listing these member ids.
    Members(Vec<String>),
    /// An `error@member@channel` frame (shown as it came).
    Error(String),
    /// The connection ended (how).
    Closed(String),
}

/// A frame a reader saw: which client, what, when.
#[derive(Debug)]
struct Event {
    client: usize,
    seen: Seen,
    at: Instant,
}

/// One client connection.
struct Client {
    /// The node (index) it is connected to.
    node: usize,
    /// Its member id (its connection GUID).
    id: String,
    /// The sending half; `None` once the client is gone.
    sink: Option<Sink>,
    /// Its reader task.
    reader: JoinHandle<()>,
    /// The members it knows.
    known: HashSet<String>,
    /// `send@members` replies received.
    replies: u64,
}

/// Where the removals of watched members were seen (see [`Clients::watch`]).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Removals {
    /// The first `member@remove` of a watched member on a live client.
    pub(crate) first: Option<Instant>,
    /// The last one.
    pub(crate) last: Option<Instant>,
}

/// Every client of the benchmark and what each knows.
pub(crate) struct Clients {
    list: Vec<Client>,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    watched: HashSet<String>,
    removals: Removals,
}

impl Clients {
    /// No clients yet.
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            list: Vec::new(),
            tx,
            rx,
            watched: HashSet::new(),
            removals: Removals::default(),
        }
    }

    /// Connects a Presence client to `addr` (node `node`), reads its session frame, sends
    /// `member@new` named `name` and, if given, `channel@member@new` for `channel`.
    pub(crate) async fn connect(
        &mut self,
        node: usize,
        addr: SocketAddr,
        name: &str,
        channel: Option<&str>,
        deadline: Instant,
    ) -> Result<(), String> {
        let (mut sink, mut stream, id) = tokio::time::timeout_at(deadline, open(addr))
            .await
            .map_err(|_| "connect timed out".to_owned())??;
        let member = format!(r#"{{"id":"{id}","name":"{name}","info":""}}"#);
        let mut frames = vec![format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{member}}}"#
        )];
        if let Some(ch) = channel {
            frames.push(format!(
                r#"{{"jsonrpc":"2.0","method":"sgc@presence@channel@member@new","member":{{"id":"{id}","name":"","info":""}},"channel":{{"name":"{ch}"}}}}"#
            ));
        }
        for f in frames {
            sink.send(Message::text(f))
                .await
                .map_err(|e| format!("send: {e}"))?;
        }
        let (tx, client) = (self.tx.clone(), self.list.len());
        let reader = tokio::spawn(async move {
            let end = loop {
                let msg = match stream.next().await {
                    None => break "closed by the node".to_owned(),
                    Some(Err(e)) => break format!("read: {e}"),
                    Some(Ok(msg)) => msg,
                };
                let Some(text) = msg.as_text() else { continue };
                if let Some(seen) = classify(text) {
                    let at = Instant::now();
                    if tx.send(Event { client, seen, at }).is_err() {
                        return;
                    }
                }
            };
            let at = Instant::now();
            let _ = tx.send(Event {
                client,
                seen: Seen::Closed(end),
                at,
            });
        });
        self.list.push(Client {
            node,
            id,
            sink: Some(sink),
            reader,
            known: HashSet::new(),
            replies: 0,
        });
        Ok(())
    }

    /// Live clients (not dropped).
    fn live(&self) -> impl Iterator<Item = &Client> {
        self.list.iter().filter(|c| c.sink.is_some())
    }

    /// The member ids of the live clients of `node`.
    pub(crate) fn members_of(&self, node: usize) -> Vec<String> {
        self.live()
            .filter(|c| c.node == node)
            .map(|c| c.id.clone())
            .collect()
    }

    /// The member ids of every live client.
    fn all_members(&self) -> HashSet<String> {
        self.live().map(|c| c.id.clone()).collect()
    }

    /// Forgets the clients of `node` (its process is about to die): their frames are ignored
    /// from now on.
    pub(crate) fn drop_node(&mut self, node: usize) {
        for c in self.list.iter_mut().filter(|c| c.node == node) {
            c.sink = None;
            c.reader.abort();
            c.known.clear();
        }
    }

    /// Starts watching the removal of `ids`: [`Clients::removals`] then says when live clients
    /// saw them go.
    pub(crate) fn watch(&mut self, ids: &[String]) {
        self.apply_pending();
        self.watched = ids.iter().cloned().collect();
        self.removals = Removals::default();
    }

    /// When the watched removals were seen so far.
    pub(crate) fn removals(&self) -> Removals {
        self.removals
    }

    /// (live client, watched member) pairs where the client still knows the member.
    pub(crate) fn watched_still_known(&self) -> usize {
        self.live()
            .map(|c| c.known.intersection(&self.watched).count())
            .sum()
    }

    /// Every live client knows exactly every live member.
    fn converged(&self) -> bool {
        let all = self.all_members();
        self.live().all(|c| c.known == all)
    }

    /// Waits until every live client's `send@members` reply (asked for now, and again every
    /// 100 ms) lists every live member; errors at `deadline`.
    pub(crate) async fn sync(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            let asked: Vec<(usize, u64)> = self
                .list
                .iter()
                .enumerate()
                .filter(|(_, c)| c.sink.is_some())
                .map(|(i, c)| (i, c.replies))
                .collect();
            for &(i, _) in &asked {
                self.get_members(i).await?;
            }
            let answered = |s: &Self| asked.iter().all(|&(i, n)| s.list[i].replies > n);
            let all_answered = self.pump_until(deadline, answered).await;
            if all_answered && self.converged() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.divergence());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// What the live clients' last `send@members` replies (and the broadcasts since) say, per
    /// node, against the members that exist.
    fn divergence(&self) -> String {
        let all = self.all_members().len();
        let mut per_node = std::collections::BTreeMap::<usize, Vec<usize>>::new();
        for c in self.live() {
            per_node.entry(c.node).or_default().push(c.known.len());
        }
        let nodes: Vec<String> = per_node
            .into_iter()
            .map(|(n, mut sizes)| {
                sizes.sort_unstable();
                sizes.dedup();
                format!("clients of kb-{} list {sizes:?}", n + 1)
            })
            .collect();
        format!(
            "the members did not converge: {all} members exist; {}",
            nodes.join("; ")
        )
    }

    /// Sends `get@members` for every member (`""` channel) from client `i`.
    async fn get_members(&mut self, i: usize) -> Result<(), String> {
        let c = &mut self.list[i];
        let frame = format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@presence@get@members","channel":{{"name":""}},"member":{{"id":"{}","name":"","info":""}}}}"#,
            c.id
        );
        match c.sink.as_mut() {
            Some(sink) => sink
                .send(Message::text(frame))
                .await
                .map_err(|e| format!("send: {e}")),
            None => Ok(()),
        }
    }

    /// Applies events as they come until `done` holds (true) or `deadline` passes (false).
    pub(crate) async fn pump_until(
        &mut self,
        deadline: Instant,
        done: impl Fn(&Self) -> bool,
    ) -> bool {
        loop {
            self.apply_pending();
            if done(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => self.apply(e),
                Ok(None) | Err(_) => return done(self),
            }
        }
    }

    /// Applies every event already queued.
    fn apply_pending(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.apply(e);
        }
    }

    /// Updates what client `e.client` knows.
    fn apply(&mut self, e: Event) {
        let Some(c) = self.list.get_mut(e.client) else {
            return;
        };
        if c.sink.is_none() {
            return;
        }
        match e.seen {
            Seen::New(id) => {
                c.known.insert(id);
            }
            Seen::Remove(id) => {
                if c.known.remove(&id) && self.watched.contains(&id) {
                    let r = &mut self.removals;
                    r.first = Some(r.first.map_or(e.at, |f| f.min(e.at)));
                    r.last = Some(r.last.map_or(e.at, |l| l.max(e.at)));
                }
            }
            Seen::Members(ids) => {
                c.known = ids.into_iter().collect();
                c.replies += 1;
            }
            Seen::Error(frame) => eprintln!("killbench: client {} got {frame}", c.id),
            Seen::Closed(how) => eprintln!("killbench: client {} lost: {how}", c.id),
        }
    }
}

/// Connects, upgrades with the Presence subprotocol and reads the session frame's GUID.
async fn open(
    addr: SocketAddr,
) -> Result<
    (
        Sink,
        futures_util::stream::SplitStream<WebSocketStream<TcpStream>>,
        String,
    ),
    String,
> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("tcp connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let uri: Uri = format!("ws://{addr}/")
        .parse()
        .map_err(|e| format!("uri: {e}"))?;
    let (ws, _) = ClientBuilder::from_uri(uri)
        .add_header(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(PRESENCE),
        )
        .map_err(|e| format!("upgrade request: {e}"))?
        .connect_on(tcp)
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    let (sink, mut stream) = ws.split();
    while let Some(msg) = stream.next().await {
        let msg = msg.map_err(|e| format!("read: {e}"))?;
        let Some(text) = msg.as_text() else { continue };
        let v: Value = serde_json::from_str(text).map_err(|e| format!("session: {e}"))?;
        if v["method"] == "sgc@presence@session" {
            let guid = v["message"]["text"].as_str().unwrap_or_default().to_owned();
            return Ok((sink, stream, guid));
        }
    }
    Err("closed before the session frame".to_owned())
}

/// The frames the benchmark follows; others (`channel@member@…`) are ignored.
fn classify(text: &str) -> Option<Seen> {
    let v: Value = serde_json::from_str(text).ok()?;
    let id = |m: &Value| m["id"].as_str().map(str::to_owned);
    match v["method"].as_str()? {
        "sgc@presence@member@new" => id(&v["member"]).map(Seen::New),
        "sgc@presence@member@remove" => id(&v["member"]).map(Seen::Remove),
        "sgc@presence@send@members" => Some(Seen::Members(
            v["members"].as_array()?.iter().filter_map(id).collect(),
        )),
        "sgc@presence@error@member@channel" => Some(Seen::Error(text.to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_frames_and_replies_are_classified() {
        let new = r#"{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{"id":"A","name":"n","info":""}}"#;
        assert!(matches!(classify(new), Some(Seen::New(id)) if id == "A"));
        let rm = r#"{"jsonrpc":"2.0","method":"sgc@presence@member@remove","member":{"id":"B","name":"","info":""}}"#;
        assert!(matches!(classify(rm), Some(Seen::Remove(id)) if id == "B"));
        let list = r#"{"jsonrpc":"2.0","method":"sgc@presence@send@members","channel":{"name":""},"member":{"id":"A","name":"","info":""},"members":[{"id":"A","name":"","info":""},{"id":"C","name":"","info":""}]}"#;
        assert!(matches!(classify(list), Some(Seen::Members(ids)) if ids == ["A", "C"]));
        let chan = r#"{"jsonrpc":"2.0","method":"sgc@presence@channel@member@remove","member":{"id":"B","name":"","info":""},"channel":{"name":"x"}}"#;
        assert!(classify(chan).is_none());
        assert!(classify("not json").is_none());
    }
}
