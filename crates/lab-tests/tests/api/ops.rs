//! What every service answers besides its scenario: health, readiness,
//! metrics, JSON for unknown routes, graceful shutdown.

use lab_tests::Stack;
use lab_tests::helpers::metrics;
use serde_json::json;

#[tokio::test]
async fn every_service_is_healthy_and_ready() {
    let stack = Stack::start().await;
    for spec in &common::SERVICES {
        let (status, health) = stack.get(spec.name, "/health").await;
        assert_eq!(status, 200, "{}", spec.name);
        assert_eq!(health["service"], spec.name);
        assert_eq!(health["mode"], common::MODE.as_str());
        let (status, ready) = stack.get(spec.name, "/ready").await;
        assert_eq!(status, 200, "{}: {ready}", spec.name);
        assert_eq!(ready["checks"]["database"], "ok");
    }
}

#[tokio::test]
async fn the_container_health_check_asks_the_running_service() {
    let mut stack = Stack::start().await;
    let base = stack.url("email", "");
    let port = base.rsplit(':').next().unwrap();
    // What `email-service --healthcheck` does inside its container.
    let settings = common::Settings::from_vars([("BIND_HOST", "0.0.0.0"), ("PORT", port)]).unwrap();
    let url = common::app::health_url(&common::services::EMAIL, &settings);
    assert_eq!(url, format!("{base}/health"));

    assert_eq!(common::app::check_health(&url).await, Ok(()));
    stack.stop("email").await;
    let stopped = common::app::check_health(&url).await;

    assert!(stopped.is_err(), "a stopped service is unhealthy");
}

