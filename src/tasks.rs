//! [`Tasks`]: the owner of a component's background tasks. Whatever a component runs in the
//! background is spawned through its `Tasks`, never with a bare `tokio::spawn`; stopping the
//! component stops them all and waits for them, so "everything is stopped" can be checked
//! ([`Tasks::len`]).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A set of tasks with one owner: spawn through it; [`Tasks::stop`] lets them finish within a
/// grace period (they watch their own stop signals and flush what they must), then cancels the
/// rest at their next await point, and waits until none is left.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Tasks {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Runs `task` in the background as one of these tasks (on the current Tokio runtime; outside
    /// a runtime it is dropped, as there is nothing to run it on). A cancelled set drops it at its
    /// next await point.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cancel = self.cancel.clone();
        self.tracker.spawn_on(
            async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = task => {}
                }
            },
            &rt,
        );
    }

    /// How many of these tasks are still running.
    pub(crate) fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether none is running.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Whether [`Tasks::stop`] has cancelled them.
    #[cfg(test)]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Waits up to `grace` for the tasks to end by themselves, cancels those still running, and
    /// waits until none is left. Tasks spawned afterwards are cancelled at once.
    pub(crate) async fn stop(&self, grace: Duration) {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::debug!(
                left = self.tracker.len(),
                "tasks still running after the grace period: cancelling them"
            );
        }
        self.cancel.cancel();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_lets_tasks_finish_then_cancels_the_rest_and_waits() {
        let tasks = Tasks::new();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            let _ = done_tx.send(());
        });
        tasks.spawn(std::future::pending());
        assert!(done_rx.await.is_ok());
        assert_eq!(tasks.len(), 1, "the pending task is still there");
        tasks.stop(Duration::from_millis(10)).await;
        assert!(tasks.is_empty());
        assert!(tasks.is_cancelled());
        tasks.spawn(std::future::pending());
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert!(
            tasks.is_empty(),
            "a task spawned after stop is cancelled at once"
        );
    }
}
