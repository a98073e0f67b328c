//! The service processes `lab up` runs: started, watched, stopped one by one
//! (the control endpoint) or all together (Ctrl-C).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::{MODE, ServiceSpec};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// How long a stopping service has to finish its requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(20);

pub struct Fleet {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Every service this lab runs, by name, and its process while it has one.
    children: HashMap<&'static str, Option<Child>>,
    /// Exits already reported (or asked for), so each is said once.
    reported: HashSet<&'static str>,
}

/// What a service is doing, as the control endpoint reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    /// Stopped on request (the control endpoint).
    Stopped,
    /// Exited by itself.
    Exited,
}

impl Fleet {
    pub fn new(dir: PathBuf) -> Fleet {
        Fleet {
            dir,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Starts the service's binary (it must not be running).
    pub async fn spawn(&self, spec: &'static ServiceSpec) -> anyhow::Result<()> {
        let path = self.dir.join(spec.binary());
        let child = Command::new(&path)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (build it with `cargo build --release --bins`)",
                    path.display()
                )
            })?;
        let mut inner = self.inner.lock().await;
        inner.children.insert(spec.name, Some(child));
        inner.reported.remove(spec.name);
        Ok(())
    }

    /// Waits until the service answers `/health`, or fails if it exits or `limit` passes.
    pub async fn wait_healthy(&self, spec: &ServiceSpec, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while crate::health(spec).await.is_err() {
            {
                let mut inner = self.inner.lock().await;
                if let Some(Some(child)) = inner.children.get_mut(spec.name)
                    && let Some(exit) = child.try_wait()?
                {
                    bail!(
                        "{} exited at startup ({exit}); see its log above",
                        spec.name
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer /health within {} s",
                    spec.name,
                    limit.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Each service this lab runs and its state, in the contract's order.
    pub async fn states(&self) -> Vec<(&'static ServiceSpec, State)> {
        let mut inner = self.inner.lock().await;
        let mut states = Vec::new();
        for spec in &common::SERVICES {
            let Some(slot) = inner.children.get_mut(spec.name) else {
                continue;
            };
            let state = match slot.as_mut().map(alive) {
                Some(true) => State::Running,
                Some(false) => State::Exited,
                None => State::Stopped,
            };
            states.push((spec, state));
        }
        states
    }

    /// Whether this lab runs (or ran) the service at all.
    pub async fn runs(&self, name: &str) -> bool {
        self.inner.lock().await.children.contains_key(name)
    }

    /// Stops one service as Ctrl-C would (SIGTERM, its requests in flight
    /// finish; SIGKILL after the grace period) and keeps it stopped.
    pub async fn stop(&self, name: &'static str) {
        let child = {
            let mut inner = self.inner.lock().await;
            inner.reported.insert(name);
            inner.children.get_mut(name).and_then(Option::take)
        };
        if let Some(mut child) = child {
            terminate(&child);
            if tokio::time::timeout(STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                eprintln!("lab: {name} did not stop within 20 s; killing it");
                let _ = child.kill().await;
            }
        }
    }

    /// Starts a stopped (or exited) service again and waits until it is healthy.
    pub async fn start(&self, spec: &'static ServiceSpec) -> anyhow::Result<()> {
        let running = {
            let mut inner = self.inner.lock().await;
            inner
                .children
                .get_mut(spec.name)
                .and_then(Option::as_mut)
                .is_some_and(alive)
        };
        if !running {
            self.spawn(spec).await?;
        }
        self.wait_healthy(spec, Duration::from_secs(60)).await
    }

    /// Services that exited by themselves since the last call.
    pub async fn newly_exited(&self) -> anyhow::Result<Vec<&'static str>> {
        let mut inner = self.inner.lock().await;
        let Inner { children, reported } = &mut *inner;
        let mut exited = Vec::new();
        for (name, slot) in children.iter_mut() {
            if let Some(child) = slot
                && !reported.contains(name)
                && child.try_wait()?.is_some()
            {
                reported.insert(*name);
                exited.push(*name);
            }
        }
        Ok(exited)
    }

    /// SIGTERM to every service (each finishes its requests in flight), SIGKILL after 20 s.
    pub async fn stop_all(&self) {
        let mut inner = self.inner.lock().await;
        for child in inner.children.values().flatten() {
            terminate(child);
        }
        // One deadline for all: they stop side by side, so `lab` itself is gone
        // within 20 s (a script that kills it later must not orphan them).
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for (name, child) in inner.children.iter_mut() {
            let Some(child) = child else { continue };
            if tokio::time::timeout_at(deadline, child.wait())
                .await
                .is_err()
            {
                eprintln!("lab: {name} did not stop within 20 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

fn alive(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

fn terminate(child: &Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

/// Where `lab up` listens for stop/start requests: `LAB_CONTROL_PORT`, else
/// 8000 for the sync stack and 8100 for the async one (below each stack's
/// service ports), always on loopback.
pub fn control_port() -> anyhow::Result<u16> {
    match std::env::var("LAB_CONTROL_PORT") {
        Ok(port) => port
            .parse()
            .with_context(|| format!("LAB_CONTROL_PORT={port} is not a port")),
        Err(_) => Ok(common::services::launcher_port(MODE)),
    }
}
