//! What the tests of both modes share: reading stock, steps, payments and
//! timestamps, placing orders at once, and the status an outcome is answered
//! with.

use crate::Stack;
use chrono::{DateTime, Utc};
use common::{MODE, Mode};
use loadgen::scenario::Scenario;
use serde_json::Value;

/// A product's `(available, reserved)` as inventory reports it.
pub async fn stock(stack: &Stack, product: i64) -> (i64, i64) {
    let (status, s) = stack.get("inventory", &format!("/stock/{product}")).await;
    assert_eq!(status, 200, "{s}");
    (
        s["available"].as_i64().expect("available"),
        s["reserved"].as_i64().expect("reserved"),
    )
}

/// An order's saga steps as `step:outcome`.
pub fn steps(order: &Value) -> Vec<String> {
    order["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["step"].as_str().expect("step"),
                s["outcome"].as_str().expect("outcome")
            )
        })
        .collect()
}

/// How many payments the payment service stored.
pub async fn payments(stack: &Stack) -> i64 {
    let mut db = stack.db().await;
    sqlx::query_scalar("SELECT count(*) FROM payment_service.payments")
        .fetch_one(&mut db)
        .await
        .expect("payments counted")
}

/// A timestamp field.
pub fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("a timestamp").parse().expect("RFC 3339")
}

/// The status of an answer whose outcome is not the scenario's normal one.
/// Sync mode answers with the outcome itself, `sync` (201 for an approved
/// order, 402 for a declined payment, 409 when stock is short); async mode
/// accepts every valid request with the table's status and tells the
/// outcome in the final state.
pub fn status_for(scenario: Scenario, sync: u16) -> u16 {
    match MODE {
        Mode::Sync => sync,
        Mode::Async => scenario.expected(Mode::Async),
    }
}

/// `count` orders with the same body, all sent at once.
pub async fn place_concurrently(stack: &Stack, count: usize, body: Value) -> Vec<(u16, Value)> {
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let request = stack
                .http()
                .post(stack.url("order", "/create_order"))
                .json(&body)
                .send();
            tokio::spawn(async move {
                let response = request.await.expect("sent");
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.expect("json"),
                )
            })
        })
        .collect();
    let mut answers = Vec::new();
    for h in handles {
        answers.push(h.await.expect("task"));
    }
    answers
}

/// The final state of each order answered, in order.
pub async fn final_orders(stack: &Stack, answers: &[(u16, Value)]) -> Vec<Value> {
    let mut out = Vec::new();
    for (_, answer) in answers {
        out.push(stack.finished(Scenario::Order, answer).await);
    }
    out
}

/// A service's `/metrics` text.
pub async fn metrics(stack: &Stack, service: &str) -> String {
    let response = stack
        .http()
        .get(stack.url(service, "/metrics"))
        .send()
        .await
        .expect("metrics answered");
    response.text().await.expect("metrics read")
}

/// A series of a service summed over its labels (0 before its first count).
pub async fn counter(stack: &Stack, service: &str, series: &str) -> f64 {
    let text = metrics(stack, service).await;
    loadgen::exposition::sum(&text, series, |_| true)
}

/// The one event of `kind` in `schema`'s outbox whose payload's `key` is
/// `value` (async mode), read as `T`, and when it was accepted. Panics
/// unless there is exactly one, and unless its payload has exactly the
/// fields `T` serializes to: an event built in SQL must carry no field more
/// or less than its type.
pub async fn sent_event<T>(
    stack: &Stack,
    schema: &str,
    kind: &str,
    key: &str,
    value: &str,
) -> (T, DateTime<Utc>)
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let mut db = stack.db().await;
    let rows: Vec<(Value, DateTime<Utc>)> = sqlx::query_as(&format!(
        "SELECT payload, accepted_at FROM {schema}.outbox WHERE kind = $1 AND payload->>$2 = $3"
    ))
    .bind(kind)
    .bind(key)
    .bind(value)
    .fetch_all(&mut db)
    .await
    .expect("the outbox can be read");
    let [(payload, accepted_at)] = &rows[..] else {
        panic!("one {kind} with {key} {value}, not {}", rows.len());
    };
    let event: T = serde_json::from_value(payload.clone()).expect("the payload reads as its type");
    let fields = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        fields(payload),
        fields(&serde_json::to_value(&event).expect("the event serializes")),
        "{kind}: {payload}"
    );
    (event, *accepted_at)
}

/// A table locked against writes by a transaction of the test's own, so
/// that the requests writing it queue up behind it (the group commit tests).
pub struct TableLock(sqlx::PgConnection);

impl TableLock {
    /// Locks `table` (`schema.table`) until [`TableLock::release`].
    pub async fn take(stack: &Stack, table: &str) -> TableLock {
        let mut conn = stack.db().await;
        sqlx::query("BEGIN")
            .execute(&mut conn)
            .await
            .expect("BEGIN");
        sqlx::query(&format!("LOCK TABLE {table} IN EXCLUSIVE MODE"))
            .execute(&mut conn)
            .await
            .expect("the table locked");
        TableLock(conn)
    }

    /// Waits until a statement whose text has `statement` waits for the
    /// lock (at most 20 s; panics if none does).
    pub async fn waited_on(&self, stack: &Stack, statement: &str) {
        let pattern = format!("%{statement}%");
        let held_up = crate::eventually(std::time::Duration::from_secs(20), || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query ILIKE $1",
            )
            .bind(&pattern)
            .fetch_one(&mut stack.db().await)
            .await
            .expect("the lock's waiters");
            (waiting > 0).then_some(())
        })
        .await;
        assert!(held_up.is_some(), "a {statement} waits for the lock");
    }

    /// Lets the held writes go.
    pub async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("the lock released");
    }
}
