//! One queue of requests that each wait for their own answer, served in batches by one task:
//! what GC's busy paths share a statement or a call through (creates, the meeting reads of
//! joins and their admissions in `db`, the joins sent to each meeting controller and the
//! meeting tokens asked of AC in `clients`).
//!
//! [`Batcher::submit`] queues a request and waits for its answer. The queue's task takes the
//! first request queued, then what is queued already, without waiting for more, while the
//! requests' total weight stays within the batch's maximum (a request heavier than that goes
//! alone); with a linger, it also waits that long for more (AC's tokens: 1 ms). It hands the batch to its
//! server, which answers each request ([`Item::answer`]); one batch at a time, so what was
//! queued while one was served goes in the next. The queue is bounded: a full queue makes
//! callers wait, never grows. The task ends when the last handle is dropped, after serving
//! what is queued; a request whose caller has gone is still served unless the server skips
//! it ([`Item::is_abandoned`]): a room's seat is recorded even when its client hung up.

use std::future::Future;
use std::time::Duration;

use common::shell::Background;
use tokio::sync::{mpsc, oneshot};

/// The one error of every batch queue: its task has stopped (GC is shutting down), or it
/// dropped the request unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {queue} queue has stopped")]
pub struct Stopped {
    pub queue: &'static str,
}

impl From<Stopped> for sqlx::Error {
    fn from(_: Stopped) -> Self {
        // What the database paths report when their work can no longer be done: a 503.
        sqlx::Error::PoolClosed
    }
}

/// How a queue gathers its batches.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// The queue's name (logs and the [`Stopped`] error).
    pub name: &'static str,
    /// Requests waiting, at most.
    pub capacity: usize,
    /// Total weight of one batch, at most.
    pub max_weight: usize,
    /// How long a batch waits for more after its first request; `None`: not at all.
    pub linger: Option<Duration>,
}

/// One queued request and the way to answer it.
pub struct Item<T, R> {
    pub request: T,
    reply: oneshot::Sender<R>,
}

impl<T, R> Item<T, R> {
    /// Answers the caller (nothing happens if it has gone).
    pub fn answer(self, answer: R) {
        let _ = self.reply.send(answer);
    }

    /// The caller no longer waits for the answer.
    pub fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// The handle requests are queued through; clones share the queue.
pub struct Batcher<T, R> {
    queue: mpsc::Sender<Item<T, R>>,
    name: &'static str,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            name: self.name,
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the queue's task on `background` (the shell's, so a stop waits for it to serve
    /// what is queued once the last handle is gone). `weight` weighs a request against
    /// [`Shape::max_weight`]; `serve` answers every item of a batch.
    pub fn start<F, Fut>(
        shape: Shape,
        weight: fn(&T) -> usize,
        mut serve: F,
        background: &Background,
    ) -> Self
    where
        F: FnMut(Vec<Item<T, R>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (queue, pending) = mpsc::channel(shape.capacity.max(1));
        let mut gatherer = Gatherer {
            queue: pending,
            shape,
            weight,
            carried: None,
        };
        background.spawn(shape.name, async move {
            while let Some(batch) = gatherer.next().await {
                serve(batch).await;
            }
        });
        Self {
            queue,
            name: shape.name,
        }
    }

    /// Queues `request` and waits for its answer.
    pub async fn submit(&self, request: T) -> Result<R, Stopped> {
        let stopped = Stopped { queue: self.name };
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Item { request, reply })
            .await
            .map_err(|_| stopped)?;
        answer.await.map_err(|_| stopped)
    }
}

/// Gathers batches from a queue: the first request waiting, then what is queued (and, with a
/// linger, what comes meanwhile) while the total weight stays within the maximum. A request
/// that would take a batch over it waits for the next batch, which it starts (alone, if it is
/// heavier than the maximum by itself).
struct Gatherer<T, R> {
    queue: mpsc::Receiver<Item<T, R>>,
    shape: Shape,
    weight: fn(&T) -> usize,
    /// Taken from the queue, left for the next batch.
    carried: Option<Item<T, R>>,
}

impl<T, R> Gatherer<T, R> {
    /// The next batch; `None` once the queue is closed and empty.
    async fn next(&mut self) -> Option<Vec<Item<T, R>>> {
        let first = match self.carried.take() {
            Some(first) => first,
            None => self.queue.recv().await?,
        };
        let mut total = (self.weight)(&first.request);
        let mut batch = vec![first];
        while let Ok(next) = self.queue.try_recv() {
            if !self.fits(&mut total, next, &mut batch) {
                return Some(batch);
            }
        }
        if let Some(linger) = self.shape.linger {
            let deadline = tokio::time::sleep(linger);
            tokio::pin!(deadline);
            while total < self.shape.max_weight {
                tokio::select! {
                    biased;
                    next = self.queue.recv() => match next {
                        Some(next) => {
                            if !self.fits(&mut total, next, &mut batch) {
                                break;
                            }
                        }
                        None => break,
                    },
                    () = &mut deadline => break,
                }
            }
        }
        Some(batch)
    }

