//! Order service: scenario 5, an order saga with compensation. The order is
//! saved `pending`, inventory reserves stock, payment charges (and declines by
//! design unless the order asks for approval), a declined payment releases
//! exactly the reserved stock, and the order ends `confirmed` or `failed`.
//! How the saga is driven is the mode's business, in [`seam`].

#[cfg(feature = "async")]
mod choreography;
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
use common::{Ctx, Delivery, Error, JsonBody, PathParam, Result, ServiceDef};
use garde::Validate;
use serde::Deserialize;
use serde_json::json;

use saga::{COLUMNS, Order, UNIT_PRICE_CENTS};

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::ORDER,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

fn routes(ctx: Ctx) -> Router {
    tokio::spawn(followups::run(ctx.clone()));
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

/// How a saga driven to its end within the request (sync mode) came out.
#[derive(Debug)]
pub enum Outcome {
    Confirmed(Order),
    /// Payment declined, stock released (or owed, if inventory was down).
    Declined(Order),
    /// Inventory refused: unknown product (404) or not enough stock (409). No payment was attempted.
    Refused {
        order: Order,
        status: StatusCode,
        message: String,
    },
    /// A service the saga needs was down or too slow.
    Unavailable {
        order: Order,
        message: String,
    },
}

/// Scenario 5. Sync: 400 with the compensation's details (designed decline),
/// 201 when approved. Async: 202 with the pending order.
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
    saga::step(&mut *tx, order.id, "order_created", "ok", None).await?;
    tracing::info!(order_id = order.id, "order created");
    let outcome = match seam::start_saga(&ctx, tx, &order).await? {
        Delivery::Accepted => {
            return Ok((
                StatusCode::ACCEPTED,
                axum::Json(saga::view(&ctx, &order).await?),
            )
                .into_response());
        }
        Delivery::Done(outcome) => outcome,
    };
    match outcome {
        Outcome::Confirmed(order) => Ok((
            StatusCode::CREATED,
            axum::Json(saga::view(&ctx, &order).await?),
        )
            .into_response()),
        Outcome::Declined(order) => Err(failure(
            &ctx,
            StatusCode::BAD_REQUEST,
            &order,
            "Order failed: payment declined",
        )
        .await?),
        Outcome::Refused {
            order,
            status,
            message,
        } => Err(failure(&ctx, status, &order, &message).await?),
        Outcome::Unavailable { order, message } => {
            Err(failure(&ctx, StatusCode::SERVICE_UNAVAILABLE, &order, &message).await?)
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
            .any(|s| s["step"] == "stock_released" && s["outcome"] == "ok")
    });
    Ok(Error::Body {
        status,
        body: json!({ "detail": {
            "message": message,
            "order_id": order.id,
            "product_id": order.product_id,
            "reason": order.failure_reason,
            "compensation_executed": released,
            "compensation_pending": order.followup.as_deref() == Some("release"),
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
