//! Faults made the way operators make them, under load: a service's process
//! stopped and started again (through `lab up`'s control endpoint: SIGTERM,
//! the process ends, its port refuses connections, then a new process), the
//! broker's application stopped and started (`rabbitmqctl stop_app` /
//! `start_app`), PostgreSQL stopped and started (`pg_ctlcluster`).
//!
//! `lab-load fault` gives each fault a fresh stack, loads the scenario whose
//! work crosses the component, restarts the component in the middle of the
//! load, and reports what the clients saw (the failed answers by status,
//! when they began and ended, how soon after the component was back the
//! answers were good again) and what the stack did with what it had
//! accepted (followed to its end, and its records reconciled: nothing lost,
//! nothing done twice).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::Mode;

use crate::drive::{Load, Outcome, Timeline, drive};
use crate::scenario::Scenario;
use crate::stack::{Infra, Stack};
use crate::stats::human;

/// A component restarted under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// One of the lab's services (every instance of it).
    Service(&'static str),
    /// RabbitMQ's application (the node stays; every connection is closed).
    Broker,
    /// The PostgreSQL server (every connection is closed).
    Postgres,
}

/// The faults `all` stands for, in the order docs/faults.md's table shows them.
pub const ALL: [Fault; 6] = [
    Fault::Service("payment"),
    Fault::Service("email"),
    Fault::Service("inventory"),
    Fault::Service("order"),
    Fault::Broker,
    Fault::Postgres,
];

impl Fault {
    pub fn parse(s: &str) -> Result<Vec<Fault>, String> {
        Ok(match s {
            "all" => ALL.to_vec(),
            "broker" | "rabbitmq" => vec![Fault::Broker],
            "postgres" | "postgresql" => vec![Fault::Postgres],
            name => match common::services::find(name) {
                Some(spec) => vec![Fault::Service(spec.name)],
                None => {
                    return Err(format!(
                        "unknown fault {name}: a service (payment, email, ...), broker, postgres or all"
                    ));
                }
            },
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::Service(name) => name,
            Fault::Broker => "broker",
            Fault::Postgres => "postgres",
        }
    }

    /// The scenario whose work crosses the component: the registration for
    /// email (and the services only it calls), else the order saga, which
    /// crosses order, inventory, payment, the broker and the database.
    pub fn scenario(self) -> Scenario {
        match self {
            Fault::Service("email" | "user") => Scenario::Register,
            Fault::Service("search" | "cache" | "analytics" | "product") => Scenario::Fanout,
            Fault::Service("report") => Scenario::Report,
            _ => Scenario::Order,
        }
    }

    async fn stop(self, control: &str, client: &reqwest::Client) -> anyhow::Result<()> {
        match self {
            Fault::Service(name) => control_call(client, control, name, "stop").await,
            Fault::Broker => as_root("rabbitmqctl", &["stop_app"]).await,
            Fault::Postgres => pg_ctlcluster("stop").await,
        }
    }

    async fn start(self, control: &str, client: &reqwest::Client) -> anyhow::Result<()> {
        match self {
            Fault::Service(name) => control_call(client, control, name, "start").await,
            Fault::Broker => as_root("rabbitmqctl", &["start_app"]).await,
            Fault::Postgres => pg_ctlcluster("start").await,
        }
    }
}

/// `POST <control>/services/<name>/<action>`; the launcher answers once the
/// process has ended, or once the new one is healthy.
async fn control_call(
    client: &reqwest::Client,
    control: &str,
    name: &str,
    action: &str,
) -> anyhow::Result<()> {
    let url = format!("{control}/services/{name}/{action}");
    let answer = client
        .post(&url)
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .with_context(|| format!("{url}: is `lab up` running?"))?;
    if !answer.status().is_success() {
        bail!("{url}: {} {}", answer.status(), answer.text().await?);
    }
    Ok(())
}

/// Runs a command as root (directly when we are, else through `sudo -n`).
async fn as_root(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut command = if nix::unistd::geteuid().is_root() {
        tokio::process::Command::new(program)
    } else {
        let mut sudo = tokio::process::Command::new("sudo");
        sudo.args(["-n", program]);
        sudo
    };
    let out = command
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `pg_ctlcluster <newest version> main <action>`, as scripts/ensure-services.sh
/// starts it (outside systemd where it can).
async fn pg_ctlcluster(action: &str) -> anyhow::Result<()> {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .context("no /etc/postgresql: a PostgreSQL restart needs the Debian cluster tools")?
        .filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_owned()))
        .collect();
    versions.sort_by_key(|v| v.parse::<u32>().unwrap_or(0));
    let version = versions.last().context("no PostgreSQL cluster")?;
    let args = ["--skip-systemctl-redirect", version, "main", action];
    match as_root("pg_ctlcluster", &args).await {
        Ok(()) => Ok(()),
        Err(_) => as_root("pg_ctlcluster", &args[1..]).await,
    }
}

