//! Async mode under faults: whatever was acknowledged (a 200/202 answer, a
//! confirmed publish) is never lost, and nothing happens twice. Async only by
//! nature: each test is about the broker (its topology, queues, redeliveries,
//! prefetch, a cut connection) or a consumer stopped while its messages wait,
//! none of which exists in sync mode, where a stopped service is a refused
//! call answered at once (tested with each scenario).

use std::time::Duration;

use common::MODE;
use lab_tests::{Stack, eventually};
use loadgen::scenario::Scenario;
use serde_json::{Value, json};

use lab_tests::helpers::{payments, place_concurrently, steps, stock};

async fn emails_per_user(stack: &Stack) -> Vec<(Option<i64>, i64)> {
    let mut db = stack.db().await;
    sqlx::query_as(
        "SELECT user_id, count(*) FROM email_service.emails GROUP BY user_id ORDER BY user_id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
}

async fn emails_stored(stack: &Stack) -> i64 {
    let mut db = stack.db().await;
    sqlx::query_scalar("SELECT count(*) FROM email_service.emails")
        .fetch_one(&mut db)
        .await
        .unwrap()
}

async fn register(stack: &Stack, n: usize, tag: &str) -> Vec<Value> {
    let mut users = Vec::new();
    for i in 0..n {
        let (status, user) = stack
            .post(
                "user",
                "/register",
                json!({"email": format!("{tag}{i}@example.com")}),
            )
            .await;
        assert_eq!(status, Scenario::Register.expected(MODE), "{user}");
        users.push(user);
    }
    users
}

async fn all_sent(stack: &Stack, users: &[Value]) {
    for user in users {
        let done = stack.finished(Scenario::Register, user).await;
        assert_eq!(done["email_status"], "sent", "{done}");
    }
}

#[tokio::test]
async fn with_the_email_consumer_stopped_every_user_still_gets_exactly_one_email() {
    let mut stack = Stack::start().await;
    stack.stop("email").await;

    let users = register(&stack, 20, "stopped").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stack.broker.depth("email.send").await,
        20,
        "the requests wait in the queue"
    );
    stack.restart("email").await;

    all_sent(&stack, &users).await;
    let counts = emails_per_user(&stack).await;
    assert_eq!(counts.len(), 20);
    assert!(counts.iter().all(|(_, n)| *n == 1), "{counts:?}");
}

/// The graceful stop (what SIGTERM does, run in-process here): the email
/// service stopped in the middle of a burst acks every message it handled
/// before it closes its connection, so right after the stop each registration
/// is either stored or back in the queue, never both; after the restart each
/// user has exactly one email.
#[tokio::test]
async fn a_graceful_stop_mid_burst_acks_what_it_handled_and_loses_nothing() {
    let mut stack = Stack::builder().var("EMAIL_DELAY_MS", "100").start().await;
    let burst = 60;
    let users: Vec<Value> = futures_util::future::join_all((0..burst).map(|i| {
        let stack = &stack;
        async move {
            let (status, user) = stack
                .post(
                    "user",
                    "/register",
                    json!({"email": format!("graceful{i}@example.com")}),
                )
                .await;
            assert_eq!(status, Scenario::Register.expected(MODE), "{user}");
            user
        }
    }))
    .await;
    let published = eventually(Duration::from_secs(10), || async {
        let mut db = stack.db().await;
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM user_service.outbox WHERE published_at IS NULL",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        (pending == 0).then_some(())
    })
    .await;
    assert!(
        published.is_some(),
        "the user service published every registration"
    );
    let started = eventually(Duration::from_secs(10), || async {
        (emails_stored(&stack).await >= 3).then_some(())
    })
    .await;
    assert!(started.is_some(), "the email service is handling the burst");

    stack.stop("email").await;
    let after_stop = emails_stored(&stack).await;
    assert!(
        after_stop < burst as i64,
        "stopped mid-burst ({after_stop} of {burst} sent)"
    );
    // The broker requeues what the closed channel held unacked; a message
    // handled but not acked would be counted twice here, for ever.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let accounted = loop {
        let accounted =
            i64::from(stack.broker.depth("email.send").await) + emails_stored(&stack).await;
        if accounted == burst as i64 || tokio::time::Instant::now() > deadline {
            break accounted;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        accounted, burst as i64,
        "queued + stored after the stop = registrations"
    );

    stack.restart("email").await;
    all_sent(&stack, &users).await;
    let counts = emails_per_user(&stack).await;
    assert_eq!(counts.len(), burst);
    assert!(counts.iter().all(|(_, n)| *n == 1), "{counts:?}");
    assert_eq!(
        stack.broker.depth("dead-letters").await,
        0,
        "no handler failed on the way down"
    );
}

