//! Per-channel subscriptions on a broker (per-channel routing): a node subscribes to an sgc
//! channel's stream on its first local subscriber and leaves it after its last. The engine's
//! subscriber task carries out the [`Command`]s in order.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::BrokerCore;
use crate::relay::InterestReady;

/// How long a first local subscriber waits for the broker to confirm the channel's subscription
/// before it is confirmed anyway.
pub(crate) const SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);

/// A first-subscriber callback that runs once, whichever comes first: the subscription is
/// confirmed, the broker is away, the wait timed out, or the engine stopped (the last clone is
/// dropped: a subscriber never waits for an engine that is gone).
#[derive(Clone)]
pub(crate) struct ReadyOnce(Arc<Pending>);

/// The callback not yet run; run when dropped.
struct Pending(Mutex<Option<InterestReady>>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(ready) = self.0.lock().take() {
            ready();
        }
    }
}

impl ReadyOnce {
    /// Wraps `ready`.
    pub(crate) fn new(ready: InterestReady) -> Self {
        Self(Arc::new(Pending(Mutex::new(Some(ready)))))
    }
    /// Runs the callback unless it already ran.
    pub(crate) fn fire(&self) {
        let ready = self.0.0.lock().take();
        if let Some(ready) = ready {
            ready();
        }
    }
}

/// A change of the per-channel subscriptions, carried out by the subscriber task.
pub(crate) enum Command {
    /// Subscribe to a stream; fire the callback once the broker confirmed it.
    Subscribe(Arc<str>, ReadyOnce),
    /// Leave a stream.
    Unsubscribe(Arc<str>),
}

impl Command {
    /// Fires the callback of a subscription that will not be made now (the broker is away: it is
    /// made with the others when the subscription comes back).
    pub(crate) fn give_up(self) {
        if let Command::Subscribe(_, ready) = self {
            ready.fire();
        }
    }
}

/// The sending side of an engine's subscription commands.
pub(crate) struct Subscriptions {
    commands: mpsc::UnboundedSender<Command>,
}

impl Subscriptions {
    /// A command channel; the receiver goes to the subscriber task.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (commands, rx) = mpsc::unbounded_channel();
        (Self { commands }, rx)
    }

    /// Subscribes to sgc channel `channel`'s stream; `ready` runs once the broker confirmed it
    /// (at once while the broker is away, at most [`SUBSCRIBE_WAIT`] later in any case).
    pub(crate) fn subscribe(&self, core: &BrokerCore, channel: &str, ready: InterestReady) {
        let ready = ReadyOnce::new(ready);
        if !core.subscriber_up() {
            ready.fire();
        } else {
            let later = ready.clone();
            core.spawn(async move {
                tokio::time::sleep(SUBSCRIBE_WAIT).await;
                later.fire();
            });
        }
        let name = Arc::from(core.names().channel(channel));
        if self
            .commands
            .send(Command::Subscribe(name, ready.clone()))
            .is_err()
        {
            ready.fire();
        }
    }

    /// Leaves sgc channel `channel`'s stream.
    pub(crate) fn unsubscribe(&self, core: &BrokerCore, channel: &str) {
        let name = Arc::from(core.names().channel(channel));
        let _ = self.commands.send(Command::Unsubscribe(name));
    }
}