/// When the fault began and ended, by the clock the load's timeline uses.
#[derive(Debug, Clone, Copy)]
pub struct Injected {
    /// The stop was asked for.
    pub stopping: Instant,
    /// The component was gone (the stop command returned).
    pub gone: Instant,
    /// The component was back (the start command returned: the service
    /// healthy, the broker's application or the server accepting).
    pub back: Instant,
}

/// When and for how long the component goes away, from the start of the load.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub at: Duration,
    pub down: Duration,
}

/// Stops the component `plan.at` after `began`, starts it `plan.down` after
/// it was gone.
pub async fn inject(
    fault: Fault,
    control: &str,
    plan: Plan,
    began: Instant,
) -> anyhow::Result<Injected> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    tokio::time::sleep_until((began + plan.at).into()).await;
    let stopping = Instant::now();
    fault.stop(control, &client).await?;
    let gone = Instant::now();
    tokio::time::sleep(plan.down).await;
    fault.start(control, &client).await?;
    Ok(Injected {
        stopping,
        gone,
        back: Instant::now(),
    })
}

/// What one fault did to one mode's stack.
pub struct FaultReport {
    pub fault: Fault,
    pub mode: Mode,
    pub outcome: Outcome,
    pub injected: Injected,
}

impl FaultReport {
    /// Answers other than the expected one, by status or error, over the whole load.
    pub fn failed(&self) -> BTreeMap<String, u64> {
        let mut failed = BTreeMap::new();
        for stats in [&self.outcome.warmup, &self.outcome.stats] {
            for (status, n) in &stats.statuses {
                if *status != self.outcome.expected {
                    *failed.entry(status.to_string()).or_default() += n;
                }
            }
            for (error, n) in &stats.errors {
                *failed.entry(error.clone()).or_default() += n;
            }
        }
        failed
    }

    /// Expected answers over the whole load.
    pub fn good(&self) -> u64 {
        let expected = self.outcome.expected;
        [&self.outcome.warmup, &self.outcome.stats]
            .iter()
            .filter_map(|s| s.statuses.get(&expected))
            .sum()
    }

    /// How long after the component was back the first good answer came
    /// that no failure followed; `None` when failures went on to the end.
    /// Zero when the clients were good again before the start command
    /// returned (the launcher polls the new process's health).
    pub fn recovered_after(&self) -> Option<Duration> {
        let at = self.outcome.timeline.recovered()?;
        Some(at.saturating_duration_since(self.injected.back))
    }

    /// What the report says, as figures: what `lab-load fault` prints and
    /// the comparison report keeps.
    pub fn summary(&self) -> FaultRun {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let failing = match self.outcome.timeline.failed_since(self.injected.stopping) {
            (n, Some(first), Some(last)) if n > 0 => {
                Some((first.as_secs_f64(), last.as_secs_f64()))
            }
            _ => None,
        };
        let completion = self.outcome.completion.as_ref();
        let (records, reconciled) = match &self.outcome.verdict {
            Some(Ok(v)) if v.holds() => (format!("{} final, 0 twice", v.started), true),
            Some(Ok(v)) => (v.describe(self.outcome.scenario), false),
            Some(Err(e)) => (format!("not read: {e}"), false),
            None => ("not read".into(), false),
        };
        FaultRun {
            fault: self.fault.name().into(),
            mode: self.mode.as_str().into(),
            scenario: self.outcome.scenario.name().into(),
            load: self.outcome.load.clone(),
            gone_ms: ms(self.injected.gone - self.injected.stopping),
            away_ms: ms(self.injected.back - self.injected.stopping),
            expected: self.outcome.expected,
            good: self.good(),
            failed: self.failed(),
            failing_s: failing,
            recovered_after_ms: self.recovered_after().map(ms),
            slowest_ms: ms(self.outcome.stats.max().max(self.outcome.warmup.max())),
            accepted: completion.map(|c| c.accepted),
            unfinished: completion.map(|c| c.left),
            drained_after_s: completion
                .and_then(|c| c.drained_after)
                .map(|d| d.as_secs_f64()),
            records,
            reconciled,
        }
    }
}

