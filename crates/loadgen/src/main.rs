//! `lab-load`: drives a running lab stack, one scenario at a time, and
//! reports latency percentiles and throughput.
//!
//! Closed loop (`--clients N`): N clients, each sending its next request when
//! the last one was answered; throughput is what the stack sustains.
//! Open loop (`--rate R`): requests leave at R per second whatever the stack
//! does, and each latency is measured from the moment its request was due,
//! so a stalled stack shows as latency instead of as fewer requests
//! (no coordinated omission).

mod completion;
mod reconcile;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use common::Mode;
use completion::Tracker;
use indicatif::{ProgressBar, ProgressStyle};
use loadgen::scenario::Scenario;
use loadgen::stats::{HUNG_UP, Stats, human};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "Load driver for the sync-vs-async lab")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load one or more scenarios, one after another.
    Run(RunArgs),
    /// Resident memory of every running `*-service` process.
    Memory,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenarios: 1-6, register, payment, fanout, report, order, click, or all.
    #[arg(required = true, value_parser = Scenario::parse)]
    scenarios: Vec<Vec<Scenario>>,
    /// Which stack to load: sync (ports 8001-8010) or async (8101-8110).
    #[arg(long, default_value = "sync", value_parser = parse_mode)]
    mode: Mode,
    /// Closed loop: this many concurrent clients.
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Closed loop: each client pauses this many milliseconds after an answer
    /// before its next request (a user reading the page). 0: back to back,
    /// which measures the stack at saturation.
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Open loop: this many requests per second instead of a fixed number of clients.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of measured load per scenario.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts (connections, pools and caches
    /// warm up; closed-loop clients start spread over this time). Answers
    /// during warm-up are counted apart, not in the latencies.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Host the stack listens on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Async mode: seconds to keep following accepted work after the load
    /// before reporting what is left (and how long it would take).
    #[arg(long, default_value_t = 60.0)]
    drain_timeout: f64,
    /// Clients give up: a request with no answer after this many
    /// milliseconds is abandoned and its connection closed (a closed tab,
    /// curl's --max-time). The stack must still finish what it started.
    #[arg(long)]
    hangup_after_ms: Option<u64>,
    /// With --hangup-after-ms: the share of requests whose client gives up
    /// (0 to 1, spread evenly over the run).
    #[arg(long, default_value_t = 1.0, value_parser = parse_share)]
    hangup_share: f64,
    /// The stack's database, read after each load to reconcile: every
    /// operation the load started (answered or not) reached a final state.
    /// Default: the database `scripts/lab.sh up` gives the mode (lab_sync, lab_async).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err("a share from 0 to 1".into()),
    }
}

