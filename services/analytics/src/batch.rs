//! Group commit, the same in both modes: a click waits for the batch it
//! joined, and clicks arriving while batches are in flight share the next
//! one (up to `CLICK_BATCH_SIZE`), so that no click waits for a timer and a
//! busy service makes one durable write per batch rather than per click.
//! What makes a batch durable, and how many may be in flight, is the mode's
//! business ([`seam::flush`]: one committed INSERT in sync mode, one
//! confirmed publish in async mode); a click is answered only once its
//! batch is.

use std::sync::Arc;
use std::time::Instant;

use common::phases::{self, Phase};
use common::{Background, Ctx, Error, Result};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{Keyed, seam};

/// Clicks waiting for a batch, at most; a request finding it full waits.
const QUEUED: usize = 16_384;

type Waiter = oneshot::Sender<Result<()>>;
type Queue = Arc<Mutex<mpsc::Receiver<(Keyed, Waiter)>>>;

#[derive(Clone)]
pub struct Clicks {
    queue: mpsc::Sender<(Keyed, Waiter)>,
}

impl Clicks {
    /// The batcher runs as the service's background work; it ends once
    /// every request holding a `Clicks` has finished, after the batches in
    /// flight.
    pub fn new(ctx: &Ctx, background: &mut Background) -> Self {
        let (queue, rx) = mpsc::channel(QUEUED);
        background.spawn("click batcher", run(ctx.clone(), rx));
        Clicks { queue }
    }

    /// Answers once the click's batch is durable, with the batch's error if
    /// it is not.
    pub async fn record(&self, click: Keyed) -> Result<()> {
        let joined = Instant::now();
        let (waiter, outcome) = oneshot::channel();
        let stopped = || Error::Unavailable("click ingestion is stopping".into());
        self.queue
            .send((click, waiter))
            .await
            .map_err(|_| stopped())?;
        let outcome = outcome.await.map_err(|_| stopped())?;
        phases::record(Phase::Batched, joined.elapsed());
        outcome
    }
}

async fn run(ctx: Ctx, rx: mpsc::Receiver<(Keyed, Waiter)>) {
    let max = usize::from(ctx.settings.click_batch_size);
    let in_flight = Arc::new(Semaphore::new(seam::in_flight(&ctx.settings)));
    let queue: Queue = Arc::new(Mutex::new(rx));
    let batches = TaskTracker::new();
    loop {
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut batch = Vec::new();
        if queue.lock().await.recv_many(&mut batch, max).await == 0 {
            break;
        }
        let (ctx, queue) = (ctx.clone(), Arc::clone(&queue));
        batches.spawn(
            async move {
                let (clicks, waiters): (Vec<Keyed>, Vec<Waiter>) = batch.into_iter().unzip();
                let outcome = seam::flush(&ctx, clicks).await;
                if let Err(Error::Unavailable(_)) = &outcome {
                    fail_queued(&queue);
                }
                drop(permit);
                for waiter in waiters {
                    let _ = waiter.send(outcome.as_ref().map_err(Error::shared).copied());
                }
            }
            .in_current_span(),
        );
    }
    batches.close();
    batches.wait().await;
}

/// The database (sync) or the broker (async) could not be reached: the
/// clicks queued behind the batch that found it out are answered 503 now,
/// unwritten and never sent ([`seam::UNREACHABLE`]: not the batch's own
/// error, which may say its message could have arrived), instead of each
/// batch waiting out the same timeout in turn. When the batcher is waiting
/// for clicks (it holds the queue), none is queued.
fn fail_queued(queue: &Queue) {
    if let Ok(mut queued) = queue.try_lock() {
        while let Ok((_, waiter)) = queued.try_recv() {
            let _ = waiter.send(Err(Error::Unavailable(seam::UNREACHABLE.into())));
        }
    }
}
