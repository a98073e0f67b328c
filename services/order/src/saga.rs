//! The saga's state: orders, their steps, and the transitions both modes share.

use chrono::{DateTime, Utc};
use common::{Ctx, Error, Result};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Acquire, PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Order {
    pub id: i64,
    pub product_id: i64,
    pub quantity: i32,
    #[serde(skip)]
    pub amount_cents: i64,
    pub approve_payment: bool,
    pub status: String,
    pub failure_reason: Option<String>,
    pub payment_id: Option<Uuid>,
    pub followup: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Step {
    pub step: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

pub const COLUMNS: &str = "id, product_id, quantity, amount_cents, approve_payment, status, failure_reason, payment_id, followup, created_at, updated_at";

/// The nominal price of one unit. The order service owns no catalogue, so
/// it charges a fixed price; the amount only has to be a valid payment.
pub const UNIT_PRICE_CENTS: i64 = 1_000;

impl Order {
    pub fn amount(&self) -> f64 {
        self.amount_cents as f64 / 100.0
    }
}

/// An order with its steps, as `GET /orders/{id}` shows it.
pub async fn view(ctx: &Ctx, order: &Order) -> Result<Value> {
    let steps: Vec<Step> = sqlx::query_as(
        "SELECT step, outcome, detail, at FROM saga_steps WHERE order_id = $1 ORDER BY id",
    )
    .bind(order.id)
    .fetch_all(&ctx.db)
    .await?;
    let mut body = serde_json::to_value(order).unwrap_or_default();
    body["amount"] = json!(order.amount());
    body["steps"] = json!(steps);
    body["status_url"] = json!(format!("/orders/{}", order.id));
    Ok(body)
}

pub async fn find(ctx: &Ctx, id: i64) -> Result<Order> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
        .bind(id)
        .fetch_optional(&ctx.db)
        .await?
        .ok_or_else(|| Error::not_found(format!("order {id}")))
}

/// Records one step of an order's saga.
pub async fn step<'e>(
    db: impl PgExecutor<'e>,
    order_id: i64,
    step: &str,
    outcome: &str,
    detail: Option<&str>,
) -> Result<()> {
    sqlx::query("INSERT INTO saga_steps (order_id, step, outcome, detail) VALUES ($1, $2, $3, $4)")
        .bind(order_id)
        .bind(step)
        .bind(outcome)
        .bind(detail)
        .execute(db)
        .await?;
    Ok(())
}

/// Ends the saga: `confirmed` or `failed`, and what inventory call is still owed.
/// Runs in a savepoint when `conn` is already in a transaction (a consumer's).
pub async fn finish(
    conn: &mut PgConnection,
    id: i64,
    status: &str,
    reason: Option<&str>,
    payment_id: Option<Uuid>,
    followup: Option<&str>,
) -> Result<Order> {
    let mut tx = conn.begin().await?;
    let order = sqlx::query_as(&format!(
        "UPDATE orders SET status = $2, failure_reason = $3, payment_id = COALESCE($4, payment_id),
                followup = $5, updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(payment_id)
    .bind(followup)
    .fetch_one(&mut *tx)
    .await?;
    step(&mut *tx, id, &format!("order_{status}"), "done", reason).await?;
    tx.commit().await?;
    Ok(order)
}

/// An inventory call owed by a finished saga was made at last.
pub async fn followup_done(ctx: &Ctx, id: i64, followup: &str) -> Result<()> {
    let mut tx = ctx.db.begin().await?;
    sqlx::query(
        "UPDATE orders SET followup = NULL, updated_at = now() WHERE id = $1 AND followup = $2",
    )
    .bind(id)
    .bind(followup)
    .execute(&mut *tx)
    .await?;
    let name = if followup == "release" {
        "stock_released"
    } else {
        "reservation_committed"
    };
    step(&mut *tx, id, name, "ok", Some("retried in the background")).await?;
    tx.commit().await?;
    Ok(())
}
