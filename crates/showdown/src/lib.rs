//! The showdown: a page where a person races the two modes and sees coupling
//! and load levelling, every number measured.
//!
//! The race runs here, server side, not in the browser: no CORS preflight in
//! the first measurement, no browser connection limit bending the sync lane.
//! The same requests leave for both stacks at the same instant, each answer
//! is timed here, each accepted async operation is followed to the stack's
//! own finished time, and afterwards every accepted operation is read back.
//! The page gets it all as server-sent events.

mod catalog;
mod http;
mod lanes;
mod race;
mod summary;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{Error, JsonBody};
use futures_util::Stream;
use loadgen::scenario::{ALL, Scenario};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use lanes::Lane;
use loadgen::broker::Broker;
use race::{Race, Sample};

/// The counts the page offers; the API takes any count from 1 to [`MAX_COUNT`].
pub const COUNTS: [usize; 4] = [1, 10, 100, 1000];
pub const MAX_COUNT: usize = 1000;

/// Every environment variable the race page reads: its options' and
/// `RUST_LOG` (tracing's filter).
pub fn reads() -> std::collections::BTreeSet<String> {
    use clap::CommandFactory;
    Config::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .chain(["RUST_LOG".to_owned()])
        .collect()
}

#[derive(clap::Parser, Debug, Clone)]
#[command(about = "The race page: sync and async side by side, measured")]
pub struct Config {
    /// Port of the page and its API.
    #[arg(long, env = "SHOWDOWN_PORT", default_value_t = 3000)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, env = "SHOWDOWN_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Where the sync stack's services answer: `{service}` and `{port}` are
    /// replaced by each service's name and its sync port.
    #[arg(
        long,
        env = "SHOWDOWN_SYNC_URL",
        default_value = "http://127.0.0.1:{port}"
    )]
    pub sync_url: String,
    /// The same for the async stack (its ports are 81xx).
    #[arg(
        long,
        env = "SHOWDOWN_ASYNC_URL",
        default_value = "http://127.0.0.1:{port}"
    )]
    pub async_url: String,
    /// The sync stack's launcher (`lab up`'s control endpoint).
    #[arg(
        long,
        env = "SHOWDOWN_SYNC_CONTROL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub sync_control: String,
    /// The async stack's launcher.
    #[arg(
        long,
        env = "SHOWDOWN_ASYNC_CONTROL",
        default_value = "http://127.0.0.1:8100"
    )]
    pub async_control: String,
    /// The async stack's broker, read for its queue depths.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// The async stack's queue name prefix.
    #[arg(long, env = "BROKER_PREFIX", default_value = "lab")]
    pub broker_prefix: String,
    /// How long a race follows accepted async work before calling it pending.
    #[arg(long, env = "SHOWDOWN_FOLLOW_SECONDS", default_value_t = 600)]
    pub follow_seconds: u64,
    /// Shown where no launcher answers: the command that stops a service there.
    #[arg(
        long,
        env = "SHOWDOWN_STOP_HINT",
        default_value = "docker compose -f docker-compose.combined.yml stop {service}-sync {service}-async"
    )]
    pub stop_hint: String,
}

/// Everything the handlers and the race share.
pub struct Shared {
    lanes: [Lane; 2],
    broker: Broker,
    race: Mutex<Option<Race>>,
    /// Rows changed since the last flush, by lane and index.
    dirty: Mutex<HashSet<(usize, usize)>>,
    clock: Mutex<Option<Instant>>,
    events: broadcast::Sender<Arc<str>>,
    next_id: AtomicU64,
    stop_following: AtomicBool,
    follow_limit: Duration,
    stop_hint: String,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Wakes the sampler at once (a race started): its first gauges are of
    /// the race's scenario, not up to a second later.
    resample: Notify,
}

impl Shared {
    fn with_race<T>(&self, f: impl FnOnce(&mut Race) -> T) -> T {
        let mut race = self.race.lock().unwrap_or_else(|p| p.into_inner());
        f(race.as_mut().expect("a race is running"))
    }

    fn update_row(&self, lane: usize, i: usize, f: impl FnOnce(&mut summary::Row)) {
        self.with_race(|race| {
            if let Some(row) = race.lanes[lane].rows.get_mut(i) {
                f(row);
            }
        });
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((lane, i));
    }

