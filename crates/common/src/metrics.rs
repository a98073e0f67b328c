//! Prometheus metrics: one recorder per process, labelled by service and mode.
//!
//! When several services share a process (tests, or a launcher that runs them
//! together), each `/metrics` shows only the series of its own service.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::MODE;

/// Latency buckets from 1 ms to 5 min: the lab's answers range from a click
/// (sub-millisecond) to a report competing for the CPU (minutes).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
    0.6, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once) and returns its handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(crate::phases::METRIC.into()),
                    crate::phases::BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("no other metrics recorder in this process");
        describe();
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("spawn metrics upkeep thread");
        handle
    })
}

/// Clicks answered 200 that stored nothing: their `Idempotency-Key` was
/// stored already (analytics counts them; the load driver's and the audit's
/// reconciliation subtracts them from the 200s).
pub const CLICKS_DEDUPLICATED: &str = "clicks_deduplicated_total";

fn describe() {
    describe_counter!(
        CLICKS_DEDUPLICATED,
        "Clicks answered 200 that stored nothing: their Idempotency-Key was stored already"
    );
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by route and status"
    );
    describe_counter!(
        "requests_abandoned_total",
        "Requests whose client hung up before the answer; each still ran to its end"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request"
    );
    describe_histogram!(
        "outbound_request_duration_seconds",
        Unit::Seconds,
        "Blocking calls to other services (sync mode), by target and outcome"
    );
    describe_histogram!(
        crate::phases::METRIC,
        Unit::Seconds,
        "Phases of the work (docs/metrics.md): pool wait, statements, commits, worker wait, delays, calls, publish, confirm, ack, a click's wait for its batch; by service, within (request, message, background), phase and peer"
    );
    describe_gauge!(
        "sync_workers_busy",
        "Sync worker threads running blocking work"
    );
    describe_gauge!(
        "sync_workers_waiting",
        "Requests waiting for a free sync worker"
    );
    describe_gauge!(
        "sync_workers_max",
        "Size of the sync worker pool (SYNC_WORKERS)"
    );
    describe_gauge!(
        "db_pool_connections_in_use",
        "Postgres connections checked out of the pool"
    );
    describe_gauge!(
        "db_pool_connections_open",
        "Postgres connections open in the pool"
    );
}

/// The text exposition of `service`'s series.
pub fn render(service: &str) -> String {
    let all = install().render();
    let label = format!("service=\"{service}\"");
    let mut out = String::with_capacity(all.len());
    for line in all.lines() {
        if line.starts_with('#') || line.contains(&label) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Middleware recording `http_requests_total` and `http_request_duration_seconds`
/// by service, mode, method, matched route and status. Unmatched paths share
/// one route label so a scanner cannot blow up the series count.
pub async fn track_http(State(service): State<&'static str>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut response = next.run(req).await;
    let took = start.elapsed();
    // The handler's own time, for a caller that wants to know how much of
    // its call was spent here (crate::outbound's `call_overhead`).
    let timing = format!("{HANDLER_TIME}{:.3}", took.as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&timing) {
        response.headers_mut().insert(SERVER_TIMING, value);
    }
    let labels = [
        ("service", service.to_owned()),
        ("mode", MODE.as_str().to_owned()),
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(took.as_secs_f64());
    response
}

/// The header every answer carries its handler's time in.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// `Server-Timing: app;dur=<ms>`: how long the service's handler took.
const HANDLER_TIME: &str = "app;dur=";

/// The handler's time in an answer's headers.
pub fn server_timing(headers: &HeaderMap) -> Option<Duration> {
    handler_time(headers.get(SERVER_TIMING)?.to_str().ok()?)
}

/// The handler's time in a `Server-Timing` value (`app;dur=1.250`).
pub fn handler_time(value: &str) -> Option<Duration> {
    let ms: f64 = value.strip_prefix(HANDLER_TIME)?.parse().ok()?;
    Duration::try_from_secs_f64(ms / 1000.0).ok()
}
