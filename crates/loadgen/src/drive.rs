//! One scenario's load against a running stack, closed or open loop, and all
//! it measured: the answers, the operations followed to their end (async),
//! the work in flight over time and the stack's own records afterwards.
//! `lab-load run` prints it; `lab-load compare` keeps it for the report.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::Mode;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::breakdown;
use crate::completion::{Completion, SAMPLE_EVERY, Tracker};
use crate::reconcile::{self, Verdict};
use crate::scenario::{ORDER_PRODUCT, ORDER_STOCK, Scenario};
use crate::stats::{HUNG_UP, Stats};

/// Open loop: the driver's connections at most, by default (the machine
/// allows 20,000 open files per process; a sync stack far above its capacity
/// would take them all).
pub const MAX_IN_FLIGHT: usize = 5_000;

/// How to load one scenario.
#[derive(Debug, Clone)]
pub struct Load {
    pub mode: Mode,
    pub host: String,
    /// Closed loop: this many clients (ignored when `rate` is set).
    pub clients: usize,
    /// Closed loop: each client's pause after an answer.
    pub think: Duration,
    /// Open loop: requests per second.
    pub rate: Option<f64>,
    /// Open loop: at most this many requests in flight (a client's connection
    /// pool); a request due while all are busy waits for one, and its latency
    /// still counts from when it was due.
    pub max_in_flight: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Async: how long to follow accepted work after the load.
    pub drain_timeout: Duration,
    /// Clients give up after this long, on this share of requests.
    pub hangup: Option<(Duration, f64)>,
    /// The stack's database, for the reconciliation.
    pub database_url: String,
    /// How many instances of each service run (`lab up --replicas`): the
    /// requests are spread over the scenario service's instances in turn,
    /// as a round-robin balancer would.
    pub replicas: common::Replicas,
    /// A progress bar per scenario on the terminal.
    pub progress: bool,
    /// An order load first makes enough stock available for every order
    /// ([`stock_for_orders`]), so that it measures sagas. Off where the
    /// point is that every order ends, whatever its outcome, within a drain
    /// (restarts, smoke tests): orders refused for lack of stock end too,
    /// and sagas that wait 2 s each on payment would not, at a load's rate.
    pub stock_every_order: bool,
}

impl Load {
    /// `20 clients`, `20 cl+100ms`, `15/s open`.
    pub fn label(&self) -> String {
        match self.rate {
            Some(rate) => format!("{rate}/s open"),
            None if !self.think.is_zero() => {
                format!("{} cl+{}ms", self.clients, self.think.as_millis())
            }
            None => format!("{} clients", self.clients),
        }
    }

    /// An HTTP client sized for the load.
    pub fn client(&self) -> reqwest::Result<reqwest::Client> {
        let concurrency = self.rate.map_or(self.clients, |_| self.max_in_flight);
        reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .pool_max_idle_per_host(concurrency)
            .build()
    }
}

/// What one scenario's load produced.
pub struct Outcome {
    pub scenario: Scenario,
    pub load: String,
    /// The measured answers.
    pub stats: Stats,
    /// Answers during the warm-up, kept apart.
    pub warmup: Stats,
    /// The measured window.
    pub elapsed: Duration,
    /// The status that means the scenario's normal answer.
    pub expected: u16,
    /// Async, followed scenarios: accepted operations followed to their end.
    pub completion: Option<Completion>,
    /// (seconds since the load began, requests due or sent but not yet answered),
    /// one sample per [`SAMPLE_EVERY`] from the start of the warm-up.
    pub in_flight: Vec<(f64, i64)>,
    /// Seconds from the start of the warm-up to the measured window.
    pub window_start: f64,
    /// The stack's own records after the load; `None` when they could not be read.
    pub verdict: Option<Result<Verdict, String>>,
    /// Every answer by when it arrived, from the start of the warm-up.
    pub timeline: Timeline,
    pub notes: Vec<String>,
    /// Where the time went, from the stack's own phase histograms.
    pub breakdown: breakdown::Breakdown,
}

