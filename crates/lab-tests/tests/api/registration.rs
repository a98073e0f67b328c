//! Scenario 1: registration and its welcome email, in both modes: sync
//! answers once the email was sent, async at once with the email to follow;
//! either way the user ends with exactly one email, sent after its delay.

use std::time::{Duration, Instant};

use common::{MODE, Mode};
use lab_tests::Stack;
use loadgen::scenario::Scenario;
use serde_json::json;

use lab_tests::helpers::{TableLock, time};

#[tokio::test]
async fn registering_sends_one_welcome_email_after_its_delay() {
    let stack = Stack::builder().var("EMAIL_DELAY_MS", "150").start().await;

    let started = Instant::now();
    let (status, answer) = stack
        .post("user", "/register", json!({"email": "ada@example.com"}))
        .await;
    let elapsed = started.elapsed();

    assert_eq!(status, Scenario::Register.expected(MODE), "{answer}");
    assert_eq!(answer["email"], "ada@example.com");
    assert!(answer["id"].as_i64().is_some());
    let user = stack.finished(Scenario::Register, &answer).await;
    assert_eq!(user["email_status"], "sent", "{user}");
    if MODE == Mode::Sync {
        // The answer waited for the email service's 150 ms and is final. (The
        // email's `sent_at` is stamped as the simulated SMTP call starts, the
        // record overlapping the delay, so only the answer shows the wait.)
        assert!(
            elapsed >= Duration::from_millis(150),
            "answered after {elapsed:?}"
        );
        assert_eq!(answer, user, "the answer is the stored user");
    } else {
        // Accepted before the email went out, saying where to look; the
        // server's timestamps show the 150 ms the email took afterwards.
        assert_eq!(answer["email_status"], "pending");
        assert!(answer["status_url"].is_string(), "{answer}");
        let waited = time(&user["email_sent_at"]) - time(&user["created_at"]);
        assert!(
            waited.num_milliseconds() >= 150,
            "the email took its 150 ms: {waited}"
        );
    }
    let (_, emails) = stack.get("email", "/emails?to=ada@example.com").await;
    assert_eq!(emails["count"], 1);
    assert_eq!(emails["emails"][0]["user_id"], user["id"]);
    assert_eq!(emails["emails"][0]["sent_at"], user["email_sent_at"]);
    let (_, emails) = stack
        .get("email", &format!("/emails?user_id={}", user["id"]))
        .await;
    assert_eq!(emails["count"], 1);
    assert_eq!(emails["emails"][0]["to"], "ada@example.com");
}

#[tokio::test]
async fn a_duplicate_email_is_409_and_sends_nothing_more() {
    let stack = Stack::start().await;
    let (status, first) = stack
        .post("user", "/register", json!({"email": "bob@example.com"}))
        .await;
    assert_eq!(status, Scenario::Register.expected(MODE), "{first}");
    let first = stack.finished(Scenario::Register, &first).await;
    assert_eq!(first["email_status"], "sent", "{first}");

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
    // A registration after it is through: an email the duplicate had caused
    // would have gone out by now.
    let (_, later) = stack
        .post("user", "/register", json!({"email": "later@example.com"}))
        .await;
    let later = stack.finished(Scenario::Register, &later).await;
    assert_eq!(later["email_status"], "sent", "{later}");
    let (_, emails) = stack.get("email", "/emails?to=bob@example.com").await;
    assert_eq!(emails["count"], 1);
}