    fn set_clock(&self, start: Instant) {
        *self.clock.lock().unwrap_or_else(|p| p.into_inner()) = Some(start);
    }

    fn elapsed_ms(&self) -> Option<f64> {
        self.clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|start| start.elapsed().as_secs_f64() * 1000.0)
    }

    fn take_stop_following(&self) -> bool {
        self.stop_following.swap(false, Ordering::SeqCst)
    }

    fn publish(&self, event: Value) {
        let _ = self.events.send(event.to_string().into());
    }

    fn current(&self) -> Option<Race> {
        self.race.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The whole race, as the page and `GET /api/races/current` see it.
    fn publish_race(&self) {
        if let Some(race) = self.current() {
            self.publish(json!({"type": "race", "race": race}));
        }
    }

    /// Sends the rows that changed since the last flush and the lanes' figures.
    fn flush(&self) {
        let dirty: Vec<(usize, usize)> = {
            let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
            dirty.drain().collect()
        };
        let mut race = self.race.lock().unwrap_or_else(|p| p.into_inner());
        let Some(race) = race.as_mut() else { return };
        if dirty.is_empty() && !race.active() {
            return;
        }
        for lane in &mut race.lanes {
            lane.summary = summary::summarize(&lane.rows, lane.expected);
        }
        let rows: Vec<Value> = dirty
            .iter()
            .filter_map(|(l, i)| {
                let row = race.lanes.get(*l)?.rows.get(*i)?;
                Some(json!({"lane": l, "i": i, "row": row}))
            })
            .collect();
        let summaries: Vec<&summary::Summary> = race.lanes.iter().map(|l| &l.summary).collect();
        let event = json!({
            "type": "rows",
            "race": race.id,
            "state": race.state,
            "rows": rows,
            "summaries": summaries,
            "notes": race.notes,
        });
        let _ = self.events.send(event.to_string().into());
    }
}

/// Serves the page until `shutdown` completes; races and samplers stop with it.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, Default::default(), listener, shutdown).await
}

/// [`run`], with some services of each lane (sync, async) at base URLs of
/// their own instead of the template's: a test's stack listens on port 0.
pub async fn run_with(
    config: Config,
    overrides: [HashMap<String, String>; 2],
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        lanes: Lane::from_config(&config, overrides)?,
        broker: Broker::new(&config.amqp_url, &config.broker_prefix),
        race: Mutex::new(None),
        dirty: Mutex::new(HashSet::new()),
        clock: Mutex::new(None),
        // Small: the channel keeps its last messages until they are overwritten,
        // and a reader that falls behind is told to fetch the race anew.
        events: broadcast::channel(64).0,
        next_id: AtomicU64::new(1),
        stop_following: AtomicBool::new(false),
        follow_limit: Duration::from_secs(config.follow_seconds),
        stop_hint: config.stop_hint.clone(),
        tasks: TaskTracker::new(),
        shutdown: CancellationToken::new(),
        resample: Notify::new(),
    });
    shared.tasks.spawn(sample(Arc::clone(&shared)));
    shared.tasks.spawn(flusher(Arc::clone(&shared)));
    let token = shared.shutdown.clone();
    axum::serve(listener, router(Arc::clone(&shared)))
        .with_graceful_shutdown(async move {
            shutdown.await;
            token.cancel();
        })
        .await?;
    shared.shutdown.cancel();
    shared.tasks.close();
    shared.tasks.wait().await;
    Ok(())
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(script))
        .route("/app.css", get(style))
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/api/config", get(config))
        .route("/api/races", post(start_race))
        .route("/api/races/current", get(current_race))
        .route("/api/races/current/stop-following", post(stop_following))
        .route("/api/downstream/{service}/{action}", post(downstream))
        .route("/api/events", get(events))
        .fallback(|| async { Error::NotFound("no such page".into()) })
        .with_state(shared)
}

