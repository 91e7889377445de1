//! Per-channel subscriptions on a broker (per-channel routing): a node subscribes to an sgc
//! channel's stream on its first local subscriber and leaves it after its last. The engine's
//! subscriber task carries out the [`Command`]s in order.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::BrokerCore;
use crate::relay::InterestReady;

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
    /// Runs the callback unless it already ran; whether it ran now.
    pub(crate) fn fire(&self) -> bool {
        let ready = self.0.0.lock().take();
        let ran = ready.is_some();
        if let Some(ready) = ready {
            ready();
        }
        ran
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
    /// (at once while the broker is away, at most the engine's response timeout later in any
    /// case).
    pub(crate) fn subscribe(&self, core: &BrokerCore, channel: &str, ready: InterestReady) {
        let ready = ReadyOnce::new(ready);
        if !core.subscriber_up() {
            ready.fire();
        } else {
            let later = ready.clone();
            let wait = core.subscribe_wait();
            let engine = core.engine_name();
            core.spawn(async move {
                tokio::time::sleep(wait).await;
                if later.fire() {
                    tracing::warn!(
                        engine,
                        wait_ms = wait.as_millis() as u64,
                        "the broker did not confirm a channel subscription in time; its first subscriber was answered anyway"
                    );
                }
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
