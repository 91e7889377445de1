//! RPC and notifications (docs/wire.md §2.9, §5.2 item 12): the request value the application answers
//! (from any task, at any time), the per-connection table of requests awaiting an answer, and the
//! authorisation rule of `rpc_auth_methods`.

use std::collections::HashSet;

use crate::protocol::json::Payload;
use crate::transport::Connection;

use super::SgcProtocol;

/// An RPC call from a client (a non-`sgc@` method with an id). Cheap to clone; answer it once with
/// [`RpcRequest::respond`] or [`RpcRequest::respond_error`], from any thread or task. A request
/// never answered leaves the client with only its acknowledgment, like the reference server.
#[derive(Clone)]
pub struct RpcRequest {
    pub(crate) protocol: SgcProtocol,
    pub(crate) conn: Connection,
    pub(crate) id: String,
    pub(crate) method: String,
    pub(crate) params: Payload,
}

impl std::fmt::Debug for RpcRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcRequest")
            .field("conn", &self.conn.id())
            .field("id", &self.id)
            .field("method", &self.method)
            .field("params", &self.params)
            .finish()
    }
}

impl RpcRequest {
    /// The calling connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The request id, as the client sent it (opaque text).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The method name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The parameters: raw JSON when the client sent an object or array, text otherwise (`""`
    /// when absent).
    pub fn params(&self) -> &Payload {
        &self.params
    }

    /// Answers with `result` (S9): written raw when it is JSON object or array text, as a string
    /// otherwise. Returns false when the request was already answered or the client is gone.
    pub fn respond(&self, result: &str) -> bool {
        self.protocol.rpc_result(self.conn.id(), &self.id, result)
    }

    /// Answers with an error (S10); `data` is left out when empty. Returns false when the request
    /// was already answered or the client is gone.
    pub fn respond_error(&self, code: i64, message: &str, data: &str) -> bool {
        self.protocol
            .rpc_error(self.conn.id(), &self.id, code, message, data)
    }
}

/// A notification from a client: a non-`sgc@` method without an id. It gets no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The method name.
    pub method: String,
    /// The parameters (raw JSON for objects and arrays, text otherwise).
    pub params: Payload,
}

/// The ids of one connection's RPC requests that await the application's answer.
#[derive(Debug, Default)]
pub struct PendingRpcs {
    ids: HashSet<String>,
    /// Bytes of the ids kept.
    bytes: usize,
}

impl PendingRpcs {
    /// Remembers `id`; false when `cap` requests already wait or their ids would pass
    /// `max_bytes` together (a duplicate id is accepted and stays one entry: the first answer
    /// answers it).
    pub fn insert(&mut self, id: &str, cap: usize, max_bytes: usize) -> bool {
        if self.ids.contains(id) {
            return true;
        }
        if self.ids.len() >= cap || self.bytes + id.len() > max_bytes {
            return false;
        }
        self.bytes += id.len();
        self.ids.insert(id.to_owned());
        true
    }

    /// Forgets `id` as it is answered; false when it was not waiting.
    pub fn take(&mut self, id: &str) -> bool {
        let taken = self.ids.remove(id);
        if taken {
            self.bytes -= id.len();
        }
        taken
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The `RPCAuthentication.Methods` rule: `method` allows anyone, `method=user` allows that
/// authenticated user. Case-insensitive, like a Delphi `TStringList`.
pub fn listed(methods: &[String], method: &str, user: Option<&str>) -> bool {
    methods.iter().any(|entry| {
        let entry = entry.trim();
        match entry.split_once('=') {
            None => entry.eq_ignore_ascii_case(method),
            Some((m, u)) => {
                m.trim().eq_ignore_ascii_case(method)
                    && user.is_some_and(|user| u.trim().eq_ignore_ascii_case(user))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_list_rule() {
        let list = vec!["ping".to_owned(), "Admin = alice".to_owned()];
        assert!(listed(&list, "ping", None));
        assert!(listed(&list, "PING", Some("bob")));
        assert!(listed(&list, "admin", Some("Alice")));
        assert!(!listed(&list, "admin", Some("bob")));
        assert!(!listed(&list, "admin", None));
        assert!(!listed(&list, "other", Some("alice")));
    }

    #[test]
    fn pending_ids() {
        let mut p = PendingRpcs::default();
        assert!(p.insert("1", 2, 100));
        assert!(p.insert("1", 2, 100));
        assert!(p.insert("2", 2, 100));
        assert!(!p.insert("3", 2, 100));
        assert!(p.take("1"));
        assert!(!p.take("1"));
        assert_eq!(p.len(), 1);
        // Bytes of ids: "2" and "abc" fit in 4, one more byte does not.
        assert!(p.insert("abc", 10, 4));
        assert!(!p.insert("d", 10, 4));
        assert!(p.take("abc"));
        assert!(p.insert("d", 10, 4));
    }
}