/// Answers by when they arrived, in steps of [`Timeline::STEP`] from the
/// start of the load (its warm-up): how many were the expected answer and
/// how many were not (another status, or no answer at all).
#[derive(Debug, Clone)]
pub struct Timeline {
    /// When the load began.
    pub began: Instant,
    /// Per step: [expected, failed].
    pub steps: Vec<[u64; 2]>,
}

impl Timeline {
    pub const STEP: Duration = Duration::from_millis(50);

    fn new() -> Self {
        Timeline {
            began: Instant::now(),
            steps: Vec::new(),
        }
    }

    fn record(&mut self, at: Instant, expected: bool) {
        let step = (at.saturating_duration_since(self.began).as_millis() / Self::STEP.as_millis())
            as usize;
        if self.steps.len() <= step {
            self.steps.resize(step + 1, [0, 0]);
        }
        self.steps[step][usize::from(!expected)] += 1;
    }

    /// Failed answers that arrived from `from` on: how many, the first and
    /// the last (the ends of their steps, from `from`).
    pub fn failed_since(&self, from: Instant) -> (u64, Option<Duration>, Option<Duration>) {
        let first_step = (from.saturating_duration_since(self.began).as_millis()
            / Self::STEP.as_millis()) as usize;
        let mut count = 0;
        let (mut first, mut last) = (None, None);
        for (i, [_, failed]) in self.steps.iter().enumerate().skip(first_step) {
            if *failed > 0 {
                count += failed;
                let end = self.began + Self::STEP * (i as u32 + 1);
                let offset = end.saturating_duration_since(from);
                first.get_or_insert(offset);
                last = Some(offset);
            }
        }
        (count, first, last)
    }

    /// When the first expected answer after the last failed one arrived
    /// (the start of its step); `None` when none came after it.
    pub fn recovered(&self) -> Option<Instant> {
        let last_failed = self.steps.iter().rposition(|[_, f]| *f > 0);
        let from = last_failed.map_or(0, |i| i + 1);
        let step = self.steps.iter().skip(from).position(|[ok, _]| *ok > 0)? + from;
        Some(self.began + Self::STEP * step as u32)
    }
}

impl Outcome {
    /// Answers with the expected status.
    pub fn expected_answers(&self) -> u64 {
        self.stats
            .statuses
            .get(&self.expected)
            .copied()
            .unwrap_or(0)
    }

    /// Answers per second in the measured window.
    pub fn throughput(&self) -> f64 {
        self.stats.in_window as f64 / self.elapsed.as_secs_f64()
    }
}

struct Target {
    client: reqwest::Client,
    /// The scenario service's instances; request n goes to instance n mod their number.
    bases: Vec<String>,
    run_id: String,
    /// The answer that means accepted; followed to its end when `tracker` is set.
    expected: u16,
    tracker: Option<Arc<Tracker>>,
    /// When and how often clients give up (--hangup-after-ms, --hangup-share).
    hangup: Option<(Duration, f64)>,
    /// Requests sent and not yet answered.
    in_flight: AtomicI64,
    /// Answers by when they arrived; its start is the load's.
    timeline: Mutex<Timeline>,
}

/// Whether request `n` is one of the `share` whose client gives up, spread
/// evenly: share 0.25 gives up on requests 3, 7, 11, ...
fn hangs_up(share: f64, n: u64) -> bool {
    (((n + 1) as f64) * share).floor() > ((n as f64) * share).floor()
}