#[tokio::test]
async fn without_its_database_a_service_is_alive_but_not_ready() {
    let stack = Stack::start().await;

    stack.lose_database().await;

    let (status, health) = stack.get("analytics", "/health").await;
    assert_eq!(status, 200, "{health}");
    let (status, ready) = stack.get("analytics", "/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"]["database"], "unreachable");
    let (status, body) = stack
        .post("user", "/register", json!({"email": "lost@example.com"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["detail"], "database unavailable", "no internals shown");
    let (status, body) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 1, "quantity": 1}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["detail"], "database unavailable", "no internals shown");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let stack = Stack::start().await;
    stack
        .post(
            "analytics",
            "/track_click",
            json!({"user_id": 1, "page": "home"}),
        )
        .await;
    stack
        .post("analytics", "/track_click", json!({"user_id": 1}))
        .await;
    stack
        .post("user", "/register", json!({"email": "m@example.com"}))
        .await;

    let text = metrics(&stack, "analytics").await;
    let user_text = metrics(&stack, "user").await;

    // The recorder is one per process and other tests run alongside: look
    // for the series, not for exact counts.
    let mode = common::MODE.as_str();
    for status in [200, 422] {
        let series = format!(
            r#"http_requests_total{{service="analytics",mode="{mode}",method="POST",route="/track_click",status="{status}"}} "#
        );
        assert!(text.contains(&series), "{series} in {text}");
    }
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("db_pool_connections_in_use"), "{text}");
    assert!(
        phase_counted(
            &text,
            "analytics",
            "request",
            "POST /track_click",
            "batched",
            ""
        ),
        "a click's wait for its batch is a phase: {text}"
    );
    assert!(
        !text.contains(r#"service="user""#),
        "each service shows only its own series"
    );
    if cfg!(feature = "async") {
        // The registration's event was published, consumed by email, and its
        // answer consumed by user: completion is measured, not only acceptance.
        let done = lab_tests::eventually(std::time::Duration::from_secs(10), || async {
            let text = metrics(&stack, "user").await;
            text.contains(r#"async_completion_seconds_count{service="user",mode="async",scenario="registration"}"#)
                .then_some(text)
        })
        .await
        .expect("registration completion recorded");
        assert!(
            done.contains(
                r#"messages_published_total{service="user",mode="async",kind="user.registered"}"#
            ),
            "{done}"
        );
        assert!(done.contains(r#"messages_consumed_total{service="user",mode="async",queue="user.email-sent",outcome="ok"}"#), "{done}");
        assert!(done.contains("message_queue_wait_seconds_bucket"), "{done}");
        assert!(done.contains("broker_connected"), "{done}");
    } else {
        assert!(
            user_text.contains(r#"outbound_request_duration_seconds_count{service="user""#),
            "{user_text}"
        );
        assert!(
            user_text.contains(r#"target="email",outcome="ok""#),
            "{user_text}"
        );
        assert!(user_text.contains("sync_workers_busy"), "{user_text}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let stack = Stack::start().await;
    let (status, body) = stack.get("order", "/nope").await;
    assert_eq!(status, 404);
    assert!(body["detail"].is_string());
    let (status, body) = stack.get("order", "/create_order").await;
    assert_eq!(status, 405);
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn the_correlation_id_is_echoed_and_passed_on() {
    let stack = Stack::start().await;
    let response = stack
        .http()
        .post(stack.url("user", "/register"))
        .header("x-request-id", "trace-me-42")
        .json(&json!({"email": "corr@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let minted = stack
        .http()
        .get(stack.url("user", "/health"))
        .send()
        .await
        .unwrap();
    assert!(
        !minted.headers()["x-request-id"].is_empty(),
        "one is minted when none is given"
    );
}

#[tokio::test]
async fn stopping_a_service_finishes_the_requests_in_flight() {
    let mut stack = Stack::builder()
        .var("PAYMENT_DELAY_MS", "500")
        .start()
        .await;
    let request = stack
        .http()
        .post(stack.url("payment", "/process_payment"))
        .json(&json!({"amount": 3.0}))
        .send();
    let answer = tokio::spawn(request);
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;

    stack.stop("payment").await;

    let response = answer
        .await
        .unwrap()
        .expect("the request in flight was answered");
    assert_eq!(
        response.status(),
        loadgen::scenario::Scenario::Payment.expected(common::MODE)
    );
    assert!(
        stack
            .http()
            .get(stack.url("payment", "/health"))
            .send()
            .await
            .is_err(),
        "it no longer listens"
    );
}

#[tokio::test]
async fn postgres_slots_count_what_is_open_and_what_is_allowed() {
    use sqlx::Connection;
    let url = format!("{}/postgres", lab_tests::server_url());
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(sqlx::PgConnection::connect(&url).await.unwrap());
    }
    let max: String = sqlx::query_scalar("SHOW max_connections")
        .fetch_one(&mut held[0])
        .await
        .unwrap();

    let slots = common::db::slots(&url).await.unwrap();

    // The tests connect as a superuser: every slot is theirs to take.
    assert_eq!(slots.allowed, max.parse::<i64>().unwrap());
    assert!(
        slots.open >= 4,
        "the four held connections are open: {slots:?}"
    );
    assert_eq!(slots.free(), slots.allowed - slots.open);
}

#[tokio::test]
async fn every_service_serves_its_committed_openapi_document() {
    let stack = Stack::start().await;
    for spec in &common::SERVICES {
        let response = stack
            .http()
            .get(stack.url(spec.name, "/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", spec.name);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("application/json"),
            "{}: {content_type}",
            spec.name
        );
        let served = response.text().await.unwrap();
        let path = common::openapi::committed_path(spec.name);
        let committed = std::fs::read_to_string(&path).unwrap();
        assert!(
            served == committed,
            "{}: /openapi.json is not {}; regenerate with `{}`",
            spec.name,
            path.display(),
            common::openapi::UPDATE_COMMAND
        );
        let doc: serde_json::Value = serde_json::from_str(&served).unwrap();
        assert_eq!(
            doc["servers"][0]["url"],
            format!("http://localhost:{}", spec.port(common::MODE))
        );
    }
}

/// A `phase_seconds` series of `service` for one work and phase has counted something.
fn phase_counted(
    text: &str,
    service: &str,
    within: &str,
    work: &str,
    phase: &str,
    peer: &str,
) -> bool {
    let mode = common::MODE.as_str();
    let series = format!(
        r#"phase_seconds_count{{service="{service}",mode="{mode}",within="{within}",work="{work}",phase="{phase}",peer="{peer}"}} "#
    );
    text.lines()
        .filter_map(|l| l.strip_prefix(&series))
        .any(|n| n.parse::<f64>().is_ok_and(|n| n >= 1.0))
}

#[tokio::test]
async fn the_phases_of_a_registration_show_where_its_time_went() {
    let stack = Stack::start().await;
    let answer = stack
        .http()
        .post(stack.url("user", "/register"))
        .json(&json!({"email": "phases@example.com"}))
        .send()
        .await
        .unwrap();
    // The handler's own time, for a caller's `call_overhead`.
    let timing = answer.headers()["server-timing"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(timing.starts_with("app;dur="), "{timing}");
    assert!(
        timing[8..].parse::<f64>().is_ok_and(|ms| ms > 0.0),
        "{timing}"
    );

    // Each phase in its service, its work and its kind of work.
    let expected: Vec<(&str, &str, &str, &str, &str)> = if cfg!(feature = "async") {
        vec![
            // The request joins a batch of registrations; the batch's
            // statement is the batcher's.
            ("user", "request", "POST /register", "batched", ""),
            (
                "user",
                "background",
                "registration batcher",
                "db_statement",
                "with",
            ),
            ("user", "background", "outbox relay", "publish", ""),
            ("user", "background", "outbox relay", "confirm", ""),
            ("email", "message", "email.send", "delay", ""),
            ("email", "message", "email.send", "delay_overshoot", ""),
            ("email", "message", "email.send", "ack", ""),
            ("email", "message", "email.send", "handled", ""),
            (
                "user",
                "message",
                "user.email-sent",
                "db_statement",
                "update",
            ),
        ]
    } else {
        vec![
            ("user", "request", "POST /register", "db_pool_wait", ""),
            ("user", "request", "POST /register", "db_statement", "with"),
            ("user", "request", "POST /register", "worker_wait", ""),
            ("user", "request", "POST /register", "call", "email"),
            (
                "user",
                "request",
                "POST /register",
                "call_overhead",
                "email",
            ),
            (
                "user",
                "request",
                "POST /register",
                "db_statement",
                "update",
            ),
            ("email", "request", "POST /send", "delay", ""),
            ("email", "request", "POST /send", "db_statement", "insert"),
        ]
    };
    let missing = lab_tests::eventually(std::time::Duration::from_secs(10), || async {
        let texts = [
            metrics(&stack, "user").await,
            metrics(&stack, "email").await,
        ];
        let missing: Vec<_> = expected
            .iter()
            .filter(|(service, within, work, phase, peer)| {
                let text = &texts[usize::from(*service == "email")];
                !phase_counted(text, service, within, work, phase, peer)
            })
            .collect();
        missing.is_empty().then_some(())
    })
    .await;
    assert!(
        missing.is_some(),
        "phases not counted:\n{}\n{}",
        metrics(&stack, "user").await,
        metrics(&stack, "email").await
    );
    // The user's INSERT (and in async mode its event's outbox row, in the
    // same statement) commits by itself, without a BEGIN and a COMMIT round
    // trip of its own.
    let text = metrics(&stack, "user").await;
    let (within, work) = if cfg!(feature = "async") {
        ("background", "registration batcher")
    } else {
        ("request", "POST /register")
    };
    for phase in ["db_begin", "db_commit"] {
        assert!(
            !phase_counted(&text, "user", within, work, phase, ""),
            "{phase} in {text}"
        );
    }
}

/// A product's update, a payment and a report job are each written in one
/// statement that commits by itself, in async mode together with its event:
/// the phases show the statement, and no BEGIN or COMMIT round trip.
#[tokio::test]
async fn a_write_and_its_event_are_one_statement_without_begin_or_commit() {
    let stack = Stack::builder()
        .var("PAYMENT_DELAY_MS", "10")
        .var("REPORT_ITERATIONS", "1000")
        .start()
        .await;
    stack
        .put("product", "/products/1", json!({"stock": 5}))
        .await;
    stack
        .post("payment", "/process_payment", json!({"amount": 1.5}))
        .await;
    stack
        .post(
            "report",
            "/generate_report",
            json!({"report_type": "daily"}),
        )
        .await;
    one_statement_each(
        &stack,
        &[
            ("product", "PUT /products/{id}"),
            ("payment", "POST /process_payment"),
            ("report", "POST /generate_report"),
        ],
        &["with"],
    )
    .await;
}

/// Waits until each `(service, work)` has counted a `db_statement` of one
/// of `verbs` within a request, then asserts that none counted a `db_begin`
/// or `db_commit`: each wrote with statements that commit by themselves.
async fn one_statement_each(stack: &Stack, works: &[(&str, &str)], verbs: &[&str]) {
    let counted = lab_tests::eventually(std::time::Duration::from_secs(10), || async {
        for (service, work) in works {
            let text = metrics(stack, service).await;
            let any = verbs
                .iter()
                .any(|verb| phase_counted(&text, service, "request", work, "db_statement", verb));
            if !any {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(counted.is_some(), "every work's statement is counted");
    for (service, work) in works {
        let text = metrics(stack, service).await;
        for phase in ["db_begin", "db_commit"] {
            assert!(
                !phase_counted(&text, service, "request", work, phase, ""),
                "{service} {work}: {phase} in {text}"
            );
        }
    }
}

/// Sync: a declined order's saga writes each step with one statement that
/// commits by itself, in the order service and in inventory: the phases
/// show its statements and calls, and no BEGIN or COMMIT round trip.
#[cfg(not(feature = "async"))]
#[tokio::test]
async fn a_sync_saga_sends_no_begin_or_commit_of_its_own() {
    let stack = Stack::start().await;
    let (status, answer) = stack
        .post(
            "order",
            "/create_order",
            json!({"product_id": 1, "quantity": 1}),
        )
        .await;
    assert_eq!(status, 400, "declined by design: {answer}");
    one_statement_each(
        &stack,
        &[
            ("order", "POST /create_order"),
            ("inventory", "POST /reservations"),
            ("inventory", "POST /reservations/{order_id}/release"),
        ],
        &["with", "select"],
    )
    .await;
}
