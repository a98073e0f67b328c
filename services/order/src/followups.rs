//! Inventory calls a finished saga still owes (a release or a commit that
//! failed because inventory was down), retried every `COMPENSATION_RETRY_MS`
//! until inventory takes them. Release and commit are idempotent, so a retry
//! can never return stock twice: stock is never left reserved for long.

use common::messages::Reservation;
use common::{Ctx, Result};

use crate::saga;

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

async fn retry_owed(ctx: &Ctx) -> Result<()> {
    let owed: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, followup FROM orders WHERE followup IS NOT NULL ORDER BY id LIMIT 100",
    )
    .fetch_all(&ctx.db)
    .await?;
    for (id, call) in owed {
        let path = format!("/reservations/{id}/{call}");
        match ctx.call::<_, Reservation>("inventory", &path, ()).await? {
            Ok(_) => {
                saga::followup_done(ctx, id, &call).await?;
                tracing::info!(order_id = id, call = %call, "owed inventory call made");
            }
            // Inventory is still down: try the rest next time.
            Err(e) => {
                tracing::debug!(order_id = id, error = %e, "owed inventory call failed again");
                break;
            }
        }
    }
    Ok(())
}
