//! Scenario 2: a slow external payment, in both modes: sync answers after
//! the external call, async at once with the call to follow; either way the
//! payment ends settled, after its delay, and can be read back.

use std::time::{Duration, Instant};

use common::{MODE, Mode};
use lab_tests::Stack;
use loadgen::scenario::Scenario;
use serde_json::json;

use lab_tests::helpers::{status_for, time};

#[tokio::test]
async fn a_payment_is_settled_after_the_external_call_and_can_be_read_back() {
    let stack = Stack::builder()
        .var("PAYMENT_DELAY_MS", "200")
        .start()
        .await;

    let started = Instant::now();
    let (status, answer) = stack
        .post(
            "payment",
            "/process_payment",
            json!({"order_id": 123, "amount": 100.0}),
        )
        .await;
    let elapsed = started.elapsed();

    assert_eq!(status, Scenario::Payment.expected(MODE), "{answer}");
    assert!(answer["payment_id"].is_string(), "{answer}");
    let paid = stack.finished(Scenario::Payment, &answer).await;
    if MODE == Mode::Sync {
        // The answer waited for the external call's 200 ms and is final.
        assert!(
            elapsed >= Duration::from_millis(200),
            "answered after {elapsed:?}"
        );
        assert_eq!(answer, paid, "the answer is the stored payment");
    } else {
        assert_eq!(answer["status"], "pending");
    }
    assert_eq!(paid["status"], "completed", "{paid}");
    assert!(paid["transaction_id"].as_str().unwrap().starts_with("txn_"));
    assert_eq!(paid["amount"], 100.0);
    assert_eq!(paid["currency"], "USD");
    assert_eq!(paid["order_id"], 123);
    let took = time(&paid["completed_at"]) - time(&paid["created_at"]);
    assert!(
        took.num_milliseconds() >= 200,
        "the external call took its 200 ms: {took}"
    );
}

#[tokio::test]
async fn a_declined_payment_is_402_and_stored_declined() {
    let stack = Stack::start().await;

    let (status, answer) = stack
        .post(
            "payment",
            "/process_payment",
            json!({"amount": 5.5, "currency": "eur", "force_decline": true}),
        )
        .await;

    assert_eq!(status, status_for(Scenario::Payment, 402), "{answer}");
    if MODE == Mode::Sync {
        assert_eq!(answer["payment"]["status"], "declined");
    } else {
        assert_eq!(answer["status"], "pending");
    }
    let stored = stack.finished(Scenario::Payment, &answer).await;
    assert_eq!(stored["status"], "declined", "{stored}");
    assert_eq!(stored["currency"], "EUR");
    assert!(stored["transaction_id"].is_null());
}

#[tokio::test]
async fn bad_amounts_and_currencies_are_422_and_store_nothing() {
    let stack = Stack::start().await;

    for body in [
        json!({"amount": -1.0}),
        json!({"amount": 0}),
        // Found by schemathesis: positive, but no cent (it was a 500).
        json!({"amount": 2.2782120873792156e-11}),
        json!({"amount": 0.004}),
        json!({"amount": 1.234}),
        json!({"amount": 1e12}),
        json!({"amount": 10, "currency": "US"}),
        json!({"amount": 10, "currency": "U$D"}),
        json!({"amount": "ten"}),
        json!({"currency": "USD"}),
    ] {
        let (status, answer) = stack
            .post("payment", "/process_payment", body.clone())
            .await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert!(answer["detail"].is_string(), "{answer}");
    }

    let mut db = stack.db().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_service.payments")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn unknown_and_malformed_payment_ids() {
    let stack = Stack::start().await;
    let (status, body) = stack
        .get("payment", &format!("/payments/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = stack.get("payment", "/payments/not-a-uuid").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].is_string());
}

// Sync only: `SYNC_WORKERS` is the pool of threads blocking calls wait on. In
// async mode no thread waits on the external call (it is an awaited timer in
// a payment worker), so there is no pool to fill.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn with_every_sync_worker_busy_a_request_waits_for_one() {
    let stack = Stack::builder()
        .var("PAYMENT_DELAY_MS", "300")
        .service_var("payment", "SYNC_WORKERS", "1")
        .start()
        .await;

    let started = Instant::now();
    let first = stack.post("payment", "/process_payment", json!({"amount": 1.0}));
    let second = stack.post("payment", "/process_payment", json!({"amount": 2.0}));
    let ((s1, _), (s2, _)) = tokio::join!(first, second);
    let elapsed = started.elapsed();

    let expected = Scenario::Payment.expected(MODE);
    assert_eq!((s1, s2), (expected, expected));
    // One worker thread: the second external call could only start after the first.
    assert!(
        elapsed >= Duration::from_millis(600),
        "both answered after {elapsed:?}"
    );
}

/// Async: a payment's statement builds its `payment.requested` event in SQL
/// from the row it stored; the payment worker reads it as the request it
/// would have been in Rust, field for field.
#[cfg(feature = "async")]
#[tokio::test]
async fn the_event_of_a_payment_is_the_payment_as_stored() {
    use common::messages::PaymentRequest;
    let stack = Stack::start().await;

    for (body, expected) in [
        (
            json!({"amount": 12.5, "currency": "eur", "order_id": 7}),
            (12.5, "EUR", Some(7), false),
        ),
        (
            json!({"amount": 999_999_999.99, "force_decline": true}),
            (999_999_999.99, "USD", None, true),
        ),
    ] {
        let (status, answer) = stack.post("payment", "/process_payment", body).await;
        assert_eq!(status, 202, "{answer}");
        let id = answer["payment_id"].as_str().unwrap();

        let (sent, accepted_at): (PaymentRequest, _) = lab_tests::helpers::sent_event(
            &stack,
            "payment_service",
            "payment.requested",
            "payment_id",
            id,
        )
        .await;
        let (amount, currency, order_id, force_decline) = expected;
        assert_eq!(
            sent,
            PaymentRequest {
                amount,
                currency: currency.into(),
                order_id,
                force_decline,
                payment_id: Some(id.parse().unwrap()),
            }
        );
        assert_eq!(accepted_at, time(&answer["created_at"]));
    }
}
