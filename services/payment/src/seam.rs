//! How a stored payment reaches the external API: the only place in this
//! service where the mode forks.

use common::{Ctx, Delivery, Result};
use sqlx::{Postgres, Transaction};

use crate::Payment;

/// Sync: the payment is committed as `pending` (readable during the call),
/// then the request waits for the external API on a worker thread.
#[cfg(not(feature = "async"))]
pub async fn charge(
    ctx: &Ctx,
    tx: Transaction<'static, Postgres>,
    payment: &Payment,
) -> Result<Delivery<Payment>> {
    tx.commit().await?;
    Ok(Delivery::Done(crate::settle(ctx, payment).await?))
}

#[cfg(feature = "async")]
pub async fn charge(
    ctx: &Ctx,
    tx: Transaction<'static, Postgres>,
    payment: &Payment,
) -> Result<Delivery<Payment>> {
    let _ = (ctx, payment);
    tx.commit().await?;
    Err(anyhow::anyhow!("async mode is not built yet").into())
}
