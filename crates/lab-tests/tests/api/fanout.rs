//! Scenario 3: a product update fanned out to search, cache and analytics,
//! in both modes: sync calls them in turn before answering, async publishes
//! one event they each consume; either way each of them hears of it.

use common::{MODE, Mode};
use lab_tests::Stack;
use loadgen::scenario::Scenario;
use serde_json::json;

use lab_tests::helpers::time;

#[tokio::test]
async fn an_update_is_stored_then_reaches_search_cache_and_analytics() {
    let stack = Stack::builder()
        .var("SEARCH_DELAY_MS", "60")
        .var("CACHE_DELAY_MS", "40")
        .var("ANALYTICS_DELAY_MS", "40")
        .start()
        .await;
    let (status, _) = stack.get("cache", "/entries/product:1").await;
    assert_eq!(status, 200, "product 1 is cached on a fresh start");

    let (status, answer) = stack
        .put(
            "product",
            "/products/1",
            json!({"name": "Quantum Laptop", "stock": 75}),
        )
        .await;

    assert_eq!(status, Scenario::Fanout.expected(MODE), "{answer}");
    // The fan-out has no status of its own: the answer is its final state.
    let product = stack.finished(Scenario::Fanout, &answer).await;
    assert_eq!(product["id"], 1);
    assert_eq!(product["name"], "Quantum Laptop");
    assert_eq!(product["stock"], 75);
    if MODE == Mode::Sync {
        let calls = product["fanout"].as_array().expect("fan-out calls");
        let order: Vec<_> = calls
            .iter()
            .map(|c| c["service"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["search", "cache", "analytics"]);
        assert!(calls.iter().all(|c| c["ok"] == true), "{product}");
        assert!(product["fanout_ms"].as_f64().unwrap() >= 140.0, "{product}");
    } else {
        assert_eq!(product["fanout"], "queued", "{product}");
    }

    let (_, stored) = stack.get("product", "/products/1").await;
    assert_eq!(stored["name"], "Quantum Laptop");
    // Sync: all there when it answered; async: each as its consumer gets to it.
    let found = stack
        .get_until("search", "/search?q=quantum", |f| f["count"] == 1)
        .await;
    assert_eq!(found["count"], 1, "{found}");
    assert_eq!(found["results"][0]["product_id"], 1);
    let dropped = stack
        .get_until("cache", "/invalidations?product_id=1", |d| {
            d[0]["entry_existed"] == true
        })
        .await;
    assert_eq!(dropped[0]["entry_existed"], true, "{dropped}");
    let (status, _) = stack.get("cache", "/entries/product:1").await;
    assert_eq!(status, 404, "the product's cache entry was dropped");
    let logged = stack
        .get_until("analytics", "/product_updates?product_id=1", |l| {
            l[0]["stock"] == 75
        })
        .await;
    assert_eq!(logged[0]["name"], "Quantum Laptop", "{logged}");
    assert_eq!(logged[0]["stock"], 75);

    // Sync only: the calls block one after another, so each target finished
    // its work before the next one began (each records its effect after its
    // delay). Async consumers take the event side by side, in no order.
    if MODE == Mode::Sync {
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
}

#[tokio::test]
async fn an_unknown_product_is_404_and_nobody_hears_of_it() {
    let stack = Stack::start().await;

    let (status, body) = stack
        .put("product", "/products/999", json!({"name": "Ghost"}))
        .await;

    assert_eq!(status, 404, "{body}");
    #[cfg(feature = "async")]
    {
        let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM product_service.outbox")
            .fetch_one(&mut stack.db().await)
            .await
            .unwrap();
        assert_eq!(sent, 0, "no event about a product that is not there");
    }
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

#[tokio::test]
async fn with_search_down_the_update_stands_and_the_others_still_hear_of_it() {
    let stack = Stack::builder().without("search").start().await;

    let (status, product) = stack
        .put("product", "/products/3", json!({"stock": 7}))
        .await;

    assert_eq!(status, Scenario::Fanout.expected(MODE), "{product}");
    if MODE == Mode::Sync {
        // The blocking call to search failed; the others were still made.
        assert_eq!(product["fanout"][0]["ok"], false);
        assert!(
            product["fanout"][0]["error"]
                .as_str()
                .unwrap()
                .contains("unreachable")
        );
        assert_eq!(product["fanout"][1]["ok"], true);
        assert_eq!(product["fanout"][2]["ok"], true);
    }
    // Async: nothing calls search; its copy of the event waits in its queue.
    #[cfg(feature = "async")]
    {
        let waiting = lab_tests::eventually(std::time::Duration::from_secs(5), || async {
            (stack.broker.depth("search.product-changed").await == 1).then_some(())
        })
        .await;
        assert!(waiting.is_some(), "the event waits for search");
    }
    let (_, stored) = stack.get("product", "/products/3").await;
    assert_eq!(stored["stock"], 7);
    let dropped = stack
        .get_until("cache", "/invalidations?product_id=3", |d| {
            d[0]["product_id"] == 3
        })
        .await;
    assert_eq!(dropped[0]["product_id"], 3, "cache heard of it: {dropped}");
    let logged = stack
        .get_until("analytics", "/product_updates?product_id=3", |l| {
            l[0]["stock"] == 7
        })
        .await;
    assert_eq!(logged[0]["stock"], 7, "analytics heard of it: {logged}");
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

/// Async: the update's statement builds its `product.changed` event in SQL
/// from the row it wrote; consumers read it as the product's own
/// [`product::Product::changed`] would have it, field for field.
#[cfg(feature = "async")]
#[tokio::test]
async fn the_event_of_an_update_is_the_product_as_updated() {
    use common::messages::ProductChanged;
    let stack = Stack::start().await;

    for (id, update) in [
        (1, json!({"name": "Quantum Laptop", "price": 1234.56})),
        (2, json!({"stock": 0})),
        (3, json!({"price": 0.1, "stock": 2_000_000_000})),
    ] {
        let (status, answer) = stack
            .put("product", &format!("/products/{id}"), update)
            .await;
        assert_eq!(status, 200, "{answer}");

        let row: product::Product = sqlx::query_as(
            "SELECT id, name, price_cents, stock, updated_at FROM product_service.products
             WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut stack.db().await)
        .await
        .unwrap();
        let (sent, accepted_at): (ProductChanged, _) = lab_tests::helpers::sent_event(
            &stack,
            "product_service",
            "product.changed",
            "product_id",
            &id.to_string(),
        )
        .await;
        assert_eq!(sent, row.changed());
        assert_eq!(accepted_at, row.updated_at);
        assert_eq!(answer["price"], json!(sent.price), "{answer}");
    }
}
