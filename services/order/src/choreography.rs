//! Async mode's saga driver: choreography by events. Each message the order
//! hears of becomes an [`Event`] of the state machine ([`crate::saga::next`]);
//! its transition and the next command (as an outgoing event) commit in one
//! transaction with the inbox claim, so a step is taken once even when a
//! message comes twice.
//!
//! ```text
//! order ─stock.reserve→ inventory ─stock.reserved→ order ─payment.requested→ payment
//!       ←stock.refused─ (failed, no payment)
//! payment ─payment.settled→ order ─stock.commit→  inventory ─stock.committed→ order (confirmed)
//!                               └─stock.release→ inventory ─stock.released→  order (failed)
//! ```

use common::events::{Incoming, completed};
use common::messages::{PaymentResult, Reservation, StockRefused};
use common::{Ctx, Result};

use crate::saga::{self, Command, Event, Status};

pub async fn advance(ctx: Ctx, msg: Incoming) -> Result<()> {
    // A verdict on a client's own payment changes no order: nothing to claim.
    let Some((order_id, event)) = event(&msg)? else {
        return Ok(());
    };
    // Four round trips: BEGIN, the claim with the lock, the transition with
    // its command, COMMIT.
    let mut tx = ctx.begin().await?;
    let Some(order) = saga::claim_and_lock(&mut tx, &msg, order_id).await? else {
        return Ok(());
    };
    let Some(t) = saga::next(&order, event) else {
        tracing::warn!(order_id, kind = %msg.kind, status = order.status.as_str(),
            "an event for an order that is not waiting for it: ignored");
        tx.commit().await?;
        return Ok(());
    };
    let command = t.command.as_ref().map(message).transpose()?;
    let sends = command.is_some();
    let order = saga::apply(&mut *tx, &order, &t, command).await?;
    tx.commit().await?;
    // A final step sends nothing: no relay pass to find nothing.
    if sends {
        ctx.bus.wake_relay();
    }
    if order.status != Status::Pending {
        completed(&ctx, "order", order.created_at);
    }
    Ok(())
}

/// A command as the event that carries it: its kind and payload.
pub fn message(command: &Command) -> Result<(&'static str, serde_json::Value)> {
    let (kind, payload) = match command {
        Command::Reserve(r) => ("stock.reserve", serde_json::to_value(r)),
        Command::Pay(p) => ("payment.requested", serde_json::to_value(p)),
        Command::Commit(o) => ("stock.commit", serde_json::to_value(o)),
        Command::Release(o) => ("stock.release", serde_json::to_value(o)),
    };
    Ok((kind, payload.map_err(anyhow::Error::from)?))
}

/// The saga event a message carries, with its order; `None` for a payment
/// verdict that belongs to no saga (a client's own payment).
fn event(msg: &Incoming) -> Result<Option<(i64, Event)>> {
    Ok(Some(match msg.kind.as_str() {
        "stock.reserved" => {
            let r: Reservation = msg.payload()?;
            (
                r.order_id,
                Event::Reserved {
                    quantity: r.quantity,
                },
            )
        }
        "stock.refused" => {
            let r: StockRefused = msg.payload()?;
            (
                r.order_id,
                Event::Refused {
                    kind: r.kind,
                    detail: r.reason,
                },
            )
        }
        "payment.settled" => {
            let paid: PaymentResult = msg.payload()?;
            let Some(order_id) = paid.order_id else {
                return Ok(None);
            };
            let event = if paid.status == "completed" {
                Event::Approved {
                    payment_id: paid.payment_id,
                    transaction_id: paid.transaction_id,
                }
            } else {
                Event::Declined {
                    payment_id: Some(paid.payment_id),
                    detail: paid.status,
                }
            };
            (order_id, event)
        }
        "stock.committed" => (msg.payload::<Reservation>()?.order_id, Event::Committed),
        "stock.released" => {
            let r: Reservation = msg.payload()?;
            (
                r.order_id,
                Event::Released {
                    quantity: r.released_quantity,
                },
            )
        }
        other => return Err(anyhow::anyhow!("the order saga cannot handle {other}").into()),
    }))
}
