//! `lab up`: runs the services of this build's mode as processes of their
//! own on the contract's ports, against the local Postgres.

mod both;
mod control;
mod fleet;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use common::{MODE, Replicas, SERVICES, ServiceSpec, Settings};

use crate::fleet::Fleet;

#[derive(Parser)]
#[command(about = "Runs the sync-vs-async lab locally")]
struct Cli {
    /// Which stack: this build's mode (the default), the other one (run by
    /// its build's `lab`), or both side by side with the race page.
    #[arg(long, global = true, value_parser = ["sync", "async", "both"])]
    mode: Option<String>,
    /// Run several instances of some services, e.g. `email=3,user=2`:
    /// instance r of a service listens 1000 × r above its contract port
    /// (async email: 8107, 9107, 10107); in async mode they compete for the
    /// same queues and share the outboxes. `lab status --wait` waits for all.
    #[arg(long, global = true, env = "LAB_REPLICAS", default_value = "", value_parser = Replicas::parse)]
    replicas: Replicas,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the services (all ten by default) and wait for Ctrl-C.
    Up {
        /// Run only these services (repeatable), e.g. `--only payment`.
        #[arg(long, value_parser = service_name)]
        only: Vec<String>,
        /// Run all but these services (repeatable), e.g. `--without email`.
        #[arg(long, value_parser = service_name)]
        without: Vec<String>,
    },
    /// List the services, their ports and whether they answer.
    Status {
        /// Instead: wait up to this many seconds until every service answers
        /// `/ready` 200 (exit 1 if not).
        #[arg(long)]
        wait: Option<u64>,
        /// With --wait: give up at once when this process (the `lab up`) exits.
        #[arg(long, requires = "wait")]
        pid: Option<i32>,
    },
}

