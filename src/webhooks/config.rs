//! The `[webhooks]` section: where lifecycle events are POSTed, how they are signed, which types
//! are sent, and the bounds of the retry queue.

use serde::{Deserialize, Serialize};

use super::event::EventType;

/// Shortest accepted signing secret, in bytes.
pub(crate) const MIN_SECRET_LEN: usize = 16;

/// Lifecycle webhooks (off while `url` is empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Where events are POSTed: an `http://` or `https://` URL. Empty: no webhooks.
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Wscluster-Signature` header, at least
    /// [`MIN_SECRET_LEN`] bytes. Better given by `secret_file` or `WSCLUSTER_WEBHOOKS__SECRET`.
    pub secret: String,
    /// A file holding the signing secret (one trailing newline is ignored); read by
    /// [`Config::load`](crate::Config::load). Not together with `secret`.
    pub secret_file: String,
    /// The secret read from `secret_file`.
    #[serde(skip)]
    pub secret_from_file: Option<String>,
    /// `https://` only: the CA certificates (PEM) the target's certificate must chain to; empty:
    /// the system's CA certificates.
    pub ca_file: String,
    /// The event types sent (names as in the `type` field); empty: every type.
    pub events: Vec<String>,
    /// How long one POST may take (connect, TLS, request and response head), in milliseconds.
    pub timeout_ms: u64,
    /// Most events in one POST.
    pub max_batch: usize,
    /// How long an event is retried (exponential backoff) before it is dropped, in milliseconds
    /// from when it happened.
    pub retry_max_ms: u64,
    /// Cap of the events waiting to be delivered (and of the events of crashed nodes kept until
    /// they are delivered), in bytes of their JSON; an event that would pass it is dropped and
    /// counted in `wscluster_webhook_events_dropped_total{reason="queue_full"}`.
    pub queue_bytes: usize,
    /// Cap of the other nodes' open connection ids this node keeps (to report them closed should
    /// their node crash), in bytes; ids past it are not kept, and counted in
    /// `wscluster_webhook_events_dropped_total{reason="replica_full"}`.
    pub replica_bytes: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            secret: String::new(),
            secret_file: String::new(),
            secret_from_file: None,
            ca_file: String::new(),
            events: Vec::new(),
            timeout_ms: 5_000,
            max_batch: 100,
            retry_max_ms: 60_000,
            queue_bytes: 4 * 1024 * 1024,
            replica_bytes: 16 * 1024 * 1024,
        }
    }
}

impl WebhooksConfig {
    /// Whether webhooks are on (a URL is set).
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// The secret in force: the one read from `secret_file`, else `secret`.
    pub fn effective_secret(&self) -> &str {
        self.secret_from_file.as_deref().unwrap_or(&self.secret)
    }

    /// Whether events of type `t` are sent.
    pub fn wants(&self, t: EventType) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == t.name())
    }

    /// Reads `secret_file` (when set) into `secret_from_file`: the file's text without one
    /// trailing newline. Errors name the key.
    pub fn load_secret_file(&mut self) -> Result<(), (&'static str, String)> {
        if self.secret_file.is_empty() {
            self.secret_from_file = None;
            return Ok(());
        }
        if !self.secret.is_empty() {
            return Err((
                "webhooks.secret_file",
                "webhooks.secret and webhooks.secret_file are both set: keep one (the file)".into(),
            ));
        }
        let text = std::fs::read_to_string(&self.secret_file).map_err(|e| {
            (
                "webhooks.secret_file",
                format!("cannot read {:?}: {e}", self.secret_file),
            )
        })?;
        let text = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        self.secret_from_file = Some(text.to_owned());
        Ok(())
    }

    /// Every value that cannot work, each with its key. Nothing is checked while `url` is empty
    /// but the event names.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for e in &self.events {
            if EventType::parse(e).is_none() {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
                out.push((
                    "webhooks.events",
                    format!("{e:?} is not one of {}", known.join(", ")),
                ));
            }
        }
        if !self.enabled() {
            return out;
        }
        if let Err(message) = super::client::Target::parse(&self.url) {
            out.push(("webhooks.url", message));
        }
        let secret = self.effective_secret();
        let key = if self.secret_from_file.is_some() {
            "webhooks.secret_file"
        } else {
            "webhooks.secret"
        };
        if secret.len() < MIN_SECRET_LEN {
            out.push((
                key,
                format!(
                    "webhooks.url is set: a signing secret of at least {MIN_SECRET_LEN} bytes is \
                     required (`wscluster gen-secret` makes one)"
                ),
            ));
        }
        for (key, value) in [
            ("webhooks.timeout_ms", self.timeout_ms),
            ("webhooks.max_batch", self.max_batch as u64),
            ("webhooks.queue_bytes", self.queue_bytes as u64),
            ("webhooks.replica_bytes", self.replica_bytes as u64),
        ] {
            if value == 0 {
                out.push((key, "must be greater than 0".into()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> WebhooksConfig {
        WebhooksConfig {
            url: "http://127.0.0.1:9/hook".into(),
            secret: "0123456789abcdef".into(),
            ..WebhooksConfig::default()
        }
    }

    #[test]
    fn off_by_default_and_a_set_url_needs_a_long_secret() {
        assert!(!WebhooksConfig::default().enabled());
        assert!(WebhooksConfig::default().problems().is_empty());
        assert!(on().problems().is_empty());
        let short = WebhooksConfig {
            secret: "short".into(),
            ..on()
        };
        assert_eq!(short.problems()[0].0, "webhooks.secret");
    }

    #[test]
    fn bad_urls_event_names_and_zeros_are_named() {
        let keys = |c: WebhooksConfig| c.problems().into_iter().map(|p| p.0).collect::<Vec<_>>();
        for url in [
            "ftp://x/",
            "127.0.0.1:80",
            "http://",
            "http://h:99999/",
            "http://u@h/",
        ] {
            let c = WebhooksConfig {
                url: url.into(),
                ..on()
            };
            assert_eq!(keys(c), ["webhooks.url"], "{url}");
        }
        let c = WebhooksConfig {
            events: vec!["member_joined".into(), "member_gone".into()],
            ..on()
        };
        assert_eq!(keys(c), ["webhooks.events"]);
        let c = WebhooksConfig {
            max_batch: 0,
            ..on()
        };
        assert_eq!(keys(c), ["webhooks.max_batch"]);
    }

    #[test]
    fn event_filter() {
        let c = WebhooksConfig {
            events: vec!["member_left".into()],
            ..on()
        };
        assert!(c.wants(EventType::MemberLeft));
        assert!(!c.wants(EventType::MemberJoined));
        assert!(on().wants(EventType::ChannelVacated));
    }
}