impl Target {
    /// Sends request `n`; `due` is when the load meant it to leave (the
    /// latency an accepted operation's end-to-end time starts from).
    async fn send(&self, scenario: Scenario, n: u64, due: Instant) -> Result<u16, String> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let outcome = self.exchange(scenario, n, due).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !matches!(&outcome, Err(e) if e == HUNG_UP)
            && let Ok(mut timeline) = self.timeline.lock()
        {
            timeline.record(Instant::now(), outcome == Ok(self.expected));
        }
        outcome
    }

    async fn exchange(&self, scenario: Scenario, n: u64, due: Instant) -> Result<u16, String> {
        let (method, path, body) = scenario.request(&self.run_id, n);
        let mut request = self
            .client
            .request(
                method,
                format!("{}{path}", self.bases[n as usize % self.bases.len()]),
            )
            .json(&body);
        let gives_up = self.hangup.filter(|(_, share)| hangs_up(*share, n));
        if let Some((after, _)) = gives_up {
            request = request.timeout(after);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() && gives_up.is_some() {
                HUNG_UP.to_owned()
            } else if e.is_timeout() {
                "timeout".to_owned()
            } else {
                "connection error".to_owned()
            }
        })?;
        let status = response.status().as_u16();
        // Read the whole answer: that is when the client has it.
        let body = response.bytes().await.map_err(|e| {
            if e.is_timeout() && gives_up.is_some() {
                HUNG_UP.to_owned()
            } else {
                "body read error".to_owned()
            }
        })?;
        if status == self.expected
            && let Some(tracker) = &self.tracker
        {
            tracker.accept(&body, due.elapsed());
        }
        Ok(status)
    }
}

/// Before an order load: makes [`ORDER_STOCK`] units of the ordered product
/// available if fewer are, and says so. With the stack's 100 units, an async
/// load (thousands of orders a second, each holding its unit while payment
/// takes 2 s) would have most orders refused at once for lack of stock,
/// which finish fast and would pass for the saga's speed.
async fn stock_for_orders(client: &reqwest::Client, load: &Load) -> anyhow::Result<Option<String>> {
    let spec = common::services::find("inventory").context("known service")?;
    let url = format!(
        "http://{}:{}/stock/{ORDER_PRODUCT}",
        load.host,
        spec.port(load.mode)
    );
    let stock: serde_json::Value = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("reading the stock to order from ({url})"))?
        .json()
        .await?;
    let available = stock["available"].as_i64().unwrap_or(0);
    if available >= i64::from(ORDER_STOCK) {
        return Ok(None);
    }
    client
        .put(&url)
        .json(&serde_json::json!({ "available": ORDER_STOCK }))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("raising the stock to order from ({url})"))?;
    Ok(Some(format!(
        "product {ORDER_PRODUCT}'s stock raised from {available} to {ORDER_STOCK} units, so that every order can be reserved"
    )))
}

/// Checks that every instance of the scenario's service answers in the
/// load's mode; their base URLs, the contract's port first.
pub async fn check_up(
    client: &reqwest::Client,
    load: &Load,
    scenario: Scenario,
) -> anyhow::Result<Vec<String>> {
    let spec = common::services::find(scenario.service()).context("known service")?;
    let mut bases = Vec::new();
    for port in load.replicas.ports(spec, load.mode) {
        let base = format!("http://{}:{port}", load.host);
        let health: serde_json::Value = client
            .get(format!("{base}/health"))
            .send()
            .await
            .with_context(|| {
                format!(
                    "{} is not answering at {base}; start the stack first (scripts/lab.sh up)",
                    scenario.service()
                )
            })?
            .json()
            .await?;
        if health["mode"] != load.mode.as_str() {
            bail!("{base} runs in {} mode, not {}", health["mode"], load.mode);
        }
        bases.push(base);
    }
    Ok(bases)
}

