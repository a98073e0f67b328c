//! Group commit: a request waits for the batch it joined, and requests
//! arriving while batches are in flight share the next one (up to a
//! maximum), so that none waits for a timer and a busy service makes one
//! durable write per batch rather than per request. What a batch's write
//! is belongs to the service ([`GroupCommit::new`]'s `flush`); a request is
//! answered only once its batch's write is done.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::phases::{self, Phase};
use crate::{Background, Ctx, Error, Result};

/// Requests waiting for a batch, at most; a request finding it full waits.
const QUEUED: usize = 16_384;

/// How a service batches one kind of write.
pub struct Batching {
    /// The batcher's name among the service's background work.
    pub name: &'static str,
    /// Requests in one batch, at most.
    pub max: usize,
    /// Batches being written at once, at most.
    pub in_flight: usize,
    /// What the requests queued behind a batch are told when that batch
    /// found its store unreachable ([`Error::Unavailable`]).
    pub unreachable: &'static str,
}

type Waiter<R> = oneshot::Sender<Result<R>>;
type Queue<T, R> = Arc<Mutex<mpsc::Receiver<(T, Waiter<R>)>>>;

/// The writes of `T`, each answered with an `R`.
pub struct GroupCommit<T, R> {
    queue: mpsc::Sender<(T, Waiter<R>)>,
}

impl<T, R> Clone for GroupCommit<T, R> {
    fn clone(&self) -> Self {
        GroupCommit {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// The batcher runs as the service's background work; it ends once
    /// every holder of this `GroupCommit` is gone, after the batches in
    /// flight. `flush` writes one batch and answers each of its requests,
    /// in order, or fails the whole batch; it is called on the batcher's
    /// task, so its work belongs in the future it returns (which runs while
    /// the batcher gathers the next batch).
    pub fn new<F, Fut>(ctx: &Ctx, background: &mut Background, how: Batching, flush: F) -> Self
    where
        F: Fn(Ctx, Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Result<R>>>> + Send + 'static,
    {
        let (queue, rx) = mpsc::channel(QUEUED);
        background.spawn(how.name, run(ctx.clone(), rx, how, flush));
        GroupCommit { queue }
    }

    /// Answers once `item`'s batch is written, with its own outcome or the
    /// batch's error.
    pub async fn join(&self, item: T) -> Result<R> {
        let joined = Instant::now();
        let (waiter, outcome) = oneshot::channel();
        let stopped = || Error::Unavailable("the service is stopping".into());
        self.queue
            .send((item, waiter))
            .await
            .map_err(|_| stopped())?;
        let outcome = outcome.await.map_err(|_| stopped())?;
        phases::record(Phase::Batched, joined.elapsed());
        outcome
    }
}

async fn run<T, R, F, Fut>(ctx: Ctx, rx: mpsc::Receiver<(T, Waiter<R>)>, how: Batching, flush: F)
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(Ctx, Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<Result<R>>>> + Send + 'static,
{
    let in_flight = Arc::new(Semaphore::new(how.in_flight.max(1)));
    let queue: Queue<T, R> = Arc::new(Mutex::new(rx));
    let batches = TaskTracker::new();
    loop {
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut batch = Vec::new();
        if queue.lock().await.recv_many(&mut batch, how.max).await == 0 {
            break;
        }
        let (items, waiters): (Vec<T>, Vec<Waiter<R>>) = batch.into_iter().unzip();
        let written = flush(ctx.clone(), items);
        let queue = Arc::clone(&queue);
        let unreachable = how.unreachable;
        batches.spawn(
            async move {
                let outcome = written.await;
                if let Err(Error::Unavailable(_)) = &outcome {
                    fail_queued(&queue, unreachable);
                }
                drop(permit);
                answer(waiters, outcome);
            }
            .in_current_span(),
        );
    }
    batches.close();
    batches.wait().await;
}

/// Each waiter gets its own outcome, or a copy of the batch's error.
fn answer<R>(waiters: Vec<Waiter<R>>, outcome: Result<Vec<Result<R>>>) {
    match outcome {
        Ok(outcomes) if outcomes.len() == waiters.len() => {
            for (waiter, outcome) in waiters.into_iter().zip(outcomes) {
                let _ = waiter.send(outcome);
            }
        }
        Ok(outcomes) => {
            let e = Error::Internal(anyhow::anyhow!(
                "a batch of {} was answered {} times",
                waiters.len(),
                outcomes.len()
            ));
            tracing::error!(error = %e, "a batch's write miscounted");
            for waiter in waiters {
                let _ = waiter.send(Err(e.shared()));
            }
        }
        Err(e) => {
            for waiter in waiters {
                let _ = waiter.send(Err(e.shared()));
            }
        }
    }
}

/// The store could not be reached: the requests queued behind the batch
/// that found it out are answered 503 now, unwritten (`unreachable`: not the
/// batch's own error, which may say its write could have happened), instead
/// of each batch waiting out the same timeout in turn. When the batcher is
/// waiting for requests (it holds the queue), none is queued.
fn fail_queued<T, R>(queue: &Queue<T, R>, unreachable: &str) {
    if let Ok(mut queued) = queue.try_lock() {
        while let Ok((_, waiter)) = queued.try_recv() {
            let _ = waiter.send(Err(Error::Unavailable(unreachable.into())));
        }
    }
}
