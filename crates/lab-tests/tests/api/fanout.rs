//! Scenario 3: a product update fanned out to search, cache and analytics.

// Some tests here are sync-only; their helpers are unused in async mode.
#![cfg_attr(feature = "async", allow(unused_imports, dead_code))]

use chrono::{DateTime, Utc};
use lab_tests::Stack;
use serde_json::{Value, json};

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("timestamp").parse().expect("RFC 3339")
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn an_update_is_stored_then_search_cache_and_analytics_are_called_in_turn() {
    let stack = Stack::builder()
        .var("SEARCH_DELAY_MS", "60")
        .var("CACHE_DELAY_MS", "40")
        .var("ANALYTICS_DELAY_MS", "40")
        .start()
        .await;
    let (status, _) = stack.get("cache", "/entries/product:1").await;
    assert_eq!(status, 200, "product 1 is cached on a fresh start");

    let (status, product) = stack
        .put(
            "product",
            "/products/1",
            json!({"name": "Quantum Laptop", "stock": 75}),
        )
        .await;

    assert_eq!(status, 200, "{product}");
    assert_eq!(product["id"], 1);
    assert_eq!(product["name"], "Quantum Laptop");
    assert_eq!(product["stock"], 75);
    let calls = product["fanout"].as_array().expect("fan-out calls");
    let order: Vec<_> = calls
        .iter()
        .map(|c| c["service"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["search", "cache", "analytics"]);
    assert!(calls.iter().all(|c| c["ok"] == true), "{product}");
    assert!(product["fanout_ms"].as_f64().unwrap() >= 140.0, "{product}");

    let (_, stored) = stack.get("product", "/products/1").await;
    assert_eq!(stored["name"], "Quantum Laptop");
    let (_, found) = stack.get("search", "/search?q=quantum").await;
    assert_eq!(found["count"], 1, "{found}");
    assert_eq!(found["results"][0]["product_id"], 1);
    let (status, _) = stack.get("cache", "/entries/product:1").await;
    assert_eq!(status, 404, "the product's cache entry was dropped");
    let (_, dropped) = stack.get("cache", "/invalidations?product_id=1").await;
    assert_eq!(dropped[0]["entry_existed"], true);
    let (_, logged) = stack
        .get("analytics", "/product_updates?product_id=1")
        .await;
    assert_eq!(logged[0]["name"], "Quantum Laptop");
    assert_eq!(logged[0]["stock"], 75);

    // In sequence: each target finished its work before the next one began
    // (each records its effect after its delay).
    let indexed = time(&found["results"][0]["indexed_at"]);
    let invalidated = time(&dropped[0]["invalidated_at"]);
    let analysed = time(&logged[0]["logged_at"]);
    assert!(
        (invalidated - indexed).num_milliseconds() >= 40,
        "{indexed} {invalidated}"
    );
    assert!(
        (analysed - invalidated).num_milliseconds() >= 40,
        "{invalidated} {analysed}"
    );
}

#[tokio::test]
async fn an_unknown_product_is_404_and_nobody_hears_of_it() {
    let stack = Stack::start().await;

    let (status, body) = stack
        .put("product", "/products/999", json!({"name": "Ghost"}))
        .await;

    assert_eq!(status, 404, "{body}");
    let (_, dropped) = stack.get("cache", "/invalidations?product_id=999").await;
    assert_eq!(dropped, json!([]));
    let (_, logged) = stack
        .get("analytics", "/product_updates?product_id=999")
        .await;
    assert_eq!(logged, json!([]));
}

#[tokio::test]
async fn bad_updates_are_422_and_change_nothing() {
    let stack = Stack::start().await;
    let (_, before) = stack.get("product", "/products/2").await;

    for body in [
        json!({}),
        json!({"stock": -1}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(201)}),
        json!({"stock": "many"}),
        json!({"colour": "red"}),
    ] {
        let (status, answer) = stack.put("product", "/products/2", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
    }

    let (_, after) = stack.get("product", "/products/2").await;
    assert_eq!(before, after);
    let (_, logged) = stack
        .get("analytics", "/product_updates?product_id=2")
        .await;
    assert_eq!(logged, json!([]));
}

// Sync answers; the async counterpart is in `async_scenarios`.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn with_search_down_the_update_stands_and_the_others_still_hear_of_it() {
    let stack = Stack::builder().without("search").start().await;

    let (status, product) = stack
        .put("product", "/products/3", json!({"stock": 7}))
        .await;

    assert_eq!(status, 200, "{product}");
    assert_eq!(product["fanout"][0]["ok"], false);
    assert!(
        product["fanout"][0]["error"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
    assert_eq!(product["fanout"][1]["ok"], true);
    assert_eq!(product["fanout"][2]["ok"], true);
    let (_, stored) = stack.get("product", "/products/3").await;
    assert_eq!(stored["stock"], 7);
}

#[tokio::test]
async fn products_can_be_listed_and_read() {
    let stack = Stack::start().await;
    let (status, products) = stack.get("product", "/products").await;
    assert_eq!(status, 200);
    let ids: Vec<_> = products
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    let (status, body) = stack.get("product", "/products/abc").await;
    assert_eq!(status, 400, "{body}");
}
