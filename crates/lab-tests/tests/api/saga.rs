//! Scenario 5: the order saga and its compensation, in both modes: the same
//! orders end in the same states, with the same steps and the stock exact,
//! whether the answer waited for the saga (sync) or came at once (async).

use std::time::Duration;

use common::{MODE, Mode};
use lab_tests::Stack;
use loadgen::scenario::Scenario;
use serde_json::{Value, json};

use lab_tests::helpers::{
    TableLock, final_orders, payments, place_concurrently, status_for, steps, stock,
};

#[tokio::test]
async fn a_declined_payment_releases_exactly_the_reserved_stock() {
    let stack = Stack::start().await;
    let before = stock(&stack, 1).await;

    let (status, answer) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 1, "quantity": 3}),
        )
        .await;

    assert_eq!(status, Scenario::Order.expected(MODE), "{answer}");
    if MODE == Mode::Sync {
        // The saga ran within the request: the answer tells how it ended.
        let detail = &answer["detail"];
        assert!(detail["message"].is_string());
        assert_eq!(detail["product_id"], 1);
        assert_eq!(detail["reason"], "payment declined");
        assert_eq!(detail["compensation_executed"], true);
    } else {
        assert_eq!(answer["status"], "pending");
    }
    let order = stack.finished(Scenario::Order, &answer).await;
    assert_eq!(order["status"], "failed", "{order}");
    assert_eq!(order["failure_reason"], "payment declined");
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
    assert_eq!(
        order["steps"][3]["detail"], "3 units returned",
        "exactly what was reserved"
    );
    assert_eq!(stock(&stack, 1).await, before, "stock is exactly as before");
    assert_eq!(payments(&stack).await, 1);
    let (_, reservation) = stack
        .get("inventory", &format!("/reservations/{}", order["id"]))
        .await;
    assert_eq!(reservation["status"], "released");
}

#[tokio::test]
async fn an_approved_payment_confirms_the_order_and_the_stock_stays_taken() {
    let stack = Stack::start().await;
    let (available, _) = stock(&stack, 2).await;

    let (status, answer) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 2, "quantity": 4, "approve_payment": true}),
        )
        .await;

    assert_eq!(status, status_for(Scenario::Order, 201), "{answer}");
    let order = stack.finished(Scenario::Order, &answer).await;
    if MODE == Mode::Sync {
        assert_eq!(answer, order, "the answer is the confirmed order");
    } else {
        assert_eq!(answer["status"], "pending");
    }
    assert_eq!(order["status"], "confirmed", "{order}");
    assert!(order["payment_id"].is_string());
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
    assert_eq!(stock(&stack, 2).await, (available - 4, 0));
    let (_, payment) = stack
        .get(
            "payment",
            &format!("/payments/{}", order["payment_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(payment["status"], "completed");
    assert_eq!(payment["order_id"], order["id"]);
}

/// Places an order inventory refuses and checks what every refusal leaves:
/// answered (sync) with `sync_status`, the order stored and failed for
/// `reason`, the refused reservation in its steps, no payment asked for.
/// Returns the answer for the caller's own checks.
async fn refused(
    stack: &Stack,
    product: i64,
    quantity: i64,
    sync_status: u16,
    reason: &str,
) -> Value {
    let (status, answer) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": product, "quantity": quantity}),
        )
        .await;
    assert_eq!(status, status_for(Scenario::Order, sync_status), "{answer}");
    let order = stack.finished(Scenario::Order, &answer).await;
    assert_eq!(order["status"], "failed", "{order}");
    assert_eq!(order["failure_reason"], reason);
    assert_eq!(
        steps(&order),
        [
            "order_created:ok",
            "stock_reserved:refused",
            "order_failed:done"
        ]
    );
    assert_eq!(payments(stack).await, 0, "no payment was asked for");
    answer
}

#[tokio::test]
async fn an_unknown_product_is_404_without_a_payment() {
    let stack = Stack::start().await;

    let answer = refused(&stack, 999, 1, 404, "unknown product").await;

    if MODE == Mode::Sync {
        assert_eq!(answer["detail"]["order_id"], 1);
    }
    let (_, order) = stack.get("order", "/orders/1").await;
    assert_eq!(order["id"], 1, "the order is stored");
}

#[tokio::test]
async fn not_enough_stock_is_409_without_a_payment() {
    let stack = Stack::start().await;
    stack
        .put("inventory", "/stock/3", json!({"available": 2}))
        .await;

    let answer = refused(&stack, 3, 5, 409, "not enough stock").await;

    if MODE == Mode::Sync {
        assert!(
            answer["detail"]["message"]
                .as_str()
                .unwrap()
                .contains("not enough stock"),
            "{answer}"
        );
    }
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

    let orders = final_orders(&stack, &answers).await;
    for ((status, answer), order) in answers.iter().zip(&orders) {
        // Sync answers 201 or 409 by outcome; async accepts each with 202.
        let outcome = if order["status"] == "confirmed" {
            201
        } else {
            assert_eq!(order["status"], "failed", "{order}");
            assert_eq!(order["failure_reason"], "not enough stock", "{order}");
            409
        };
        assert_eq!(
            *status,
            status_for(Scenario::Order, outcome),
            "{answer} -> {order}"
        );
    }
    let confirmed = orders.iter().filter(|o| o["status"] == "confirmed").count();
    assert_eq!(confirmed, 10, "every unit sold once");
    assert_eq!(stock(&stack, 1).await, (0, 0), "none left, none held");
    assert_eq!(payments(&stack).await, 10, "no payment for a refused order");
}

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
    let orders = final_orders(&stack, &answers).await;
    for ((status, answer), order) in answers.iter().zip(&orders) {
        assert_eq!(order["status"], "failed", "{order}");
        let expected = match order["failure_reason"].as_str() {
            Some("payment declined") => Scenario::Order.expected(MODE),
            Some("not enough stock") => status_for(Scenario::Order, 409),
            _ => panic!("failed for another reason: {order}"),
        };
        assert_eq!(*status, expected, "{answer} -> {order}");
    }
    assert!(
        orders
            .iter()
            .any(|o| o["failure_reason"] == "payment declined"),
        "{orders:?}"
    );
    assert_eq!(stock(&stack, 1).await, (10, 0), "stock exactly as before");
    let mut db = stack.db().await;
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM order_service.orders WHERE status <> 'failed'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(open, 0, "every order ended failed");
}

