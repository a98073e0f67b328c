//! `lab-load`: drives a running lab stack, one scenario at a time, and
//! reports latency percentiles and throughput.
//!
//! Closed loop (`--clients N`): N clients, each sending its next request when
//! the last one was answered; throughput is what the stack sustains.
//! Open loop (`--rate R`): requests leave at R per second whatever the stack
//! does, and each latency is measured from the moment its request was due,
//! so a stalled stack shows as latency instead of as fewer requests
//! (no coordinated omission).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use common::Mode;
use loadgen::compare::procs;
use loadgen::drive::{Load, Outcome, drive};
use loadgen::scenario::Scenario;
use loadgen::stats::human;

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
    /// What this machine charges now for each piece of a sync request (a
    /// worker hand-off, a loopback HTTP call, a PostgreSQL round trip, a
    /// committed INSERT, a timer's overshoot), each alone: the floor under
    /// the breakdown a run prints.
    Floor(loadgen::floor::FloorArgs),
    /// Sends `--count` requests of one scenario at once, as the race page
    /// does, and shows their answered times and the part of each spent
    /// outside the service's handler (its `Server-Timing`): the page's
    /// figures beside the driver's, for the same burst.
    Burst {
        #[arg(value_parser = Scenario::parse_one)]
        scenario: Scenario,
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[arg(long, default_value = "sync", value_parser = loadgen::parse_mode)]
        mode: Mode,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
    /// Every scenario in both modes on fresh stacks, repeated: a report
    /// (index.html, report.md, data.json, SVG plots) that answers the lab's question.
    Compare(loadgen::compare::CompareArgs),
    /// The one-command path for real: a fresh `lab up` of one build answers
    /// every scenario as the contract says, stops and starts a service on
    /// request, finishes what hung-up clients started, and stops on SIGINT.
    Smoke(loadgen::smoke::SmokeArgs),
    /// Each run on a fresh stack of one build (`lab up` on a database and
    /// queues of its own, after the machine has settled): the README's
    /// "Measured" loads by default, or the runs given.
    Measure(MeasureArgs),
    /// Restarts a component for real in the middle of a load, each on a
    /// fresh stack of one build: what the clients saw (failed answers by
    /// status, when, how soon they were good again) and what became of the
    /// accepted work (finished, reconciled). The fault table of docs/faults.md.
    Fault(FaultArgs),
    /// Checks the rules a stack's records must keep whatever it was sent (a
    /// fuzzer's requests, say), once its work has drained: every order,
    /// payment and report final, no stock held by a closed order, reserved
    /// stock equal to what reservations hold, clicks stored equal to clicks
    /// answered 200 less those a stored Idempotency-Key made a no-op. (Not
    /// the fan-out: a fuzzer calls analytics' own /log_update too.)
    Audit {
        #[arg(long, value_parser = loadgen::parse_mode)]
        mode: Mode,
        /// The stack's database.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Seconds to wait for work still draining.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// Writes a report's index.html, report.md and plots again from its data.json.
    Render {
        /// The report's directory (holding data.json).
        dir: std::path::PathBuf,
        /// An earlier report's data.json to compare with.
        #[arg(long)]
        against: Option<std::path::PathBuf>,
    },
    /// Rewrites the README's generated performance section from a report's data.json.
    Readme {
        /// The report's data.json.
        data: std::path::PathBuf,
        #[arg(default_value = "README.md")]
        readme: std::path::PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenarios: 1-6, register, payment, fanout, report, order, click, or all.
    #[arg(required = true, value_parser = Scenario::parse)]
    scenarios: Vec<Vec<Scenario>>,
    /// Which stack to load: sync (ports 8001-8010) or async (8101-8110).
    #[arg(long, default_value = "sync", value_parser = loadgen::parse_mode)]
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
    /// Open loop: at most this many requests in flight (the driver's
    /// connection pool); requests due while all are busy wait, and their
    /// latency counts from when they were due.
    #[arg(long, default_value_t = loadgen::drive::MAX_IN_FLIGHT)]
    max_in_flight: usize,
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
    /// The instances the stack runs (`lab up --replicas`, e.g. `user=2`):
    /// requests are spread over the scenario service's instances in turn.
    #[arg(long, env = "LAB_REPLICAS", default_value = "", value_parser = common::Replicas::parse)]
    replicas: common::Replicas,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_measured_runs_are_valid_runs() {
        for run in SYNC_RUNS.iter().chain(ASYNC_RUNS) {
            let args = run_args(run, Mode::Async, "postgres://x/y").expect(run);
            assert_eq!(args.mode, Mode::Async);
            assert_eq!(args.database_url.as_deref(), Some("postgres://x/y"));
        }
        assert!(run_args("1 --clients many", Mode::Sync, "").is_err());
    }

    #[test]
    fn cpu_per_operation_says_when_work_was_still_owed() {
        let used = [procs::Used {
            name: "postgresql".into(),
            cpu_seconds: 2.0,
            rss_mb: 0.0,
            peak_rss_mb: 0.0,
        }];
        assert_eq!(
            cpu_per_operations(&used, 4000, 0),
            "CPU s per 1,000 operations (4000 operations, warm-up and drain included): postgresql 0.500; all 0.500"
        );
        assert!(
            cpu_per_operations(&used, 4000, 300)
                .contains("; 300 of them not final at the end, their remaining work not counted)")
        );
    }
}

/// The build a command starts fresh stacks of, and where their PostgreSQL
/// and RabbitMQ are (`lab-load measure`, `lab-load fault`).
#[derive(clap::Args)]
struct Fresh {
    /// Which build to run: sync or async.
    #[arg(long, value_parser = loadgen::parse_mode)]
    mode: Mode,
    /// The directory of that build's binaries (`target/release`, `target/async/release`).
    #[arg(long)]
    bin: std::path::PathBuf,
    /// A database URL of the server (each stack's own database replaces its database part).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp: String,
}

/// What every fresh stack of a command shares.
struct Stacks {
    infra: loadgen::stack::Infra,
    /// Its database and broker prefix (each stack drops them when it stops).
    name: String,
    log: std::path::PathBuf,
    /// The stacks inherit the settings exported; the instances are passed on
    /// by name, as `Stack::start` does not let them in unasked.
    env: Vec<(String, String)>,
}

impl Fresh {
    /// Checks the mode's ports are free; the stacks' shared settings, named `lab_<what>_<mode>`.
    fn stacks(&self, what: &str) -> anyhow::Result<Stacks> {
        loadgen::stack::ports_free(self.mode)?;
        let name = format!("lab_{what}_{}", self.mode);
        Ok(Stacks {
            infra: loadgen::stack::Infra {
                postgres: self.postgres.clone(),
                amqp: self.amqp.clone(),
            },
            log: std::env::temp_dir().join(format!("{name}.log")),
            name,
            env: std::env::var("LAB_REPLICAS")
                .map(|r| vec![("LAB_REPLICAS".to_owned(), r)])
                .unwrap_or_default(),
        })
    }
}

#[derive(clap::Args)]
struct MeasureArgs {
    #[command(flatten)]
    fresh: Fresh,
    /// Runs, each the arguments of one `lab-load run` in one word
    /// (`"1 --rate 15 --duration 10"`); `--mode` is added. Default: the
    /// loads of the README's tables for the mode.
    runs: Vec<String>,
}

#[derive(clap::Args)]
struct FaultArgs {
    /// What to restart: payment, email, inventory, order (any service), broker,
    /// postgres, or all (those six).
    #[arg(required = true, value_parser = loadgen::fault::Fault::parse)]
    faults: Vec<Vec<loadgen::fault::Fault>>,
    #[command(flatten)]
    fresh: Fresh,
    /// Closed loop: this many concurrent clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Open loop instead: this many requests per second (the comparison
    /// report restarts components at each scenario's steady rate).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of load, the fault in the middle.
    #[arg(long, default_value_t = 12.0)]
    duration: f64,
    /// Seconds into the load when the component is stopped.
    #[arg(long, default_value_t = 3.0)]
    at: f64,
    /// Seconds the component stays away before it is started again.
    #[arg(long, default_value_t = 3.0)]
    down: f64,
    /// Async: seconds to follow accepted work after the load.
    #[arg(long, default_value_t = 60.0)]
    drain_timeout: f64,
}

async fn fault(args: FaultArgs) -> anyhow::Result<()> {
    use loadgen::fault::{self, Plan, Trial};
    let stacks = args.fresh.stacks("fault")?;
    let trial = Trial {
        bin: &args.fresh.bin,
        mode: args.fresh.mode,
        name: &stacks.name,
        env: &stacks.env,
        infra: &stacks.infra,
        log: &stacks.log,
        clients: args.clients,
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration),
        drain_timeout: Duration::from_secs_f64(args.drain_timeout),
        plan: Plan {
            at: Duration::from_secs_f64(args.at),
            down: Duration::from_secs_f64(args.down),
        },
    };
    let mut runs = Vec::new();
    for fault in args.faults.into_iter().flatten() {
        let run = fault::on_fresh_stack(&trial, fault).await?.summary();
        println!();
        for line in run.describe() {
            println!("{line}");
        }
        runs.push(run);
    }
    println!("\n{}", fault::markdown_table(&runs));
    let broken = runs.iter().filter(|r| !r.holds()).count();
    if broken > 0 {
        bail!("{broken} faults left work unfinished, records wrong or clients failing");
    }
    Ok(())
}

/// The loads of the README's sync table.
const SYNC_RUNS: &[&str] = &[
    "1 --clients 20 --duration 20",
    "3 --clients 20 --duration 20",
    "6 --clients 50 --duration 20",
    "2 --clients 20 --duration 20",
    "5 --clients 20 --duration 20",
    "4 --clients 2 --duration 20",
];

/// The loads of the README's async table: each scenario at three paces.
const ASYNC_RUNS: &[&str] = &[
    "6 --clients 50 --duration 10",
    "1 --rate 15 --duration 10",
    "1 --clients 50 --think-ms 1000 --duration 10 --drain-timeout 5",
    "1 --clients 50 --think-ms 100 --duration 10 --drain-timeout 5",
    "1 --clients 50 --duration 10 --drain-timeout 5",
    "2 --clients 50 --think-ms 1000 --duration 10 --drain-timeout 5",
    "2 --clients 50 --think-ms 100 --duration 10 --drain-timeout 5",
    "2 --clients 50 --duration 10 --drain-timeout 5",
    "5 --clients 50 --think-ms 1000 --duration 10 --drain-timeout 5",
    "5 --clients 50 --think-ms 100 --duration 10 --drain-timeout 5",
    "5 --clients 50 --duration 10 --drain-timeout 5",
    "4 --clients 50 --think-ms 1000 --duration 10 --drain-timeout 5",
    "4 --clients 50 --think-ms 100 --duration 10 --drain-timeout 5",
    "4 --clients 50 --duration 10 --drain-timeout 5",
];

/// The arguments of one measured run, as `lab-load run` takes them.
fn run_args(run: &str, mode: Mode, database_url: &str) -> anyhow::Result<RunArgs> {
    let words = ["lab-load", "run"]
        .into_iter()
        .chain(run.split_whitespace())
        .chain(["--mode", mode.as_str(), "--database-url", database_url]);
    match Cli::try_parse_from(words)?.command {
        Cmd::Run(args) => Ok(args),
        _ => bail!("not a run: {run}"),
    }
}

async fn measure(args: MeasureArgs) -> anyhow::Result<()> {
    use loadgen::stack::{self, Stack};
    let mode = args.fresh.mode;
    let Stacks {
        infra,
        name,
        log,
        env,
    } = args.fresh.stacks("measure")?;
    let runs: Vec<String> = if args.runs.is_empty() {
        let defaults = if mode == Mode::Sync {
            SYNC_RUNS
        } else {
            ASYNC_RUNS
        };
        defaults.iter().map(|r| (*r).to_owned()).collect()
    } else {
        args.runs
    };
    // Every run's arguments are checked before the first stack starts.
    for run in &runs {
        run_args(run, mode, "")?;
    }
    for run in runs {
        let settled = || async {
            if let Err(idle) = stack::settle(90, Duration::from_secs(60)).await {
                eprintln!(
                    "lab-load: the machine is still busy ({idle}% idle after 60 s); the figures may suffer"
                );
            }
        };
        settled().await;
        let stack = Stack::start(&args.fresh.bin, mode, &name, &env, &infra, &log).await?;
        settled().await;
        println!("\n$ lab-load run {run} --mode {mode}");
        let result = self::run(run_args(&run, mode, &stack.database_url)?).await;
        stack.stop().await;
        result?;
    }
    Ok(())
}

async fn audit(mode: Mode, database_url: &str, host: &str, wait: Duration) -> anyhow::Result<()> {
    use loadgen::reconcile::{Audit, Counted};
    let mut audit = Audit::everything(database_url).await?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut broken = 0;
    for scenario in [
        Scenario::Payment,
        Scenario::Report,
        Scenario::Order,
        Scenario::Click,
    ] {
        let spec = common::services::find(scenario.service()).context("known service")?;
        let bases = [format!("http://{host}:{}", spec.port(mode))];
        // Counted from the service's start: its answers since it began.
        let counted = scenario.counted_route().map(|route| Counted {
            client: &client,
            bases: &bases,
            route,
            before: 0,
        });
        let verdict = audit.settle(scenario, "", counted.as_ref(), wait).await?;
        println!(
            "audit ({mode}): {}: {}",
            scenario.name(),
            verdict.describe(scenario)
        );
        broken += usize::from(!verdict.holds());
    }
    if broken > 0 {
        bail!("{broken} rules broken in the {mode} stack's records");
    }
    Ok(())
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err("a share from 0 to 1".into()),
    }
}

