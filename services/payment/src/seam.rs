//! How a stored payment reaches the external API: the only place in this
//! service where the mode forks.

use common::events::{About, Consumer};
use common::{Ctx, Delivery, Result};

use crate::Payment;

/// Sync: the payment's statement writes no event.
#[cfg(not(feature = "async"))]
pub const EVENT: Option<About> = None;

/// Sync: the payment is committed as `pending` (readable during the call),
/// then the request waits for the external API on a worker thread.
#[cfg(not(feature = "async"))]
pub async fn charge(ctx: &Ctx, payment: &Payment) -> Result<Delivery<Payment>> {
    ctx.simulate_latency(ctx.settings.delays.payment).await?;
    let settled = crate::settle(&mut *ctx.db.acquire().await?, payment).await?;
    Ok(Delivery::Done(settled))
}

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

/// Async: the pending payment's own statement writes its
/// `payment.requested` event: the [`PaymentRequest`](common::messages::PaymentRequest)
/// that asks to settle it, built in SQL from the row. The test
/// `payment::the_event_of_a_payment_is_the_payment_as_stored` holds it to
/// the type's fields.
#[cfg(feature = "async")]
pub const EVENT: Option<About> = Some(About {
    kind: "payment.requested",
    payload: "jsonb_build_object('amount', new.amount_cents::float8 / 100,
                  'currency', new.currency, 'order_id', new.order_id,
                  'force_decline', new.force_decline, 'payment_id', new.id)",
    accepted_at: "created_at",
});

/// Async: the event committed with the payment; a payment worker makes the
/// external call later.
#[cfg(feature = "async")]
pub async fn charge(ctx: &Ctx, _: &Payment) -> Result<Delivery<Payment>> {
    ctx.bus.wake_relay();
    Ok(Delivery::Accepted)
}

/// Payment workers: `CONSUMER_PREFETCH` external calls at once per instance.
#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[Consumer {
    queue: "payment.requests",
    prefetch: common::events::prefetch,
    handle: common::events::Handle::One(|ctx, msg| Box::pin(consume::payment(ctx, msg))),
}];

#[cfg(feature = "async")]
mod consume {
    use common::events::{Incoming, completed, enqueue};
    use common::messages::{PaymentRequest, PaymentResult};
    use common::{Ctx, Result};

    /// A client's payment (already stored) or an order's (stored here, with
    /// the message id as payment id, so a redelivery finds the same one).
    /// The external call runs outside any transaction; the verdict, the inbox
    /// claim and the `payment.settled` event commit together.
    pub async fn payment(ctx: Ctx, msg: Incoming) -> Result<()> {
        let req: PaymentRequest = msg.payload()?;
        let payment = {
            let mut conn = ctx.db.acquire().await?;
            match req.payment_id {
                Some(id) => crate::find(&mut conn, id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("payment {id} does not exist"))?,
                None => crate::create(&mut conn, msg.id, &req, None).await?,
            }
        };
        if payment.status != "pending" || msg.seen(&ctx.db).await? {
            return Ok(());
        }
        ctx.simulate_latency(ctx.settings.delays.payment).await?;
        let mut tx = ctx.begin().await?;
        if !msg.claim(&mut tx).await? {
            return Ok(());
        }
        let settled = crate::settle(&mut tx, &payment).await?;
        // A client's payment (scenario 2) is finished here: the client reads
        // it back. Only a saga's payment has someone waiting for the verdict:
        // the order service. A client may name any order_id in its payment;
        // that must not drive (or, for an unknown order, poison) a saga.
        let from_saga = req.payment_id.is_none();
        if from_saga {
            let result = PaymentResult {
                payment_id: settled.id,
                status: settled.status.clone(),
                transaction_id: settled.transaction_id.clone(),
                order_id: settled.order_id,
                amount: settled.amount_cents as f64 / 100.0,
                currency: settled.currency.clone(),
            };
            enqueue(&mut tx, "payment.settled", &result, msg.accepted_at).await?;
        }
        tx.commit().await?;
        if from_saga {
            ctx.bus.wake_relay();
        } else {
            // A saga's payment is one step of scenario 5, timed by the order service.
            completed(&ctx, "payment", settled.created_at);
        }
        Ok(())
    }
}