/// Orders that arrive together share one statement in async mode (a group
/// commit, as registrations do): each answer is still its own order, each
/// order's saga its own, and each first command its own event.
#[tokio::test]
async fn orders_that_arrive_together_keep_their_own_answers() {
    const ORDERS: usize = 24;
    let stack = Stack::start().await;
    for product in 1..=3 {
        let path = format!("/stock/{product}");
        stack
            .put("inventory", &path, json!({"available": 1000}))
            .await;
    }
    let lock = TableLock::take(&stack, "order_service.orders").await;
    let bodies: Vec<Value> = (0..ORDERS)
        .map(|i| {
            json!({
                "product_id": 1 + i % 3,
                "quantity": 1 + i,
                "approve_payment": i % 2 == 0,
            })
        })
        .collect();
    let requests: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let request = stack
                .http()
                .post(stack.url("order", "/create_order"))
                .header("x-request-id", format!("order-{i}"))
                .json(body)
                .send();
            tokio::spawn(async move {
                let answer = request.await.expect("sent");
                (
                    answer.status().as_u16(),
                    answer.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    lock.waited_on(&stack, "INSERT INTO orders").await;
    // Time for the other orders to arrive and queue behind it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    lock.release().await;

    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    let orders = final_orders(&stack, &answers).await;
    let mut ids = std::collections::HashSet::new();
    for (i, ((status, answer), order)) in answers.iter().zip(&orders).enumerate() {
        let body = &bodies[i];
        let approved = body["approve_payment"] == true;
        let outcome = if approved { 201 } else { 400 };
        assert_eq!(*status, status_for(Scenario::Order, outcome), "{answer}");
        for field in ["product_id", "quantity", "approve_payment"] {
            assert_eq!(order[field], body[field], "its own order: {order}");
        }
        let expected = if approved { "confirmed" } else { "failed" };
        assert_eq!(order["status"], expected, "{order}");
        assert_eq!(steps(order)[0], "order_created:ok", "{order}");
        assert!(ids.insert(order["id"].as_i64().unwrap()), "{order}");
    }

    let mut db = stack.db().await;
    let writes: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT created_at) FROM order_service.orders")
            .fetch_one(&mut db)
            .await
            .unwrap();
    if MODE == Mode::Async {
        assert!(
            writes < ORDERS as i64 / 2,
            "{ORDERS} orders in {writes} statements: they shared them"
        );
        // Each order's first command is its own: its id, product and
        // quantity, its request's id.
        let events: Vec<(i64, String)> = sqlx::query_as(
            "SELECT o.id, e.correlation_id FROM order_service.outbox e
             JOIN order_service.orders o ON (e.payload->>'order_id')::bigint = o.id
             WHERE e.kind = 'stock.reserve' AND (e.payload->>'product_id')::bigint = o.product_id
               AND (e.payload->>'quantity')::int = o.quantity AND e.accepted_at = o.created_at",
        )
        .fetch_all(&mut db)
        .await
        .unwrap();
        let sent: std::collections::HashSet<i64> = events.iter().map(|e| e.0).collect();
        assert_eq!(events.len(), ORDERS, "{events:?}");
        assert_eq!(
            sent.len(),
            ORDERS,
            "one first command per order: {events:?}"
        );
        for (id, correlation_id) in &events {
            let i = orders.iter().position(|o| o["id"] == *id).unwrap();
            assert_eq!(*correlation_id, format!("order-{i}"), "order {id}");
        }
    }
}

/// A client's own payment (scenario 2) may name any `order_id`: it must not
/// settle that order's saga, nor, in async mode, poison the saga's queue when
/// no such order exists (found by the load driver: every scenario-2 payment
/// was retried and dead-lettered by the order service).
#[tokio::test]
async fn a_clients_payment_naming_an_order_leaves_the_sagas_alone() {
    let stack = Stack::builder()
        .var("CONSUMER_RETRY_BASE_MS", "1")
        .start()
        .await;
    let (status, answer) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 3, "quantity": 1, "approve_payment": true}),
        )
        .await;
    assert_eq!(status, status_for(Scenario::Order, 201), "{answer}");
    let first = stack.finished(Scenario::Order, &answer).await;
    assert_eq!(first["status"], "confirmed", "{first}");

    for order_id in [first["id"].clone(), json!(987_654_321)] {
        let (status, payment) = stack
            .post(
                "payment",
                "/process_payment",
                json!({"order_id": order_id, "amount": 9.5, "force_decline": true}),
            )
            .await;
        assert_eq!(status, status_for(Scenario::Payment, 402), "{payment}");
        let done = stack.finished(Scenario::Payment, &payment).await;
        assert_eq!(done["status"], "declined", "{done}");
    }
    // Async only (sync has no saga queue): even a verdict sent straight to the
    // saga's queue for a finished order moves nothing.
    #[cfg(feature = "async")]
    {
        let verdict = json!({"payment_id": uuid::Uuid::new_v4(), "status": "declined",
            "transaction_id": null, "order_id": first["id"], "amount": 10.0, "currency": "USD"});
        let id = uuid::Uuid::new_v4().to_string();
        stack
            .broker
            .publish("payment.settled", &id, verdict.to_string().as_bytes())
            .await;
    }
    // A saga behind them: once it is through, a verdict wrongly sent to the
    // order service would have been handled (async retries are 1 ms apart
    // here) and dead-lettered.
    let (_, later) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 3, "quantity": 1, "approve_payment": true}),
        )
        .await;
    let later = stack.finished(Scenario::Order, &later).await;
    assert_eq!(later["status"], "confirmed", "{later}");

    let (_, now) = stack
        .get("order", &format!("/orders/{}", first["id"]))
        .await;
    assert_eq!(now, first, "the confirmed order did not change");
    #[cfg(feature = "async")]
    assert_eq!(stack.broker.depth("dead-letters").await, 0);
}

