//! Where a report's work runs: the only place in this service where the mode forks.

use common::{Ctx, Delivery, Result};
use sqlx::{Postgres, Transaction};

use crate::Job;

/// Sync: the request itself waits while a worker thread hashes.
#[cfg(not(feature = "async"))]
pub async fn submit(
    ctx: &Ctx,
    tx: Transaction<'static, Postgres>,
    job: &Job,
) -> Result<Delivery<Job>> {
    tx.commit().await?;
    Ok(Delivery::Done(crate::run(ctx, job).await?))
}

#[cfg(feature = "async")]
pub async fn submit(
    ctx: &Ctx,
    tx: Transaction<'static, Postgres>,
    job: &Job,
) -> Result<Delivery<Job>> {
    let _ = (ctx, job);
    tx.commit().await?;
    Err(anyhow::anyhow!("async mode is not built yet").into())
}
