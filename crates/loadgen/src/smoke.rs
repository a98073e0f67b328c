//! `lab-load smoke`: the one-command path, run for real. `lab up` of the
//! mode's build refuses more connections than PostgreSQL takes, a service
//! refuses a setting it cannot use; started on a
//! fresh database and broker prefix it answers every scenario with the code
//! the contract gives ([`Scenario::expected`], the driver's own table), async
//! work reaches its end, the launcher's control endpoint stops and starts a
//! service for real, clients that hang up leave nothing unfinished, and
//! SIGINT stops the whole stack.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{Mode, SERVICES};
use serde_json::Value;

use crate::drive::{Load, drive};
use crate::scenario::{ALL, Scenario};
use crate::stack::{self, Infra, Stack};

#[derive(clap::Args)]
pub struct SmokeArgs {
    /// Which build to run: sync or async.
    #[arg(long, value_parser = crate::parse_mode)]
    pub mode: Mode,
    /// The directory of that build's binaries (`target/debug`, `target/async/debug`).
    #[arg(long)]
    pub bin: PathBuf,
    /// A database URL of the server (the smoke test's own database replaces its database part).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp: String,
}

/// Small delays: the smoke test checks behaviour, not figures.
const ENV: &[(&str, &str)] = &[
    ("EMAIL_DELAY_MS", "20"),
    ("PAYMENT_DELAY_MS", "20"),
    ("SEARCH_DELAY_MS", "10"),
    ("CACHE_DELAY_MS", "10"),
    ("ANALYTICS_DELAY_MS", "10"),
    ("REPORT_ITERATIONS", "10000"),
    ("RUST_LOG", "warn"),
    // Empty, as `.env.example` leaves it: the code's default.
    ("TOKIO_WORKER_THREADS", ""),
];

struct Checks {
    mode: Mode,
    passed: usize,
}

impl Checks {
    fn pass(&mut self, what: impl std::fmt::Display) {
        self.passed += 1;
        println!("smoke ({}): ok - {what}", self.mode);
    }
}

pub async fn run(args: SmokeArgs) -> anyhow::Result<()> {
    let mode = args.mode;
    if let Err(e) = stack::ports_free(mode) {
        println!("smoke ({mode}): skipped: {e:#}");
        return Ok(());
    }
    let infra = Infra {
        postgres: args.postgres.clone(),
        amqp: args.amqp.clone(),
    };
    let name = format!("lab_smoke_{mode}_{}", std::process::id());
    let log = std::env::temp_dir().join(format!("{name}.log"));
    let env: Vec<(String, String)> = ENV
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let mut checks = Checks { mode, passed: 0 };

    refuses_too_many_connections(&args, &infra, &name, &env).await?;
    checks.pass("lab up refuses DB_MAX_CONNECTIONS=100000 and says why");
    a_bad_setting_stops_a_service(&args).await?;
    checks.pass("a service given TOKIO_WORKER_THREADS=0 exits 2 and names it");

    let stack = Stack::start(&args.bin, mode, &name, &env, &infra, &log).await?;
    let result = against(&stack, &mut checks).await;
    let stopped = stack.stop().await;
    if let Err(e) = result {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        eprintln!("{tail}");
        return Err(e.context(format!("the stack's log is above ({})", log.display())));
    }
    ensure!(
        stopped,
        "the stack did not stop by itself on SIGINT within 30 s"
    );
    checks.pass("SIGINT stops every service");
    let _ = std::fs::remove_file(&log);
    println!("smoke ({mode}): {} passed, 0 failed", checks.passed);
    Ok(())
}

/// More connections than PostgreSQL takes: `lab up` refuses to start
/// (instead of services that answer 503 after `DB_ACQUIRE_TIMEOUT_MS` under load).
async fn refuses_too_many_connections(
    args: &SmokeArgs,
    infra: &Infra,
    name: &str,
    env: &[(String, String)],
) -> anyhow::Result<()> {
    let lab = args.bin.join("lab");
    let out = tokio::process::Command::new(&lab)
        .arg("up")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("DATABASE_URL", infra.database_url(name))
        .env("BROKER_PREFIX", name)
        .env("DB_MAX_CONNECTIONS", "100000")
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run {} (build it first)", lab.display()))?;
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success(),
        "lab up started with DB_MAX_CONNECTIONS=100000"
    );
    ensure!(
        said.contains("raise PostgreSQL's max_connections"),
        "lab up did not say why it refused: {said}"
    );
    stack::ports_free(args.mode).context("a service runs although lab up refused to start")
}