/// Loads one scenario as `load` says, follows and reconciles what it started.
pub async fn drive(
    client: &reqwest::Client,
    load: &Load,
    scenario: Scenario,
) -> anyhow::Result<Outcome> {
    let bases = check_up(client, load, scenario).await?;
    let mut notes = Vec::new();
    if scenario == Scenario::Order && load.stock_every_order {
        notes.extend(stock_for_orders(client, load).await?);
    }
    let expected = scenario.expected(load.mode);
    let tracker = scenario
        .followed(load.mode)
        .then(|| Arc::new(Tracker::new(scenario)));
    let mut audit = reconcile::Audit::begin(&load.database_url)
        .await
        .map_err(|e| {
            eprintln!(
                "lab-load: no reconciliation for {}: cannot read the stack's database ({e})",
                scenario.name()
            );
        })
        .ok();
    let counted = match scenario.counted_route() {
        Some(route) => reconcile::Counted::start(client, &bases, route).await,
        None => None,
    };
    let target = Arc::new(Target {
        client: client.clone(),
        bases: bases.clone(),
        run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        expected,
        tracker: tracker.clone(),
        hangup: load.hangup,
        in_flight: AtomicI64::new(0),
        timeline: Mutex::new(Timeline::new()),
    });
    let everyone = stack_bases(load);
    let phases_before = breakdown::sample(client, &everyone).await;
    let load_over = CancellationToken::new();
    let follower = tracker.map(|tracker| {
        let (client, base, load_over) =
            (client.clone(), target.bases[0].clone(), load_over.clone());
        let drain = load.drain_timeout;
        tokio::spawn(async move { tracker.follow(&client, &base, load_over, drain).await })
    });
    let sampler = spawn_in_flight_sampler(Arc::clone(&target), load_over.clone());
    let run = match load.rate {
        Some(rate) => open_loop(&target, scenario, rate, load).await,
        None => closed_loop(&target, scenario, load).await,
    };
    let Run {
        stats,
        warmup: warm,
        elapsed,
    } = run;
    load_over.cancel();
    let in_flight = sampler.await.unwrap_or_default();
    if warm.count() > 0 {
        notes.push(format!(
            "warm-up: {} answers, not in the figures",
            warm.count()
        ));
    }
    if stats.abandoned > 0 {
        notes.push(format!(
            "{} requests abandoned by their clients after {} ms (--hangup-after-ms), by design",
            stats.abandoned,
            load.hangup.map_or(0, |(after, _)| after.as_millis())
        ));
    }
    let completion = match follower {
        Some(follower) => Some(follower.await?),
        None => None,
    };
    if let Some(completion) = &completion {
        notes.extend(completion.describe());
    }
    let mut verdict = None;
    if let Some(audit) = &mut audit {
        // Sync work is over when its answer is; async work gets the drain's
        // time, unless the follower gave it already and saw work left.
        let wait = match (load.mode, &completion) {
            (_, Some(c)) if c.left > 0 => Duration::ZERO,
            (Mode::Sync, _) | (_, Some(_)) => Duration::from_secs(10),
            (Mode::Async, None) => load.drain_timeout.max(Duration::from_secs(10)),
        };
        let settled = Instant::now();
        let read = audit
            .settle(scenario, &target.run_id, counted.as_ref(), wait)
            .await;
        match &read {
            Ok(v) => notes.push(format!(
                "{} ({:.1} s after the load)",
                v.describe(scenario),
                settled.elapsed().as_secs_f64()
            )),
            Err(e) => notes.push(format!("reconciliation failed: {e:#}")),
        }
        verdict = Some(read.map_err(|e| format!("{e:#}")));
    }
    let operations = stats.count() + warm.count() + stats.abandoned + warm.abandoned;
    let breakdown = breakdown::between(
        &phases_before,
        &breakdown::sample(client, &everyone).await,
        operations,
        scenario.service(),
    );
    Ok(Outcome {
        scenario,
        load: load.label(),
        stats,
        warmup: warm,
        elapsed,
        expected,
        completion,
        in_flight,
        window_start: load.warmup.as_secs_f64(),
        verdict,
        timeline: target
            .timeline
            .lock()
            .map(|t| t.clone())
            .unwrap_or_else(|e| e.into_inner().clone()),
        notes,
        breakdown,
    })
}

/// Every instance of every service of the load's stack.
fn stack_bases(load: &Load) -> Vec<String> {
    common::SERVICES
        .iter()
        .flat_map(|spec| load.replicas.ports(spec, load.mode))
        .map(|port| format!("http://{}:{port}", load.host))
        .collect()
}

