//! Sync mode's saga: orchestration. The request itself calls inventory and
//! payment one after another, blocking a worker thread on each call, and runs
//! the compensation by hand when the payment fails.

use common::messages::{PaymentRequest, PaymentResult, Reservation, Reserve};
use common::outbound::CallError;
use common::{Ctx, Result};
use uuid::Uuid;

use crate::Outcome;
use crate::saga::{self, Order};

pub async fn run(ctx: &Ctx, order: &Order) -> Result<Outcome> {
    let id = order.id;
    let reserve = Reserve {
        order_id: id,
        product_id: order.product_id,
        quantity: order.quantity,
    };
    match ctx
        .call::<_, Reservation>("inventory", "/reservations", reserve)
        .await?
    {
        Ok(r) => {
            saga::step(
                &ctx.db,
                id,
                "stock_reserved",
                "ok",
                Some(&format!("{} units", r.quantity)),
            )
            .await?
        }
        Err(e) if matches!(e.status(), Some(404 | 409)) => return refused(ctx, order, &e).await,
        Err(e) => {
            saga::step(
                &ctx.db,
                id,
                "stock_reserved",
                "failed",
                Some(&e.to_string()),
            )
            .await?;
            // The reservation may have happened before the call failed: release to be sure.
            let order = compensate(ctx, order, "inventory service unavailable", None).await?;
            return Ok(Outcome::Unavailable {
                order,
                message: format!("Order failed: {e}"),
            });
        }
    }

    let payment = PaymentRequest {
        amount: order.amount(),
        currency: "USD".into(),
        order_id: Some(id),
        force_decline: !order.approve_payment,
        payment_id: None,
    };
    match ctx
        .call::<_, PaymentResult>("payment", "/process_payment", payment)
        .await?
    {
        Ok(paid) => {
            let detail = paid.transaction_id.as_deref().unwrap_or_default();
            saga::step(&ctx.db, id, "payment", "approved", Some(detail)).await?;
            let followup = match ctx
                .call::<_, Reservation>("inventory", &format!("/reservations/{id}/commit"), ())
                .await?
            {
                Ok(_) => {
                    saga::step(&ctx.db, id, "reservation_committed", "ok", None).await?;
                    None
                }
                Err(e) => {
                    saga::step(
                        &ctx.db,
                        id,
                        "reservation_committed",
                        "failed",
                        Some(&e.to_string()),
                    )
                    .await?;
                    Some("commit")
                }
            };
            let order = saga::finish(
                &mut *ctx.db.acquire().await?,
                id,
                "confirmed",
                None,
                Some(paid.payment_id),
                followup,
            )
            .await?;
            Ok(Outcome::Confirmed(order))
        }
        Err(e) if e.status() == Some(402) => {
            saga::step(&ctx.db, id, "payment", "declined", e.detail()).await?;
            let order = compensate(ctx, order, "payment declined", declined_payment_id(&e)).await?;
            Ok(Outcome::Declined(order))
        }
        Err(e) => {
            saga::step(&ctx.db, id, "payment", "failed", Some(&e.to_string())).await?;
            let order = compensate(ctx, order, "payment service unavailable", None).await?;
            Ok(Outcome::Unavailable {
                order,
                message: format!("Order failed: {e}"),
            })
        }
    }
}

/// Inventory said no (unknown product, not enough stock): nothing was
/// reserved and no payment is attempted.
async fn refused(ctx: &Ctx, order: &Order, e: &CallError) -> Result<Outcome> {
    let (reason, status) = match e.status() {
        Some(404) => ("unknown product", axum::http::StatusCode::NOT_FOUND),
        _ => ("not enough stock", axum::http::StatusCode::CONFLICT),
    };
    let detail = e.detail().unwrap_or(reason);
    saga::step(&ctx.db, order.id, "stock_reserved", "refused", Some(detail)).await?;
    let order = saga::finish(
        &mut *ctx.db.acquire().await?,
        order.id,
        "failed",
        Some(reason),
        None,
        None,
    )
    .await?;
    let message = match status {
        axum::http::StatusCode::NOT_FOUND => format!("product {} not found", order.product_id),
        _ => format!("Order failed: {detail}"),
    };
    Ok(Outcome::Refused {
        order,
        status,
        message,
    })
}

/// The compensation: give back what the order reserved. If inventory cannot
/// be reached, the release is owed and retried in the background until it is.
async fn compensate(
    ctx: &Ctx,
    order: &Order,
    reason: &str,
    payment_id: Option<Uuid>,
) -> Result<Order> {
    let id = order.id;
    let followup = match ctx
        .call::<_, Reservation>("inventory", &format!("/reservations/{id}/release"), ())
        .await?
    {
        Ok(r) => {
            let detail = format!("{} units returned", r.released_quantity);
            saga::step(&ctx.db, id, "stock_released", "ok", Some(&detail)).await?;
            None
        }
        Err(e) => {
            saga::step(
                &ctx.db,
                id,
                "stock_released",
                "failed",
                Some(&e.to_string()),
            )
            .await?;
            Some("release")
        }
    };
    saga::finish(
        &mut *ctx.db.acquire().await?,
        id,
        "failed",
        Some(reason),
        payment_id,
        followup,
    )
    .await
}

fn declined_payment_id(e: &CallError) -> Option<Uuid> {
    match e {
        CallError::Status { body, .. } => body["payment"]["payment_id"]
            .as_str()
            .and_then(|s| s.parse().ok()),
        _ => None,
    }
}