async fn page() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    )
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("../assets/app.css"))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// What the page needs to draw itself: scenarios, counts, each lane's state.
async fn config(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    let scenarios: Vec<catalog::Entry> = ALL.iter().map(|s| catalog::entry(*s)).collect();
    let mut lanes = Vec::new();
    for lane in &shared.lanes {
        let launcher = lane.launcher().await;
        lanes.push(json!({
            "mode": lane.mode.as_str(),
            "entry": lane.base("order"),
            "launcher": launcher.is_some(),
            "services": launcher.map(|l| l["services"].clone()),
        }));
    }
    axum::Json(json!({
        "scenarios": scenarios,
        "counts": COUNTS,
        "max_count": MAX_COUNT,
        "lanes": lanes,
        "stop_hint": shared.stop_hint,
    }))
}

#[derive(Deserialize)]
struct RaceRequest {
    scenario: Value,
    count: i64,
}

fn scenario_of(value: &Value) -> Result<Scenario, Error> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    match Scenario::parse(&text) {
        Ok(list) if list.len() == 1 => Ok(list[0]),
        _ => Err(Error::Invalid(format!(
            "unknown scenario {value}: use 1-6 or register, payment, fanout, report, order, click"
        ))),
    }
}

/// `POST /api/races {"scenario": 5, "count": 10}`: 202 with the race's id,
/// 409 while another race runs, 422 for a bad scenario or count.
async fn start_race(
    State(shared): State<Arc<Shared>>,
    JsonBody(req): JsonBody<RaceRequest>,
) -> Result<Response, Error> {
    let scenario = scenario_of(&req.scenario)?;
    let count = usize::try_from(req.count)
        .ok()
        .filter(|c| (1..=MAX_COUNT).contains(c))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "count must be from 1 to {MAX_COUNT}, not {}",
                req.count
            ))
        })?;
    let running = {
        let entry = scenario.service();
        let (sync, asynchronous) = tokio::join!(
            shared.lanes[0].running(entry),
            shared.lanes[1].running(entry)
        );
        [sync, asynchronous]
    };
    if running == [false, false] {
        return Err(Error::Unavailable(format!(
            "neither stack answers: {} is down in both (scripts/lab.sh up --mode both)",
            scenario.service()
        )));
    }
    let id = {
        let mut race = shared.race.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = race.as_ref().filter(|r| r.active()) {
            return Err(Error::Conflict(format!(
                "race {} is still {} (one race at a time); wait for it, or stop following its pending work",
                current.id,
                serde_json::to_value(current.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            )));
        }
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        *race = Some(Race::new(id, scenario, count, running));
        // The previous race's clock would time this one's first samples
        // (taken before its requests leave): no clock until they do.
        *shared.clock.lock().unwrap_or_else(|p| p.into_inner()) = None;
        id
    };
    shared.stop_following.store(false, Ordering::SeqCst);
    shared.resample.notify_one();
    shared.publish_race();
    shared.tasks.spawn(race::run(Arc::clone(&shared), scenario));
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"race": id, "scenario": scenario.number(), "count": count})),
    )
        .into_response())
}

async fn current_race(State(shared): State<Arc<Shared>>) -> Result<axum::Json<Race>, Error> {
    shared
        .current()
        .map(axum::Json)
        .ok_or_else(|| Error::NotFound("no race yet".into()))
}

async fn stop_following(State(shared): State<Arc<Shared>>) -> Result<axum::Json<Value>, Error> {
    let following = shared
        .race
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|r| r.state == race::State::Following);
    if !following {
        return Err(Error::Conflict("no race is following pending work".into()));
    }
    shared.stop_following.store(true, Ordering::SeqCst);
    Ok(axum::Json(json!({"stopping": true})))
}