fn main() -> ExitCode {
    common::app::tool_main(cli())
}

async fn cli() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Run(args) => run(args).await,
        Cmd::Memory => memory(),
        Cmd::Floor(args) => loadgen::floor::run(args).await,
        Cmd::Burst {
            scenario,
            count,
            mode,
            host,
        } => burst(scenario, count, mode, &host).await,
        Cmd::Compare(args) => loadgen::compare::run(args).await,
        Cmd::Smoke(args) => loadgen::smoke::run(args).await,
        Cmd::Measure(args) => measure(args).await,
        Cmd::Fault(args) => fault(args).await,
        Cmd::Audit {
            mode,
            database_url,
            host,
            wait,
        } => audit(mode, &database_url, &host, Duration::from_secs(wait)).await,
        Cmd::Render { dir, against } => loadgen::compare::render_again(&dir, against.as_deref()),
        Cmd::Readme { data, readme } => loadgen::compare::readme::rewrite(&data, &readme),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let scenarios: Vec<Scenario> = args.scenarios.into_iter().flatten().collect();
    let load = Load {
        mode: args.mode,
        host: args.host,
        clients: args.clients,
        think: Duration::from_millis(args.think_ms),
        rate: args.rate,
        max_in_flight: args.max_in_flight,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        drain_timeout: Duration::from_secs_f64(args.drain_timeout),
        hangup: args
            .hangup_after_ms
            .map(|ms| (Duration::from_millis(ms), args.hangup_share)),
        database_url: args.database_url.unwrap_or_else(|| {
            format!(
                "postgres://postgres@127.0.0.1:5432/lab_{}",
                args.mode.as_str()
            )
        }),
        replicas: args.replicas,
        progress: true,
        stock_every_order: true,
    };
    let client = load.client()?;
    let mut outcomes = Vec::new();
    for scenario in scenarios {
        let before = procs::snapshot();
        let outcome = drive(&client, &load, scenario).await?;
        outcomes.push((outcome, procs::used(&before, &procs::snapshot())));
    }
    print_reports(load.mode, &outcomes);
    Ok(())
}