#[tokio::test]
async fn with_payment_stopped_mid_saga_every_order_still_ends_and_stock_is_exact() {
    let mut stack = Stack::start().await;
    stack
        .put("inventory", "/stock/1", json!({"available": 20}))
        .await;
    stack.stop("payment").await;

    let declined = place_concurrently(&stack, 10, json!({"product_id": 1, "quantity": 1})).await;
    let approved = place_concurrently(
        &stack,
        5,
        json!({"product_id": 1, "quantity": 1, "approve_payment": true}),
    )
    .await;
    let held = eventually(Duration::from_secs(10), || async {
        (stock(&stack, 1).await == (5, 15)).then_some(())
    })
    .await;
    assert!(
        held.is_some(),
        "all 15 orders hold stock while payment is down"
    );
    stack.restart("payment").await;

    for (answers, expected) in [(&declined, "failed"), (&approved, "confirmed")] {
        for (status, order) in answers {
            assert_eq!(*status, Scenario::Order.expected(MODE), "{order}");
            let done = stack.finished(Scenario::Order, order).await;
            assert_eq!(done["status"], expected, "{done}");
        }
    }
    assert_eq!(
        stock(&stack, 1).await,
        (15, 0),
        "declined stock returned, approved taken"
    );
}

/// A click whose confirm was lost with the connection is republished while
/// the broker comes back, for up to 5 s; if the service's connection takes
/// longer (a loaded machine), the click is answered 503 though its message
/// may be stored (docs/async-guarantees.md). So the test does what the API
/// tells a client to do: every click carries an `Idempotency-Key`, and one
/// not answered 200 is sent again with it once the service is ready. Then
/// every click is stored exactly once, whatever the timing: none answered
/// 200 is lost, and none retried is stored twice.
#[tokio::test]
async fn a_dropped_broker_connection_loses_no_click_and_no_registration() {
    let stack = Stack::start().await;
    let http = stack.http().clone();
    let click_url = stack.url("analytics", "/track_click");
    let click = move |i: i64| {
        http.post(&click_url)
            .header("Idempotency-Key", format!("dropped-{i}"))
            .json(&json!({"user_id": i, "page": "burst"}))
            .send()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let clicking = stop.clone();
    let first_try = click.clone();
    let clicks = tokio::spawn(async move {
        let (mut answered, mut unanswered) = (0, Vec::new());
        let mut i = 0;
        while !clicking.is_cancelled() {
            i += 1;
            match first_try(i).await {
                Ok(r) if r.status() == 200 => answered += 1,
                Ok(r) => {
                    let status = r.status();
                    let body: Value = r.json().await.unwrap_or_default();
                    let detail = body["detail"].as_str().unwrap_or_default();
                    assert!(
                        status == 503 && detail.starts_with(common::error::BROKER_UNAVAILABLE),
                        "click {i}: {status} {body}"
                    );
                    unanswered.push(i);
                }
                Err(e) => {
                    eprintln!("click {i}: {e}");
                    unanswered.push(i);
                }
            }
        }
        (i, answered, unanswered)
    });
    let before = register(&stack, 10, "before").await;

    stack.proxy.down();
    let during = register(&stack, 10, "during").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.proxy.up();
    let after = register(&stack, 10, "after").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let (sent, answered, unanswered) = clicks.await.unwrap();
    assert!(answered > 0, "some clicks were answered 200");

    stack.wait_ready().await;
    for i in unanswered {
        let retried = eventually(Duration::from_secs(30), || async {
            click(i).await.ok().filter(|r| r.status() == 200)
        })
        .await;
        assert!(
            retried.is_some(),
            "click {i}, retried with its key, is answered 200"
        );
    }
    let stats = stack
        .get_until("analytics", "/clicks/stats", |s| s["total"] == sent)
        .await;
    assert_eq!(stats["total"], sent, "every click stored exactly once");
    for users in [&before, &during, &after] {
        all_sent(&stack, users).await;
    }
    assert!(emails_per_user(&stack).await.iter().all(|(_, n)| *n == 1));
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_the_consumer_keeps_serving() {
    let stack = Stack::start().await;

    let poison = uuid::Uuid::new_v4().to_string();
    stack
        .broker
        .publish("user.registered", &poison, br#"{"to": 42}"#)
        .await;
    let users = register(&stack, 3, "after-poison").await;

    let dead = eventually(Duration::from_secs(10), || async {
        (stack.broker.depth("dead-letters").await == 1).then_some(())
    })
    .await;
    assert!(dead.is_some(), "the poison message is in the dead letters");
    let letter = stack.broker.reader("dead-letters").await.next().await;
    let letter = letter.expect("the dead letter");
    assert_eq!(letter.message_id, poison);
    assert!(
        letter
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("failed 5 times")),
        "the reason travels with it: {letter:?}"
    );
    all_sent(&stack, &users).await;
    let text = stack
        .http()
        .get(stack.url("email", "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"messages_dead_lettered_total{service="email",mode="async",queue="email.send"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"messages_retried_total{service="email",mode="async",queue="email.send"} 4"#
        ),
        "retried CONSUMER_MAX_ATTEMPTS - 1 times: {text}"
    );
}

/// The topology survives a broker restart: what the services declared is
/// durable, and every work queue hands what it rejects to the dead letters.
#[tokio::test]
async fn the_exchanges_and_queues_the_services_declare_are_durable() {
    use common::topology::{DEAD, DEAD_LETTERS, EVENTS, QUEUES, named};
    let stack = Stack::start().await;
    let broker = &stack.broker;

    for exchange in [EVENTS, DEAD] {
        let described = broker.described("exchanges", exchange).await.unwrap();
        assert_eq!(described["durable"], true, "{described}");
    }
    let dead_letters = broker.described("queues", DEAD_LETTERS).await.unwrap();
    assert_eq!(dead_letters["durable"], true, "{dead_letters}");
    for queue in QUEUES {
        let described = broker.described("queues", queue.name).await.unwrap();
        assert_eq!(described["durable"], true, "{described}");
        assert_eq!(
            described["arguments"]["x-dead-letter-exchange"],
            named(&broker.prefix, DEAD).as_str(),
            "{described}"
        );
    }
}

/// A broker that comes back without the topology (a new node, a reset, a
/// `rabbitmqctl delete_queue`): the services declare it again when they
/// reconnect, and the flows work as before.
#[tokio::test]
async fn after_the_broker_lost_its_topology_the_services_declare_it_again() {
    let stack = Stack::start().await;

    stack.proxy.down();
    stack.broker.delete_all().await;
    let gone = stack.broker.described("queues", "email.send").await;
    assert_eq!(gone, None, "email.send is deleted");
    stack.proxy.up();
    stack.wait_ready().await;

    let users = register(&stack, 3, "after-reset").await;
    all_sent(&stack, &users).await;
    let queue = stack.broker.described("queues", "email.send").await;
    assert_eq!(queue.expect("declared again")["durable"], true);
}

/// A consumer holds at most `CONSUMER_PREFETCH` unacknowledged messages:
/// the rest wait in the queue (where another worker could take them), not in
/// one consumer's memory.
#[tokio::test]
async fn a_consumer_takes_no_more_than_its_prefetch() {
    let stack = Stack::builder()
        .var("CONSUMER_PREFETCH", "3")
        .var("EMAIL_DELAY_MS", "5000")
        .start()
        .await;

    register(&stack, 10, "prefetch").await;

    // Three are being sent (5 s each), seven wait in the queue.
    let waiting = eventually(Duration::from_secs(4), || async {
        let depth = stack.broker.depth("email.send").await;
        (depth == 7).then_some(depth)
    })
    .await;
    assert_eq!(waiting, Some(7), "ready messages in email.send");
    let (_, sent) = stack.get("email", "/emails").await;
    assert_eq!(sent["count"], 0, "none finished yet: {sent}");
}

#[tokio::test]
async fn the_same_message_delivered_twice_has_one_effect() {
    let stack = Stack::start().await;
    let id = uuid::Uuid::new_v4().to_string();
    let email = json!({"to": "twice@example.com", "subject": "hello", "user_id": null});
    let body = serde_json::to_vec(&email).unwrap();

    stack.broker.publish("user.registered", &id, &body).await;
    stack.broker.publish("user.registered", &id, &body).await;

    let sent = stack
        .get_until("email", "/emails?to=twice@example.com", |e| e["count"] == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, again) = stack.get("email", "/emails?to=twice@example.com").await;
    assert_eq!(sent["count"], 1);
    assert_eq!(again["count"], 1, "one email for one message id");
}

/// The order saga claims a message and locks its order in one statement,
/// and writes a step's command in the statement that records the step: a
/// message that comes again, with its id or a new one, moves no order and
/// sends no command; each step sent its command once. (Two guards stand
/// here, and a user sees them as one: the inbox drops the copy with the
/// same id, and the state machine, run under the order's lock, ignores an
/// event the order no longer waits for.)
#[tokio::test]
async fn a_saga_event_that_comes_again_moves_no_order() {
    let stack = Stack::start().await;
    let tap = stack.broker.tap(&["stock.reserved"]).await;
    let (_, answer) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 1, "quantity": 2}),
        )
        .await;
    let order = stack.finished(Scenario::Order, &answer).await;
    let id = order["id"].as_i64().unwrap();
    let reserved = tap.next().await.expect("inventory's stock.reserved");
    let body = serde_json::to_vec(&json!({
        "order_id": id, "product_id": 1, "quantity": 2, "status": "reserved"
    }))
    .unwrap();
    let again = uuid::Uuid::new_v4();

    stack
        .broker
        .publish("stock.reserved", &reserved.message_id, &body)
        .await;
    stack
        .broker
        .publish("stock.reserved", &again.to_string(), &body)
        .await;

    let mut db = stack.db().await;
    let claims = |message_id: uuid::Uuid| {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM order_service.inbox WHERE message_id = $1",
        )
        .bind(message_id)
    };
    // Both copies delivered (the queue is empty) and the later one handled
    // (claimed); the first, delivered before it, is dropped by its claim.
    let handled = eventually(Duration::from_secs(10), || async {
        let mut db = stack.db().await;
        let claimed = claims(again).fetch_one(&mut db).await.unwrap() == 1;
        (claimed && stack.broker.depth("order.saga").await == 0).then_some(())
    })
    .await;
    assert!(handled.is_some(), "the order consumer took both copies");
    let (_, now) = stack.get("order", &format!("/orders/{id}")).await;
    assert_eq!(now["status"], order["status"]);
    assert_eq!(steps(&now), steps(&order), "no step taken again");
    let sent: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM order_service.outbox WHERE (payload->>'order_id')::bigint = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(
        sent,
        ["stock.reserve", "payment.requested", "stock.release"]
    );
    assert_eq!(payments(&stack).await, 1);
}

#[tokio::test]
async fn services_start_without_the_broker_and_catch_up_when_it_comes() {
    let stack = Stack::builder().broker_down().start().await;

    let (status, ready) = stack.get("user", "/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"]["broker"], "unreachable");
    assert_eq!(ready["checks"]["database"], "ok");
    let users = register(&stack, 5, "early").await;
    let (status, _) = stack
        .post(
            "analytics",
            "/track_click",
            json!({"user_id": 1, "page": "home"}),
        )
        .await;
    assert_eq!(status, 503, "a click is answered only once durable");

    stack.proxy.up();
    stack.wait_ready().await;

    all_sent(&stack, &users).await;
}
