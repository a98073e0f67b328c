//! A fresh stack per run: `lab up` of the mode's build against a database and
//! a broker prefix of its own, so no run inherits another's backlog, held
//! stock or warm caches; stopped, its database dropped and its queues
//! deleted afterwards.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::{Mode, Replicas, SERVICES};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::broker::Broker;

/// Where the stacks' PostgreSQL and RabbitMQ are.
#[derive(Debug, Clone)]
pub struct Infra {
    /// A database URL of the server, whose database part is replaced per run.
    pub postgres: String,
    pub amqp: String,
}

impl Infra {
    pub fn database_url(&self, database: &str) -> String {
        database_url(&self.postgres, database)
    }
}

/// `postgres` (a database URL of the server) with `database` as its database.
pub fn database_url(postgres: &str, database: &str) -> String {
    match postgres.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => format!("{postgres}/{database}"),
    }
}

/// A running `lab up`.
pub struct Stack {
    child: tokio::process::Child,
    pub mode: Mode,
    pub database: String,
    pub database_url: String,
    pub prefix: String,
    /// The instances it runs (`LAB_REPLICAS` in the run's settings; one of
    /// each service unless it says otherwise, whatever the caller's environment).
    pub replicas: Replicas,
    log: PathBuf,
    infra: Infra,
}

impl Stack {
    /// Starts `<bin>/lab up` with `env` (the run's settings, `LAB_REPLICAS` among them) on database
    /// `name` and broker prefix `name`, logging to `log`; returns once all
    /// ten services answer `/ready`.
    pub async fn start(
        bin: &Path,
        mode: Mode,
        name: &str,
        env: &[(String, String)],
        infra: &Infra,
        log: &Path,
    ) -> anyhow::Result<Stack> {
        let lab = bin.join("lab");
        let replicas = match env.iter().find(|(k, _)| k == "LAB_REPLICAS") {
            Some((_, v)) => Replicas::parse(v).map_err(anyhow::Error::msg)?,
            None => Replicas::default(),
        };
        leave_nothing(infra, mode, name).await;
        let database_url = infra.database_url(name);
        let out = std::fs::File::create(log).with_context(|| format!("{}", log.display()))?;
        let child = tokio::process::Command::new(&lab)
            .arg("up")
            .env_remove("LAB_REPLICAS")
            .env_remove("LAB_CONTROL_PORT")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("DATABASE_URL", &database_url)
            .env("BROKER_PREFIX", name)
            .env("AMQP_URL", &infra.amqp)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {} (build it first)", lab.display()))?;
        let mut stack = Stack {
            child,
            mode,
            database: name.to_owned(),
            database_url,
            prefix: name.to_owned(),
            replicas,
            log: log.to_owned(),
            infra: infra.clone(),
        };
        if let Err(e) = stack.wait_ready(Duration::from_secs(120)).await {
            stack.stop().await;
            return Err(e);
        }
        Ok(stack)
    }

    async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + within;
        let mut waiting: Vec<u16> = SERVICES
            .iter()
            .flat_map(|s| self.replicas.ports(s, self.mode))
            .collect();
        while !waiting.is_empty() {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "lab up exited ({status}) before its services were ready; see {}",
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "ports {waiting:?} not ready after {within:?}; see {}",
                    self.log.display()
                );
            }
            let mut still = Vec::new();
            for port in waiting {
                let ready = client
                    .get(format!("http://127.0.0.1:{port}/ready"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ready {
                    still.push(port);
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// The launcher's control endpoint (stop and start a service).
    pub fn control(&self) -> String {
        format!(
            "http://127.0.0.1:{}",
            common::services::launcher_port(self.mode)
        )
    }

    /// Stops the stack (SIGINT: its services finish what they hold; killed
    /// after 30 s), drops its database and deletes its queues. Whether it
    /// stopped by itself, successfully, on the signal.
    pub async fn stop(mut self) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
        }
        let stopped = match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            Ok(Err(_)) => false,
            Err(_) => {
                let _ = self.child.kill().await;
                false
            }
        };
        leave_nothing(&self.infra, self.mode, &self.database).await;
        stopped
    }
}

/// Drops the run's database and, in async mode, deletes its queues (named
/// after the run): before a run, what an interrupted one left; after it, its own.
async fn leave_nothing(infra: &Infra, mode: Mode, name: &str) {
    let _ = common::db::drop_database(&infra.database_url(name)).await;
    if mode == Mode::Async {
        let _ = Broker::new(&infra.amqp, name).delete_all().await;
    }
}

/// Waits (up to `within`) until the CPUs are at least `idle_percent` idle
/// over a second, so the previous run's leftovers (RabbitMQ reclaiming a
/// deleted queue's messages, PostgreSQL dropping a database) do not land in
/// the next run's figures. The idle share reached, when it never got there.
pub async fn settle(idle_percent: u64, within: Duration) -> Result<(), u64> {
    let deadline = Instant::now() + within;
    let mut before = cpu_times();
    let mut idle = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cpu_times();
        let (busy, total) = (now.0 - before.0, now.1 - before.1);
        idle = 100 - 100 * busy / total.max(1);
        if idle >= idle_percent {
            return Ok(());
        }
        before = now;
    }
    Err(idle)
}

/// Busy and total jiffies of all CPUs since boot, from /proc/stat (idle and
/// iowait count as not busy).
fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    (busy, busy + field(3) + field(4))
}

/// Fails when a port of the mode's stack is taken: a stack is running.
pub fn ports_free(mode: Mode) -> anyhow::Result<()> {
    let ports = SERVICES
        .iter()
        .map(|s| s.port(mode))
        .chain([common::services::launcher_port(mode)]);
    for port in ports {
        if std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            Duration::from_millis(200),
        )
        .is_ok()
        {
            bail!(
                "port {port} is taken: a {mode} stack is running? `lab-load compare` and `lab-load smoke` start their own; stop it first"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_and_grow() {
        let (busy, total) = cpu_times();
        assert!(total > 0 && busy <= total, "{busy} of {total}");
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {}
        assert!(cpu_times().1 >= total);
    }

    #[test]
    fn each_run_gets_its_own_database_on_the_same_server() {
        let infra = Infra {
            postgres: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            amqp: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
        };
        assert_eq!(
            infra.database_url("cmp_1_sync"),
            "postgres://postgres@127.0.0.1:5432/cmp_1_sync"
        );
    }
}
