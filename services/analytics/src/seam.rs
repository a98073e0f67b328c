//! How a click becomes durable, and how analytics hears of product changes:
//! the only place in this service where the mode forks.

use common::events::Consumer;
#[cfg(not(feature = "async"))]
use common::{Background, Ctx, Result};

#[cfg(not(feature = "async"))]
use crate::Click;

/// Sync: nothing is shared between requests.
#[cfg(not(feature = "async"))]
#[derive(Clone)]
pub struct Clicks;

#[cfg(not(feature = "async"))]
impl Clicks {
    pub fn new(_: &Ctx, _: &mut Background) -> Self {
        Clicks
    }
}

/// Sync: one INSERT per request, committed before the answer. That is what
/// synchronous ingestion costs. A key already stored stores nothing more.
#[cfg(not(feature = "async"))]
pub async fn record_click(ctx: &Ctx, _: &Clicks, click: Click, key: Option<String>) -> Result<()> {
    let stored = sqlx::query(
        "INSERT INTO clicks (user_id, page, idempotency_key) VALUES ($1, $2, $3)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(click.user_id)
    .bind(&click.page)
    .bind(key)
    .execute(&ctx.db)
    .await?
    .rows_affected();
    crate::deduplicated(ctx, 1 - stored);
    Ok(())
}

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

#[cfg(feature = "async")]
pub use batching::{Clicks, record_click};

#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[
    Consumer {
        queue: "analytics.clicks",
        prefetch: |settings| settings.broker.click_batch_size,
        handle: common::events::Handle::Batch(|ctx, batch| Box::pin(batching::store(ctx, batch))),
    },
    Consumer {
        queue: "analytics.product-changed",
        prefetch: common::events::prefetch,
        handle: common::events::Handle::One(|ctx, msg| {
            Box::pin(common::inbound::consume(ctx, msg, &crate::LOG_UPDATE))
        }),
    },
];

/// Async: clicks go to the broker, answered 200 only once the broker confirmed
/// them (durable); a consumer stores them in batches.
///
/// Requests arriving while a publish is in flight share the next one (group
/// commit): up to `CLICK_BATCH_SIZE` clicks per message, so the broker sees a
/// few hundred messages a second instead of one per click, and no click
/// waits for a timer.
#[cfg(feature = "async")]
mod batching {
    use std::sync::Arc;

    use chrono::Utc;
    use common::bus::Envelope;
    use common::events::{Incoming, claim_all, completed};
    use common::{Background, Ctx, Error, Result};
    use serde::{Deserialize, Serialize};
    use tokio::sync::{Semaphore, mpsc, oneshot};
    use tokio_util::task::TaskTracker;
    use uuid::Uuid;

    use crate::Click;

    /// Publishes in flight at once.
    const IN_FLIGHT: usize = 8;
    /// How long a click whose publish outcome is unknown (connection lost
    /// before the confirm) waits for the broker to come back.
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

    type Waiter = oneshot::Sender<std::result::Result<(), String>>;

    #[derive(Clone)]
    pub struct Clicks {
        queue: mpsc::Sender<(Keyed, Waiter)>,
    }

    /// A click and its `Idempotency-Key`, as a batch carries it.
    #[derive(Serialize, Deserialize)]
    struct Keyed {
        #[serde(flatten)]
        click: Click,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    struct ClickBatch {
        clicks: Vec<Keyed>,
    }

    impl Clicks {
        /// The publisher runs as the service's background work; it ends
        /// once every request holding a `Clicks` has finished.
        pub fn new(ctx: &Ctx, background: &mut Background) -> Self {
            let (queue, rx) = mpsc::channel(16_384);
            background.spawn("click publisher", publish(ctx.clone(), rx));
            Clicks { queue }
        }
    }

    pub async fn record_click(
        _: &Ctx,
        clicks: &Clicks,
        click: Click,
        key: Option<String>,
    ) -> Result<()> {
        let (waiter, answer) = oneshot::channel();
        let stopped = || Error::Unavailable("click ingestion is stopping".into());
        clicks
            .queue
            .send((Keyed { click, key }, waiter))
            .await
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(Error::Unavailable)
    }

    async fn publish(ctx: Ctx, mut rx: mpsc::Receiver<(Keyed, Waiter)>) {
        let max = usize::from(ctx.settings.broker.click_batch_size);
        let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
        let publishes = TaskTracker::new();
        loop {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let mut batch = Vec::with_capacity(max);
            if rx.recv_many(&mut batch, max).await == 0 {
                break;
            }
            let ctx = ctx.clone();
            publishes.spawn(async move {
                let (clicks, waiters): (Vec<Keyed>, Vec<Waiter>) = batch.into_iter().unzip();
                let envelope = Envelope {
                    id: Uuid::new_v4(),
                    kind: "clicks.tracked",
                    correlation_id: "",
                    accepted_at: Utc::now(),
                };
                let result = match serde_json::to_vec(&ClickBatch { clicks }) {
                    Ok(body) => ctx.bus.publish_durably(&envelope, &body, PATIENCE).await,
                    Err(e) => Err(anyhow::anyhow!(e).into()),
                };
                drop(permit);
                let result = result.map_err(|e| e.to_string());
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            });
        }
        publishes.close();
        publishes.wait().await;
    }

    /// One transaction for the whole batch: the inbox claims and one INSERT;
    /// a key already stored (a retried click) stores nothing more.
    pub async fn store(ctx: Ctx, batch: Vec<Incoming>) -> Result<()> {
        let mut tx = ctx.begin().await?;
        let fresh = claim_all(&mut tx, &batch).await?;
        let (mut users, mut pages, mut keys, mut accepted) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for msg in fresh {
            let clicks: ClickBatch = msg.payload()?;
            accepted.push((msg.accepted_at, clicks.clicks.len()));
            for Keyed { click, key } in clicks.clicks {
                users.push(click.user_id);
                pages.push(click.page);
                keys.push(key);
            }
        }
        let stored = sqlx::query(
            "INSERT INTO clicks (user_id, page, idempotency_key)
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[])
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&users)
        .bind(&pages)
        .bind(&keys)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        crate::deduplicated(&ctx, users.len() as u64 - stored);
        for (at, count) in accepted {
            for _ in 0..count {
                completed(&ctx, "click", at);
            }
        }
        Ok(())
    }
}
