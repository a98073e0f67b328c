//! Scenario 6: high-rate click ingestion.

use common::MODE;
use lab_tests::Stack;
use lab_tests::helpers::{TableLock, counter};
use loadgen::scenario::Scenario;
use serde_json::json;

#[tokio::test]
async fn every_click_answered_200_is_stored() {
    let stack = Stack::start().await;
    let pages = ["homepage", "pricing", "docs"];

    let requests = (0..300).map(|i| {
        let body = json!({"user_id": i, "page": pages[i % 3]});
        let request = stack
            .http()
            .post(stack.url("analytics", "/track_click"))
            .json(&body)
            .send();
        async move {
            let response = request.await.expect("sent");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("json");
            (status, body)
        }
    });
    let answers = run_all(requests).await;

    assert!(
        answers
            .iter()
            .all(|(status, body)| *status == Scenario::Click.expected(MODE)
                && body["status"] == "tracked")
    );
    // Async: the 200 means durable in the broker; the consumer stores soon after.
    let stats = stack
        .get_until("analytics", "/clicks/stats", |s| s["total"] == 300)
        .await;
    assert_eq!(stats["total"], 300);
    assert_eq!(
        stats["pages"],
        json!({"homepage": 100, "pricing": 100, "docs": 100})
    );
}

async fn run_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn bad_clicks_are_4xx_and_not_counted() {
    let stack = Stack::start().await;
    for body in [
        json!({"user_id": 1}),
        json!({"page": "home"}),
        json!({"user_id": "one", "page": "home"}),
        json!({"user_id": -5, "page": "home"}),
        json!({"user_id": 1, "page": ""}),
        json!({"user_id": 1, "page": "p".repeat(201)}),
    ] {
        let (status, answer) = stack.post("analytics", "/track_click", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
    }
    let (_, stats) = stack.get("analytics", "/clicks/stats").await;
    assert_eq!(stats["total"], 0);
}

/// A client that retries a click (after a 503, a timeout or a lost
/// connection, when the first try may have been stored all the same) sends
/// the same `Idempotency-Key`: however often it arrives, and however close
/// together, the click is stored once. Unkeyed clicks are each stored.
#[tokio::test]
async fn a_click_retried_with_its_idempotency_key_is_stored_once() {
    let stack = Stack::start().await;
    let send = |key: Option<&'static str>, page: &'static str| {
        let mut request = stack
            .http()
            .post(stack.url("analytics", "/track_click"))
            .json(&json!({"user_id": 7, "page": page}));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        async move {
            let response = request.send().await.expect("sent");
            (
                response.status().as_u16(),
                response.text().await.expect("body"),
            )
        }
    };
    let key = "6f1c2b9e-3d4a-4c8e-9b7f-0a1b2c3d4e5f";
    let deduplicated = || counter(&stack, "analytics", common::metrics::CLICKS_DEDUPLICATED);
    let before = deduplicated().await;
    // The first try and two retries at once, then a late retry.
    let tries = futures_util::future::join_all([
        send(Some(key), "pricing"),
        send(Some(key), "pricing"),
        send(Some(key), "pricing"),
    ])
    .await;
    let late = send(Some(key), "pricing").await;
    let others = [
        send(Some("another-key"), "docs").await,
        send(None, "home").await,
        send(None, "home").await,
    ];
    for (status, body) in tries.iter().chain([&late]).chain(&others) {
        assert_eq!(*status, Scenario::Click.expected(MODE), "{body}");
    }
    let stats = stack
        .get_until("analytics", "/clicks/stats", |s| s["total"] == 4)
        .await;
    assert_eq!(
        stats["pages"],
        json!({"pricing": 1, "docs": 1, "home": 2}),
        "{stats}"
    );
    // Async: nothing still on its way adds to them.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (_, again) = stack.get("analytics", "/clicks/stats").await;
    assert_eq!(again, stats);
    // 7 answered 200, 4 stored: the 3 retries are counted as stored nothing,
    // so a reconciliation can still match stored clicks to answers.
    assert_eq!(deduplicated().await - before, 3.0);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_422_and_not_counted() {
    let stack = Stack::start().await;
    let long = "k".repeat(256);
    let values: [&[u8]; 4] = [b"", b"with space", long.as_bytes(), b"caf\xc3\xa9"];
    for value in values {
        let response = stack
            .http()
            .post(stack.url("analytics", "/track_click"))
            .header(
                "Idempotency-Key",
                reqwest::header::HeaderValue::from_bytes(value).expect("a header value"),
            )
            .json(&json!({"user_id": 1, "page": "home"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(
            response.status(),
            422,
            "{:?}",
            String::from_utf8_lossy(value)
        );
        let body: serde_json::Value = response.json().await.expect("json");
        assert!(
            body["detail"].as_str().unwrap().contains("Idempotency-Key"),
            "{body}"
        );
    }
    let (_, stats) = stack.get("analytics", "/clicks/stats").await;
    assert_eq!(stats["total"], 0);
}

/// Clicks that arrive together share a write (a group commit), and the
/// modes differ in when a click is answered. A lock on the clicks table
/// holds the first writes up while 60 clicks arrive. Sync: none is answered
/// while the table is locked (a click waits for its commit), all are once
/// it is free. Async: all are answered while it is locked (the broker holds
/// them), and stored once it is free. In both, the rows show fewer writes
/// than clicks: the rows of one INSERT share its transaction's `clicked_at`.
#[tokio::test]
async fn clicks_that_arrive_together_share_a_write() {
    const CLICKS: usize = 60;
    let stack = Stack::start().await;
    let lock = TableLock::take(&stack, "analytics_service.clicks").await;
    let mut clicks: Vec<_> = (0..CLICKS)
        .map(|i| {
            let request = stack
                .http()
                .post(stack.url("analytics", "/track_click"))
                .json(&json!({"user_id": i, "page": "home"}))
                .send();
            tokio::spawn(async move { request.await.expect("sent").status().as_u16() })
        })
        .collect();
    lock.waited_on(&stack, "INSERT INTO clicks").await;
    let mut watch = stack.db().await;
    let mut answers = Vec::new();
    if cfg!(feature = "async") {
        for click in &mut clicks {
            let answer = tokio::time::timeout(std::time::Duration::from_secs(30), click)
                .await
                .expect("an async click is answered while the table is locked");
            answers.push(answer.unwrap());
        }
    } else {
        // Time for the other clicks to arrive and queue behind the held writes.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(
            clicks.iter().all(|click| !click.is_finished()),
            "a sync click is answered once it is committed"
        );
    }
    lock.release().await;
    if answers.is_empty() {
        for click in &mut clicks {
            answers.push(click.await.unwrap());
        }
    }
    assert_eq!(answers, vec![Scenario::Click.expected(MODE); CLICKS]);
    let stored = stack
        .get_until("analytics", "/clicks/stats", |s| s["total"] == CLICKS)
        .await;
    assert_eq!(stored["total"], CLICKS, "{stored}");
    let writes: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT clicked_at) FROM analytics_service.clicks")
            .fetch_one(&mut watch)
            .await
            .unwrap();
    assert!(
        writes < CLICKS as i64 / 2,
        "{CLICKS} clicks in {writes} writes"
    );
}

/// Without its database, sync click ingestion stops and async's does not:
/// sync answers every click 503 `database unavailable`, async answers 200
/// (the broker holds the clicks until the consumer can store them).
#[tokio::test]
async fn without_the_database_sync_clicks_are_503_and_async_clicks_are_200() {
    let stack = Stack::builder()
        .var("DB_ACQUIRE_TIMEOUT_MS", "1000")
        .start()
        .await;
    stack.lose_database().await;
    let clicks = (0..30).map(|i| {
        let request = stack
            .http()
            .post(stack.url("analytics", "/track_click"))
            .json(&json!({"user_id": i, "page": "home"}))
            .send();
        async move {
            let response = request.await.expect("sent");
            let status = response.status().as_u16();
            (
                status,
                response.json::<serde_json::Value>().await.expect("json"),
            )
        }
    });
    let answers = run_all(clicks).await;
    for (status, body) in answers {
        if cfg!(feature = "async") {
            assert_eq!(status, 200, "{body}");
        } else {
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["detail"], "database unavailable", "{body}");
        }
    }
}