/// One fault's figures (data.json of the comparison report keeps them).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaultRun {
    pub fault: String,
    pub mode: String,
    pub scenario: String,
    pub load: String,
    /// From the stop being asked to the component gone (a service finishes
    /// its requests in flight first).
    pub gone_ms: f64,
    /// From the stop being asked to the component back.
    pub away_ms: f64,
    /// The scenario's expected status, and how many answers had it.
    pub expected: u16,
    pub good: u64,
    /// The other answers, by status or error.
    pub failed: BTreeMap<String, u64>,
    /// The first and last failed answer, seconds from the stop.
    pub failing_s: Option<(f64, f64)>,
    /// From the component back to the first good answer no failure
    /// followed; `None`: the failures went on to the end of the load.
    pub recovered_after_ms: Option<f64>,
    pub slowest_ms: f64,
    /// Async: operations accepted, those not seen finished, and when the
    /// last one finished after the load.
    pub accepted: Option<u64>,
    pub unfinished: Option<u64>,
    pub drained_after_s: Option<f64>,
    /// What the stack's records said.
    pub records: String,
    pub reconciled: bool,
}

/// The columns of [`FaultRun::cells`].
pub const COLUMNS: [&str; 10] = [
    "restarted",
    "mode",
    "scenario, load",
    "away",
    "failed answers",
    "failing (from the stop)",
    "clients good again",
    "slowest answer",
    "work",
    "records",
];

impl FaultRun {
    /// Whether the stack kept its promises: every accepted operation
    /// finished, its records final and consistent, and the clients good
    /// again once the component was back.
    pub fn holds(&self) -> bool {
        let failed: u64 = self.failed.values().sum();
        self.reconciled
            && self.unfinished.unwrap_or(0) == 0
            && (failed == 0 || self.recovered_after_ms.is_some())
    }

