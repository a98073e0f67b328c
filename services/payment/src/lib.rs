//! Payment service: scenario 2 (a slow external payment API) and the payment
//! step of the order saga. A payment is stored `pending`, the simulated
//! external call takes `PAYMENT_DELAY_MS`, then it is `completed` with a
//! transaction id, or `declined` when the caller asked for the designed failure.

mod seam;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use common::messages::PaymentRequest;
use common::{
    Background, Ctx, Delivery, Error, ErrorBody, JsonBody, PathParam, Result, ServiceDef,
};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::PAYMENT,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
    openapi,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The service's routes, each registered with its documentation.
fn api() -> OpenApiRouter<Ctx> {
    OpenApiRouter::default()
        .routes(routes!(process_payment))
        .routes(routes!(get_payment))
}

fn routes(ctx: Ctx, _: &mut Background) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(ctx)
}

/// The service's OpenAPI document in this build's mode.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(&common::services::PAYMENT, api())
}

common::openapi_tests!(crate::SERVICE, crate::api());

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Payment {
    #[serde(rename = "payment_id")]
    pub id: Uuid,
    pub order_id: Option<i64>,
    #[serde(skip)]
    pub amount_cents: i64,
    pub currency: String,
    /// `pending`, then `completed` or `declined`.
    pub status: String,
    #[serde(skip)]
    pub force_decline: bool,
    pub transaction_id: Option<String>,
    pub decline_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A payment as the service shows it.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `Payment::body` builds
struct PaymentView {
    #[serde(flatten)]
    payment: Payment,
    amount: f64,
    /// `/payments/{payment_id}`.
    status_url: String,
}

/// A declined payment (sync mode's 402).
#[cfg(not(feature = "async"))]
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `process_payment` builds
struct PaymentDeclined {
    /// `payment declined`.
    detail: String,
    payment: PaymentView,
}

impl Payment {
    fn body(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(self).unwrap_or_default();
        body["amount"] = json!(self.amount_cents as f64 / 100.0);
        body["status_url"] = json!(format!("/payments/{}", self.id));
        body
    }
}

const COLUMNS: &str = "id, order_id, amount_cents, currency, status, force_decline, transaction_id, decline_reason, created_at, completed_at";

/// Amounts are money: at least one cent, at most 2 decimals, below a
/// billion. (A positive amount below half a cent, 2e-11 say, has "no
/// decimals" once in cents: it is 0 cents, refused here, not by the table.)
fn cents(amount: f64) -> Result<i64> {
    let cents = (amount * 100.0).round();
    if !amount.is_finite() || amount <= 0.0 || amount >= 1e9 || cents < 1.0 {
        return Err(Error::Invalid(
            "amount: must be a positive number below 1000000000".into(),
        ));
    }
    if (amount * 100.0 - cents).abs() > 1e-6 {
        return Err(Error::Invalid("amount: at most two decimal places".into()));
    }
    Ok(cents as i64)
}

fn currency(code: &str) -> Result<String> {
    if code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err(Error::Invalid(
            "currency: must be a three-letter ISO 4217 code such as USD".into(),
        ))
    }
}

