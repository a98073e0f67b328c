//! Several instances of a service (`lab up --replicas`, `LAB_REPLICAS`)
//! against real stacks of the debug builds (target/debug, target/async/debug,
//! which `scripts/test.sh` has built by the time it runs this):
//!
//! - async: three email workers compete for one queue, and each handles some
//!   of it, every message once (one email per user); two user instances run
//!   two relays on one outbox, and each event is published exactly once;
//! - sync: two user instances behind one email service each answer some of
//!   the registrations, and every user gets one email.
//!
//! Ignored by a plain `cargo test` (it needs the builds and the stacks'
//! ports); `scripts/test.sh` runs it with `--ignored`.

// A failed unwrap in a test helper is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

mod support;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use common::{Mode, services};
use futures_util::FutureExt;
use loadgen::drive::{Load, drive};
use loadgen::scenario::Scenario;
use loadgen::stack::Stack;
use sqlx::{Connection, PgConnection};

async fn start(mode: Mode, replicas: &str) -> Stack {
    loadgen::stack::ports_free(mode).expect("the mode's ports are free");
    let infra = support::infra();
    let name = format!("lab_replicas_{mode}_{}", std::process::id());
    let log = std::env::temp_dir().join(format!("{name}.log"));
    let env: Vec<(String, String)> = [
        ("LAB_REPLICAS", replicas),
        ("EMAIL_DELAY_MS", "50"),
        ("DB_MAX_CONNECTIONS", "4"),
        ("RUST_LOG", "warn"),
    ]
    .iter()
    .map(|(k, v)| ((*k).into(), (*v).into()))
    .collect();
    Stack::start(&support::bin(mode), mode, &name, &env, &infra, &log)
        .await
        .unwrap_or_else(|e| panic!("{e:#}; log: {}", log.display()))
}

/// Registrations from 8 clients for 3 s, spread over the user instances,
/// followed to their end; the number of users it registered.
async fn register(stack: &Stack) -> i64 {
    let load = Load {
        mode: stack.mode,
        host: "127.0.0.1".into(),
        clients: 8,
        think: Duration::ZERO,
        rate: None,
        max_in_flight: 8,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(3),
        drain_timeout: Duration::from_secs(30),
        hangup: None,
        database_url: stack.database_url.clone(),
        replicas: stack.replicas.clone(),
        progress: false,
        stock_every_order: false,
    };
    let client = load.client().unwrap();
    let outcome = drive(&client, &load, Scenario::Register).await.unwrap();
    assert_eq!(outcome.expected_answers(), outcome.stats.count());
    let verdict = outcome
        .verdict
        .expect("a reconciliation")
        .expect("the database read");
    assert!(verdict.holds(), "{}", verdict.describe(Scenario::Register));
    verdict.started
}

/// `name{labels}` summed over an instance's `/metrics`, for the labels holding all of `want`.
async fn metric(port: u16, name: &str, want: &[&str]) -> f64 {
    let client = reqwest::Client::new();
    let text = loadgen::exposition::scrape(&client, &format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|| panic!("/metrics of port {port}"));
    loadgen::exposition::sum(&text, name, |labels| {
        want.iter().all(|w| labels.contains(w))
    })
}

/// Users and emails of the stack, and the most emails any one user got.
async fn users_and_emails(stack: &Stack) -> (i64, i64, i64) {
    let mut db = PgConnection::connect(&stack.database_url).await.unwrap();
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM user_service.users),
                (SELECT count(*) FROM email_service.emails),
                (SELECT coalesce(max(n), 0) FROM
                    (SELECT count(*) AS n FROM email_service.emails GROUP BY lower(recipient)) e)",
    )
    .fetch_one(&mut db)
    .await
    .unwrap()
}

/// Runs the checks, then stops the stack (and drops its database) whatever
/// they said; a failed check fails the test after that.
async fn stopped_after(stack: Stack, checks: impl AsyncFnOnce(&Stack)) {
    let result = AssertUnwindSafe(checks(&stack)).catch_unwind().await;
    assert!(stack.stop().await, "the stack stops on SIGINT");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
#[ignore = "needs the async debug build and the async ports; scripts/test.sh runs it"]
async fn three_email_workers_share_the_queue_and_two_relays_publish_each_event_once() {
    let stack = start(Mode::Async, "email=3,user=2").await;
    let checked = async |stack: &Stack| {
        let users = register(stack).await;
        assert!(users > 20, "only {users} registrations");
        let (stored, emails, most) = users_and_emails(stack).await;
        assert_eq!(
            (stored, emails, most),
            (users, users, 1),
            "one email per user"
        );

        let mut consumed = Vec::new();
        for port in stack.replicas.ports(&services::EMAIL, Mode::Async) {
            consumed.push(metric(port, "messages_consumed_total", &["service=\"email\""]).await);
        }
        assert_eq!(consumed.len(), 3);
        assert!(
            consumed.iter().all(|n| *n > 0.0),
            "every email worker handled some: {consumed:?}"
        );
        assert_eq!(
            consumed.iter().sum::<f64>() as i64,
            users,
            "each message delivered once: {consumed:?}"
        );

        let mut published = Vec::new();
        for port in stack.replicas.ports(&services::USER, Mode::Async) {
            let kind = "kind=\"user.registered\"";
            published.push(metric(port, "messages_published_total", &[kind]).await);
        }
        assert_eq!(
            published.iter().sum::<f64>() as i64,
            users,
            "two relays on one outbox publish each event once: {published:?}"
        );
    };
    stopped_after(stack, checked).await;
}

#[tokio::test]
#[ignore = "needs the sync debug build and the sync ports; scripts/test.sh runs it"]
async fn two_sync_user_instances_share_the_load_behind_one_email_service() {
    let stack = start(Mode::Sync, "user=2").await;
    let checked = async |stack: &Stack| {
        let users = register(stack).await;
        let (stored, emails, most) = users_and_emails(stack).await;
        assert_eq!(
            (stored, emails, most),
            (users, users, 1),
            "one email per user"
        );
        let mut answered = Vec::new();
        for port in stack.replicas.ports(&services::USER, Mode::Sync) {
            let want = ["route=\"/register\"", "status=\"2"];
            answered.push(metric(port, "http_requests_total", &want).await);
        }
        assert_eq!(answered.len(), 2);
        assert!(
            answered.iter().all(|n| *n > 0.0),
            "both instances answered: {answered:?}"
        );
        assert_eq!(answered.iter().sum::<f64>() as i64, users);
    };
    stopped_after(stack, checked).await;
}
