//! The seam between the transport and the client protocols: the [`Protocol`] trait every
//! subprotocol implements and the [`ProtocolRegistry`] the handshake consults. It lives with the
//! transport, which calls it; the protocols (`crate::protocol`) implement it.

use std::sync::Arc;

use bytes::Bytes;

use super::connection::Connection;
use super::limits::LimitsConfig;

/// A WebSocket subprotocol served by the node (`esegece.com`, `presence.esegece.com`, ...).
///
/// The transport calls these from the connection's reader task, in the order frames arrive. They must
/// not block: send through [`Connection`] (a non-blocking, bounded queue) and spawn for slow work.
pub trait Protocol: Send + Sync + 'static {
    /// The `Sec-WebSocket-Protocol` token this protocol answers to; `""` for the fallback protocol
    /// that takes connections which offered no subprotocol.
    fn name(&self) -> &'static str;

    /// A connection that negotiated this protocol is open. Session frames go out from here.
    fn on_connect(&self, conn: &Connection);

    /// A complete text message arrived.
    fn on_text(&self, conn: &Connection, text: &str);

    /// A complete binary message arrived. Default: ignored.
    fn on_binary(&self, conn: &Connection, data: Bytes) {
        let _ = (conn, data);
    }

    /// The connection is gone (closed by either side, or failed). Called exactly once per
    /// connection for which `on_connect` was called.
    fn on_disconnect(&self, conn: &Connection);

    /// This protocol's own cap on a client message, in bytes, from the `[limits]` section; 0 (the
    /// default) leaves the transport's `server.max_message_size`.
    fn max_message_size(&self, limits: &LimitsConfig) -> usize {
        let _ = limits;
        0
    }

    /// Stops the protocol's own background tasks (resend sweepers) and waits for them; the
    /// server's shutdown calls it once its connections are gone. A protocol served again starts
    /// them again when needed. Default: nothing to stop.
    fn stop(&self) -> StopFuture<'_> {
        Box::pin(std::future::ready(()))
    }

    /// How many of the protocol's own background tasks are running (none after
    /// [`Protocol::stop`]). Default: none.
    fn task_count(&self) -> usize {
        0
    }
}

/// What [`Protocol::stop`] returns.
pub type StopFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// The protocols a server offers, looked up by subprotocol token during the handshake.
#[derive(Clone, Default)]
pub struct ProtocolRegistry {
    protocols: Vec<Arc<dyn Protocol>>,
    fallback: Option<Arc<dyn Protocol>>,
}

impl std::fmt::Debug for ProtocolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolRegistry")
            .field(
                "protocols",
                &self.protocols.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

/// The outcome of subprotocol negotiation (docs/wire.md §1.1).
#[derive(Clone)]
pub enum Negotiated {
    /// The first client-offered token that is registered.
    Protocol(Arc<dyn Protocol>),
    /// The client offered no token: the fallback protocol takes it, if any.
    NoneOffered(Option<Arc<dyn Protocol>>),
    /// The client offered tokens and none is registered: refuse the handshake.
    Unsupported,
}

impl ProtocolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a protocol under its [`Protocol::name`]. A later registration of the same name
    /// replaces the earlier one.
    pub fn register(&mut self, protocol: Arc<dyn Protocol>) {
        let name = protocol.name();
        if name.is_empty() {
            self.fallback = Some(protocol);
            return;
        }
        self.protocols.retain(|p| p.name() != name);
        self.protocols.push(protocol);
    }

    /// Sets the protocol for connections that offered no subprotocol (e.g. an echo endpoint).
    pub fn set_fallback(&mut self, protocol: Arc<dyn Protocol>) {
        self.fallback = Some(protocol);
    }

    /// Every registered protocol, the fallback included.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Protocol>> {
        self.protocols.iter().chain(self.fallback.as_ref())
    }

    /// The registered protocol with this token.
    pub fn get(&self, token: &str) -> Option<&Arc<dyn Protocol>> {
        self.protocols.iter().find(|p| p.name() == token)
    }

    /// Picks a protocol for the offered tokens, walking them in the client's order (docs/wire.md §1.1).
    pub fn negotiate<'a>(&self, offered: impl IntoIterator<Item = &'a str>) -> Negotiated {
        let mut any = false;
        for token in offered {
            let token = token.trim();
            if token.is_empty() {
                continue;
            }
            any = true;
            if let Some(p) = self.get(token) {
                return Negotiated::Protocol(p.clone());
            }
        }
        if any {
            Negotiated::Unsupported
        } else {
            Negotiated::NoneOffered(self.fallback.clone())
        }
    }
}

impl LimitsConfig {
    /// The message size cap of a connection on `protocol`, given the transport's cap: the
    /// protocol's own cap ([`Protocol::max_message_size`]) when it has one, never above the
    /// transport's.
    pub fn max_message_size(&self, protocol: Option<&dyn Protocol>, transport: usize) -> usize {
        let own = protocol.map_or(0, |p| p.max_message_size(self));
        if own == 0 {
            transport
        } else {
            own.min(transport)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);
    impl Protocol for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn on_connect(&self, _: &Connection) {}
        fn on_text(&self, _: &Connection, _: &str) {}
        fn on_disconnect(&self, _: &Connection) {}
    }

    fn registry() -> ProtocolRegistry {
        let mut r = ProtocolRegistry::new();
        r.register(Arc::new(Named("esegece.com")));
        r.register(Arc::new(Named("presence.esegece.com")));
        r
    }

    #[test]
    fn picks_first_registered_in_client_order() {
        match registry().negotiate(["x", "presence.esegece.com", "esegece.com"]) {
            Negotiated::Protocol(p) => assert_eq!(p.name(), "presence.esegece.com"),
            _ => panic!("expected a protocol"),
        }
    }

    #[test]
    fn offered_but_unsupported_is_refused() {
        assert!(matches!(
            registry().negotiate(["chat", "superchat"]),
            Negotiated::Unsupported
        ));
    }

    #[test]
    fn none_offered_goes_to_fallback() {
        assert!(matches!(
            registry().negotiate([]),
            Negotiated::NoneOffered(None)
        ));
        let mut r = registry();
        r.set_fallback(Arc::new(Named("")));
        assert!(matches!(
            r.negotiate([" "]),
            Negotiated::NoneOffered(Some(_))
        ));
    }
}
