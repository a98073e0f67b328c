//! Scenario 6: high-rate click ingestion.

use common::MODE;
use lab_tests::Stack;
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
