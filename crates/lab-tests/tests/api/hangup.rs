//! A client that hangs up never leaves work half done: whenever it goes away
//! (right after sending, while the downstream call runs, or after it), the
//! operation it started ends where it would have ended for a client that
//! waited. Both modes.

use std::time::Duration;

use common::MODE;
use lab_tests::Stack;
use loadgen::scenario::Scenario;
use serde_json::{Value, json};

use lab_tests::helpers::{steps, stock};

const DELAY_MS: u64 = 200;

/// Before the downstream call (right after the body), during it, and after it.
fn moments() -> [Duration; 3] {
    [
        Duration::ZERO,
        Duration::from_millis(DELAY_MS / 2),
        Duration::from_millis(DELAY_MS + 30),
    ]
}

async fn slow_stack() -> Stack {
    let delay = DELAY_MS.to_string();
    Stack::builder()
        .var("EMAIL_DELAY_MS", &delay)
        .var("PAYMENT_DELAY_MS", &delay)
        .start()
        .await
}

/// The id of what the request stored, once it has (the handler may still be
/// on its way to its first commit when the client is already gone).
async fn id_of(stack: &Stack, query: &str, key: &str) -> String {
    let found = lab_tests::eventually(Duration::from_secs(10), || async {
        let mut db = stack.db().await;
        sqlx::query_scalar::<_, String>(query)
            .bind(key)
            .fetch_optional(&mut db)
            .await
            .unwrap()
    })
    .await;
    found.unwrap_or_else(|| panic!("nothing stored for {key}: the request was never run"))
}

/// A user's record once its welcome email is no longer pending.
async fn final_user(stack: &Stack, email: &str) -> Value {
    let id = id_of(
        stack,
        "SELECT id::text FROM user_service.users WHERE email = $1",
        email,
    )
    .await;
    stack
        .get_until("user", &format!("/users/{id}"), |u| {
            u["email_status"] != "pending"
        })
        .await
}

async fn emails_to(stack: &Stack, email: &str) -> i64 {
    let (_, emails) = stack.get("email", &format!("/emails?to={email}")).await;
    emails["count"].as_i64().unwrap()
}

#[tokio::test]
async fn a_registration_whose_client_hung_up_still_records_its_email() {
    let stack = slow_stack().await;
    let (status, _) = stack
        .post("user", "/register", json!({"email": "waited@example.com"}))
        .await;
    assert_eq!(status, Scenario::Register.expected(MODE));
    let waited = final_user(&stack, "waited@example.com").await;
    assert_eq!(waited["email_status"], "sent");

    for (i, after) in moments().into_iter().enumerate() {
        let email = format!("gone-{i}@example.com");
        stack
            .hang_up(
                "POST",
                "user",
                "/register",
                &json!({ "email": email }),
                after,
            )
            .await;

        let user = final_user(&stack, &email).await;
        assert_eq!(
            user["email_status"], waited["email_status"],
            "{after:?}: {user}"
        );
        assert!(user["email_sent_at"].is_string(), "{user}");
        assert_eq!(emails_to(&stack, &email).await, 1, "{after:?}");
    }
}

/// A payment's record once it is no longer pending.
async fn final_payment(stack: &Stack, order_id: i64) -> Value {
    let id = id_of(
        stack,
        "SELECT id::text FROM payment_service.payments WHERE order_id = $1::text::bigint",
        &order_id.to_string(),
    )
    .await;
    stack
        .get_until("payment", &format!("/payments/{id}"), |p| {
            p["status"] != "pending"
        })
        .await
}

#[tokio::test]
async fn a_payment_whose_client_hung_up_is_still_settled() {
    let stack = slow_stack().await;
    let payment = |order_id: i64| json!({"order_id": order_id, "amount": 42.0});
    let (status, _) = stack
        .post("payment", "/process_payment", payment(100))
        .await;
    assert_eq!(status, Scenario::Payment.expected(MODE));
    let waited = final_payment(&stack, 100).await;
    assert_eq!(waited["status"], "completed");

    for (i, after) in moments().into_iter().enumerate() {
        let order_id = 101 + i as i64;
        stack
            .hang_up(
                "POST",
                "payment",
                "/process_payment",
                &payment(order_id),
                after,
            )
            .await;

        let settled = final_payment(&stack, order_id).await;
        assert_eq!(settled["status"], waited["status"], "{after:?}: {settled}");
        assert!(settled["transaction_id"].is_string(), "{settled}");
    }
}

