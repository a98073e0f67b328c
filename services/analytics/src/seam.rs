//! How a click becomes durable: the only place in this service where the mode forks.

use common::{Ctx, Result};

use crate::Click;

/// Sync: one INSERT per request, committed before the answer. That is what
/// synchronous ingestion costs.
#[cfg(not(feature = "async"))]
pub async fn record_click(ctx: &Ctx, click: Click) -> Result<()> {
    sqlx::query("INSERT INTO clicks (user_id, page) VALUES ($1, $2)")
        .bind(click.user_id)
        .bind(&click.page)
        .execute(&ctx.db)
        .await?;
    Ok(())
}

#[cfg(feature = "async")]
pub async fn record_click(ctx: &Ctx, click: Click) -> Result<()> {
    let _ = (ctx, click);
    Err(anyhow::anyhow!("async mode is not built yet").into())
}
