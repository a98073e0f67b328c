//! The six scenarios as the driver sends them, and the answer each expects.

use chrono::{DateTime, Utc};
use common::Mode;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Register,
    Payment,
    Fanout,
    Report,
    Order,
    Click,
}

pub const ALL: [Scenario; 6] = [
    Scenario::Register,
    Scenario::Payment,
    Scenario::Fanout,
    Scenario::Report,
    Scenario::Order,
    Scenario::Click,
];

/// The product every order of the load asks one unit of.
pub const ORDER_PRODUCT: i64 = 1;

/// Units of [`ORDER_PRODUCT`] the driver makes available before an order
/// load (`drive::stock_for_orders`): more than any load here orders (2,000
/// a second for 13 hours), so that every order can be reserved and the
/// saga, not a refusal for lack of stock, is what is measured.
pub const ORDER_STOCK: i32 = 100_000_000;

impl Scenario {
    /// One scenario: 1-6 or its name.
    pub fn parse_one(s: &str) -> Result<Scenario, String> {
        match Scenario::parse(s)?.as_slice() {
            [one] => Ok(*one),
            _ => Err("one scenario: 1-6 or its name".into()),
        }
    }

    pub fn parse(s: &str) -> Result<Vec<Scenario>, String> {
        Ok(match s {
            "all" => ALL.to_vec(),
            "1" | "register" => vec![Scenario::Register],
            "2" | "payment" => vec![Scenario::Payment],
            "3" | "fanout" => vec![Scenario::Fanout],
            "4" | "report" => vec![Scenario::Report],
            "5" | "order" => vec![Scenario::Order],
            "6" | "click" => vec![Scenario::Click],
            other => {
                return Err(format!(
                    "unknown scenario {other}: use 1-6, register, payment, fanout, report, order, click or all"
                ));
            }
        })
    }

    pub fn number(self) -> usize {
        ALL.iter().position(|s| *s == self).unwrap_or(0) + 1
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Register => "register",
            Scenario::Payment => "payment",
            Scenario::Fanout => "fanout",
            Scenario::Report => "report",
            Scenario::Order => "order",
            Scenario::Click => "click",
        }
    }

    /// The service that answers the scenario's entry point.
    pub fn service(self) -> &'static str {
        match self {
            Scenario::Register => "user",
            Scenario::Payment => "payment",
            Scenario::Fanout => "product",
            Scenario::Report => "report",
            Scenario::Order => "order",
            Scenario::Click => "analytics",
        }
    }

    /// The status the contract gives the scenario's normal answer. The sync
    /// saga's 400 is its designed outcome, not an error.
    pub fn expected(self, mode: Mode) -> u16 {
        match (self, mode) {
            (Scenario::Register, Mode::Sync) => 201,
            (Scenario::Order, Mode::Sync) => 400,
            (Scenario::Fanout | Scenario::Click, _)
            | (Scenario::Payment | Scenario::Report, Mode::Sync) => 200,
            (_, Mode::Async) => 202,
        }
    }

    /// Whether the driver follows the scenario's accepted operations to their
    /// end (async mode; the fan-out and clicks have no per-operation status).
    pub fn followed(self, mode: Mode) -> bool {
        mode == Mode::Async
            && matches!(
                self,
                Scenario::Register | Scenario::Payment | Scenario::Report | Scenario::Order
            )
    }

    /// The route whose 2xx answers, counted by the stack itself, must each
    /// have left one stored effect (clicks, fan-out updates logged).
    pub fn counted_route(self) -> Option<&'static str> {
        match self {
            Scenario::Click => Some("POST /track_click"),
            Scenario::Fanout => Some("PUT /products/{id}"),
            _ => None,
        }
    }

    /// Where the stack keeps the operation an answer is about: the async
    /// answer's `status_url`, else the record a sync answer names.
    pub fn resource(self, body: &Value) -> Option<String> {
        let detail = &body["detail"];
        if let Some(url) = body["status_url"]
            .as_str()
            .or(detail["status_url"].as_str())
        {
            return Some(url.to_owned());
        }
        let id = |v: &Value| match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        match self {
            Scenario::Register => Some(format!("/users/{}", id(&body["id"])?)),
            Scenario::Payment => Some(format!("/payments/{}", id(&body["payment_id"])?)),
            Scenario::Report => Some(format!("/jobs/{}", id(&body["job_id"])?)),
            Scenario::Order => Some(format!(
                "/orders/{}",
                id(&body["id"]).or_else(|| id(&detail["order_id"]))?
            )),
            Scenario::Fanout | Scenario::Click => None,
        }
    }

    /// When the server accepted and finished the operation, from a status
    /// endpoint's body, once it reached its end (whichever outcome).
    pub fn finished(self, body: &Value) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (state, pending, finished_field) = match self {
            Scenario::Register => ("email_status", "pending", "email_sent_at"),
            Scenario::Payment => ("status", "pending", "completed_at"),
            Scenario::Report => ("status", "", "completed_at"),
            Scenario::Order => ("status", "pending", "updated_at"),
            Scenario::Fanout | Scenario::Click => return None,
        };
        let state = body[state].as_str()?;
        let over = match self {
            Scenario::Report => matches!(state, "completed" | "failed"),
            _ => state != pending,
        };
        if !over {
            return None;
        }
        let at = |field: &str| body[field].as_str()?.parse::<DateTime<Utc>>().ok();
        Some((at("created_at")?, at(finished_field)?))
    }

    /// Method, path and body of request number `n` of a run.
    pub fn request(self, run: &str, n: u64) -> (reqwest::Method, String, Value) {
        use reqwest::Method;
        match self {
            Scenario::Register => (
                Method::POST,
                "/register".into(),
                json!({"email": format!("load-{run}-{n}@example.com")}),
            ),
            Scenario::Payment => (
                Method::POST,
                "/process_payment".into(),
                json!({"order_id": n, "amount": 100.0, "currency": "USD"}),
            ),
            Scenario::Fanout => {
                let id = n % 3 + 1;
                (
                    Method::PUT,
                    format!("/products/{id}"),
                    json!({"name": format!("Product {id} rev {n}"), "stock": n % 100}),
                )
            }
            Scenario::Report => (
                Method::POST,
                "/generate_report".into(),
                json!({"report_type": "monthly"}),
            ),
            Scenario::Order => (
                Method::POST,
                "/create_order".into(),
                json!({"product_id": ORDER_PRODUCT, "quantity": 1}),
            ),
            Scenario::Click => (
                Method::POST,
                "/track_click".into(),
                json!({"user_id": n % 10_000, "page": format!("page-{}", n % 20)}),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_is_finished_only_in_a_final_state_and_timed_by_the_server() {
        let pending = json!({"email_status": "pending", "created_at": "2026-01-01T00:00:00Z"});
        assert_eq!(Scenario::Register.finished(&pending), None);

        let sent = json!({
            "email_status": "sent",
            "created_at": "2026-01-01T00:00:00Z",
            "email_sent_at": "2026-01-01T00:00:00.5123Z",
        });
        let (accepted, finished) = Scenario::Register.finished(&sent).unwrap();
        assert_eq!((finished - accepted).num_microseconds(), Some(512_300));

        let running = json!({"status": "running", "created_at": "2026-01-01T00:00:00Z"});
        assert_eq!(Scenario::Report.finished(&running), None);

        let declined = json!({
            "status": "failed",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:02Z",
        });
        let (accepted, finished) = Scenario::Order.finished(&declined).unwrap();
        assert_eq!((finished - accepted).num_seconds(), 2);
    }
}
