//! [`Tasks`]: the owner of a component's background tasks. Whatever a component runs in the
//! background is spawned through its `Tasks`, never with a bare `tokio::spawn`; stopping the
//! component stops them all and waits for them, so "everything is stopped" can be checked
//! ([`Tasks::len`]).

use std::future::Future;
use std::time::Duration;

use tokio_util::future::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A set of tasks with one owner: spawn through it; [`Tasks::stop`] lets them finish within a
/// grace period (they watch their own stop signals and flush what they must), then cancels the
/// rest at their next await point, and waits until none is left.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Tasks {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` in the background as one of these tasks (on the current Tokio runtime; outside
    /// a runtime it is dropped, as there is nothing to run it on). A cancelled set drops it at its
    /// next await point.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.try_spawn(task);
    }

    /// [`Tasks::spawn`], saying whether the task runs: false outside a Tokio runtime and once the
    /// set is stopped (then `task` is dropped, or cancelled at once). Lazily started tasks use it
    /// to try again later instead of believing they run.
    pub fn try_spawn<F>(&self, task: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.cancel.is_cancelled() {
            return false;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        // A named future around the task, not an `async` block selecting over it: the block
        // would hold the task's state twice (captured, and being polled), doubling the memory
        // of every connection's task.
        let cancellable = task.with_cancellation_token_owned(self.cancel.clone());
        self.tracker.spawn_on(cancellable, &rt);
        true
    }

    /// How many of these tasks are still running.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether none is running.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Whether [`Tasks::stop`] has cancelled them.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Waits up to `grace` for the tasks to end by themselves, cancels those still running, and
    /// waits until none is left. Tasks spawned afterwards are cancelled at once. Returns whether
    /// they all ended within the grace period (false: some were cancelled).
    pub async fn stop(&self, grace: Duration) -> bool {
        self.tracker.close();
        let in_time = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        if !in_time {
            tracing::debug!(
                left = self.tracker.len(),
                "tasks still running after the grace period: cancelling them"
            );
        }
        self.cancel.cancel();
        self.tracker.wait().await;
        in_time
    }

    /// Cancels every task at its next await point without waiting (what an owner's `Drop` does;
    /// [`Tasks::stop`] is the orderly way).
    pub fn cancel(&self) {
        self.tracker.close();
        self.cancel.cancel();
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