/// Whether request `n` is one of the `share` whose client gives up, spread
/// evenly: share 0.25 gives up on requests 3, 7, 11, ...
fn hangs_up(share: f64, n: u64) -> bool {
    (((n + 1) as f64) * share).floor() > ((n as f64) * share).floor()
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "sync" => Ok(Mode::Sync),
        "async" => Ok(Mode::Async),
        _ => Err("sync or async".into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Run(args) => run(args).await,
        Cmd::Memory => memory(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Target {
    client: reqwest::Client,
    base: String,
    run_id: String,
    /// The answer that means accepted; followed to its end when `tracker` is set.
    expected: u16,
    tracker: Option<Arc<Tracker>>,
    /// When and how often clients give up (--hangup-after-ms, --hangup-share).
    hangup: Option<(Duration, f64)>,
}

impl Target {
    async fn send(&self, scenario: Scenario, n: u64) -> Result<u16, String> {
        let (method, path, body) = scenario.request(&self.run_id, n);
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
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
            tracker.accept(&body);
        }
        Ok(status)
    }
}

struct Report {
    scenario: Scenario,
    load: String,
    stats: Stats,
    elapsed: Duration,
    expected: u16,
    notes: Vec<String>,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let scenarios: Vec<Scenario> = args.scenarios.into_iter().flatten().collect();
    let concurrency = args.rate.map_or(args.clients, |_| 10_000);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let mut reports = Vec::new();
    for scenario in scenarios {
        let spec = common::services::find(scenario.service()).context("known service")?;
        let base = format!("http://{}:{}", args.host, spec.port(args.mode));
        check_up(&client, &base, scenario, args.mode).await?;
        let expected = scenario.expected(args.mode);
        let tracker = scenario
            .followed(args.mode)
            .then(|| Arc::new(Tracker::new(scenario)));
        let target = Arc::new(Target {
            client: client.clone(),
            base,
            run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            expected,
            tracker: tracker.clone(),
            hangup: args
                .hangup_after_ms
                .map(|ms| (Duration::from_millis(ms), args.hangup_share)),
        });
        let load_over = CancellationToken::new();
        let follower = tracker.map(|tracker| {
            let (client, base, load_over) =
                (client.clone(), target.base.clone(), load_over.clone());
            let drain = Duration::from_secs_f64(args.drain_timeout);
            tokio::spawn(async move { tracker.follow(&client, &base, load_over, drain).await })
        });
        let database_url = args.database_url.clone().unwrap_or_else(|| {
            format!(
                "postgres://postgres@127.0.0.1:5432/lab_{}",
                args.mode.as_str()
            )
        });
        let mut audit = reconcile::Audit::begin(&database_url)
            .await
            .map_err(|e| {
                eprintln!(
                    "lab-load: no reconciliation for {}: cannot read the stack's database ({e})",
                    scenario.name()
                );
            })
            .ok();
        let counted = match scenario.counted_route() {
            Some(route) => reconcile::Counted::start(&client, &target.base, route).await,
            None => None,
        };
        let duration = Duration::from_secs_f64(args.duration);
        let think = Duration::from_millis(args.think_ms);
        let warmup = Duration::from_secs_f64(args.warmup);
        let (run, load) = match args.rate {
            Some(rate) => (
                open_loop(&target, scenario, rate, warmup, duration).await,
                format!("{rate}/s open"),
            ),
            None => (
                closed_loop(&target, scenario, args.clients, think, warmup, duration).await,
                if args.think_ms > 0 {
                    format!("{} cl+{}ms", args.clients, args.think_ms)
                } else {
                    format!("{} clients", args.clients)
                },
            ),
        };
        let Run {
            stats,
            warmup: warm,
            elapsed,
        } = run;
        load_over.cancel();
        let mut notes = Vec::new();
        if warm.count() > 0 {
            notes.push(format!(
                "warm-up: {} answers, not in the figures",
                warm.count()
            ));
        }
        if stats.abandoned > 0 {
            let n = stats.abandoned;
            notes.push(format!(
                "{n} requests abandoned by their clients after {} ms (--hangup-after-ms), by design",
                args.hangup_after_ms.unwrap_or_default()
            ));
        }
        if let Some(follower) = follower {
            notes.extend(follower.await?.describe());
        }
        if let Some(audit) = &mut audit {
            // Sync work is over when its answer is; async work gets the drain's time.
            let wait = match args.mode {
                Mode::Sync => Duration::from_secs(10),
                Mode::Async => Duration::from_secs_f64(args.drain_timeout.max(10.0)),
            };
            let settled = Instant::now();
            match audit
                .settle(scenario, &target.run_id, counted.as_ref(), wait)
                .await
            {
                Ok(verdict) => notes.push(format!(
                    "{} ({:.1} s after the load)",
                    verdict.describe(scenario),
                    settled.elapsed().as_secs_f64()
                )),
                Err(e) => notes.push(format!("reconciliation failed: {e:#}")),
            }
        }
        reports.push(Report {
            scenario,
            load,
            stats,
            elapsed,
            expected,
            notes,
        });
    }
    print_reports(args.mode, &reports);
    Ok(())
}

async fn check_up(
    client: &reqwest::Client,
    base: &str,
    scenario: Scenario,
    mode: Mode,
) -> anyhow::Result<()> {
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
    if health["mode"] != mode.as_str() {
        bail!("{base} runs in {} mode, not {mode}", health["mode"]);
    }
    Ok(())
}

fn progress(scenario: Scenario, duration: Duration) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_millis() as u64);
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
async fn closed_loop(
    target: &Arc<Target>,
    scenario: Scenario,
    clients: usize,
    think: Duration,
    warmup: Duration,
    duration: Duration,
) -> Run {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let warm = Arc::new(Mutex::new(Stats::default()));
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let begin = Instant::now();
    let start = begin + warmup;
    let deadline = start + duration;
    let bar = progress(scenario, duration);
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            let (target, stats, warm, counter) = (
                Arc::clone(target),
                Arc::clone(&stats),
                Arc::clone(&warm),
                Arc::clone(&counter),
            );
            let offset = warmup.mul_f64(i as f64 / clients as f64);
            tokio::spawn(async move {
                tokio::time::sleep_until((begin + offset).into()).await;
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let sent = Instant::now();
                    let outcome = target.send(scenario, n).await;
                    let latency = sent.elapsed();
                    let into = if sent >= start { &stats } else { &warm };
                    let answered = !matches!(&outcome, Err(e) if e == HUNG_UP);
                    if let Ok(mut s) = into.lock() {
                        s.record(latency, outcome);
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
    finish(workers, watcher, bar, stats, warm, duration).await
}

/// Requests leave at `rate` per second; latency counts from when each was due.
async fn open_loop(
    target: &Arc<Target>,
    scenario: Scenario,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> Run {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let warm = Arc::new(Mutex::new(Stats::default()));
    let begin = Instant::now();
    let start = begin + warmup;
    let deadline = start + duration;
    let bar = progress(scenario, duration);
    let watcher = spawn_ticker(bar.clone(), start, Arc::clone(&stats));
    let total = (rate * (warmup + duration).as_secs_f64()).round() as u64;
    let mut inflight = Vec::new();
    for n in 0..total {
        let due = begin + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (target, into, stats) = (
            Arc::clone(target),
            Arc::clone(if due >= start { &stats } else { &warm }),
            Arc::clone(&stats),
        );
        inflight.push(tokio::spawn(async move {
            let outcome = target.send(scenario, n).await;
            let latency = due.elapsed();
            let answered = !matches!(&outcome, Err(e) if e == HUNG_UP);
            if let Ok(mut s) = into.lock() {
                s.record(latency, outcome);
            }
            if answered {
                count_if_in_window(&stats, start, deadline);
            }
        }));
    }
    finish(inflight, watcher, bar, stats, warm, duration).await
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
        s.in_window += 1;
    }
}

/// What one scenario's load produced.
struct Run {
    stats: Stats,
    /// Answers during the warm-up, kept apart.
    warmup: Stats,
    /// The measured window.
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

fn print_reports(mode: Mode, reports: &[Report]) {
    println!();
    println!(
        "{:<12} {:<5} {:<12} {:>8} {:>14} {:>7} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "scenario",
        "mode",
        "load",
        "answers",
        "expected",
        "other",
        "req/s",
        "p50",
        "p95",
        "p99",
        "max"
    );
    for r in reports {
        let expected = r.stats.statuses.get(&r.expected).copied().unwrap_or(0);
        let other = r.stats.count() - expected;
        println!(
            "{:<12} {:<5} {:<12} {:>8} {:>14} {:>7} {:>9.1} {:>10} {:>10} {:>10} {:>10}",
            format!("{} {}", r.scenario.number(), r.scenario.name()),
            mode.as_str(),
            r.load,
            r.stats.count(),
            format!("{expected} x {}", r.expected),
            other,
            r.stats.in_window as f64 / r.elapsed.as_secs_f64(),
            human(r.stats.quantile(0.50)),
            human(r.stats.quantile(0.95)),
            human(r.stats.quantile(0.99)),
            human(r.stats.max()),
        );
        if other > 0 {
            let statuses: Vec<String> = r
                .stats
                .statuses
                .iter()
                .filter(|(s, _)| **s != r.expected)
                .map(|(s, n)| format!("{n} x {s}"))
                .chain(r.stats.errors.iter().map(|(e, n)| format!("{n} x {e}")))
                .collect();
            println!("{:<12} unexpected: {}", "", statuses.join(", "));
        }
        for note in &r.notes {
            println!("{:<12} {note}", "");
        }
    }
    println!();
}

/// Resident memory of each running service process, from /proc.
fn memory() -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        let name = String::from_utf8_lossy(argv0)
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        if !name.ends_with("-service") {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let rss_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let pid = path
            .file_name()
            .and_then(|p| p.to_str())
            .unwrap_or("?")
            .to_owned();
        rows.push((name, pid, rss_kb));
    }
    if rows.is_empty() {
        bail!("no *-service process is running");
    }
    rows.sort();
    println!("{:<20} {:>8} {:>10}", "process", "pid", "RSS");
    for (name, pid, kb) in rows {
        println!("{name:<20} {pid:>8} {:>7.1} MB", kb as f64 / 1024.0);
    }
    Ok(())
}
