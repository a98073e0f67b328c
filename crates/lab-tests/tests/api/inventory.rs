//! Inventory's reservation rules, which the saga's correctness rests on:
//! one reservation per order, and releases and commits that happen once.

use lab_tests::Stack;
use serde_json::json;

async fn stock(stack: &Stack) -> (i64, i64) {
    let (_, s) = stack.get("inventory", "/stock/2").await;
    (
        s["available"].as_i64().unwrap(),
        s["reserved"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn a_reservation_is_held_once_and_released_once() {
    let stack = Stack::start().await;
    stack
        .put("inventory", "/stock/2", json!({"available": 10}))
        .await;
    let reserve = json!({"order_id": 7, "product_id": 2, "quantity": 4});

    let (first, _) = stack
        .post("inventory", "/reservations", reserve.clone())
        .await;
    let (again, held) = stack.post("inventory", "/reservations", reserve).await;
    assert_eq!(
        (first, again),
        (201, 200),
        "asking again returns the same reservation"
    );
    assert_eq!(held["quantity"], 4);
    assert_eq!(stock(&stack).await, (6, 4));

    let (_, released) = stack
        .post("inventory", "/reservations/7/release", json!({}))
        .await;
    let (_, twice) = stack
        .post("inventory", "/reservations/7/release", json!({}))
        .await;
    assert_eq!(released["released_quantity"], 4);
    assert_eq!(
        twice["released_quantity"], 0,
        "a second release returns nothing more"
    );
    assert_eq!(stock(&stack).await, (10, 0));

    let (status, body) = stack
        .post("inventory", "/reservations/7/commit", json!({}))
        .await;
    assert_eq!(
        status, 409,
        "a released reservation cannot be committed: {body}"
    );
}

#[tokio::test]
async fn a_commit_happens_once_and_cannot_be_released() {
    let stack = Stack::start().await;
    stack
        .put("inventory", "/stock/2", json!({"available": 10}))
        .await;
    stack
        .post(
            "inventory",
            "/reservations",
            json!({"order_id": 8, "product_id": 2, "quantity": 3}),
        )
        .await;

    let (first, _) = stack
        .post("inventory", "/reservations/8/commit", json!({}))
        .await;
    let (again, _) = stack
        .post("inventory", "/reservations/8/commit", json!({}))
        .await;
    assert_eq!((first, again), (200, 200));
    assert_eq!(stock(&stack).await, (7, 0), "the units left the stock once");
    let (status, _) = stack
        .post("inventory", "/reservations/8/release", json!({}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(stock(&stack).await, (7, 0));
}

#[tokio::test]
async fn a_release_before_the_reservation_refuses_the_late_reservation() {
    let stack = Stack::start().await;
    stack
        .put("inventory", "/stock/2", json!({"available": 10}))
        .await;

    // The saga gave up on a reservation whose request timed out, and released...
    let (status, tombstone) = stack
        .post("inventory", "/reservations/9/release", json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(tombstone["released_quantity"], 0);
    // ...then the slow reservation arrives.
    let (status, body) = stack
        .post(
            "inventory",
            "/reservations",
            json!({"order_id": 9, "product_id": 2, "quantity": 5}),
        )
        .await;

    assert_eq!(status, 409, "{body}");
    assert_eq!(stock(&stack).await, (10, 0), "nothing left held");
}

/// A reservation whose turn comes after a release of the same product
/// (it waits for the release's lock on the stock row) is held from the
/// stock the release left: it once computed the new stock from the row as
/// it was before the release, a negative stock that the table's CHECK
/// refused (an error, retried in async mode, answered 500 in sync mode).
/// In async mode a release holds that lock for its whole transaction (the
/// inbox claim, the release, its event), so the race is common there; here
/// the transaction is held open on purpose.
#[tokio::test]
async fn a_reservation_waiting_for_a_release_is_held_from_the_stock_it_left() {
    let stack = Stack::start().await;
    order_1_holds_all_3_units(&stack).await;

    let mut releasing = inventory_db(&stack).await;
    sqlx::query("BEGIN").execute(&mut releasing).await.unwrap();
    let released = inventory::release(&mut releasing, 1).await.unwrap();
    assert_eq!(released.released_quantity, 3);
    let mut reserving = inventory_db(&stack).await;
    let waiting = tokio::spawn(async move {
        let req = common::messages::Reserve {
            order_id: 2,
            product_id: 2,
            quantity: 3,
        };
        inventory::reserve(&mut reserving, &req)
            .await
            .map(|r| r.map(|(reservation, _)| reservation.status))
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the reservation waits for the lock");
    sqlx::query("COMMIT").execute(&mut releasing).await.unwrap();

    let held = waiting.await.unwrap().expect("no error");
    assert_eq!(held.ok().as_deref(), Some("reserved"));
    assert_eq!(stock(&stack).await, (0, 3), "3 released, 3 held again");
}

/// The same race for the other statement that locks a row and then changes
/// it: a release that waits for the commit of the same order finds it
/// committed (the refusal a release after the commit gets) and moves no
/// stock.
#[tokio::test]
async fn a_release_waiting_for_a_commit_of_its_order_moves_nothing() {
    let stack = Stack::start().await;
    order_1_holds_all_3_units(&stack).await;

    let mut committing = inventory_db(&stack).await;
    sqlx::query("BEGIN").execute(&mut committing).await.unwrap();
    inventory::commit(&mut committing, 1).await.unwrap();
    let mut releasing = inventory_db(&stack).await;
    let waiting = tokio::spawn(async move {
        inventory::release(&mut releasing, 1)
            .await
            .map_err(|e| e.to_string())
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the release waits for the lock");
    sqlx::query("COMMIT")
        .execute(&mut committing)
        .await
        .unwrap();

    let raced = waiting.await.unwrap();
    let (status, after) = stack
        .post("inventory", "/reservations/1/release", json!({}))
        .await;
    assert_eq!(status, 409, "{after}");
    let refused = raced.expect_err("a committed reservation is not released");
    assert!(refused.contains("committed"), "{refused} / {after}");
    assert_eq!(stock(&stack).await, (0, 0), "3 taken for good, none back");
}

/// Product 2 with 3 units, all held by order 1.
async fn order_1_holds_all_3_units(stack: &Stack) {
    stack
        .put("inventory", "/stock/2", json!({"available": 3}))
        .await;
    let (status, body) = stack
        .post(
            "inventory",
            "/reservations",
            json!({"order_id": 1, "product_id": 2, "quantity": 3}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(stock(stack).await, (0, 3));
}

/// A connection of the test's own to inventory's tables, to call its
/// functions inside a transaction the test holds open.
async fn inventory_db(stack: &Stack) -> sqlx::PgConnection {
    let mut conn = stack.db().await;
    sqlx::query("SET search_path TO inventory_service")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}
