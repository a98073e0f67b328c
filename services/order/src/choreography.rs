//! Async mode's saga: choreography by events. Each event the order hears of
//! moves its saga one step, in one transaction with the inbox claim and the
//! next command, so a step is taken once even when an event comes twice.
//!
//! ```text
//! order ─stock.reserve→ inventory ─stock.reserved→ order ─payment.requested→ payment
//!       ←stock.refused─ (failed, no payment)
//! payment ─payment.settled→ order ─stock.commit→  inventory ─stock.committed→ order (confirmed)
//!                               └─stock.release→ inventory ─stock.released→  order (failed)
//! ```

use common::events::{Incoming, completed, enqueue};
use common::messages::{OrderRef, PaymentRequest, PaymentResult, Reservation, StockRefused};
use common::{Ctx, Result};
use sqlx::PgConnection;

use crate::saga::{self, Order};

pub async fn advance(ctx: Ctx, msg: Incoming) -> Result<()> {
    let mut tx = ctx.db.begin().await?;
    if !msg.claim(&mut tx).await? {
        return Ok(());
    }
    let finished = match msg.kind.as_str() {
        "stock.reserved" => reserved(&mut tx, &msg).await?,
        "stock.refused" => refused(&mut tx, &msg).await?,
        "payment.settled" => settled(&mut tx, &msg).await?,
        "stock.committed" => {
            let r: Reservation = msg.payload()?;
            saga::step(&mut *tx, r.order_id, "reservation_committed", "ok", None).await?;
            Some(saga::finish(&mut tx, r.order_id, "confirmed", None, None, None).await?)
        }
        "stock.released" => {
            let r: Reservation = msg.payload()?;
            let detail = format!("{} units returned", r.released_quantity);
            saga::step(&mut *tx, r.order_id, "stock_released", "ok", Some(&detail)).await?;
            Some(
                saga::finish(
                    &mut tx,
                    r.order_id,
                    "failed",
                    Some("payment declined"),
                    None,
                    None,
                )
                .await?,
            )
        }
        other => return Err(anyhow::anyhow!("the order saga cannot handle {other}").into()),
    };
    tx.commit().await?;
    ctx.bus.wake_relay();
    if let Some(order) = finished {
        completed(&ctx, "order", order.created_at);
    }
    Ok(())
}

async fn order(conn: &mut PgConnection, id: i64) -> Result<Order> {
    Ok(sqlx::query_as(&format!(
        "SELECT {} FROM orders WHERE id = $1 FOR UPDATE",
        saga::COLUMNS
    ))
    .bind(id)
    .fetch_one(conn)
    .await?)
}

/// Stock held: ask for the payment.
async fn reserved(tx: &mut PgConnection, msg: &Incoming) -> Result<Option<Order>> {
    let r: Reservation = msg.payload()?;
    let order = order(tx, r.order_id).await?;
    let detail = format!("{} units", r.quantity);
    saga::step(&mut *tx, order.id, "stock_reserved", "ok", Some(&detail)).await?;
    let payment = PaymentRequest {
        amount: order.amount(),
        currency: "USD".into(),
        order_id: Some(order.id),
        force_decline: !order.approve_payment,
        payment_id: None,
    };
    enqueue(tx, "payment.requested", &payment, order.created_at).await?;
    Ok(None)
}

/// Inventory said no: nothing is held and no payment is asked for.
async fn refused(tx: &mut PgConnection, msg: &Incoming) -> Result<Option<Order>> {
    let r: StockRefused = msg.payload()?;
    saga::step(
        &mut *tx,
        r.order_id,
        "stock_reserved",
        "refused",
        Some(&r.reason),
    )
    .await?;
    let reason = if r.unknown_product {
        "unknown product"
    } else {
        "not enough stock"
    };
    Ok(Some(
        saga::finish(tx, r.order_id, "failed", Some(reason), None, None).await?,
    ))
}

/// The payment's verdict: commit the stock, or compensate by releasing it.
async fn settled(tx: &mut PgConnection, msg: &Incoming) -> Result<Option<Order>> {
    let paid: PaymentResult = msg.payload()?;
    // The payment service sends only a saga's verdicts, with their order.
    let Some(order_id) = paid.order_id else {
        return Ok(None);
    };
    let order = order(tx, order_id).await?;
    // Exactly one verdict per saga: the one it waits for. Anything else (a
    // verdict for a finished order) must not move stock.
    if order.status != "pending" || order.payment_id.is_some() {
        tracing::warn!(order_id, payment_id = %paid.payment_id, status = %order.status,
            "a payment verdict for an order that is not waiting for one: ignored");
        return Ok(None);
    }
    sqlx::query("UPDATE orders SET payment_id = $2, updated_at = now() WHERE id = $1")
        .bind(order.id)
        .bind(paid.payment_id)
        .execute(&mut *tx)
        .await?;
    let next = OrderRef { order_id };
    if paid.status == "completed" {
        let detail = paid.transaction_id.as_deref();
        saga::step(&mut *tx, order_id, "payment", "approved", detail).await?;
        enqueue(tx, "stock.commit", &next, order.created_at).await?;
    } else {
        saga::step(
            &mut *tx,
            order_id,
            "payment",
            "declined",
            Some(&paid.status),
        )
        .await?;
        enqueue(tx, "stock.release", &next, order.created_at).await?;
    }
    Ok(None)
}
