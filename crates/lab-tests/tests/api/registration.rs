//! Scenario 1: registration that waits on an email.

// Some tests here are sync-only; their helpers are unused in async mode.
#![cfg_attr(feature = "async", allow(unused_imports, dead_code))]

use std::time::{Duration, Instant};

use lab_tests::Stack;
use serde_json::json;

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn registering_answers_after_the_welcome_email_was_sent() {
    let stack = Stack::builder().var("EMAIL_DELAY_MS", "150").start().await;

    let started = Instant::now();
    let (status, user) = stack
        .post("user", "/register", json!({"email": "ada@example.com"}))
        .await;
    let elapsed = started.elapsed();

    assert_eq!(status, 201, "{user}");
    assert_eq!(user["email"], "ada@example.com");
    assert!(user["id"].as_i64().is_some());
    assert_eq!(user["email_status"], "sent");
    // Sync: the answer waited for the email service's 150 ms.
    assert!(
        elapsed >= Duration::from_millis(150),
        "answered after {elapsed:?}"
    );
    let (_, emails) = stack.get("email", "/emails?to=ada@example.com").await;
    assert_eq!(emails["count"], 1);
    assert_eq!(emails["emails"][0]["user_id"], user["id"]);
    assert_eq!(emails["emails"][0]["sent_at"], user["email_sent_at"]);
    let (status, stored) = stack.get("user", &format!("/users/{}", user["id"])).await;
    assert_eq!(status, 200);
    assert_eq!(stored["email_status"], "sent");
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn a_duplicate_email_is_409_and_sends_nothing_more() {
    let stack = Stack::start().await;
    let (status, _) = stack
        .post("user", "/register", json!({"email": "bob@example.com"}))
        .await;
    assert_eq!(status, 201);

    let (status, body) = stack
        .post("user", "/register", json!({"email": "BOB@example.com"}))
        .await;

    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("already registered")
    );
    let (_, emails) = stack.get("email", "/emails?to=bob@example.com").await;
    assert_eq!(emails["count"], 1);
}

#[tokio::test]
async fn an_invalid_email_is_422_and_registers_nobody() {
    let stack = Stack::start().await;

    for bad in ["not-an-email", "", "a@", "@b.c"] {
        let (status, body) = stack
            .post("user", "/register", json!({ "email": bad }))
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("email"), "{body}");
    }

    let (_, emails) = stack.get("email", "/emails").await;
    assert_eq!(emails["count"], 0);
    let (status, _) = stack.get("user", "/users/1").await;
    assert_eq!(status, 404);
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn with_email_down_the_user_stays_registered_and_the_answer_says_so() {
    let stack = Stack::builder().without("email").start().await;

    let (status, user) = stack
        .post("user", "/register", json!({"email": "carol@example.com"}))
        .await;

    assert_eq!(status, 201, "{user}");
    assert_eq!(user["email_status"], "failed");
    assert!(
        user["email_error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{user}"
    );
    let (status, stored) = stack.get("user", &format!("/users/{}", user["id"])).await;
    assert_eq!(status, 200);
    assert_eq!(stored["email_status"], "failed");
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn a_slow_email_service_times_out_and_the_user_stays_registered() {
    let stack = Stack::builder()
        .var("EMAIL_DELAY_MS", "1500")
        .service_var("user", "OUTBOUND_TIMEOUT_MS", "200")
        .start()
        .await;

    let (status, user) = stack
        .post("user", "/register", json!({"email": "dan@example.com"}))
        .await;

    assert_eq!(status, 201, "{user}");
    assert_eq!(user["email_status"], "failed");
    assert!(
        user["email_error"].as_str().unwrap().contains("in time"),
        "{user}"
    );
}
