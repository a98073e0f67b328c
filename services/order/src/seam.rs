//! How the order saga is driven: the only place in this service where the
//! mode forks. Sync mode orchestrates within the request
//! ([`crate::orchestration`]); async mode choreographs by events
//! ([`crate::choreography`]).

use common::events::Consumer;
use common::{Ctx, Delivery, Result};
use sqlx::{Postgres, Transaction};

use crate::Outcome;
use crate::saga::Order;

/// Sync: orchestration within the request.
#[cfg(not(feature = "async"))]
pub async fn start_saga(
    ctx: &Ctx,
    tx: Transaction<'static, Postgres>,
    order: &Order,
) -> Result<Delivery<Outcome>> {
    tx.commit().await?;
    Ok(Delivery::Done(crate::orchestration::run(ctx, order).await?))
}

/// Async: choreography. The order and its `stock.reserve` event commit
/// together; inventory, payment and this service's saga consumer
/// ([`crate::choreography`]) take it from there.
#[cfg(feature = "async")]
pub async fn start_saga(
    ctx: &Ctx,
    tx: Transaction<'static, Postgres>,
    order: &Order,
) -> Result<Delivery<Outcome>> {
    let reserve = common::messages::Reserve {
        order_id: order.id,
        product_id: order.product_id,
        quantity: order.quantity,
    };
    common::events::commit_with_event(ctx, tx, "stock.reserve", &reserve, order.created_at).await?;
    Ok(Delivery::Accepted)
}

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[Consumer {
    queue: "order.saga",
    prefetch: common::events::prefetch,
    handle: common::events::Handle::One(|ctx, msg| {
        Box::pin(crate::choreography::advance(ctx, msg))
    }),
}];