/// Samples the requests in flight until the load is over.
fn spawn_in_flight_sampler(
    target: Arc<Target>,
    load_over: CancellationToken,
) -> tokio::task::JoinHandle<Vec<(f64, i64)>> {
    tokio::spawn(async move {
        let begin = Instant::now();
        let mut samples = Vec::new();
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => samples.push((
                    begin.elapsed().as_secs_f64(),
                    target.in_flight.load(Ordering::Relaxed),
                )),
                () = load_over.cancelled() => return samples,
            }
        }
    })
}

fn progress(scenario: Scenario, load: &Load) -> ProgressBar {
    if !load.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(load.duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {elapsed:>4} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} {}", scenario.number(), scenario.name()));
    bar
}

fn tick(bar: &ProgressBar, start: Instant, stats: &Mutex<Stats>) {
    let count = stats.lock().map(|s| s.count()).unwrap_or(0);
    let secs = start.elapsed().as_secs_f64().max(0.001);
    bar.set_position(start.elapsed().as_millis() as u64);
    bar.set_message(format!("{count} answers, {:.1}/s", count as f64 / secs));
}

/// `clients` loops, each sending its next request when the last is answered
/// (and, with `think`, after pausing that long).
/// Client `i` starts `i/clients` of the warm-up in, so they do not march in
/// lockstep; what is answered before the warm-up ends is not measured.
async fn closed_loop(target: &Arc<Target>, scenario: Scenario, load: &Load) -> Run {
    let (clients, think) = (load.clients, load.think);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let warm = Arc::new(Mutex::new(Stats::default()));
    let counter = Arc::new(AtomicU64::new(0));
    let begin = load_began(target);
    let start = begin + load.warmup;
    let deadline = start + load.duration;
    let bar = progress(scenario, load);
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            let (target, stats, warm, counter) = (
                Arc::clone(target),
                Arc::clone(&stats),
                Arc::clone(&warm),
                Arc::clone(&counter),
            );
            let offset = load.warmup.mul_f64(i as f64 / clients as f64);
            tokio::spawn(async move {
                tokio::time::sleep_until((begin + offset).into()).await;
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    let outcome = target.send(scenario, n, sent).await;
                    let latency = sent.elapsed();
                    let into = if sent >= start { &stats } else { &warm };
                    let answered = !matches!(&outcome, Err(e) if e == HUNG_UP);
                    if let Ok(mut s) = into.lock() {
                        s.record(latency, latency, outcome);
                    }
                    if answered {
                        count_if_in_window(&stats, start, deadline);
                    }
                    if !think.is_zero() {
                        tokio::time::sleep(think).await;
                    }
                }
            })
        })
        .collect();
    let watcher = spawn_ticker(bar.clone(), start, Arc::clone(&stats));
    finish(workers, watcher, bar, stats, warm, load.duration).await
}

/// Requests leave at `rate` per second; latency counts from when each was due.
async fn open_loop(target: &Arc<Target>, scenario: Scenario, rate: f64, load: &Load) -> Run {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let warm = Arc::new(Mutex::new(Stats::default()));
    let begin = load_began(target);
    let start = begin + load.warmup;
    let deadline = start + load.duration;
    let bar = progress(scenario, load);
    let watcher = spawn_ticker(bar.clone(), start, Arc::clone(&stats));
    let total = (rate * (load.warmup + load.duration).as_secs_f64()).round() as u64;
    let slots = Arc::new(tokio::sync::Semaphore::new(load.max_in_flight.max(1)));
    let mut inflight = Vec::new();
    for n in 0..total {
        let due = begin + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (target, into, stats, slots) = (
            Arc::clone(target),
            Arc::clone(if due >= start { &stats } else { &warm }),
            Arc::clone(&stats),
            Arc::clone(&slots),
        );
        inflight.push(tokio::spawn(async move {
            // Waiting for a slot counts as in flight: the request is due.
            target.in_flight.fetch_add(1, Ordering::Relaxed);
            let _slot = slots.acquire_owned().await;
            target.in_flight.fetch_sub(1, Ordering::Relaxed);
            let sent = Instant::now();
            let outcome = target.send(scenario, n, due).await;
            let (latency, raw) = (due.elapsed(), sent.elapsed());
            let answered = !matches!(&outcome, Err(e) if e == HUNG_UP);
            if let Ok(mut s) = into.lock() {
                s.record(latency, raw, outcome);
            }
            if answered {
                count_if_in_window(&stats, start, deadline);
            }
        }));
    }
    finish(inflight, watcher, bar, stats, warm, load.duration).await
}

