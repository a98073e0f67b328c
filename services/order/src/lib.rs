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
use common::{Background, Ctx, Error, ErrorBody, JsonBody, PathParam, Result, ServiceDef};
use garde::Validate;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use anyhow::anyhow;
use common::messages::RefusalKind;
use saga::{Followup, Order, Reason, Status, StepName};

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::ORDER,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
    openapi,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

fn routes(ctx: Ctx, background: &mut Background) -> Router {
    seam::background(&ctx, background);
    let orders = seam::Orders::new(&ctx, background);
    let (router, _) = api().split_for_parts();
    router.with_state(AppState { ctx, orders })
}

/// How new orders are stored, next to the context.
#[derive(Clone, axum::extract::FromRef)]
struct AppState {
    ctx: Ctx,
    orders: seam::Orders,
}

/// The service's routes, each registered with its documentation.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create_order))
        .routes(routes!(get_order))
}

/// The service's OpenAPI document in this build's mode.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(&common::services::ORDER, api())
}

common::openapi_tests!(crate::SERVICE, crate::api());

#[derive(Debug, Deserialize, Validate, ToSchema)]
struct CreateOrder {
    /// 1 or more.
    #[garde(range(min = 1))]
    #[schema(minimum = 1)]
    product_id: i64,
    /// 1 to 1000000.
    #[garde(range(min = 1, max = 1_000_000))]
    #[schema(minimum = 1, maximum = 1_000_000)]
    quantity: i32,
    /// Take the saga's happy path: the payment is approved instead of declined.
    #[serde(default)]
    #[garde(skip)]
    approve_payment: bool,
}

/// An order with its saga's steps.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `saga::view` builds
struct OrderView {
    #[serde(flatten)]
    order: Order,
    amount: f64,
    /// Every step of the saga, in order, with its time.
    steps: Vec<saga::Step>,
    /// `/orders/{id}`.
    status_url: String,
}

/// A saga that failed within the request.
#[cfg(not(feature = "async"))]
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `failure` builds
struct OrderFailed {
    detail: SagaFailure,
}

#[cfg(not(feature = "async"))]
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `failure` builds
struct SagaFailure {
    message: String,
    order_id: i64,
    product_id: i64,
    /// The order's `failure_reason`, e.g. `payment declined`.
    reason: Option<String>,
    /// The reserved stock was released.
    compensation_executed: bool,
    /// The release is still to be done: the service retries it.
    compensation_pending: bool,
    status: saga::Status,
    steps: Vec<saga::Step>,
    status_url: String,
}

/// Scenario 5. Sync: 201 when approved, else the failure's status (see
/// [`failure_status`]) with the compensation's details. Async: 202 with the
/// pending order.
#[cfg_attr(not(feature = "async"), utoipa::path(post, path = "/create_order", tag = "order",
    request_body = CreateOrder,
    responses(
        (status = 201, description = "Approved (`approve_payment: true`): stock reserved, payment completed, order `confirmed`.", body = OrderView),
        (status = 400, description = "The payment was declined (by design without `approve_payment`); the reserved stock was released (`compensation_executed`) and the order `failed`.", body = OrderFailed),
        (status = 404, description = "Inventory knows no such product; the order `failed`.", body = OrderFailed),
        (status = 409, description = "Not enough stock (no payment attempted), or the order's reservation was already closed; the order `failed`.", body = OrderFailed),
        (status = 422, description = "`product_id` below 1, or `quantity` not 1 to 1000000.", body = ErrorBody),
        (status = 503, description = "Inventory or payment was unavailable (down or timing out), or the saga was interrupted; the order `failed`, reserved stock released or its release pending (`compensation_pending`).", body = OrderFailed),
    ),
))]
#[cfg_attr(feature = "async", utoipa::path(post, path = "/create_order", tag = "order",
    request_body = CreateOrder,
    responses(
        (status = 202, description = "The order is `pending`; its saga runs by events (`status_url` shows it end `confirmed` or `failed`).", body = OrderView),
        (status = 422, description = "`product_id` below 1, or `quantity` not 1 to 1000000.", body = ErrorBody),
    ),
))]
async fn create_order(
    State(ctx): State<Ctx>,
    State(orders): State<seam::Orders>,
    JsonBody(req): JsonBody<CreateOrder>,
) -> Result<Response> {
    req.validate()?;
    let draft = saga::draft(req.product_id, req.quantity, req.approve_payment);
    let (order, cause) = match seam::start_saga(&ctx, &orders, draft).await? {
        seam::Started::Accepted(body) => {
            return Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response());
        }
        seam::Started::Done(order, cause) => (order, cause),
    };
    let reason = match (order.status, order.reason()) {
        (Status::Confirmed, _) => {
            let body = saga::view(&ctx.db, &order).await?;
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
    let view = saga::view(&ctx.db, order).await?;
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

/// An order with every step of its saga.
#[utoipa::path(get, path = "/orders/{id}", tag = "order",
    params(("id" = i64, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The order.", body = OrderView),
        (status = 404, description = "No order has this id.", body = ErrorBody),
    ),
)]
async fn get_order(
    State(ctx): State<Ctx>,
    PathParam(id): PathParam<i64>,
) -> Result<axum::Json<serde_json::Value>> {
    let order = saga::find(&ctx, id).await?;
    Ok(axum::Json(saga::view(&ctx.db, &order).await?))
}