fn service_name(name: &str) -> Result<String, String> {
    match common::services::find(name) {
        Some(_) => Ok(name.to_owned()),
        None => Err(format!(
            "no service named {name}; one of {}",
            SERVICES
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn main() -> ExitCode {
    common::app::tool_main(cli())
}

async fn cli() -> ExitCode {
    let cli = Cli::parse();
    let result = match (cli.mode.as_deref(), cli.command) {
        (Some(mode), _) if mode != MODE.as_str() => both::other(mode).await,
        (_, Cmd::Up { only, without }) => up(&only, &without, cli.replicas).await,
        (_, Cmd::Status { wait: None, .. }) => status(&cli.replicas).await,
        (
            _,
            Cmd::Status {
                wait: Some(secs),
                pid,
            },
        ) => wait_ready(Duration::from_secs(secs), pid, &cli.replicas).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn base_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The same check as a container's health check: 200 from `/health`.
pub(crate) async fn health(port: u16) -> Result<(), String> {
    common::app::check_health(&format!("{}/health", base_url(port))).await
}

async fn status(replicas: &Replicas) -> anyhow::Result<()> {
    println!("{:<10} {:>5}  state", "service", "port");
    for spec in &SERVICES {
        for port in replicas.ports(spec, MODE) {
            let state = match health(port).await {
                Ok(()) => "up".to_owned(),
                Err(why) => format!("down ({why})"),
            };
            println!("{:<10} {port:>5}  {state}", spec.name);
        }
    }
    Ok(())
}

/// Readiness by asking: every service of this mode answers `/ready` 200.
async fn wait_ready(within: Duration, pid: Option<i32>, replicas: &Replicas) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + within;
    let mut waiting: Vec<(&ServiceSpec, u16)> = SERVICES
        .iter()
        .flat_map(|spec| {
            replicas
                .ports(spec, MODE)
                .into_iter()
                .map(move |p| (spec, p))
        })
        .collect();
    let instances = waiting.len();
    loop {
        let mut still = Vec::new();
        for (spec, port) in waiting {
            let ready = format!("{}/ready", base_url(port));
            if common::app::check_health(&ready).await.is_err() {
                still.push((spec, port));
            }
        }
        waiting = still;
        if waiting.is_empty() {
            println!(
                "lab: all {} {MODE} services ready ({instances} instances)",
                SERVICES.len()
            );
            return Ok(());
        }
        if let Some(pid) = pid
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
        {
            bail!("the lab up (pid {pid}) exited before its services were ready");
        }
        if std::time::Instant::now() > deadline {
            let names: Vec<_> = waiting
                .iter()
                .map(|(s, port)| format!("{} ({port})", s.name))
                .collect();
            bail!("not ready after {within:?}: {}", names.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn up(only: &[String], without: &[String], replicas: Replicas) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    common::db::ensure_database(&settings.database_url)
        .await
        .context("is PostgreSQL running? scripts/ensure-services.sh starts it")?;
    let chosen: Vec<&ServiceSpec> = SERVICES
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == s.name))
        .filter(|s| !without.iter().any(|w| w == s.name))
        .collect();
    if chosen.is_empty() {
        bail!("no service left to run");
    }
    let fleet = Arc::new(Fleet::new(binaries_dir()?, replicas));
    let processes = chosen.iter().map(|s| usize::from(fleet.instances(s))).sum();
    fits_in_postgres(processes, &settings).await?;
    for spec in &chosen {
        if let Err(e) = fleet.spawn(spec).await {
            fleet.stop_all().await;
            return Err(e);
        }
    }
    for spec in &chosen {
        if let Err(e) = fleet.wait_healthy(spec, Duration::from_secs(60)).await {
            fleet.stop_all().await;
            return Err(e);
        }
    }
    let control = control::serve(Arc::clone(&fleet)).await;
    banner(&chosen, &fleet, &settings, control.as_ref().ok());
    if let Err(e) = &control {
        eprintln!("lab: no control endpoint: {e:#}");
    }

    // Made once: a signal that came while a new one was not yet listening
    // would be lost, and `lab` would never stop its services.
    let shutdown = common::app::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                for (name, replica) in fleet.newly_exited().await? {
                    let which = if replica == 0 { name.to_owned() } else { format!("{name} (instance {replica})") };
                    eprintln!("lab: {which} exited; the others keep running (Ctrl-C stops them)");
                }
            }
        }
    }
    fleet.stop_all().await;
    Ok(())
}

/// Every service process may open up to `DB_MAX_CONNECTIONS`; if PostgreSQL cannot
/// take them all, a service that needs one more waits `DB_ACQUIRE_TIMEOUT_MS`
/// and answers 503, a stall that would pass for slowness in the figures. So
/// the lab refuses to start instead. Connections are opened lazily: this is
/// the worst case, which load reaches.
async fn fits_in_postgres(services: usize, settings: &Settings) -> anyhow::Result<()> {
    let slots = common::db::slots(&settings.database_url).await?;
    let pool = i64::from(settings.db_max_connections);
    let need = services as i64 * pool;
    if need > slots.free() {
        let most = slots.free() / services as i64;
        bail!(
            "{services} service processes with DB_MAX_CONNECTIONS={pool} may open {need} connections, but \
             PostgreSQL takes {} more ({} allowed, {} open now); set DB_MAX_CONNECTIONS to at most \
             {most}, or raise PostgreSQL's max_connections",
            slots.free(),
            slots.allowed,
            slots.open
        );
    }
    Ok(())
}

/// The service binaries sit next to this one (`target/<profile>/`).
pub(crate) fn binaries_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("the lab binary has no directory")?
        .to_path_buf())
}

fn banner(
    chosen: &[&ServiceSpec],
    fleet: &Fleet,
    settings: &Settings,
    control: Option<&SocketAddr>,
) {
    let port = |name: &str| common::services::find(name).map_or(0, |s| s.port(MODE));
    println!();
    println!(
        "  sync-vs-async lab, {MODE} mode: {} of 10 services up",
        chosen.len()
    );
    println!("  database {}", common::db::redact(&settings.database_url));
    println!();
    println!("  {:<10} {:<24} metrics", "service", "url");
    for spec in chosen {
        for port in fleet.ports(spec) {
            let url = base_url(port);
            println!("  {:<10} {:<24} {url}/metrics", spec.name, url);
        }
    }
    let skipped: Vec<_> = SERVICES
        .iter()
        .filter(|s| !chosen.contains(s))
        .map(|s| s.name)
        .collect();
    if !skipped.is_empty() {
        println!("  not running: {}", skipped.join(", "));
    }
    let json = "-H 'Content-Type: application/json'";
    println!();
    println!("  Try the scenarios:");
    println!(
        "  1 registration   curl -s -X POST localhost:{}/register {json} -d '{{\"email\": \"user@example.com\"}}'",
        port("user")
    );
    println!(
        "  2 payment        curl -s -X POST localhost:{}/process_payment {json} -d '{{\"order_id\": 123, \"amount\": 100.0}}'",
        port("payment")
    );
    println!(
        "  3 fan-out        curl -s -X PUT localhost:{}/products/1 {json} -d '{{\"name\": \"Updated Laptop\", \"stock\": 75}}'",
        port("product")
    );
    println!(
        "  4 report         curl -s -X POST localhost:{}/generate_report {json} -d '{{\"report_type\": \"monthly\"}}' --max-time 60",
        port("report")
    );
    println!(
        "  5 order saga     curl -s -X POST localhost:{}/create_order {json} -d '{{\"product_id\": 1, \"quantity\": 1}}'",
        port("order")
    );
    println!(
        "  6 click          curl -s -X POST localhost:{}/track_click {json} -d '{{\"user_id\": 123, \"page\": \"homepage\"}}'",
        port("analytics")
    );
    println!();
    if let Some(control) = control {
        println!(
            "  Stop and start one service: curl -X POST {control}/services/payment/stop (or /start)"
        );
    }
    println!("  Ctrl-C stops every service after its requests in flight.");
    println!();
}