/// The load's start, which its timeline counts from: now, as the target
/// is made right before the load.
fn load_began(target: &Target) -> Instant {
    target
        .timeline
        .lock()
        .map(|t| t.began)
        .unwrap_or_else(|_| Instant::now())
}

/// Waits for every request task, stops the progress bar, and hands over what was measured.
async fn finish(
    tasks: Vec<tokio::task::JoinHandle<()>>,
    watcher: tokio::task::JoinHandle<()>,
    bar: ProgressBar,
    stats: Arc<Mutex<Stats>>,
    warm: Arc<Mutex<Stats>>,
    duration: Duration,
) -> Run {
    for task in tasks {
        let _ = task.await;
    }
    watcher.abort();
    let _ = watcher.await;
    bar.finish_and_clear();
    Run {
        stats: take(stats),
        warmup: take(warm),
        elapsed: duration,
    }
}

/// Throughput counts answers that arrive between the end of the warm-up and
/// the end of the measured duration, whenever their request left.
fn count_if_in_window(stats: &Mutex<Stats>, start: Instant, deadline: Instant) {
    let now = Instant::now();
    if now >= start
        && now <= deadline
        && let Ok(mut s) = stats.lock()
    {
        s.count_in_window(now - start);
    }
}

struct Run {
    stats: Stats,
    warmup: Stats,
    elapsed: Duration,
}

fn spawn_ticker(
    bar: ProgressBar,
    start: Instant,
    stats: Arc<Mutex<Stats>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tick(&bar, start, &stats);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// The run's stats, once every task that recorded into them has finished.
fn take(stats: Arc<Mutex<Stats>>) -> Stats {
    let mutex = Arc::try_unwrap(stats).unwrap_or_else(|_| panic!("a load task outlived its run"));
    mutex
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::{Timeline, hangs_up};
    use std::time::Duration;

    #[test]
    fn a_timeline_says_when_failures_came_and_when_answers_were_good_again() {
        let mut t = Timeline::new();
        let (began, step) = (t.began, Timeline::STEP);
        for (ms, ok) in [
            (10, true),
            (120, false),
            (180, false),
            (260, true),
            (300, true),
        ] {
            t.record(began + Duration::from_millis(ms), ok);
        }
        // Failed in the steps of 100-150 ms and 150-200 ms: from a stop at
        // 100 ms, the first ended 50 ms after it, the last 100 ms after it.
        let stop = began + Duration::from_millis(100);
        assert_eq!(
            t.failed_since(stop),
            (
                2,
                Some(Duration::from_millis(50)),
                Some(Duration::from_millis(100))
            )
        );
        assert_eq!(t.failed_since(began + Duration::from_millis(200)).0, 0);
        // Good again from the step that starts at 250 ms.
        assert_eq!(t.recovered(), Some(began + step * 5));
        t.record(began + Duration::from_millis(400), false);
        assert_eq!(t.recovered(), None, "failing to the end");
    }

    #[test]
    fn a_share_of_hang_ups_is_spread_evenly() {
        let quarter: Vec<u64> = (0..12).filter(|n| hangs_up(0.25, *n)).collect();
        assert_eq!(quarter, [3, 7, 11]);
        assert!((0..10).all(|n| hangs_up(1.0, n)));
        assert!(!(0..10).any(|n| hangs_up(0.0, n)));
    }
}
