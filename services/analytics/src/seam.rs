//! How a click becomes durable, and how analytics hears of product changes:
//! the only place in this service where the mode forks.

use common::events::Consumer;
use common::{Ctx, Result, Settings};

use crate::Keyed;

/// Sync: a batch is one INSERT, committed before any of its clicks is
/// answered; a key already stored stores nothing more.
#[cfg(not(feature = "async"))]
pub async fn flush(ctx: &Ctx, clicks: Vec<Keyed>) -> Result<()> {
    let stored = crate::insert_clicks(&ctx.db, &clicks).await?;
    crate::deduplicated(ctx, clicks.len() as u64 - stored);
    Ok(())
}

/// Sync: what a click queued behind a batch that found the database down is told.
#[cfg(not(feature = "async"))]
pub const UNREACHABLE: &str = common::error::DATABASE_UNAVAILABLE;

/// Sync: batches written at once, each on a pooled connection.
#[cfg(not(feature = "async"))]
pub fn in_flight(settings: &Settings) -> usize {
    usize::try_from(settings.half_the_pool()).unwrap_or(usize::MAX)
}

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[
    Consumer {
        queue: "analytics.clicks",
        prefetch: |settings| settings.click_batch_size,
        handle: common::events::Handle::Batch(|ctx, batch| Box::pin(store(ctx, batch))),
    },
    Consumer {
        queue: "analytics.product-changed",
        prefetch: common::events::prefetch,
        handle: common::events::Handle::One(|ctx, msg| {
            Box::pin(common::inbound::consume(ctx, msg, &crate::LOG_UPDATE))
        }),
    },
];

/// Async: a batch is one message, published durably (the broker's confirm)
/// before any of its clicks is answered; the consumer stores each delivery
/// of up to `CLICK_BATCH_SIZE` messages in one transaction.
#[cfg(feature = "async")]
pub async fn flush(ctx: &Ctx, clicks: Vec<Keyed>) -> Result<()> {
    let envelope = common::bus::Envelope {
        id: uuid::Uuid::new_v4(),
        kind: "clicks.tracked",
        correlation_id: "",
        accepted_at: chrono::Utc::now(),
    };
    let body = serde_json::to_vec(&ClickBatch { clicks }).map_err(anyhow::Error::from)?;
    ctx.bus
        .publish_durably(&envelope, &body, PATIENCE)
        .await
        .map_err(|e| match e {
            common::Error::Unavailable(_) => e,
            other => {
                tracing::error!(error = %other, "a batch of clicks was not published");
                common::Error::Unavailable("the broker did not take the click".into())
            }
        })
}

/// Async: what a click queued behind a batch that found the broker away is told.
#[cfg(feature = "async")]
pub const UNREACHABLE: &str = common::error::BROKER_UNAVAILABLE;

/// Async: publishes awaiting their confirm at once. Four measured best on
/// two cores (docs/measuring.md, "A fifth round"): eight make smaller
/// messages, two make each click wait longer.
#[cfg(feature = "async")]
pub fn in_flight(_: &Settings) -> usize {
    4
}

/// How long a click whose publish outcome is unknown (connection lost
/// before the confirm) waits for the broker to come back.
#[cfg(feature = "async")]
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// The message a batch of clicks travels in.
#[cfg(feature = "async")]
#[derive(serde::Serialize, serde::Deserialize)]
struct ClickBatch {
    clicks: Vec<Keyed>,
}

/// One transaction for a delivery: the inbox claims and one INSERT; a key
/// already stored (a retried click) stores nothing more.
#[cfg(feature = "async")]
async fn store(ctx: Ctx, batch: Vec<common::events::Incoming>) -> Result<()> {
    let mut tx = ctx.begin().await?;
    let fresh = common::events::claim_all(&mut tx, &batch).await?;
    let (mut clicks, mut accepted) = (Vec::new(), Vec::new());
    for msg in fresh {
        let ClickBatch { clicks: some } = msg.payload()?;
        accepted.push((msg.accepted_at, some.len()));
        clicks.extend(some);
    }
    let stored = crate::insert_clicks(&mut *tx, &clicks).await?;
    tx.commit().await?;
    crate::deduplicated(&ctx, clicks.len() as u64 - stored);
    for (at, count) in accepted {
        for _ in 0..count {
            common::events::completed(&ctx, "click", at);
        }
    }
    Ok(())
}