/// A setting a service cannot use stops it before it starts, with exit
/// code 2 and a line naming the variable (`common::app::serve_main`).
async fn a_bad_setting_stops_a_service(args: &SmokeArgs) -> anyhow::Result<()> {
    let binary = args.bin.join(SERVICES[0].binary());
    // Nothing else from this environment: only this setting can be named.
    let out = tokio::process::Command::new(&binary)
        .env_clear()
        .env("TOKIO_WORKER_THREADS", "0")
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(2) && said.contains("TOKIO_WORKER_THREADS"),
        "{} with TOKIO_WORKER_THREADS=0: {}, said {said:?}",
        binary.display(),
        out.status
    );
    Ok(())
}

async fn against(stack: &Stack, checks: &mut Checks) -> anyhow::Result<()> {
    let mode = stack.mode;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = |service: &str| {
        let spec = common::services::find(service).expect("a known service");
        format!("http://127.0.0.1:{}", spec.port(mode))
    };

    for scenario in ALL {
        let (method, path, body) = scenario.request("smoke", 1);
        let url = format!("{}{path}", base(scenario.service()));
        let answer = http.request(method, &url).json(&body).send().await?;
        let status = answer.status().as_u16();
        let answer: Value = answer.json().await.unwrap_or(Value::Null);
        ensure!(
            status == scenario.expected(mode),
            "{url} answered {status}, the contract says {}: {answer}",
            scenario.expected(mode)
        );
        checks.pass(format!("{} {url} answers {status}", scenario.number()));
        if scenario.followed(mode) {
            let resource = scenario
                .resource(&answer)
                .with_context(|| format!("{url}'s answer says where to follow it: {answer}"))?;
            let url = format!("{}{resource}", base(scenario.service()));
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let now: Value = http.get(&url).send().await?.json().await?;
                if scenario.finished(&now).is_some() {
                    // Completion, not only an end: the welcome email reached the user.
                    ensure!(
                        scenario != Scenario::Register || now["email_status"] == "sent",
                        "{url}: the async email did not complete: {now}"
                    );
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "{url} not final after 20 s: {now}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            checks.pass(format!("{url} reaches its end"));
        }
    }

    // The launcher's control endpoint stops a service for real (its port
    // then refuses connections) and starts it again.
    let control = format!(
        "http://127.0.0.1:{}/services",
        common::services::launcher_port(mode)
    );
    let email = base("email");
    let said = http.post(format!("{control}/email/stop")).send().await?;
    ensure!(said.status() == 200, "stopping email: {}", said.status());
    ensure!(
        http.get(format!("{email}/health")).send().await.is_err(),
        "email still answers after the launcher stopped it"
    );
    let listed: Value = http.get(&control).send().await?.json().await?;
    let state = listed["services"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == "email"))
        .map(|s| s["state"].clone());
    ensure!(
        state == Some(Value::from("stopped")),
        "the launcher does not list email as stopped: {listed}"
    );
    let said = http.post(format!("{control}/email/start")).send().await?;
    ensure!(said.status() == 200, "starting email: {}", said.status());
    let health = http.get(format!("{email}/health")).send().await?;
    ensure!(
        health.status() == 200,
        "email after its start: {}",
        health.status()
    );
    let said = http.post(format!("{control}/nope/stop")).send().await?;
    ensure!(
        said.status() == 404,
        "an unknown service: {}",
        said.status()
    );
    checks.pass("the control endpoint stops and starts email for real");

    // Clients that give up after 5 ms, before most answers: every operation
    // they started must still end (the driver reads the stack's records back).
    let load = Load {
        mode,
        host: "127.0.0.1".into(),
        clients: 4,
        think: Duration::ZERO,
        rate: None,
        max_in_flight: 4,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(2),
        drain_timeout: Duration::from_secs(20),
        hangup: Some((Duration::from_millis(5), 1.0)),
        database_url: stack.database_url.clone(),
        replicas: stack.replicas.clone(),
        progress: false,
        stock_every_order: false,
    };
    let client = load.client()?;
    for scenario in [Scenario::Register, Scenario::Order, Scenario::Click] {
        let outcome = drive(&client, &load, scenario).await?;
        match &outcome.verdict {
            Some(Ok(verdict)) if verdict.holds() => {
                checks.pass(format!(
                    "{} with hang-ups: {}",
                    scenario.name(),
                    verdict.describe(scenario)
                ));
            }
            Some(Ok(verdict)) => bail!("{}", verdict.describe(scenario)),
            Some(Err(e)) => bail!(
                "{}: the stack's records could not be read: {e}",
                scenario.name()
            ),
            None => bail!("{}: not reconciled", scenario.name()),
        }
    }

    for spec in &SERVICES {
        let url = format!("http://127.0.0.1:{}/ready", spec.port(mode));
        let ready = http.get(&url).send().await?;
        ensure!(ready.status() == 200, "{url}: {}", ready.status());
    }
    checks.pass("all ten services still ready");
    Ok(())
}
