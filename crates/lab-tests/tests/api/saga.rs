//! Scenario 5: the order saga and its compensation.

// Some tests here are sync-only; their helpers are unused in async mode.
#![cfg_attr(feature = "async", allow(unused_imports, dead_code))]

use std::time::Duration;

use lab_tests::{Stack, eventually};
use serde_json::{Value, json};

pub(crate) async fn stock(stack: &Stack, product: i64) -> (i64, i64) {
    let (status, s) = stack.get("inventory", &format!("/stock/{product}")).await;
    assert_eq!(status, 200, "{s}");
    (
        s["available"].as_i64().unwrap(),
        s["reserved"].as_i64().unwrap(),
    )
}

pub(crate) fn steps(order: &Value) -> Vec<String> {
    order["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["step"].as_str().unwrap(),
                s["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

pub(crate) async fn payments(stack: &Stack) -> i64 {
    let mut db = stack.db().await;
    sqlx::query_scalar("SELECT count(*) FROM payment_service.payments")
        .fetch_one(&mut db)
        .await
        .unwrap()
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn a_declined_payment_releases_exactly_the_reserved_stock() {
    let stack = Stack::start().await;
    let before = stock(&stack, 1).await;

    let (status, body) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 1, "quantity": 3}),
        )
        .await;

    assert_eq!(status, 400, "{body}");
    let detail = &body["detail"];
    assert!(detail["message"].is_string());
    assert_eq!(detail["product_id"], 1);
    assert_eq!(detail["reason"], "payment declined");
    assert_eq!(detail["compensation_executed"], true);
    assert_eq!(stock(&stack, 1).await, before, "stock is exactly as before");
    let (_, order) = stack
        .get("order", &format!("/orders/{}", detail["order_id"]))
        .await;
    assert_eq!(order["status"], "failed");
    assert_eq!(
        steps(&order),
        [
            "order_created:ok",
            "stock_reserved:ok",
            "payment:declined",
            "stock_released:ok",
            "order_failed:done"
        ]
    );
    let (_, reservation) = stack
        .get(
            "inventory",
            &format!("/reservations/{}", detail["order_id"]),
        )
        .await;
    assert_eq!(reservation["status"], "released");
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn an_approved_payment_confirms_the_order_and_the_stock_stays_taken() {
    let stack = Stack::start().await;
    let (available, _) = stock(&stack, 2).await;

    let (status, order) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 2, "quantity": 4, "approve_payment": true}),
        )
        .await;

    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "confirmed");
    assert!(order["payment_id"].is_string());
    assert_eq!(stock(&stack, 2).await, (available - 4, 0));
    assert_eq!(
        steps(&order),
        [
            "order_created:ok",
            "stock_reserved:ok",
            "payment:approved",
            "reservation_committed:ok",
            "order_confirmed:done"
        ]
    );
    let (_, payment) = stack
        .get(
            "payment",
            &format!("/payments/{}", order["payment_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(payment["status"], "completed");
    assert_eq!(payment["order_id"], order["id"]);
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn an_unknown_product_is_404_without_a_payment() {
    let stack = Stack::start().await;

    let (status, body) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 999, "quantity": 1}),
        )
        .await;

    assert_eq!(status, 404, "{body}");
    assert_eq!(body["detail"]["order_id"], 1);
    assert_eq!(payments(&stack).await, 0);
    let (_, order) = stack.get("order", "/orders/1").await;
    assert_eq!(order["status"], "failed");
    assert_eq!(order["failure_reason"], "unknown product");
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn not_enough_stock_is_409_without_a_payment() {
    let stack = Stack::start().await;
    stack
        .put("inventory", "/stock/3", json!({"available": 2}))
        .await;

    let (status, body) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 3, "quantity": 5}),
        )
        .await;

    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("not enough stock"),
        "{body}"
    );
    assert_eq!(payments(&stack).await, 0);
    assert_eq!(stock(&stack, 3).await, (2, 0));
}

