//! How inventory hears of reservations to make, release and commit: HTTP
//! routes in sync mode (in `lib.rs`), and in async mode this consumer, which
//! calls the same functions. The only place in this service where the mode forks.

use common::events::Consumer;

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[Consumer {
    queue: "inventory.reservations",
    prefetch: common::events::db_bound_prefetch,
    handle: common::events::Handle::One(|ctx, msg| Box::pin(consume::reservation(ctx, msg))),
}];

#[cfg(feature = "async")]
mod consume {
    use common::events::{Incoming, enqueue};
    use common::messages::{OrderRef, Reserve, StockRefused};
    use common::{Ctx, Result};

    /// One transaction: the inbox claim, the stock change and the answer to order.
    pub async fn reservation(ctx: Ctx, msg: Incoming) -> Result<()> {
        let mut tx = ctx.begin().await?;
        if !msg.claim(&mut tx).await? {
            return Ok(());
        }
        match msg.kind.as_str() {
            "stock.reserve" => {
                let req: Reserve = msg.payload()?;
                match crate::reserve(&mut tx, &req).await? {
                    Ok((reservation, _)) => {
                        enqueue(&mut tx, "stock.reserved", &reservation, msg.accepted_at).await?;
                    }
                    Err(refusal) => {
                        let refused = StockRefused {
                            order_id: req.order_id,
                            product_id: req.product_id,
                            kind: refusal.kind(),
                            reason: refusal.to_string(),
                        };
                        enqueue(&mut tx, "stock.refused", &refused, msg.accepted_at).await?;
                    }
                }
            }
            "stock.release" => {
                let order: OrderRef = msg.payload()?;
                let reservation = crate::release(&mut tx, order.order_id).await?;
                enqueue(&mut tx, "stock.released", &reservation, msg.accepted_at).await?;
            }
            "stock.commit" => {
                let order: OrderRef = msg.payload()?;
                let reservation = crate::commit(&mut tx, order.order_id).await?;
                enqueue(&mut tx, "stock.committed", &reservation, msg.accepted_at).await?;
            }
            other => return Err(anyhow::anyhow!("inventory cannot handle {other}").into()),
        }
        tx.commit().await?;
        ctx.bus.wake_relay();
        Ok(())
    }
}