/// Stops or starts a scenario's dependency in both stacks, for real, through
/// each stack's launcher.
async fn downstream(
    State(shared): State<Arc<Shared>>,
    Path((service, action)): Path<(String, String)>,
) -> Result<axum::Json<Value>, Error> {
    let allowed: Vec<&str> = ALL
        .iter()
        .filter_map(|s| catalog::entry(*s).downstream)
        .collect();
    let Some(service) = allowed.iter().find(|s| **s == service) else {
        return Err(Error::NotFound(format!(
            "{service} is no scenario's dependency; one of {}",
            allowed.join(", ")
        )));
    };
    if action != "stop" && action != "start" {
        return Err(Error::NotFound(format!("{action}: use stop or start")));
    }
    let (sync, asynchronous) = tokio::join!(
        shared.lanes[0].control(service, &action),
        shared.lanes[1].control(service, &action)
    );
    let lanes: Vec<Value> = [sync, asynchronous]
        .into_iter()
        .map(|result| match result {
            Ok(state) => json!({"state": state}),
            Err(why) => json!({"error": why}),
        })
        .collect();
    if lanes.iter().all(|l| l["error"].is_string()) {
        return Err(Error::Unavailable(format!(
            "no launcher answers in either stack; run: {}",
            shared.stop_hint.replace("{service}", service)
        )));
    }
    shared.publish(json!({"type": "downstream", "service": service, "lanes": lanes}));
    Ok(axum::Json(
        json!({"service": service, "action": action, "lanes": lanes}),
    ))
}

/// The page's live feed: a `hello` with the current race, then every change.
async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let hello: Arc<str> = json!({"type": "hello", "race": shared.current()})
        .to_string()
        .into();
    let receiver = shared.events.subscribe();
    let shutdown = shared.shutdown.clone();
    let stream = futures_util::stream::unfold(
        (Some(hello), receiver, shutdown),
        |(first, mut receiver, shutdown)| async move {
            if let Some(hello) = first {
                return Some((
                    Ok(Event::default().data(&*hello)),
                    (None, receiver, shutdown),
                ));
            }
            let next = tokio::select! {
                () = shutdown.cancelled() => return None,
                next = receiver.recv() => next,
            };
            let data: Arc<str> = match next {
                Ok(data) => data,
                // Too slow a reader: tell the page to fetch the whole race again.
                Err(broadcast::error::RecvError::Lagged(_)) => r#"{"type":"resync"}"#.into(),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((
                Ok(Event::default().data(&*data)),
                (None, receiver, shutdown),
            ))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Sends changed rows ten times a second while a race runs.
async fn flusher(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            _ = tick.tick() => shared.flush(),
        }
    }
}

/// Samples the gauges: each lane's worker pool and the async queues of the
/// current scenario, four times a second during a race, once a second
/// otherwise, and at once when a race starts; what a race sees goes into its
/// timeline too.
async fn sample(shared: Arc<Shared>) {
    loop {
        // Read under the lock, not cloned: the race holds every row.
        let (scenario, active, id) = shared
            .race
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|r| (ALL[r.scenario - 1], r.active(), Some(r.id)))
            .unwrap_or((Scenario::Order, false, None));
        let entry = catalog::entry(scenario);
        let (workers, depths) = tokio::join!(
            shared.lanes[0].workers(entry.service),
            shared.broker.depths(entry.queues)
        );
        let depth = depths
            .as_ref()
            .map(|(queues, _)| queues.iter().map(|q| u64::from(q.ready)).sum::<u64>());
        // Into the timeline only if the race that was active before the
        // reads still is: a sample read as it ended is not part of it.
        let mut t = None;
        if active {
            let mut race = shared.race.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(race) = race.as_mut().filter(|r| r.active() && Some(r.id) == id) {
                t = shared.elapsed_ms();
                if let Some(t) = t {
                    race.timeline.push(Sample {
                        t,
                        sync_busy: workers.as_ref().map(|w| w.busy),
                        sync_waiting: workers.as_ref().map(|w| w.waiting),
                        async_depth: depth,
                    });
                }
            }
        }
        shared.publish(json!({
            "type": "gauges",
            "scenario": scenario.number(),
            "race": id,
            "t": t,
            "sync": workers,
            "async": depths.map(|(queues, dead)| json!({"queues": queues, "dead_letters": dead})),
        }));
        let pause = if active { 250 } else { 1000 };
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(pause)) => {}
            () = shared.resample.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_is_named_by_number_or_name() {
        assert_eq!(scenario_of(&json!(5)).ok(), Some(Scenario::Order));
        assert_eq!(
            scenario_of(&json!("register")).ok(),
            Some(Scenario::Register)
        );
        for bad in [json!(0), json!(7), json!("all"), json!(null), json!([1])] {
            assert!(scenario_of(&bad).is_err(), "{bad}");
        }
    }
}