    /// Adds `next` to the batch if it fits, else keeps it for the next one.
    fn fits(&mut self, total: &mut usize, next: Item<T, R>, batch: &mut Vec<Item<T, R>>) -> bool {
        let weight = (self.weight)(&next.request);
        if total.saturating_add(weight) > self.shape.max_weight {
            self.carried = Some(next);
            return false;
        }
        *total += weight;
        batch.push(next);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn shape(max_weight: usize, linger: Option<Duration>) -> Shape {
        Shape {
            name: "test",
            capacity: 64,
            max_weight,
            linger,
        }
    }

    /// The batches a test's batcher served, in order.
    type Served = Arc<Mutex<Vec<Vec<usize>>>>;

    /// A batcher that doubles its requests and records the batches it served.
    fn doubler(shape: Shape) -> (Batcher<usize, usize>, Served) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&batches);
        let batcher = Batcher::start(
            shape,
            |n: &usize| *n,
            move |items: Vec<Item<usize, usize>>| {
                seen.lock()
                    .unwrap()
                    .push(items.iter().map(|i| i.request).collect());
                async move {
                    for item in items {
                        let double = item.request * 2;
                        item.answer(double);
                    }
                }
            },
            &Background::default(),
        );
        (batcher, batches)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn what_is_queued_together_is_served_together_up_to_the_weight() {
        let (batcher, batches) = doubler(shape(4, None));
        // All queued before the task runs (one thread): 1+1+2 fills a batch of 4, 3 is next,
        // 5 is heavier than a batch and goes alone.
        let answers = futures::future::join_all([1, 1, 2, 3, 5].map(|n| batcher.submit(n))).await;
        assert_eq!(
            answers.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            [2, 2, 4, 6, 10]
        );
        assert_eq!(*batches.lock().unwrap(), [vec![1, 1, 2], vec![3], vec![5]]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lone_request_is_served_at_once_without_a_linger() {
        let (batcher, batches) = doubler(shape(100, None));
        assert_eq!(batcher.submit(7).await, Ok(14));
        assert_eq!(batcher.submit(8).await, Ok(16));
        assert_eq!(*batches.lock().unwrap(), [vec![7], vec![8]]);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_linger_gathers_what_comes_meanwhile() {
        let (batcher, batches) = doubler(shape(100, Some(Duration::from_millis(5))));
        let early = batcher.submit(1);
        let late = {
            let batcher = batcher.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                batcher.submit(2).await
            }
        };
        let too_late = {
            let batcher = batcher.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                batcher.submit(3).await
            }
        };
        let (a, b, c) = tokio::join!(early, late, too_late);
        assert_eq!((a, b, c), (Ok(2), Ok(4), Ok(6)));
        assert_eq!(*batches.lock().unwrap(), [vec![1, 2], vec![3]]);
    }

    /// The queue's task runs under the shell: a stop's last step waits for the batch being
    /// served, and the caller gets its answer.
    #[tokio::test(flavor = "current_thread")]
    async fn a_stop_waits_for_the_queue_to_answer_what_it_holds() {
        use common::shell::{Shell, ShutdownTimings};

        let shell = Shell::new(
            "test",
            ShutdownTimings {
                readiness_grace: Duration::ZERO,
                ..ShutdownTimings::default()
            },
        );
        let background = shell.handle().background().clone();
        let (started, serving) = oneshot::channel::<()>();
        let (release, gate) = oneshot::channel::<()>();
        let mut hooks = Some((started, gate));
        let batcher: Batcher<u8, u8> = Batcher::start(
            shape(10, None),
            |_| 1,
            move |items: Vec<Item<u8, u8>>| {
                let hooks = hooks.take();
                async move {
                    if let Some((started, gate)) = hooks {
                        let _ = started.send(());
                        let _ = gate.await;
                    }
                    for item in items {
                        let doubled = item.request * 2;
                        item.answer(doubled);
                    }
                }
            },
            &background,
        );
        // The caller holds the last handle until it is answered.
        let answer = tokio::spawn(async move { batcher.submit(21).await });
        serving.await.unwrap();

        let stop = tokio::spawn(shell.run(async {}));
        background.finishing().cancelled().await;
        assert!(
            !stop.is_finished(),
            "the stop ended with a batch unanswered"
        );
        release.send(()).unwrap();

        stop.await.unwrap();
        assert_eq!(answer.await.unwrap(), Ok(42));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unanswered_request_is_the_one_error() {
        let batcher: Batcher<u8, u8> = Batcher::start(
            shape(10, None),
            |_| 1,
            |items| {
                drop(items);
                async {}
            },
            &Background::default(),
        );
        assert_eq!(batcher.submit(1).await, Err(Stopped { queue: "test" }));
        assert_eq!(
            Stopped { queue: "test" }.to_string(),
            "the test queue has stopped"
        );
    }
}