fn print_reports(mode: Mode, reports: &[(Outcome, Vec<procs::Used>)]) {
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
    for (r, cpu) in reports {
        let expected = r.expected_answers();
        let other = r.stats.count() - expected;
        println!(
            "{:<12} {:<5} {:<12} {:>8} {:>14} {:>7} {:>9.1} {:>10} {:>10} {:>10} {:>10}",
            format!("{} {}", r.scenario.number(), r.scenario.name()),
            mode.as_str(),
            r.load,
            r.stats.count(),
            format!("{expected} x {}", r.expected),
            other,
            r.throughput(),
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
        println!();
        for line in r.breakdown.describe() {
            println!("{line}");
        }
        let unfinished = match &r.verdict {
            Some(Ok(verdict)) => verdict.unfinished,
            _ => 0,
        };
        println!(
            "{}",
            cpu_per_operations(cpu, r.breakdown.operations, unfinished)
        );
    }
    println!();
}

/// CPU seconds per 1,000 operations of the load, per process group (every
/// service process on the machine, PostgreSQL, RabbitMQ, the driver), from
/// the load's start to the end of its reconciliation. Operations the stack
/// had not finished by then are said: the work they still owe is not in
/// the figures, which are then per operation accepted, not finished.
fn cpu_per_operations(used: &[procs::Used], operations: u64, unfinished: i64) -> String {
    let per = 1000.0 / operations.max(1) as f64;
    let total: f64 = used.iter().map(|u| u.cpu_seconds).sum();
    let groups: Vec<String> = used
        .iter()
        .filter(|u| u.cpu_seconds >= 0.005)
        .map(|u| format!("{} {:.3}", u.name, u.cpu_seconds * per))
        .collect();
    let owed = if unfinished > 0 {
        format!("; {unfinished} of them not final at the end, their remaining work not counted")
    } else {
        String::new()
    };
    format!(
        "CPU s per 1,000 operations ({operations} operations, warm-up and drain included{owed}): {}; all {:.3}",
        groups.join(", "),
        total * per
    )
}

async fn burst(scenario: Scenario, count: usize, mode: Mode, host: &str) -> anyhow::Result<()> {
    use loadgen::stats::nearest_rank;
    let spec = common::services::find(scenario.service()).context("known service")?;
    let base = format!("http://{host}:{}", spec.port(mode));
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(count)
        .build()?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let start = std::time::Instant::now();
    let sends = (0..count as u64).map(|n| {
        let (method, path, body) = scenario.request(&run, n);
        let request = client.request(method, format!("{base}{path}")).json(&body);
        async move {
            let response = request.send().await.ok()?;
            let handled = common::metrics::server_timing(response.headers());
            let status = response.status().as_u16();
            response.bytes().await.ok()?;
            let answered = start.elapsed();
            Some((status, answered, handled))
        }
    });
    let answers: Vec<_> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .flatten()
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut answered: Vec<f64> = answers.iter().map(|(_, a, _)| ms(*a)).collect();
    let mut outside: Vec<f64> = answers
        .iter()
        .filter_map(|(_, a, h)| Some(ms(*a) - ms((*h)?)))
        .collect();
    answered.sort_by(f64::total_cmp);
    outside.sort_by(f64::total_cmp);
    let expected = answers
        .iter()
        .filter(|(s, _, _)| *s == scenario.expected(mode))
        .count();
    let show = |v: &[f64]| {
        [0.5, 0.95, 1.0]
            .map(|q| nearest_rank(v, q).map_or("-".into(), |x| format!("{x:.2}")))
            .join(" / ")
    };
    println!(
        "{} {} {mode}: {count} at once, {} answered ({expected} expected), answered p50 / p95 / max {} ms, outside the handler {} ms",
        scenario.number(),
        scenario.name(),
        answers.len(),
        show(&answered),
        show(&outside)
    );
    Ok(())
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