/// The `expected` orders, once all are stored and none is pending, oldest first.
async fn final_orders(stack: &Stack, expected: usize) -> Vec<Value> {
    let ids = lab_tests::eventually(Duration::from_secs(10), || async {
        let mut db = stack.db().await;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM order_service.orders ORDER BY id")
            .fetch_all(&mut db)
            .await
            .unwrap();
        (ids.len() >= expected).then_some(ids)
    })
    .await
    .unwrap_or_else(|| panic!("fewer than {expected} orders were ever stored"));
    let mut orders = Vec::new();
    for id in ids {
        orders.push(
            stack
                .get_until("order", &format!("/orders/{id}"), |o| {
                    o["status"] != "pending" && o["followup"].is_null()
                })
                .await,
        );
    }
    orders
}

#[tokio::test]
async fn an_order_whose_client_hung_up_is_still_compensated() {
    let stack = slow_stack().await;
    let before = stock(&stack, 1).await;
    let order = json!({"product_id": 1, "quantity": 2});
    let (status, _) = stack.post("order", "/create_order", order.clone()).await;
    assert_eq!(status, Scenario::Order.expected(MODE));
    let waited = final_orders(&stack, 1).await.remove(0);
    assert_eq!(waited["status"], "failed", "{waited}");

    for after in moments() {
        stack
            .hang_up("POST", "order", "/create_order", &order, after)
            .await;
    }

    let orders = final_orders(&stack, 4).await;
    assert_eq!(orders.len(), 4, "one waited, three hung up");
    for order in &orders[1..] {
        assert_eq!(order["status"], waited["status"], "{order}");
        assert_eq!(order["failure_reason"], waited["failure_reason"], "{order}");
        assert_eq!(steps(order), steps(&waited), "{order}");
    }
    assert_eq!(stock(&stack, 1).await, before, "every unit came back");
}

#[tokio::test]
async fn under_a_load_of_clients_hanging_up_nothing_is_left_pending_or_out_of_step() {
    let notices_before = lab_tests::postgres_notices().len();
    let stack = slow_stack().await;
    let before = stock(&stack, 1).await;

    // Thirty clients at once, each giving up at its own moment of the delay.
    let clients = (0..30u64).map(|i| {
        let after = Duration::from_millis(i * (DELAY_MS + 50) / 30);
        let stack = &stack;
        async move {
            match i % 3 {
                0 => {
                    let body = json!({ "email": format!("load-{i}@example.com") });
                    stack
                        .hang_up("POST", "user", "/register", &body, after)
                        .await
                }
                1 => {
                    let body = json!({"product_id": 1, "quantity": 1});
                    stack
                        .hang_up("POST", "order", "/create_order", &body, after)
                        .await
                }
                _ => {
                    let body = json!({"name": format!("Laptop rev {i}"), "stock": i});
                    stack
                        .hang_up("PUT", "product", "/products/1", &body, after)
                        .await
                }
            }
        }
    });
    futures_util::future::join_all(clients).await;

    for i in (0..30).step_by(3) {
        let user = final_user(&stack, &format!("load-{i}@example.com")).await;
        assert_eq!(user["email_status"], "sent", "{user}");
    }
    let orders = final_orders(&stack, 10).await;
    assert_eq!(orders.len(), 10);
    assert!(orders.iter().all(|o| o["status"] == "failed"), "{orders:?}");
    assert_eq!(stock(&stack, 1).await, before, "every unit came back");
    let logged = lab_tests::eventually(Duration::from_secs(10), || async {
        let (_, logged) = stack
            .get("analytics", "/product_updates?product_id=1")
            .await;
        (logged.as_array().map(Vec::len) == Some(10)).then_some(())
    })
    .await;
    assert!(logged.is_some(), "every update reached analytics");
    let out_of_step: Vec<String> = lab_tests::postgres_notices()
        .into_iter()
        .skip(notices_before)
        .filter(|n| n.contains("transaction"))
        .collect();
    assert_eq!(out_of_step, Vec::<String>::new());
}

/// The watch above would see the warning: a COMMIT outside a transaction
/// (what a connection out of step sends) is collected.
#[tokio::test]
async fn the_watch_for_out_of_step_transactions_sees_one() {
    use sqlx::Connection;
    lab_tests::postgres_notices();
    let url = format!("{}/postgres", lab_tests::server_url());
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();

    sqlx::query("COMMIT").execute(&mut db).await.unwrap();

    let seen = lab_tests::postgres_notices();
    assert!(
        seen.iter()
            .any(|n| n.contains("there is no transaction in progress")),
        "{seen:?}"
    );
}
