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
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::Mode;

use crate::drive::{Load, Outcome, Timeline, drive};
use crate::scenario::Scenario;
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

/// The faults `all` stands for, in the order the README's table shows them.
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

    pub fn failed_count(&self) -> u64 {
        self.failed().values().sum()
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

    /// The longest any client waited for an answer.
    pub fn slowest(&self) -> Duration {
        self.outcome.stats.max().max(self.outcome.warmup.max())
    }

    /// Async: accepted operations not seen finished when the follower gave up.
    pub fn unfinished(&self) -> u64 {
        self.outcome.completion.as_ref().map_or(0, |c| c.left)
    }

    /// Whether the stack kept its promises: every accepted operation
    /// finished, the records final and consistent, and the clients good
    /// again after the component came back.
    pub fn holds(&self) -> bool {
        let reconciled = matches!(&self.outcome.verdict, Some(Ok(v)) if v.holds());
        reconciled && self.unfinished() == 0 && self.recovered_after().is_some()
    }

    /// When the failed answers came, from the stop.
    fn failing(&self) -> String {
        match self.outcome.timeline.failed_since(self.injected.stopping) {
            (count, Some(first), Some(last)) if count > 0 => {
                format!(
                    "{:.2} s to {:.2} s",
                    first.as_secs_f64(),
                    last.as_secs_f64()
                )
            }
            _ => "none".into(),
        }
    }

    fn failed_text(&self) -> String {
        let failed = self.failed();
        if failed.is_empty() {
            return "0".into();
        }
        failed
            .iter()
            .map(|(what, n)| format!("{n} × {what}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn recovered_text(&self) -> String {
        match (self.failed_count(), self.recovered_after()) {
            (0, _) => "never failed".into(),
            (_, Some(after)) if after < Timeline::STEP => "as soon as it was back".into(),
            (_, Some(after)) => format!("{} after it was back", human(after)),
            (_, None) => "NOT before the load ended".into(),
        }
    }

    fn work_text(&self) -> String {
        match &self.outcome.completion {
            Some(c) => {
                let drain = c
                    .drained_after
                    .map_or("not drained".into(), |d| format!("drained {}", human(d)));
                format!(
                    "{} accepted, {} finished, {drain} after the load",
                    c.accepted,
                    c.accepted - c.left
                )
            }
            None => format!("{} answered {}", self.good(), self.outcome.expected),
        }
    }

    fn records_text(&self) -> String {
        match &self.outcome.verdict {
            Some(Ok(v)) if v.holds() => format!("{} final, 0 twice", v.started),
            Some(Ok(v)) => v.describe(self.outcome.scenario),
            Some(Err(e)) => format!("not read: {e}"),
            None => "not read".into(),
        }
    }

    /// The report as lines for the terminal.
    pub fn describe(&self) -> Vec<String> {
        let i = &self.injected;
        vec![
            format!(
                "{} restarted under {} ({} mode, {}): gone {} after the stop was asked, back {} later",
                self.fault.name(),
                self.outcome.scenario.name(),
                self.mode,
                self.outcome.load,
                human(i.gone - i.stopping),
                human(i.back - i.gone),
            ),
            format!(
                "  answers: {} expected ({}), failed: {}",
                self.good(),
                self.outcome.expected,
                self.failed_text()
            ),
            format!(
                "  failures from the stop: {}; {}; slowest answer {}",
                self.failing(),
                self.recovered_text(),
                human(self.slowest())
            ),
            format!("  work: {}", self.work_text()),
            format!("  records: {}", self.records_text()),
        ]
    }

    /// A row of the README's fault table.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.fault.name(),
            self.mode,
            self.outcome.scenario.name(),
            human(self.injected.back - self.injected.stopping),
            self.failed_text(),
            self.failing(),
            self.recovered_text(),
            human(self.slowest()),
            self.work_text(),
            self.records_text(),
        )
    }
}

/// The header of [`FaultReport::row`]'s table.
pub const TABLE_HEADER: &str = "| restarted | mode | scenario | away | failed answers | failing (from the stop) | clients recovered | slowest answer | work | records |\n|---|---|---|---|---|---|---|---|---|---|";

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