// Sync only: a refused connection is what a blocking call to a payment service
// that is down meets, and the saga is compensated within the request. In
// async mode nothing calls payment: the saga's payment request waits in its
// queue, the order stays pending with its stock held, and nothing fails.
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

// Sync only: `OUTBOUND_TIMEOUT_MS` bounds the blocking call to payment. In
// async mode no request waits on payment, so there is nothing to time out; a
// slow payment only makes the order end later.
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

// Sync only: as with payment down, a refused blocking call. In async mode the
// reservation waits in inventory's queue and the order stays pending.
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

// Sync only: a release owed (`followup`, retried every
// `COMPENSATION_RETRY_MS`) exists only when a blocking release call failed.
// In async mode the release is a message that waits in inventory's queue;
// nothing is owed.
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
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.expect("json"),
        )
    });
    let reserved = lab_tests::eventually(std::time::Duration::from_secs(5), || async {
        // The order may not exist yet when the first poll arrives.
        let (status, order) = stack.get("order", "/orders/1").await;
        (status == 200 && steps(&order).contains(&"stock_reserved:ok".to_owned())).then_some(())
    })
    .await;
    assert!(reserved.is_some(), "the saga reserved stock");

    // Inventory goes away while the payment is being declined.
    stack.stop("inventory").await;
    let (status, body) = answer.await.expect("task");

    assert_eq!(status, Scenario::Order.expected(MODE), "{body}");
    assert_eq!(body["detail"]["compensation_executed"], false);
    assert_eq!(body["detail"]["compensation_pending"], true);
    stack.restart("inventory").await;
    let released = lab_tests::eventually(std::time::Duration::from_secs(10), || async {
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

// Sync only: a saga lives in the request that runs it, so a crash of the order
// service leaves it pending, to be failed once older than
// `SAGA_STALE_AFTER_MS`. In async mode each step waits in its queue and goes
// on after a restart; no saga is cut off.
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

    let order = lab_tests::eventually(std::time::Duration::from_secs(10), || async {
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
