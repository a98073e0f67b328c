//! Where a request's time goes: the phases of the work, as histograms.
//!
//! Each phase is a tracing event: sqlx's own (`sqlx::pool::acquire` for the
//! wait for a pooled connection, `sqlx::query` for every statement and
//! commit, with its duration) and ours (target `lab::phase`, [`record`]: the
//! sync worker pool's wait, a simulated delay and how far it overshot, an
//! outbound call and the part of it the callee did not spend answering
//! (its peer: the callee; a statement's peer is its verb, `insert`...),
//! `BEGIN`, publish, confirm, ack, a message's whole handling, a click's
//! wait for its batch). [`layer`]
//! turns them into `phase_seconds{service, mode, within, work, phase, peer}`;
//! the service, whether the phase ran while answering a `request`, handling
//! a `message` or in `background` work, and which (`work`: the route with
//! its method, the queue, the task) come from the span it happened in. `lab-load run`
//! reads the histograms before and after a load and prints the breakdown.
//!
//! Events rather than calls to the recorder keep sqlx's timings (which only
//! exist as events) and ours on one path, and let a blocking worker thread
//! record into the request it works for (the span travels with the work).

use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::MODE;

/// The histogram every phase goes to.
pub const METRIC: &str = "phase_seconds";

/// Finer than the request buckets: most phases take tens of microseconds.
pub const BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const TARGET: &str = "lab::phase";
const SQLX_QUERY: &str = "sqlx::query";
const SQLX_ACQUIRE: &str = "sqlx::pool::acquire";

/// The spans a phase can belong to (what the service was doing).
const ORIGINS: [&str; 3] = ["request", "message", "background"];

/// A phase of the work that our code times (sqlx times the statements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// From asking for a sync worker thread to running on it.
    WorkerWait,
    /// A simulated external dependency (an SMTP server, a payment API).
    Delay,
    /// How much longer than asked the simulated delay took (timer and wake-up).
    DelayOvershoot,
    /// A blocking call to another service (`peer`), whole.
    Call,
    /// The part of a call the callee did not spend answering (its handler's
    /// time is sent back in `Server-Timing`): connection, HTTP, wake-ups.
    CallOverhead,
    /// The `BEGIN` of a transaction (sqlx sends it without timing it).
    DbBegin,
    /// Handing a message to the broker (async).
    Publish,
    /// Waiting for the broker's publisher confirms (async).
    Confirm,
    /// Acknowledging a handled message (async).
    Ack,
    /// A message's whole handling, from its delivery to its ack (async).
    Handled,
    /// From joining a batch shared with other requests (a group commit,
    /// [`crate::batch`]) to the batch being written.
    Batched,
}

impl Phase {
    pub const ALL: [Phase; 11] = [
        Phase::WorkerWait,
        Phase::Delay,
        Phase::DelayOvershoot,
        Phase::Call,
        Phase::CallOverhead,
        Phase::DbBegin,
        Phase::Publish,
        Phase::Confirm,
        Phase::Ack,
        Phase::Handled,
        Phase::Batched,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::WorkerWait => "worker_wait",
            Phase::Delay => "delay",
            Phase::DelayOvershoot => "delay_overshoot",
            Phase::Call => "call",
            Phase::CallOverhead => "call_overhead",
            Phase::DbBegin => "db_begin",
            Phase::Publish => "publish",
            Phase::Confirm => "confirm",
            Phase::Ack => "ack",
            Phase::Handled => "handled",
            Phase::Batched => "batched",
        }
    }

    fn parse(name: &str) -> Option<&'static str> {
        Phase::ALL
            .into_iter()
            .map(Phase::as_str)
            .find(|known| *known == name)
    }
}

/// Phases sqlx's events give.
pub const DB_POOL_WAIT: &str = "db_pool_wait";
pub const DB_STATEMENT: &str = "db_statement";
pub const DB_COMMIT: &str = "db_commit";
pub const DB_ROLLBACK: &str = "db_rollback";

/// Records that `phase` took `took` in the current span's service.
pub fn record(phase: Phase, took: Duration) {
    record_for(phase, "", took);
}

/// [`record`] for a phase that involves another service (`peer`).
pub fn record_for(phase: Phase, peer: &'static str, took: Duration) {
    tracing::info!(
        target: TARGET,
        phase = phase.as_str(),
        peer,
        seconds = took.as_secs_f64()
    );
}

/// The layer that turns phase events into [`METRIC`]. It has no filter of
/// its own (per-layer filters cost every span's enter and exit): the
/// process's filter lets [`DIRECTIVES`] through, and the layer reads only
/// its spans and its events. The services' pools emit sqlx's events at
/// [`LEVEL`].
pub fn layer() -> PhaseLayer {
    PhaseLayer
}

