//! The outbox relay: publishes committed outbox rows with publisher confirms,
//! then marks them sent. A crash between the two publishes a row again; the
//! consumers' inbox makes that harmless. Rows wait while the broker is down.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Envelope;
use crate::{Ctx, Result};

/// Rows published per transaction.
const BATCH: i64 = 200;

pub(super) async fn run(ctx: Ctx) {
    let bus = ctx.bus.clone();
    let mut link = bus.inner.link.subscribe();
    let mut poll = tokio::time::interval(bus.settings().relay_poll);
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            () = bus.inner.relay.notified() => {}
            _ = link.changed() => {}
            _ = poll.tick() => report_pending(&ctx).await,
        }
        // A batch short of full took all there was to take: a row committed
        // since comes with its own wake-up (`Notify` keeps it while none
        // waits), so no empty pass is spent looking. (With replicas, rows
        // another relay holds are skipped; if its pass fails, they wait for
        // the next wake-up or poll here, as they did before.)
        loop {
            match publish_pending(&ctx).await {
                Ok(n) if n < BATCH as usize => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(service = ctx.name(), error = %e, "outbox relay paused");
                    break;
                }
            }
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    message_id: Uuid,
    kind: String,
    payload: String,
    correlation_id: String,
    accepted_at: DateTime<Utc>,
}

/// Publishes up to [`BATCH`] pending rows; returns how many.
async fn publish_pending(ctx: &Ctx) -> Result<usize> {
    if !ctx.bus.connected() {
        return Ok(0);
    }
    let mut tx = ctx.begin().await?;
    // SKIP LOCKED: several replicas of a service can relay side by side.
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, message_id, kind, payload::text AS payload, correlation_id, accepted_at
         FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut confirms = Vec::with_capacity(rows.len());
    for row in &rows {
        let envelope = Envelope {
            id: row.message_id,
            kind: &row.kind,
            correlation_id: &row.correlation_id,
            accepted_at: row.accepted_at,
        };
        confirms.push(
            ctx.bus
                .send(
                    crate::topology::EVENTS,
                    &row.kind,
                    &envelope,
                    row.payload.as_bytes(),
                    None,
                )
                .await?,
        );
    }
    for confirm in confirms {
        confirm.await?;
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows.len())
}

async fn report_pending(ctx: &Ctx) {
    let pending: std::result::Result<i64, _> =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&ctx.db)
            .await;
    if let Ok(pending) = pending {
        metrics::gauge!("outbox_pending", "service" => ctx.name(), "mode" => "async")
            .set(pending as f64);
    }
}
