//! The service processes `lab up` runs: started, watched, stopped one by one
//! (the control endpoint) or all together (Ctrl-C).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::{MODE, Replicas, ServiceSpec};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// How long a stopping service has to finish its requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(20);

pub struct Fleet {
    dir: PathBuf,
    replicas: Replicas,
    inner: Mutex<Inner>,
}

/// One process: a service and which of its instances (0 on the contract's port).
type Instance = (&'static str, u16);

#[derive(Default)]
struct Inner {
    /// Every instance this lab runs, and its process while it has one.
    children: BTreeMap<Instance, Option<Child>>,
    /// Exits already reported (or asked for), so each is said once.
    reported: HashSet<Instance>,
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
    pub fn new(dir: PathBuf, replicas: Replicas) -> Fleet {
        Fleet {
            dir,
            replicas,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// How many instances of the service this lab runs.
    pub fn instances(&self, spec: &ServiceSpec) -> u16 {
        self.replicas.of(spec.name)
    }

    /// The ports of the service's instances, the contract's first.
    pub fn ports(&self, spec: &ServiceSpec) -> Vec<u16> {
        self.replicas.ports(spec, MODE)
    }

    /// Starts every instance of the service (none may be running).
    pub async fn spawn(&self, spec: &'static ServiceSpec) -> anyhow::Result<()> {
        for replica in 0..self.instances(spec) {
            self.spawn_instance(spec, replica).await?;
        }
        Ok(())
    }

    /// Starts one instance: instance 0 on the contract's port, the others
    /// with `PORT` set to theirs.
    async fn spawn_instance(&self, spec: &'static ServiceSpec, replica: u16) -> anyhow::Result<()> {
        let path = self.dir.join(spec.binary());
        let mut command = Command::new(&path);
        if replica > 0 {
            command.env("PORT", spec.replica_port(MODE, replica).to_string());
        }
        let child = command.kill_on_drop(true).spawn().with_context(|| {
            format!(
                "cannot start {} (build it with `cargo build --release --bins`)",
                path.display()
            )
        })?;
        let mut inner = self.inner.lock().await;
        inner.children.insert((spec.name, replica), Some(child));
        inner.reported.remove(&(spec.name, replica));
        Ok(())
    }

    /// Waits until every instance of the service answers `/health`, or fails
    /// if one exits or `limit` passes.
    pub async fn wait_healthy(&self, spec: &ServiceSpec, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        for (replica, port) in (0..).zip(self.ports(spec)) {
            while crate::health(port).await.is_err() {
                {
                    let mut inner = self.inner.lock().await;
                    if let Some(Some(child)) = inner.children.get_mut(&(spec.name, replica))
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
                        "{} did not answer /health on port {port} within {} s",
                        spec.name,
                        limit.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Each service this lab runs, its state (its first instance's) and how
    /// many of its instances are running, in the contract's order.
    pub async fn states(&self) -> Vec<(&'static ServiceSpec, State, usize)> {
        let mut inner = self.inner.lock().await;
        let mut states = Vec::new();
        for spec in &common::SERVICES {
            let mut first = None;
            let mut running = 0;
            for ((name, _), slot) in inner.children.iter_mut() {
                if *name != spec.name {
                    continue;
                }
                let state = match slot.as_mut().map(alive) {
                    Some(true) => State::Running,
                    Some(false) => State::Exited,
                    None => State::Stopped,
                };
                running += usize::from(state == State::Running);
                first.get_or_insert(state);
            }
            if let Some(state) = first {
                states.push((spec, state, running));
            }
        }
        states
    }

    /// Whether this lab runs (or ran) the service at all.
    pub async fn runs(&self, name: &str) -> bool {
        self.inner.lock().await.children.contains_key(&(name, 0))
    }

    /// Stops every instance of one service as Ctrl-C would (SIGTERM, its
    /// requests in flight finish; SIGKILL after the grace period) and keeps
    /// them stopped.
    pub async fn stop(&self, name: &'static str) {
        let children: Vec<Child> = {
            let mut inner = self.inner.lock().await;
            let Inner { children, reported } = &mut *inner;
            children
                .iter_mut()
                .filter(|((n, _), _)| *n == name)
                .filter_map(|(instance, slot)| {
                    reported.insert(*instance);
                    slot.take()
                })
                .collect()
        };
        for child in &children {
            terminate(child);
        }
        for mut child in children {
            if tokio::time::timeout(STOP_GRACE, child.wait())
                .await
                .is_err()
            {
                eprintln!("lab: {name} did not stop within 20 s; killing it");
                let _ = child.kill().await;
            }
        }
    }

    /// Starts the stopped (or exited) instances of a service again and
    /// waits until all of them are healthy; running ones are left alone.
    pub async fn start(&self, spec: &'static ServiceSpec) -> anyhow::Result<()> {
        for replica in 0..self.instances(spec) {
            let running = {
                let mut inner = self.inner.lock().await;
                inner
                    .children
                    .get_mut(&(spec.name, replica))
                    .and_then(Option::as_mut)
                    .is_some_and(alive)
            };
            if !running {
                self.spawn_instance(spec, replica).await?;
            }
        }
        self.wait_healthy(spec, Duration::from_secs(60)).await
    }

    /// Instances that exited by themselves since the last call.
    pub async fn newly_exited(&self) -> anyhow::Result<Vec<Instance>> {
        let mut inner = self.inner.lock().await;
        let Inner { children, reported } = &mut *inner;
        let mut exited = Vec::new();
        for (instance, slot) in children.iter_mut() {
            if let Some(child) = slot
                && !reported.contains(instance)
                && child.try_wait()?.is_some()
            {
                reported.insert(*instance);
                exited.push(*instance);
            }
        }
        Ok(exited)
    }

    /// SIGTERM to every instance (each finishes its requests in flight), SIGKILL after 20 s.
    pub async fn stop_all(&self) {
        let mut inner = self.inner.lock().await;
        for child in inner.children.values().flatten() {
            terminate(child);
        }
        // One deadline for all: they stop side by side, so `lab` itself is gone
        // within 20 s (a script that kills it later must not orphan them).
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for ((name, _), child) in inner.children.iter_mut() {
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
