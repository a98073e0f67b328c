//! Order service: scenario 5, an order saga with compensation. The order is
//! saved `pending`, inventory reserves stock, payment charges (and declines by
//! design unless the order asks for approval), a declined payment releases
//! exactly the reserved stock, and the order ends `confirmed` or `failed`.
//! How the saga is driven is the mode's business, in [`seam`].

#[cfg(feature = "async")]
mod choreography;
#[cfg(not(feature = "async"))]
mod followups;
#[cfg(not(feature = "async"))]
mod orchestration;
pub mod saga;
mod seam;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{Background, Ctx, Delivery, Error, JsonBody, PathParam, Result, ServiceDef};
use garde::Validate;
use serde::Deserialize;
use serde_json::json;

use anyhow::anyhow;
use common::messages::RefusalKind;
use saga::{COLUMNS, Event, Followup, Order, Reason, Status, StepName, UNIT_PRICE_CENTS};

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::ORDER,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

fn routes(ctx: Ctx, background: &mut Background) -> Router {
    seam::background(&ctx, background);
    Router::new()
        .route("/create_order", post(create_order))
        .route("/orders/{id}", get(get_order))
        .with_state(ctx)
}

#[derive(Debug, Deserialize, Validate)]
struct CreateOrder {
    #[garde(range(min = 1))]
    product_id: i64,
    #[garde(range(min = 1, max = 1_000_000))]
    quantity: i32,
    /// Take the saga's happy path: the payment is approved instead of declined.
    #[serde(default)]
    #[garde(skip)]
    approve_payment: bool,
}

/// Scenario 5. Sync: 201 when approved, else the failure's status (see
/// [`failure_status`]) with the compensation's details. Async: 202 with the
/// pending order.
async fn create_order(
    State(ctx): State<Ctx>,
    JsonBody(req): JsonBody<CreateOrder>,
) -> Result<Response> {
    req.validate()?;
    let mut tx = ctx.db.begin().await?;
    let order: Order = sqlx::query_as(&format!(
        "INSERT INTO orders (product_id, quantity, amount_cents, approve_payment, status)
         VALUES ($1, $2, $3, $4, 'pending') RETURNING {COLUMNS}"
    ))
    .bind(req.product_id)
    .bind(req.quantity)
    .bind(i64::from(req.quantity) * UNIT_PRICE_CENTS)
    .bind(req.approve_payment)
    .fetch_one(&mut *tx)
    .await?;
    let created =
        saga::next(&order, Event::Created).ok_or_else(|| anyhow!("a new order is pending"))?;
    let order = saga::apply(&mut *tx, &order, &created).await?;
    let first = created
        .command
        .ok_or_else(|| anyhow!("a saga starts with a command"))?;
    tracing::info!(order_id = order.id, "order created");
    let (order, cause) = match seam::start_saga(&ctx, tx, order.clone(), first).await? {
        Delivery::Accepted => {
            return Ok((
                StatusCode::ACCEPTED,
                axum::Json(saga::view(&ctx, &order).await?),
            )
                .into_response());
        }
        Delivery::Done(done) => done,
    };
    let reason = match (order.status, order.reason()) {
        (Status::Confirmed, _) => {
            let body = saga::view(&ctx, &order).await?;
            return Ok((StatusCode::CREATED, axum::Json(body)).into_response());
        }
        (Status::Failed, Some(reason)) => reason,
        (status, _) => {
            return Err(anyhow!("order {} ended {status:?} without a reason", order.id).into());
        }
    };
    let message = match (reason, cause) {
        (Reason::Refused(RefusalKind::UnknownProduct), _) => {
            format!("product {} not found", order.product_id)
        }
        (Reason::PaymentDeclined, _) | (_, None) => format!("Order failed: {reason}"),
        (_, Some(cause)) => format!("Order failed: {cause}"),
    };
    Err(failure(&ctx, failure_status(reason), &order, &message).await?)
}

/// The contract's status for a saga that failed within the request.
fn failure_status(reason: Reason) -> StatusCode {
    match reason {
        Reason::Refused(RefusalKind::UnknownProduct) => StatusCode::NOT_FOUND,
        Reason::Refused(_) => StatusCode::CONFLICT,
        Reason::PaymentDeclined => StatusCode::BAD_REQUEST,
        Reason::PaymentUnavailable | Reason::InventoryUnavailable | Reason::Interrupted => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// The contract's failure body: `{"detail": {message, order_id, product_id,
/// reason, compensation_executed}}`, plus the steps.
async fn failure(ctx: &Ctx, status: StatusCode, order: &Order, message: &str) -> Result<Error> {
    let view = saga::view(ctx, order).await?;
    let released = view["steps"].as_array().is_some_and(|steps| {
        steps
            .iter()
            .any(|s| s["step"] == StepName::StockReleased.as_str() && s["outcome"] == "ok")
    });
    Ok(Error::Body {
        status,
        body: json!({ "detail": {
            "message": message,
            "order_id": order.id,
            "product_id": order.product_id,
            "reason": order.failure_reason,
            "compensation_executed": released,
            "compensation_pending": order.followup.as_deref() == Some(Followup::Release.as_str()),
            "status": order.status,
            "steps": view["steps"],
            "status_url": view["status_url"],
        }}),
    })
}

async fn get_order(
    State(ctx): State<Ctx>,
    PathParam(id): PathParam<i64>,
) -> Result<axum::Json<serde_json::Value>> {
    let order = saga::find(&ctx, id).await?;
    Ok(axum::Json(saga::view(&ctx, &order).await?))
}