/// Registrations held up together (the users table locked): async mode
/// writes them in shared statements (a group commit), sync mode each in its
/// own; either way each gets its own answer, an address asked three times
/// at once (in two cases) is registered once and answered 409 twice, and
/// every user gets one welcome email.
#[tokio::test]
async fn registrations_that_arrive_together_keep_their_own_answers() {
    const USERS: usize = 30;
    let stack = Stack::builder().var("EMAIL_DELAY_MS", "10").start().await;
    let lock = TableLock::take(&stack, "user_service.users").await;
    let twins = ["twin@example.com", "TWIN@example.com", "twin@example.com"];
    let emails: Vec<String> = (0..USERS)
        .map(|i| format!("crowd{i}@example.com"))
        .chain(twins.map(String::from))
        .collect();
    let requests: Vec<_> = emails
        .iter()
        .enumerate()
        .map(|(i, email)| {
            let request = stack
                .http()
                .post(stack.url("user", "/register"))
                .header("x-request-id", format!("crowd-{i}"))
                .json(&json!({ "email": email }))
                .send();
            tokio::spawn(async move {
                let answer = request.await.expect("sent");
                let status = answer.status().as_u16();
                (status, answer.json::<serde_json::Value>().await.unwrap())
            })
        })
        .collect();
    let mut watch = stack.db().await;
    lock.waited_on(&stack, "INSERT INTO users").await;
    // Time for the other registrations to arrive and queue behind it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    lock.release().await;

    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    for (i, (status, answer)) in answers[..USERS].iter().enumerate() {
        assert_eq!(*status, Scenario::Register.expected(MODE), "{answer}");
        assert_eq!(answer["email"], emails[i], "its own user: {answer}");
    }
    let mut twin_statuses: Vec<u16> = answers[USERS..].iter().map(|(s, _)| *s).collect();
    twin_statuses.sort_unstable();
    let mut expected = vec![409, 409, Scenario::Register.expected(MODE)];
    expected.sort_unstable();
    assert_eq!(twin_statuses, expected, "{:?}", &answers[USERS..]);
    // The twin registered is answered with the address it sent, in its case.
    for (i, (status, answer)) in answers.iter().enumerate().skip(USERS) {
        if *status != 409 {
            assert_eq!(answer["email"], emails[i], "{answer}");
        }
    }
    let conflict = answers[USERS..].iter().find(|(s, _)| *s == 409).unwrap();
    assert!(
        conflict.1["detail"]
            .as_str()
            .is_some_and(|d| d.contains("already registered")),
        "{conflict:?}"
    );

    let (users, writes): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT created_at) FROM user_service.users")
            .fetch_one(&mut watch)
            .await
            .unwrap();
    assert_eq!(users, USERS as i64 + 1);
    if cfg!(feature = "async") {
        assert!(
            writes < users / 2,
            "{users} users in {writes} statements: they shared them"
        );
        // Each user's event is its own: its address, its id, its request's id.
        let events: Vec<(String, String)> = sqlx::query_as(
            "SELECT u.email, o.correlation_id FROM user_service.outbox o
             JOIN user_service.users u ON (o.payload->>'user_id')::bigint = u.id
             WHERE o.payload->>'to' = u.email AND o.accepted_at = u.created_at",
        )
        .fetch_all(&mut watch)
        .await
        .unwrap();
        assert_eq!(events.len(), USERS + 1, "one event per user: {events:?}");
        for (email, correlation_id) in &events {
            let i = emails.iter().position(|e| e == email).unwrap();
            let twin = answers[USERS..].iter().position(|(s, _)| *s != 409);
            let asked = if i < USERS { i } else { USERS + twin.unwrap() };
            assert_eq!(*correlation_id, format!("crowd-{asked}"), "{email}");
        }
    }
    for (status, answer) in &answers {
        if *status != 409 {
            let user = stack.finished(Scenario::Register, answer).await;
            assert_eq!(user["email_status"], "sent", "{user}");
        }
    }
    // Recipients are matched whatever their case.
    let (_, sent) = stack.get("email", "/emails?to=twin@example.com").await;
    assert_eq!(sent["count"], 1, "one email for the twins: {sent}");
    let (_, all) = stack.get("email", "/emails").await;
    assert_eq!(all["count"], USERS + 1, "one email per user");
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

#[tokio::test]
async fn with_email_down_the_user_stays_registered_and_the_answer_says_so() {
    let stack = Stack::builder().without("email").start().await;

    let (status, answer) = stack
        .post("user", "/register", json!({"email": "carol@example.com"}))
        .await;

    assert_eq!(status, Scenario::Register.expected(MODE), "{answer}");
    let (status, stored) = stack.get("user", &format!("/users/{}", answer["id"])).await;
    assert_eq!(status, 200, "the user is registered: {stored}");
    assert!(stored["email_sent_at"].is_null(), "{stored}");
    if MODE == Mode::Sync {
        // The blocking call to email failed; the answer, final, says so.
        assert_eq!(answer["email_status"], "failed");
        assert!(
            answer["email_error"]
                .as_str()
                .unwrap()
                .contains("unreachable"),
            "{answer}"
        );
        assert_eq!(stored["email_status"], "failed");
    } else {
        // Nothing calls email: the user's email is pending, its message
        // waiting in the queue for the email service to come.
        assert_eq!(answer["email_status"], "pending");
        assert_eq!(stored["email_status"], "pending");
        #[cfg(feature = "async")]
        {
            let waiting = lab_tests::eventually(Duration::from_secs(5), || async {
                (stack.broker.depth("email.send").await == 1).then_some(())
            })
            .await;
            assert!(waiting.is_some(), "the email's message waits in email.send");
        }
    }
}

// Sync only: `OUTBOUND_TIMEOUT_MS` bounds the blocking call to email. In async
// mode no request waits on email, so there is nothing to time out; a slow
// email only makes the user's final state come later.
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

    assert_eq!(status, Scenario::Register.expected(MODE), "{user}");
    assert_eq!(user["email_status"], "failed");
    assert!(
        user["email_error"].as_str().unwrap().contains("in time"),
        "{user}"
    );
}

// Async only: events, and the AMQP properties they travel with, exist only in
// async mode (the correlation id over HTTP is checked in both, in `ops`).
#[cfg(feature = "async")]
#[tokio::test]
async fn the_request_id_travels_with_every_event_it_causes() {
    let stack = Stack::start().await;
    let tap = stack.broker.tap(&["user.registered", "email.sent"]).await;

    let response = stack
        .http()
        .post(stack.url("user", "/register"))
        .header("x-request-id", "trace-async-7")
        .json(&json!({"email": "traced@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), Scenario::Register.expected(MODE));

    // user -> (user.registered) -> email -> (email.sent) -> user: both hops.
    let mut seen: Vec<_> = [tap.next().await, tap.next().await]
        .into_iter()
        .map(|event| event.expect("both events reach the tap"))
        .collect();
    seen.sort();
    let kinds: Vec<&str> = seen.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["email.sent", "user.registered"]);
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    for event in &seen {
        assert_eq!(event.correlation_id, "trace-async-7", "{event:?}");
        assert_eq!(event.delivery_mode, Some(2), "persistent: {event:?}");
        assert!(
            event.timestamp.is_some_and(|t| t.abs_diff(now) < 60),
            "stamped when published: {event:?}"
        );
        uuid::Uuid::parse_str(&event.message_id).expect("a message id");
    }
    assert_ne!(seen[0].message_id, seen[1].message_id);
}
