//! What the broker engines' tests share: pausing the broker's process, and the scenarios that
//! read the same on every broker.

use std::net::SocketAddr;
use std::time::Duration;

use super::WsClient;
use super::sgc::*;

/// The channel of [`a_first_subscriber_waits_for_the_broker`].
pub const LATE_CHANNEL: &str = "late";

/// The id of `child`, the test's `what` process; fails the test when it is not running.
pub fn pid_of(child: Option<&std::process::Child>, what: &str) -> u32 {
    child
        .map(std::process::Child::id)
        .unwrap_or_else(|| panic!("{what} is not running"))
}

/// A broker process started by a test (`redis-server`, a Redis Cluster master, `nats-server`).
pub trait BrokerProcess {
    /// The process id, while it runs.
    fn pid(&self) -> u32;

    /// Stops the process (`SIGSTOP`, [`BrokerProcess::resume`] undoes it): connections stay
    /// open, what clients write waits unread in the sockets.
    fn pause(&self) {
        super::send_signal(self.pid(), "STOP");
    }

    /// Lets a paused process run again (`SIGCONT`).
    fn resume(&self) {
        super::send_signal(self.pid(), "CONT");
    }
}

/// [`LATE_CHANNEL`]'s first subscriber on node `subscriber` (per-channel routing, a response timeout
/// far above half a second) is answered only once `broker` has processed its subscription: not
/// while the broker is paused, at once when it runs again; then a publish from node `publisher`
/// reaches it, once.
pub async fn a_first_subscriber_waits_for_the_broker(
    broker: &impl BrokerProcess,
    publisher: SocketAddr,
    subscriber: SocketAddr,
) {
    let (mut sub, _) = WsClient::sgc(subscriber).await;
    // The broker reads nothing: the subscription is written to the socket, but not processed.
    broker.pause();
    sub.send(&delphi::subscribe(LATE_CHANNEL)).await;
    let early = tokio::time::timeout(Duration::from_millis(500), sub.next_frame()).await;
    broker.resume();
    assert!(
        early.is_err(),
        "answered before the broker had the subscription: {early:?}"
    );
    sub.expect(&s3(LATE_CHANNEL, Some("qosLevel0"), None)).await;
    let (mut p, _) = WsClient::sgc(publisher).await;
    p.send(&delphi::publish("\"first\"", LATE_CHANNEL, "queueLevel0"))
        .await;
    sub.expect(&s5(LATE_CHANNEL, "\"first\"")).await;
    sub.barrier().await;
}