#[tokio::test]
async fn bad_orders_are_422_and_change_nothing() {
    let stack = Stack::start().await;
    let before = stock(&stack, 1).await;
    for body in [
        json!({"product_id": 1, "quantity": 0}),
        json!({"product_id": 1, "quantity": -2}),
        json!({"product_id": 1}),
        json!({"product_id": "one", "quantity": 1}),
        json!({"product_id": 0, "quantity": 1}),
        json!({"product_id": 1, "quantity": 1.5}),
    ] {
        let (status, answer) = stack.post("order", "/create_order", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
    }
    assert_eq!(stock(&stack, 1).await, before);
    let (status, _) = stack.get("order", "/orders/1").await;
    assert_eq!(status, 404, "no order was created");
}

pub(crate) async fn place_concurrently(
    stack: &Stack,
    count: usize,
    body: Value,
) -> Vec<(u16, Value)> {
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

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn fifty_concurrent_orders_for_ten_in_stock_never_oversell() {
    let stack = Stack::builder()
        .var("DB_MAX_CONNECTIONS", "5")
        .start()
        .await;
    stack
        .put("inventory", "/stock/1", json!({"available": 10}))
        .await;

    let answers = place_concurrently(
        &stack,
        50,
        json!({"product_id": 1, "quantity": 1, "approve_payment": true}),
    )
    .await;

    let confirmed = answers.iter().filter(|(s, _)| *s == 201).count();
    let refused = answers.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!(confirmed + refused, 50, "{answers:?}");
    assert_eq!(confirmed, 10, "every unit sold once");
    assert_eq!(stock(&stack, 1).await, (0, 0), "none left, none held");
    assert_eq!(payments(&stack).await, 10, "no payment for a refused order");
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn fifty_concurrent_declined_orders_leave_the_stock_exactly_as_it_was() {
    let stack = Stack::builder()
        .var("DB_MAX_CONNECTIONS", "5")
        .start()
        .await;
    stack
        .put("inventory", "/stock/1", json!({"available": 10}))
        .await;

    let answers = place_concurrently(&stack, 50, json!({"product_id": 1, "quantity": 1})).await;

    // Up to ten at a time hold a unit; the rest find none left meanwhile.
    assert!(
        answers.iter().all(|(s, _)| *s == 400 || *s == 409),
        "{answers:?}"
    );
    assert!(answers.iter().any(|(s, _)| *s == 400));
    assert_eq!(stock(&stack, 1).await, (10, 0));
    let mut db = stack.db().await;
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_service.orders WHERE status <> 'failed'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(open, 0, "every order ended failed");
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn with_payment_down_the_order_fails_and_the_stock_is_released() {
    let stack = Stack::builder().without("payment").start().await;
    let before = stock(&stack, 1).await;

    let (status, body) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 1, "quantity": 2}),
        )
        .await;

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["detail"]["reason"], "payment service unavailable");
    assert_eq!(body["detail"]["compensation_executed"], true);
    assert_eq!(stock(&stack, 1).await, before);
    let (_, order) = stack
        .get("order", &format!("/orders/{}", body["detail"]["order_id"]))
        .await;
    assert_eq!(order["status"], "failed");
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn with_a_payment_timeout_the_order_fails_and_the_stock_is_released() {
    let stack = Stack::builder()
        .var("PAYMENT_DELAY_MS", "1500")
        .service_var("order", "OUTBOUND_TIMEOUT_MS", "300")
        .start()
        .await;
    let before = stock(&stack, 1).await;

    let (status, body) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 1, "quantity": 1, "approve_payment": true}),
        )
        .await;

    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("in time"),
        "{body}"
    );
    assert_eq!(stock(&stack, 1).await, before);
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn with_inventory_down_the_order_fails_with_503() {
    let stack = Stack::builder().without("inventory").start().await;

    let (status, body) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 1, "quantity": 1}),
        )
        .await;

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["detail"]["reason"], "inventory service unavailable");
    assert_eq!(payments(&stack).await, 0);
    let (_, order) = stack.get("order", "/orders/1").await;
    assert_eq!(order["status"], "failed");
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn a_release_owed_while_inventory_is_down_is_made_when_it_returns() {
    let mut stack = Stack::builder()
        .var("PAYMENT_DELAY_MS", "400")
        .start()
        .await;
    let before = stock(&stack, 1).await;
    let request = stack
        .http()
        .post(stack.url("order", "/create_order"))
        .json(&json!({"product_id": 1, "quantity": 2}))
        .send();
    let answer = tokio::spawn(async move {
        let r = request.await.expect("sent");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    });
    let reserved = eventually(Duration::from_secs(5), || async {
        // The order may not exist yet when the first poll arrives.
        let (status, order) = stack.get("order", "/orders/1").await;
        (status == 200 && steps(&order).contains(&"stock_reserved:ok".to_owned())).then_some(())
    })
    .await;
    assert!(reserved.is_some(), "the saga reserved stock");

    // Inventory goes away while the payment is being declined.
    stack.stop("inventory").await;
    let (status, body) = answer.await.expect("task");

    assert_eq!(status, 400, "{body}");
    assert_eq!(body["detail"]["compensation_executed"], false);
    assert_eq!(body["detail"]["compensation_pending"], true);
    stack.restart("inventory").await;
    let released = eventually(Duration::from_secs(10), || async {
        let (status, order) = stack.get("order", "/orders/1").await;
        (status == 200 && order["followup"].is_null()).then_some(order)
    })
    .await
    .expect("the owed release was made");
    assert_eq!(steps(&released).last().unwrap(), "stock_released:ok");
    assert_eq!(
        stock(&stack, 1).await,
        before,
        "exactly the reserved units came back"
    );
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn a_saga_cut_off_by_a_crash_is_failed_later_and_its_stock_released() {
    let stack = Stack::builder()
        .service_var("order", "SAGA_STALE_AFTER_MS", "300")
        .start()
        .await;
    let before = stock(&stack, 1).await;
    // What a crash between "reserved" and "paid" leaves behind: a pending
    // order, and its stock held by inventory.
    let mut db = stack.db().await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO order_service.orders (product_id, quantity, amount_cents, status)
         VALUES (1, 3, 3000, 'pending') RETURNING id",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    let (status, _) = stack
        .post(
            "inventory",
            "/reservations",
            json!({"order_id": id, "product_id": 1, "quantity": 3}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(stock(&stack, 1).await, (before.0 - 3, 3));

    let order = eventually(Duration::from_secs(10), || async {
        let (_, order) = stack.get("order", &format!("/orders/{id}")).await;
        (order["status"] == "failed" && order["followup"].is_null()).then_some(order)
    })
    .await
    .expect("the stale saga was failed and its release made");

    assert_eq!(order["failure_reason"], "saga interrupted");
    assert_eq!(steps(&order).last().unwrap(), "stock_released:ok");
    assert_eq!(
        stock(&stack, 1).await,
        before,
        "exactly the held units came back"
    );
}