/// The level of the phase events, and of sqlx's statement and acquire
/// events ([`crate::db::pool`]): INFO, so that the process's lowest level
/// stays INFO and DEBUG and TRACE calls (and the `log` crate's) in every
/// library stay as cheap as a disabled level is.
pub const LEVEL: tracing::log::LevelFilter = tracing::log::LevelFilter::Info;

/// The target of the spans that say whose work it is (`request`,
/// `message`, `background`): a process's filter must let them through
/// whatever `RUST_LOG` says, or the phases would belong to nobody.
pub const WORK: &str = "lab::work";

/// What a process's filter must let through for the phases.
pub const DIRECTIVES: [&str; 4] = [
    "lab::work=info",
    "lab::phase=info",
    "sqlx::query=info",
    "sqlx::pool::acquire=info",
];

/// The events the layer reads: not for the log lines.
pub fn is_phase_event(meta: &tracing::Metadata<'_>) -> bool {
    matches!(meta.target(), TARGET | SQLX_QUERY | SQLX_ACQUIRE)
}

/// See [`layer`].
pub struct PhaseLayer;

/// Whose work a span is: kept in the span's extensions.
#[derive(Debug, Clone, Copy)]
struct Origin {
    service: &'static str,
    /// `request`, `message` or `background`.
    within: &'static str,
    /// Which: the route (`POST /register`), the queue, the task.
    work: &'static str,
}

/// The few names a `work` label takes (routes, queues, tasks, methods),
/// kept for the life of the process so that labels need no allocation per
/// event; each thread asks the shared set only for names it has not seen.
fn intern(name: &str) -> &'static str {
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    thread_local! {
        static SEEN: RefCell<HashSet<&'static str>> = RefCell::default();
    }
    if let Some(known) = SEEN.with(|seen| seen.borrow().get(name).copied()) {
        return known;
    }
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Bounded by the routes, queues and tasks there are; a scanner's
    // unknown paths all share the route `unmatched`.
    let known = match names.get(name) {
        Some(known) => known,
        None => {
            let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
            names.insert(leaked);
            leaked
        }
    };
    SEEN.with(|seen| seen.borrow_mut().insert(known));
    known
}

/// `"POST /register"` from `"POST"` and `"/register"`, both interned.
fn interned_pair(method: &'static str, route: &'static str) -> &'static str {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static PAIRS: RefCell<HashMap<(usize, usize), &'static str>> = RefCell::default();
    }
    let key = (method.as_ptr() as usize, route.as_ptr() as usize);
    if let Some(pair) = PAIRS.with(|pairs| pairs.borrow().get(&key).copied()) {
        return pair;
    }
    let pair = intern(&format!("{method} {route}"));
    PAIRS.with(|pairs| pairs.borrow_mut().insert(key, pair));
    pair
}

impl<S> Layer<S> for PhaseLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() != WORK {
            return;
        }
        let Some(within) = ORIGINS.into_iter().find(|o| *o == attrs.metadata().name()) else {
            return;
        };
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        let work = match (fields.method, fields.route) {
            (Some(method), Some(route)) => interned_pair(method, route),
            (_, Some(work)) => work,
            _ => "",
        };
        if let (Some(service), Some(span)) = (fields.service, ctx.span(id)) {
            span.extensions_mut().insert(Origin {
                service,
                within,
                work,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::INFO || !is_phase_event(meta) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let (phase, seconds) = match meta.target() {
            SQLX_ACQUIRE => (Some(DB_POOL_WAIT), fields.seconds),
            SQLX_QUERY => (fields.statement, fields.seconds),
            _ => (fields.phase, fields.seconds),
        };
        let (Some(phase), Some(seconds)) = (phase, seconds) else {
            return;
        };
        let Some(origin) = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<Origin>().copied())
        }) else {
            return;
        };
        histogram(origin, phase, fields.peer.unwrap_or_default()).record(seconds);
    }
}

/// The histogram of a phase, looked up once per thread: every label is a
/// `&'static str`, so their addresses are the key, and an event costs a
/// small map lookup instead of building and hashing a labelled key.
fn histogram(origin: Origin, phase: &'static str, peer: &'static str) -> metrics::Histogram {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static HISTOGRAMS: RefCell<HashMap<[usize; 5], metrics::Histogram>> = RefCell::default();
    }
    let key =
        [origin.service, origin.within, origin.work, phase, peer].map(|s| s.as_ptr() as usize);
    HISTOGRAMS.with(|cache| {
        cache
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| {
                metrics::histogram!(
                    METRIC,
                    "service" => origin.service,
                    "mode" => MODE.as_str(),
                    "within" => origin.within,
                    "work" => origin.work,
                    "phase" => phase,
                    "peer" => peer,
                )
            })
            .clone()
    })
}