    pub fn cells(&self) -> Vec<String> {
        let ms = |ms: f64| human(Duration::from_secs_f64(ms / 1000.0));
        let failed = if self.failed.is_empty() {
            "0".into()
        } else {
            self.failed
                .iter()
                .map(|(what, n)| format!("{n} × {what}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let failing = match self.failing_s {
            Some((first, last)) => format!("{first:.2} s to {last:.2} s"),
            None => "none".into(),
        };
        let step_ms = Timeline::STEP.as_secs_f64() * 1000.0;
        let recovered = match (self.failed.is_empty(), self.recovered_after_ms) {
            (true, _) => "never failed".into(),
            (_, Some(after)) if after < step_ms => "as soon as it was back".into(),
            (_, Some(after)) => format!("{} after it was back", ms(after)),
            (_, None) => "NOT before the load ended".into(),
        };
        let work = match (self.accepted, self.unfinished) {
            (Some(accepted), Some(left)) => {
                let drain = self
                    .drained_after_s
                    .map_or("not drained".into(), |d| format!("drained {d:.1} s"));
                format!(
                    "{accepted} accepted, {} finished, {drain} after the load",
                    accepted - left
                )
            }
            _ => format!("{} answered {}", self.good, self.expected),
        };
        vec![
            self.fault.clone(),
            self.mode.clone(),
            format!("{}, {}", self.scenario, self.load),
            ms(self.away_ms),
            failed,
            failing,
            recovered,
            ms(self.slowest_ms),
            work,
            self.records.clone(),
        ]
    }

    /// The report as lines for the terminal.
    pub fn describe(&self) -> Vec<String> {
        let c = self.cells();
        let ms = |ms: f64| human(Duration::from_secs_f64(ms / 1000.0));
        vec![
            format!(
                "{} restarted under {} ({} mode, {}): gone {} after the stop was asked, back after {}",
                self.fault,
                self.scenario,
                self.mode,
                self.load,
                ms(self.gone_ms),
                c[3],
            ),
            format!(
                "  answers: {} expected ({}), failed: {}",
                self.good, self.expected, c[4]
            ),
            format!(
                "  failures from the stop: {}; {}; slowest answer {}",
                c[5], c[6], c[7]
            ),
            format!("  work: {}", c[8]),
            format!("  records: {}", c[9]),
        ]
    }
}

/// The runs as a Markdown table (docs/faults.md's).
pub fn markdown_table(runs: &[FaultRun]) -> String {
    let mut table = format!(
        "| {} |\n|{}\n",
        COLUMNS.join(" | "),
        "---|".repeat(COLUMNS.len())
    );
    for run in runs {
        table.push_str(&format!("| {} |\n", run.cells().join(" | ")));
    }
    table
}

/// Loads `fault`'s scenario on a running stack and restarts the component
/// in the middle of it.
pub async fn run(
    fault: Fault,
    load: &Load,
    control: &str,
    plan: Plan,
) -> anyhow::Result<FaultReport> {
    let client = load.client()?;
    let began = Instant::now();
    let control = control.to_owned();
    let injection = tokio::spawn(async move { inject(fault, &control, plan, began).await });
    let outcome = drive(&client, load, fault.scenario()).await;
    let injected = injection.await.context("the fault's task")??;
    Ok(FaultReport {
        fault,
        mode: load.mode,
        outcome: outcome?,
        injected,
    })
}

/// A fault's trial: the build, the stack's settings, the load and the plan.
pub struct Trial<'a> {
    /// The directory of the mode's build (`lab` and the services).
    pub bin: &'a Path,
    pub mode: Mode,
    /// The stack's database and broker prefix.
    pub name: &'a str,
    /// The stack's settings (delays, `LAB_REPLICAS`).
    pub env: &'a [(String, String)],
    pub infra: &'a Infra,
    pub log: &'a Path,
    /// Closed loop: this many clients, back to back.
    pub clients: usize,
    /// Open loop instead: requests per second, sent whatever the stack does
    /// (the order saga's product is stocked for all of them first).
    pub rate: Option<f64>,
    pub duration: Duration,
    pub drain_timeout: Duration,
    pub plan: Plan,
}

/// `fault` restarted in the middle of its scenario's load, on a fresh stack
/// (started, and stopped with its database and queues afterwards).
pub async fn on_fresh_stack(trial: &Trial<'_>, fault: Fault) -> anyhow::Result<FaultReport> {
    if trial.plan.at + trial.plan.down + Duration::from_secs(1) > trial.duration {
        bail!("the fault must be over at least a second before the load ends");
    }
    let stack = Stack::start(
        trial.bin,
        trial.mode,
        trial.name,
        trial.env,
        trial.infra,
        trial.log,
    )
    .await?;
    let load = Load {
        mode: trial.mode,
        host: "127.0.0.1".into(),
        clients: trial.clients,
        think: Duration::ZERO,
        rate: trial.rate,
        // (Open loop only; a closed loop has its clients.)
        max_in_flight: crate::drive::MAX_IN_FLIGHT,
        warmup: Duration::ZERO,
        duration: trial.duration,
        drain_timeout: trial.drain_timeout,
        hangup: None,
        database_url: stack.database_url.clone(),
        replicas: stack.replicas.clone(),
        progress: false,
        // A closed loop's async saga accepts tens of thousands of orders a
        // run, far more than its payments finish within a drain: its 100
        // units of stock refuse the rest at once, a final outcome.
        stock_every_order: trial.rate.is_some(),
    };
    let report = run(fault, &load, &stack.control(), trial.plan).await;
    stack.stop().await;
    report.with_context(|| format!("{} restarted; log: {}", fault.name(), trial.log.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> FaultRun {
        FaultRun {
            fault: "payment".into(),
            mode: "sync".into(),
            scenario: "order".into(),
            load: "10 clients".into(),
            gone_ms: 120.0,
            away_ms: 3_200.0,
            expected: 400,
            good: 780,
            failed: BTreeMap::from([("503".to_owned(), 1_600)]),
            failing_s: Some((0.02, 3.17)),
            recovered_after_ms: Some(0.0),
            slowest_ms: 200.3,
            accepted: None,
            unfinished: None,
            drained_after_s: None,
            records: "2380 final, 0 twice".into(),
            reconciled: true,
        }
    }

    #[test]
    fn every_known_fault_is_named_and_crossed_by_a_scenario() {
        assert_eq!(Fault::parse("all").unwrap(), ALL);
        assert_eq!(Fault::parse("rabbitmq").unwrap(), [Fault::Broker]);
        assert_eq!(
            Fault::parse("email").unwrap()[0].scenario(),
            Scenario::Register
        );
        assert_eq!(
            Fault::parse("payment").unwrap()[0].scenario(),
            Scenario::Order
        );
        assert!(Fault::parse("kafka").is_err());
    }

    #[test]
    fn a_fault_holds_only_when_nothing_is_left_wrong_and_clients_are_good_again() {
        let fine = run();
        assert!(fine.holds());
        assert_eq!(
            fine.cells(),
            [
                "payment",
                "sync",
                "order, 10 clients",
                "3200.0 ms",
                "1600 × 503",
                "0.02 s to 3.17 s",
                "as soon as it was back",
                "200.3 ms",
                "780 answered 400",
                "2380 final, 0 twice"
            ]
        );
        let still_failing = FaultRun {
            recovered_after_ms: None,
            ..run()
        };
        assert!(!still_failing.holds());
        assert_eq!(still_failing.cells()[6], "NOT before the load ended");
        let left = FaultRun {
            accepted: Some(10),
            unfinished: Some(1),
            drained_after_s: None,
            ..run()
        };
        assert!(!left.holds());
        assert_eq!(
            left.cells()[8],
            "10 accepted, 9 finished, not drained after the load"
        );
        assert!(
            markdown_table(&[fine])
                .lines()
                .nth(2)
                .unwrap()
                .starts_with("| payment | sync |"),
        );
    }
}
