//! Work that outlives its request, bounded.
//!
//! A use case that writes both the room (Redis, through its controller) and PostgreSQL must
//! not stop between the two writes when its client hangs up: it runs as a task of its own,
//! which the request only waits for (the join's seat, and the lobby, leave, end and config
//! handlers). Such a task is no longer bounded by the listener's connections or the request's
//! timeout, so a client that sends requests and hangs up at once, or a stalled database that
//! keeps every task waiting, could pile up tasks without end. [`Detached`] holds one permit per
//! running task, at most [`MAX_DETACHED`]: a request waits for a permit before its task starts
//! (waiting is part of the request, cancelled with it and bounded by its timeout, and starts
//! nothing), and the task gives the permit back when it ends. The tasks run on the shell's
//! tracker (`ShellHandle::tracker`), so a stop waits for them as for the requests that
//! started them.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::error::Error;

/// Tasks running on after their request, at most, per GC replica (as many as the listener's
/// connections by default).
pub const MAX_DETACHED: usize = 4096;

/// The limit on tasks that outlive their request, and where they run; clones share both.
#[derive(Clone)]
pub struct Detached {
    permits: Arc<Semaphore>,
    tasks: TaskTracker,
}

impl Default for Detached {
    /// At most [`MAX_DETACHED`], on a tracker nobody waits for (tests that build the use
    /// cases' context themselves).
    fn default() -> Self {
        Self::new(MAX_DETACHED, TaskTracker::new())
    }
}

impl Detached {
    /// At most `max` tasks at once, run on `tasks` (the shell's tracker).
    pub fn new(max: usize, tasks: TaskTracker) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            tasks,
        }
    }

    /// Runs `work` to its end as a task of its own, in the current span, and returns its
    /// result. The task starts once a permit is free; a caller dropped before that started
    /// nothing, one dropped after leaves the task running until its end.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("the limit on detached tasks was closed"))?;
        self.tasks
            .spawn(
                async move {
                    let result = work.await;
                    drop(permit);
                    result
                }
                .in_current_span(),
            )
            .await
            .map_err(|_| Error::Internal("a request's task failed"))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::FutureExt;
    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn work_runs_to_its_end_when_its_caller_is_dropped() {
        let detached = Detached::new(1, TaskTracker::new());
        let (release, gate) = oneshot::channel::<()>();
        let (finished, done) = oneshot::channel();
        let caller = detached.run(async move {
            let _ = gate.await;
            let _ = finished.send(());
            Ok(())
        });
        // One poll starts the task; then the caller is gone, as a client that hung up.
        assert!(caller.now_or_never().is_none());
        assert_eq!(detached.running(1), 1);
        release.send(()).unwrap();
        done.await
            .expect("the work ran to its end without its caller");
        // The permit comes back when the task ends.
        let _again = detached.permits.acquire().await.unwrap();
    }

    #[tokio::test]
    async fn no_more_tasks_run_at_once_than_the_limit() {
        let detached = Detached::new(2, TaskTracker::new());
        let mut gates = Vec::new();
        let mut callers = Vec::new();
        for _ in 0..2 {
            let (release, gate) = oneshot::channel::<()>();
            let (started, running) = oneshot::channel();
            gates.push(release);
            callers.push(tokio::spawn(detached.clone().run_owned(async move {
                let _ = started.send(());
                let _ = gate.await;
                Ok(())
            })));
            running.await.unwrap();
        }
        assert_eq!(detached.running(2), 2);

        // A third waits for a permit and has not started; dropped while waiting, it never does.
        let started = Arc::new(AtomicBool::new(false));
        let third = {
            let started = Arc::clone(&started);
            detached.run(async move {
                started.store(true, Ordering::SeqCst);
                Ok(())
            })
        };
        assert!(third.now_or_never().is_none());
        assert_eq!(detached.running(2), 2);

        for release in gates {
            release.send(()).unwrap();
        }
        for caller in callers {
            caller.await.unwrap().unwrap();
        }
        // Permits flow again: a fourth runs at once, and the dropped third never ran.
        detached.run(async { Ok(()) }).await.unwrap();
        assert!(!started.load(Ordering::SeqCst));
        assert_eq!(detached.running(2), 0);
    }

    #[tokio::test]
    async fn the_work_runs_on_the_tracker_a_stop_waits_for() {
        let tracker = TaskTracker::new();
        let detached = Detached::new(1, tracker.clone());
        let (release, gate) = oneshot::channel::<()>();
        let caller = detached.run(async move {
            let _ = gate.await;
            Ok(())
        });
        // Started, and its caller gone.
        assert!(caller.now_or_never().is_none());

        // What the shell's drain step does.
        tracker.close();
        let mut drained = std::pin::pin!(tracker.wait());
        assert!(
            (&mut drained).now_or_never().is_none(),
            "the stop waits for the work"
        );
        release.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), drained)
            .await
            .expect("the stop waited on after the work ended");
    }

    impl Detached {
        /// Tasks running now, of at most `max`.
        fn running(&self, max: usize) -> usize {
            max - self.permits.available_permits()
        }

        async fn run_owned(
            self,
            work: impl Future<Output = Result<(), Error>> + Send + 'static,
        ) -> Result<(), Error> {
            self.run(work).await
        }
    }
}