/// The fields of the spans the layer reads: the service, and the route
/// (with its method), the queue or the task.
#[derive(Default)]
struct SpanFields {
    service: Option<&'static str>,
    method: Option<&'static str>,
    route: Option<&'static str>,
}

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "service" => self.service = crate::services::find(value).map(|s| s.name),
            "route" | "queue" | "task" => self.route = Some(intern(value)),
            "method" => self.method = Some(intern(value)),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "method" {
            self.method = Some(intern(&format!("{value:?}")));
        }
    }
}

/// The fields of the events the layer reads.
#[derive(Default)]
struct Fields {
    phase: Option<&'static str>,
    peer: Option<&'static str>,
    /// What kind of statement sqlx ran (from its `summary`).
    statement: Option<&'static str>,
    seconds: Option<f64>,
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if matches!(
            field.name(),
            "seconds" | "elapsed_secs" | "aquired_after_secs"
        ) {
            self.seconds = Some(value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "peer" => self.peer = crate::services::find(value).map(|s| s.name),
            "phase" => self.phase = Phase::parse(value),
            "summary" => {
                self.statement = Some(statement_kind(value));
                // Which kind of statement, as its peer: INSERT, UPDATE, SELECT...
                self.peer = verb(value);
            }
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

fn verb(summary: &str) -> Option<&'static str> {
    let first = summary.split_whitespace().next().unwrap_or_default();
    ["insert", "update", "select", "delete", "with"]
        .into_iter()
        .find(|v| first.eq_ignore_ascii_case(v))
}

fn statement_kind(summary: &str) -> &'static str {
    let first = summary.split_whitespace().next().unwrap_or_default();
    if first.eq_ignore_ascii_case("commit") {
        DB_COMMIT
    } else if first.eq_ignore_ascii_case("rollback") {
        DB_ROLLBACK
    } else {
        DB_STATEMENT
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn series(text: &str, labels: &str) -> (f64, f64) {
        let find = |suffix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{METRIC}_{suffix}{{{labels}}} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        };
        (find("count"), find("sum"))
    }

    #[test]
    fn phases_are_counted_in_the_service_and_work_they_belong_to() {
        crate::metrics::install();
        let subscriber = tracing_subscriber::registry().with(layer());
        // (The process's filter normally keeps DEBUG out; here the layer does.)
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!(target: WORK, "request", service = "search", method = %"GET", route = "/x/{id}");
            request.in_scope(|| {
                record(Phase::WorkerWait, Duration::from_millis(2));
                // Inner spans (sqlx's, say) do not hide whose work it is.
                tracing::info_span!("inner").in_scope(|| {
                    record_for(Phase::Call, "cache", Duration::from_millis(10));
                });
                tracing::info!(target: SQLX_QUERY, summary = "COMMIT", elapsed_secs = 0.004);
                tracing::info!(target: SQLX_QUERY, summary = "INSERT INTO x …", elapsed_secs = 0.001);
                tracing::info!(target: SQLX_ACQUIRE, aquired_after_secs = 0.003);
                // Below the level sqlx is set to: not read.
                tracing::debug!(target: SQLX_QUERY, summary = "SELECT 1", elapsed_secs = 0.5);
            });
            tracing::info_span!(target: WORK, "message", service = "search", queue = "search.q")
                .in_scope(|| record(Phase::Ack, Duration::from_millis(1)));
            // Outside any service's work: not counted.
            record(Phase::Delay, Duration::from_millis(1));
        });

        let text = crate::metrics::render("search");
        let labels = |within: &str, phase: &str, peer: &str| {
            let work = if within == "request" {
                "GET /x/{id}"
            } else {
                "search.q"
            };
            format!(
                "service=\"search\",mode=\"{MODE}\",within=\"{within}\",work=\"{work}\",phase=\"{phase}\",peer=\"{peer}\""
            )
        };
        assert_eq!(
            series(&text, &labels("request", "worker_wait", "")),
            (1.0, 0.002),
            "{text}"
        );
        assert_eq!(
            series(&text, &labels("request", "call", "cache")),
            (1.0, 0.01)
        );
        assert_eq!(
            series(&text, &labels("request", DB_COMMIT, "")),
            (1.0, 0.004)
        );
        assert_eq!(
            series(&text, &labels("request", DB_STATEMENT, "insert")),
            (1.0, 0.001)
        );
        assert_eq!(
            series(&text, &labels("request", DB_POOL_WAIT, "")),
            (1.0, 0.003)
        );
        assert_eq!(series(&text, &labels("message", "ack", "")), (1.0, 0.001));
        assert!(!text.contains("phase=\"delay\""), "{text}");
        assert!(!text.contains("peer=\"select\""), "{text}");
    }
}