/// Scenario 2. Sync: 200 after the external call with `transaction_id`
/// (402 when declined). Async: 202 with `payment_id`, status `pending`.
#[cfg_attr(not(feature = "async"), utoipa::path(post, path = "/process_payment", tag = "payment",
    request_body = PaymentRequest,
    responses(
        (status = 200, description = "The external call (`PAYMENT_DELAY_MS`) completed the payment (`status: \"completed\"`, `transaction_id`).", body = PaymentView),
        (status = 402, description = "Declined, as asked with `force_decline`; the payment is stored `declined`.", body = PaymentDeclined),
        (status = 422, description = "`amount` is not positive, below 1000000000 with at most two decimals, or `currency` is not a three-letter code.", body = ErrorBody),
    ),
))]
#[cfg_attr(feature = "async", utoipa::path(post, path = "/process_payment", tag = "payment",
    request_body = PaymentRequest,
    responses(
        (status = 202, description = "Stored `pending`; a payment worker makes the external call (`status_url` turns `completed` or `declined`).", body = PaymentView),
        (status = 422, description = "`amount` is not positive, below 1000000000 with at most two decimals, or `currency` is not a three-letter code.", body = ErrorBody),
    ),
))]
async fn process_payment(
    State(ctx): State<Ctx>,
    JsonBody(req): JsonBody<PaymentRequest>,
) -> Result<Response> {
    let payment = create(
        &mut *ctx.db.acquire().await?,
        Uuid::new_v4(),
        &req,
        seam::EVENT.as_ref(),
    )
    .await?;
    match seam::charge(&ctx, &payment).await? {
        Delivery::Done(payment) if payment.status == "declined" => Err(Error::Body {
            status: StatusCode::PAYMENT_REQUIRED,
            body: json!({ "detail": "payment declined", "payment": payment.body() }),
        }),
        Delivery::Done(payment) => Ok((StatusCode::OK, axum::Json(payment.body())).into_response()),
        Delivery::Accepted => {
            Ok((StatusCode::ACCEPTED, axum::Json(payment.body())).into_response())
        }
    }
}

/// Stores a new pending payment with id `id`; creating the same id again
/// returns the stored one (a saga's payment event delivered twice). With
/// `event` (the seam's), the same statement writes it about the new
/// payment to the outbox.
pub async fn create(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    req: &PaymentRequest,
    event: Option<&common::events::About>,
) -> Result<Payment> {
    let amount_cents = cents(req.amount)?;
    let currency = currency(&req.currency)?;
    let send = common::events::sent(event, 6);
    // One statement (one round trip): the new row, or the stored one.
    let sql = format!(
        "WITH new AS (
             INSERT INTO payments (id, order_id, amount_cents, currency, status, force_decline)
             VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (id) DO NOTHING
             RETURNING {COLUMNS}
         ){send}
         SELECT {COLUMNS} FROM new
         UNION ALL
         SELECT {COLUMNS} FROM payments WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM new)"
    );
    let query = sqlx::query_as(&sql)
        .bind(id)
        .bind(req.order_id)
        .bind(amount_cents)
        .bind(&currency)
        .bind(req.force_decline);
    common::events::bind_sent(query, event)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| anyhow::anyhow!("payment {id} vanished").into())
}

pub async fn find(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Option<Payment>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"))
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Records the external API's verdict on a pending payment (the call itself,
/// `PAYMENT_DELAY_MS`, is the caller's: it must not hold a connection).
pub async fn settle(conn: &mut sqlx::PgConnection, payment: &Payment) -> Result<Payment> {
    let (status, transaction_id, reason) = if payment.force_decline {
        (
            "declined",
            None,
            Some("declined by the payment provider (simulated)"),
        )
    } else {
        (
            "completed",
            Some(format!("txn_{}", Uuid::new_v4().simple())),
            None,
        )
    };
    let settled: Payment = sqlx::query_as(&format!(
        "UPDATE payments SET status = $2, transaction_id = $3, decline_reason = $4, completed_at = now()
         WHERE id = $1 AND status = 'pending' RETURNING {COLUMNS}"
    ))
    .bind(payment.id)
    .bind(status)
    .bind(transaction_id)
    .bind(reason)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| anyhow::anyhow!("payment {} was settled twice", payment.id))?;
    tracing::info!(payment_id = %settled.id, status = %settled.status, "payment settled");
    Ok(settled)
}

/// A payment: `pending` during the external call, then `completed` or `declined`.
#[utoipa::path(get, path = "/payments/{id}", tag = "payment",
    params(("id" = Uuid, Path, description = "The payment's id (`payment_id`).")),
    responses(
        (status = 200, description = "The payment.", body = PaymentView),
        (status = 404, description = "No payment has this id.", body = ErrorBody),
    ),
)]
async fn get_payment(
    State(ctx): State<Ctx>,
    PathParam(id): PathParam<Uuid>,
) -> Result<axum::Json<serde_json::Value>> {
    find(&mut *ctx.db.acquire().await?, id)
        .await?
        .map(|p| axum::Json(p.body()))
        .ok_or_else(|| Error::not_found(format!("payment {id}")))
}
