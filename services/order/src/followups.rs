//! Inventory calls a finished saga still owes (a release or a commit that
//! failed because inventory was down), retried every `COMPENSATION_RETRY_MS`
//! until inventory takes them, then all of them at once. Release and commit are idempotent, so a retry
//! can never return stock twice: stock is never left reserved for long.
//!
//! A saga whose request broke off (the database gone while it recorded a
//! step) is failed by that request as soon as the database is back. A saga
//! cut off by a crash of the order service stays `pending`; once it is
//! older than `SAGA_STALE_AFTER_MS` (far longer than a saga can run: three
//! calls of at most `OUTBOUND_TIMEOUT_MS` each) it is failed and its release
//! owed. Its payment, if one was made, is not refunded: the lab has no refunds.

use std::time::Duration;

use common::messages::Reservation;
use common::{Ctx, Result};

use crate::saga::{self, Followup, NewStep, Reason, Status, StepName, StepOutcome};

pub async fn run(ctx: Ctx) {
    let mut tick = tokio::time::interval(ctx.settings.compensation_retry);
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = retry_owed(&ctx).await {
            tracing::warn!(error = %e, "retrying owed inventory calls failed");
        }
    }
}

/// Fails sagas cut off mid-way (pending: `order` if given, else all older
/// than `SAGA_STALE_AFTER_MS`) and owes their release.
async fn abandon(ctx: &Ctx, order: Option<i64>) -> Result<()> {
    let mut tx = ctx.begin().await?;
    let stale: Vec<i64> = sqlx::query_scalar(
        "UPDATE orders SET status = $2, failure_reason = $3, followup = $4, updated_at = now()
         WHERE status = 'pending'
           AND (id = $5 OR ($5 IS NULL AND created_at < now() - make_interval(secs => $1)))
         RETURNING id",
    )
    .bind(ctx.settings.saga_stale_after.as_secs_f64())
    .bind(Status::Failed.as_str())
    .bind(Reason::Interrupted.as_str())
    .bind(Followup::Release.as_str())
    .bind(order)
    .fetch_all(&mut *tx)
    .await?;
    let failed = NewStep {
        name: StepName::OrderFailed,
        outcome: StepOutcome::Done,
        detail: Some("saga interrupted; stock release owed".into()),
    };
    for id in &stale {
        saga::record(&mut *tx, *id, &failed).await?;
        tracing::warn!(
            order_id = id,
            "saga interrupted mid-way; failing it and releasing its stock"
        );
    }
    tx.commit().await?;
    Ok(())
}

/// A saga whose request broke off mid-way (PostgreSQL gone while it
/// recorded a step): failed, its release owed, as soon as the database
/// takes it, tried for up to `within` (the request waits; if the database is
/// not back by then, the stale sweep fails the order later).
pub async fn abandon_interrupted(ctx: &Ctx, order: i64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while let Err(e) = abandon(ctx, Some(order)).await {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(order_id = order, error = %e, "cannot fail the interrupted saga; the stale sweep will");
            return;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// How often an interrupted saga's request tries to record its failure.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// Makes the owed calls, oldest first, a hundred at a time, until none is
/// left or inventory refuses one (then the rest wait for the next period).
async fn retry_owed(ctx: &Ctx) -> Result<()> {
    abandon(ctx, None).await?;
    loop {
        let owed: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, followup FROM orders WHERE followup IS NOT NULL ORDER BY id LIMIT 100",
        )
        .fetch_all(&ctx.db)
        .await?;
        if owed.is_empty() || ctx.shutdown.is_cancelled() {
            return Ok(());
        }
        for (id, call) in owed {
            let followup = if call == Followup::Commit.as_str() {
                Followup::Commit
            } else {
                Followup::Release
            };
            let path = format!("/reservations/{id}/{}", followup.as_str());
            match ctx.call::<_, Reservation>("inventory", &path, ()).await? {
                Ok(_) => {
                    saga::followup_done(ctx, id, followup).await?;
                    tracing::info!(order_id = id, call = %call, "owed inventory call made");
                }
                // Inventory is still down: try the rest next time.
                Err(e) => {
                    tracing::debug!(order_id = id, error = %e, "owed inventory call failed again");
                    return Ok(());
                }
            }
        }
    }
}
