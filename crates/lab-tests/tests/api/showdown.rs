//! The showdown's API against the real services of this build's mode: its
//! lane races, follows and reads back; the other mode's lane is "not
//! running" (nothing listens where it points), as with one stack up.

use std::collections::HashMap;
use std::time::Duration;

use clap::Parser;
use common::{MODE, Mode, SERVICES};
use lab_tests::{Stack, eventually};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use lab_tests::helpers::stock;

/// Where nothing listens: the other mode's lane and both launchers.
const NOWHERE: &str = "http://127.0.0.1:1";

struct Showdown {
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for Showdown {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Showdown {
    async fn start(stack: &Stack) -> Showdown {
        let own: HashMap<String, String> = SERVICES
            .iter()
            .map(|s| (s.name.to_owned(), stack.url(s.name, "")))
            .collect();
        #[cfg(feature = "async")]
        let (amqp, prefix) = (stack.proxy.url(), stack.broker.prefix.clone());
        #[cfg(not(feature = "async"))]
        let (amqp, prefix) = (NOWHERE.replace("http", "amqp"), "none".to_owned());
        let config = showdown::Config::parse_from([
            "showdown",
            "--sync-url",
            NOWHERE,
            "--async-url",
            NOWHERE,
            "--sync-control",
            NOWHERE,
            "--async-control",
            NOWHERE,
            "--amqp-url",
            &amqp,
            "--broker-prefix",
            &prefix,
            "--follow-seconds",
            "30",
        ]);
        let overrides = match MODE {
            Mode::Sync => [own, HashMap::new()],
            Mode::Async => [HashMap::new(), own],
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        tokio::spawn(showdown::run_with(config, overrides, listener, shutdown));
        Showdown {
            base,
            http: reqwest::Client::new(),
            stop,
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or_default(),
        )
    }

    /// Races and returns the race once it is done.
    async fn race(&self, scenario: u8, count: usize) -> Value {
        let (status, body) = self
            .post("/api/races", json!({"scenario": scenario, "count": count}))
            .await;
        assert_eq!(status, 202, "{body}");
        let done = eventually(Duration::from_secs(60), || async {
            let race: Value = self
                .http
                .get(format!("{}/api/races/current", self.base))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (race["id"] == body["race"] && race["state"] == "done").then_some(race)
        })
        .await;
        done.expect("the race ended within 60 s")
    }
}

/// This build's lane and the other one.
fn lanes(race: &Value) -> (&Value, &Value) {
    let (own, other) = match MODE {
        Mode::Sync => (0, 1),
        Mode::Async => (1, 0),
    };
    (&race["lanes"][own], &race["lanes"][other])
}

#[tokio::test]
async fn a_race_answers_follows_and_reads_back_every_operation() {
    let stack = Stack::start().await;
    let showdown = Showdown::start(&stack).await;

    let race = showdown.race(1, 5).await;

    let (lane, other) = lanes(&race);
    assert_eq!(lane["running"], true, "{lane}");
    let summary = &lane["summary"];
    assert_eq!(summary["answered"], 5, "{summary}");
    assert_eq!(summary["accepted"], 5, "{summary}");
    assert_eq!(summary["finished"], 5, "{summary}");
    assert_eq!(summary["pending"], 0, "{summary}");
    assert_eq!(summary["statuses"][0]["expected"], true, "{summary}");
    assert_eq!(lane["lost"], 0, "{lane}");
    assert!(
        lane["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{lane}"
    );
    // Every row the page would draw is one user the stack has, email sent.
    for row in lane["rows"].as_array().unwrap() {
        let (status, user) = stack.get("user", row["resource"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(user["email_status"], "sent", "{user}");
        assert!(row["finished"].as_f64().unwrap() >= row["answered"].as_f64().unwrap() - 1.0);
    }
    // The pools on the answer's path, read before and after the sends (the
    // user service has just stored five users: its pool holds at least
    // one), and a note on the page exactly where one grew.
    let pools = lane["pools"].as_array().unwrap();
    let path: Vec<&str> = pools.iter().filter_map(|p| p["service"].as_str()).collect();
    let expected: &[&str] = match MODE {
        Mode::Sync => &["user", "email"],
        Mode::Async => &["user"],
    };
    assert_eq!(path, expected, "{lane}");
    let count = |p: &Value, when: &str| p[when].as_u64().unwrap_or_else(|| panic!("{p}"));
    assert!(count(&pools[0], "after") >= 1, "{lane}");
    let grew = pools.iter().any(|p| count(p, "after") > count(p, "before"));
    let noted = race["notes"].as_array().unwrap().iter().any(|n| {
        n.as_str()
            .unwrap()
            .contains("pools on the answer's path grew")
    });
    assert_eq!(grew, noted, "{race}");
    assert_eq!(other["running"], false, "{other}");
    assert_eq!(other["rows"], json!([]));
}

#[tokio::test]
async fn a_saga_race_leaves_the_stock_exact() {
    let stack = Stack::start().await;
    let before = stock(&stack, 1).await;
    let showdown = Showdown::start(&stack).await;

    let race = showdown.race(5, 5).await;

    let (lane, _) = lanes(&race);
    assert_eq!(lane["summary"]["finished"], 5, "{lane}");
    let checks: Vec<&str> = lane["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == true)
        .filter_map(|c| c["text"].as_str())
        .collect();
    assert!(
        checks.iter().any(|c| c.starts_with("stock exact")),
        "{checks:?}"
    );
    assert_eq!(stock(&stack, 1).await, before);
}

#[tokio::test]
async fn bad_races_are_refused_with_a_reason_and_one_race_runs_at_a_time() {
    let stack = Stack::start().await;
    let showdown = Showdown::start(&stack).await;

    for body in [
        json!({"scenario": 5, "count": 0}),
        json!({"scenario": 5, "count": 1001}),
        json!({"scenario": 7, "count": 10}),
        json!({"scenario": "all", "count": 10}),
        json!({"scenario": 5, "count": "ten"}),
        json!({"count": 10}),
    ] {
        let (status, answer) = showdown.post("/api/races", body.clone()).await;
        assert!((400..500).contains(&status), "{body}: {status} {answer}");
        assert!(answer["detail"].is_string(), "{body}: {answer}");
    }
    let (status, _) = showdown
        .post("/api/races", json!({"scenario": 5, "count": 20}))
        .await;
    assert_eq!(status, 202);
    let (status, answer) = showdown
        .post("/api/races", json!({"scenario": 1, "count": 1}))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("one race at a time")
    );
}

#[tokio::test]
async fn without_a_launcher_the_page_is_told_what_to_run() {
    let stack = Stack::start().await;
    let showdown = Showdown::start(&stack).await;

    let (status, answer) = showdown
        .post("/api/downstream/payment/stop", json!({}))
        .await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("docker compose"),
        "{answer}"
    );
    let (status, _) = showdown.post("/api/downstream/user/stop", json!({})).await;
    assert_eq!(status, 404, "user is no scenario's dependency");
}

#[tokio::test]
async fn the_page_its_assets_and_its_live_feed_are_served() {
    let stack = Stack::start().await;
    let showdown = Showdown::start(&stack).await;

    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
    ] {
        let response = showdown
            .http
            .get(format!("{}{path}", showdown.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
    let mut feed = showdown
        .http
        .get(format!("{}/api/events", showdown.base))
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), feed.chunk())
        .await
        .expect("the feed speaks at once")
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&first);
    assert!(text.starts_with("data: {"), "{text}");
    assert!(text.contains("\"type\":\"hello\""), "{text}");
}
