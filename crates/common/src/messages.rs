//! Payloads services exchange with each other: the bodies of internal HTTP
//! calls in sync mode, and the bodies of events in async mode. Internal, so
//! ours to design; the external contract lives in each service's handlers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// user → email: send the welcome email.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SendEmail {
    pub to: String,
    pub subject: String,
    pub user_id: Option<i64>,
}

/// email → user: the email went out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EmailSent {
    pub id: i64,
    pub to: String,
    pub subject: String,
    pub user_id: Option<i64>,
    pub sent_at: DateTime<Utc>,
}

/// order (or a client) → payment: charge this.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PaymentRequest {
    /// Positive, below 1000000000, at most two decimals.
    #[schema(
        exclusive_minimum = 0,
        exclusive_maximum = 1_000_000_000,
        multiple_of = 0.01,
        example = 12.5
    )]
    pub amount: f64,
    /// A three-letter ISO 4217 code.
    #[serde(default = "usd")]
    #[schema(default = "USD", example = "USD", pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    #[serde(default)]
    pub order_id: Option<i64>,
    /// Asks the simulated external API to decline (the saga's designed failure).
    #[serde(default)]
    pub force_decline: bool,
    /// Async mode: the stored payment this event asks to settle. Absent when
    /// the order saga asks for a payment, which is then created from the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub payment_id: Option<Uuid>,
}

fn usd() -> String {
    "USD".to_owned()
}

/// payment → caller: what became of a payment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PaymentResult {
    pub payment_id: Uuid,
    pub status: String,
    pub transaction_id: Option<String>,
    pub order_id: Option<i64>,
    pub amount: f64,
    pub currency: String,
}

/// product → search, cache, analytics: a product changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ProductChanged {
    pub product_id: i64,
    pub name: String,
    pub stock: i32,
    pub price: f64,
    pub updated_at: DateTime<Utc>,
}

/// order → inventory: hold stock for an order (one reservation per order).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reserve {
    pub order_id: i64,
    pub product_id: i64,
    pub quantity: i32,
}

/// inventory → order: the state of an order's reservation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Reservation {
    pub order_id: i64,
    pub product_id: Option<i64>,
    pub quantity: i32,
    pub status: String,
    /// How many units this call returned to stock (release only).
    #[serde(default)]
    pub released_quantity: i32,
}

/// Why inventory held no stock for an order. Travels as the `refusal` field of
/// inventory's 404/409 body (sync) and inside [`StockRefused`] (async).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    UnknownProduct,
    NotEnoughStock,
    /// The order's reservation was already released (a late reservation).
    OrderClosed,
}

impl RefusalKind {
    /// How an order refused this way states its `failure_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::UnknownProduct => "unknown product",
            RefusalKind::NotEnoughStock => "not enough stock",
            RefusalKind::OrderClosed => "order closed",
        }
    }
}

/// inventory → order: no stock was held for the order, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StockRefused {
    pub order_id: i64,
    pub product_id: i64,
    pub kind: RefusalKind,
    pub reason: String,
}

/// order → inventory: release or commit this order's reservation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderRef {
    pub order_id: i64,
}
